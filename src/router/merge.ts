// Merging per-shard answers into the global top k. Each shard's list is
// already closest first (ties by id) in the same order, so a k-way merge of
// the list heads gives the global order without sorting everything.
import type { Neighbor } from '../wire/contract';
import type { NeighborComparator } from '../wire/neighbor-order';

/**
 * The first `k` neighbours over all lists in `order`, skipping ids in
 * `excluded` (and any id seen twice). Lists must each be sorted by `order`.
 */
export function mergeTopK(
  lists: readonly (readonly Neighbor[])[],
  k: number,
  order: NeighborComparator,
  excluded: ReadonlySet<string> = new Set(),
): Neighbor[] {
  const heads = new Array<number>(lists.length).fill(0);
  const out: Neighbor[] = [];
  const seen = new Set<string>();
  while (out.length < k) {
    let best = -1;
    for (let s = 0; s < lists.length; s++) {
      const candidate = lists[s]![heads[s]!];
      if (candidate === undefined) continue;
      if (best < 0 || order(candidate, lists[best]![heads[best]!]!) < 0) best = s;
    }
    if (best < 0) break;
    const next = lists[best]![heads[best]!]!;
    heads[best]!++;
    if (excluded.has(next.id) || seen.has(next.id)) continue;
    seen.add(next.id);
    out.push(next);
  }
  return out;
}

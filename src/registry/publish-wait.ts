// `canopy publish --wait`: follow one published version until it is active,
// until a shard node reports it failed, until another version replaces it as
// the target, or until the deadline. Outcomes, not exceptions, so the command
// can give each its own exit status.
import type { ClusterSnapshot, ClusterView } from './cluster-view';

export type PublishOutcome =
  | { readonly kind: 'active' }
  | { readonly kind: 'failed'; readonly node: string; readonly addr: string; readonly reason: string }
  | { readonly kind: 'superseded'; readonly target: string | undefined }
  | { readonly kind: 'timed-out'; readonly waitedMs: number };

/** What the snapshot says of `version` so far; undefined while it is still loading. */
export function outcomeOf(snapshot: ClusterSnapshot, index: string, version: string): PublishOutcome | undefined {
  const view = snapshot.indexes.get(index);
  if (view?.active === version) return { kind: 'active' };
  if (view?.target !== version) return { kind: 'superseded', target: view?.target };
  for (const [node, record] of snapshot.nodes) {
    const state = record.index === index ? record.versions[version] : undefined;
    if (state?.state === 'failed') return { kind: 'failed', node, addr: record.addr, reason: state.reason };
  }
  return undefined;
}

/** Resolves with the first outcome the started `view` shows, or timed-out after `timeoutMs`. */
export function waitForOutcome(view: ClusterView, index: string, version: string, timeoutMs: number): Promise<PublishOutcome> {
  return new Promise((resolve) => {
    const finish = (outcome: PublishOutcome): void => {
      clearTimeout(timer);
      view.off('change', onChange);
      resolve(outcome);
    };
    const onChange = (snapshot: ClusterSnapshot): void => {
      const outcome = outcomeOf(snapshot, index, version);
      if (outcome !== undefined) finish(outcome);
    };
    const timer = setTimeout(() => finish({ kind: 'timed-out', waitedMs: timeoutMs }), timeoutMs);
    view.on('change', onChange);
    onChange(view.snapshot);
  });
}

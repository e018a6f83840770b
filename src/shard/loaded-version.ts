// One version of one shard, loaded: the forest (with the sidecars that passed
// their checks), the external ids of its items and the reverse map. Immutable once loaded, so any number of requests may
// use it at once; `release()` unloads it once no request holds it.
import type { Context } from '@opentelemetry/api';

import type { Manifest } from '../format/manifest';
import { readIdsFile } from '../format/ids-file';
import { ManifestError, readManifest, verifyShard } from '../format/manifest';
import { CanopyError } from '../wire/canopy-error';
import type { Metric } from '../format/metric';
import type { Neighbor } from '../wire/contract';
import type { NeighborComparator } from '../wire/neighbor-order';
import { neighborComparator } from '../wire/neighbor-order';
import type { ParsedQuery } from '../wire/query';
import {
  ATTR_BATCH_QUERIES,
  ATTR_INDEX,
  ATTR_INDEX_VERSION,
  ATTR_ITEMS_RETURNED,
  ATTR_K,
  ATTR_SEARCH_K,
  ATTR_SHARD,
} from '../telemetry/attributes';
import { endSpan, mayRecordUnder, startChildSpan } from '../telemetry/spans';
import type { EngineSearchOptions, ForestLoader, SearchResult, ShardForest } from './shard-forest';
import { loadSidecars, type SidecarStatus } from './shard-sidecars';

/** Name of the span around one engine search (or batch of searches). */
export const ENGINE_SPAN_NAME = 'engine.search';

export interface LoadVersionOptions {
  /** Check sha256 of the files against the manifest (reads every byte once). */
  readonly verifyChecksums: boolean;
  /** Touch every page of the forest at load so first queries do not fault. */
  readonly prefault: boolean;
  /** Told once, with the status calls now get, when the forest's file turns out changed on disk under its mapping. */
  readonly onFileChanged?: (loaded: LoadedVersion, error: CanopyError) => void;
}

/**
 * After load, the engine raises BAD_FILE only when the mapped file changed on
 * disk (truncated or rewritten in place) and a read found pages gone.
 */
const FILE_CHANGED_ENGINE_CODE = 'BAD_FILE';

export class LoadedVersion {
  private readonly order: NeighborComparator;
  private readonly itemOfId: Map<string, number>;
  /** Set iff onFileChanged was told. */
  private fileChangeReported = false;

  private constructor(
    readonly manifest: Manifest,
    readonly shard: number,
    private readonly forest: ShardForest,
    private readonly ids: readonly string[],
    /** One per sidecar kind: whether searches use it, and why not. */
    readonly sidecars: readonly SidecarStatus[],
    /** How long `load` took, checks and prefault included. */
    readonly loadDurationMs: number,
    private readonly onFileChanged: LoadVersionOptions['onFileChanged'],
  ) {
    this.order = neighborComparator(manifest.metric);
    this.itemOfId = new Map(ids.map((id, item) => [id, item]));
  }

  /** Reads and checks `<dir>/manifest.json`, then loads shard `shard` of it. */
  static async load(dir: string, shard: number, loader: ForestLoader, options: LoadVersionOptions): Promise<LoadedVersion> {
    const startedMs = performance.now();
    const manifest = await readManifest(dir);
    const files = await verifyShard(dir, manifest, shard, options.verifyChecksums);
    const ids = await readIdsFile(files.idsFile);
    if (ids.length !== files.entry.items) {
      throw new ManifestError(`${files.idsFile}: holds ${ids.length} ids, manifest says ${files.entry.items}`);
    }
    const forest = loader(files.file, { dim: manifest.dim, metric: manifest.metric, prefault: options.prefault });
    if (forest.nItems !== files.entry.items) {
      forest.unload();
      throw new ManifestError(`${files.file}: holds ${forest.nItems} items, manifest says ${files.entry.items}`);
    }
    const sidecars = await loadSidecars(dir, files.entry, forest, options);
    return new LoadedVersion(manifest, shard, forest, ids, sidecars, performance.now() - startedMs, options.onFileChanged);
  }

  get index(): string {
    return this.manifest.index;
  }
  get version(): string {
    return this.manifest.version;
  }
  get metric(): Metric {
    return this.manifest.metric;
  }
  get dim(): number {
    return this.manifest.dim;
  }
  get nItems(): number {
    return this.ids.length;
  }
  get nTrees(): number {
    return this.forest.nTrees;
  }

  /** Item number of an external id in this shard, or undefined. */
  itemOf(id: string): number | undefined {
    return this.itemOfId.get(id);
  }

  /** The stored vector of an item; a fresh array owned by the caller. */
  vectorOf(item: number): Float32Array {
    try {
      return this.forest.getItemVector(item);
    } catch (error) {
      throw this.unavailableIfFileChanged(error);
    }
  }

  /**
   * Answers queries in order. Queries sharing (k + exclusions count, search_k,
   * exact, rerank, ef) go to the engine in one batch. Each answer is closest first, ties by id,
   * without excluded ids, at most k long. Each engine call gets an
   * `engine.search` span under `parent` (when traced).
   */
  async search(queries: readonly ParsedQuery[], parent?: Context): Promise<Neighbor[][]> {
    const groups = new Map<string, number[]>();
    queries.forEach((q, i) => {
      const key = `${fetchCount(q)}/${q.searchK ?? 0}/${q.exact}/${q.rerank ?? 0}/${q.ef ?? 0}`;
      const group = groups.get(key);
      if (group === undefined) groups.set(key, [i]);
      else group.push(i);
    });
    const answers: Neighbor[][] = new Array(queries.length);
    await Promise.all(
      [...groups.values()].map(async (members) => {
        const first = queries[members[0]!]!;
        const opts = engineOptions(first);
        const span = mayRecordUnder(parent) ? startChildSpan(ENGINE_SPAN_NAME, this.spanAttributes(first, members.length), parent) : undefined;
        let results: SearchResult[];
        try {
          results =
            members.length === 1
              ? [await this.forest.search(first.vector, fetchCount(first), opts)]
              : await this.forest.searchBatch(
                  members.map((i) => queries[i]!.vector),
                  fetchCount(first),
                  opts,
                );
        } catch (caught) {
          const error = this.unavailableIfFileChanged(caught);
          endSpan(span, { error });
          throw error;
        }
        if (span !== undefined) {
          span.setAttribute(ATTR_ITEMS_RETURNED, results.reduce((sum, r) => sum + r.ids.length, 0));
          endSpan(span);
        }
        members.forEach((queryIndex, j) => {
          answers[queryIndex] = this.toNeighbors(results[j]!, queries[queryIndex]!);
        });
      }),
    );
    return answers;
  }

  /**
   * The engine span's attributes. The engine does not report how many
   * candidates a search inspected; `canopy.search_k` is the effective budget
   * it collects candidates up to (Annoy's n_trees * k when the query sets none).
   */
  private spanAttributes(query: ParsedQuery, queries: number) {
    const k = fetchCount(query);
    return {
      [ATTR_INDEX]: this.index,
      [ATTR_INDEX_VERSION]: this.version,
      [ATTR_SHARD]: this.shard,
      [ATTR_K]: k,
      [ATTR_SEARCH_K]: query.searchK !== undefined && query.searchK > 0 ? query.searchK : this.nTrees * k,
      [ATTR_BATCH_QUERIES]: queries,
    };
  }

  /**
   * A file changed under its mapping is this replica's problem, not the
   * request's: UNAVAILABLE (retryable), so a router tries another replica and
   * sets this one aside. It stays so until the version is loaded again.
   */
  private unavailableIfFileChanged(error: unknown): unknown {
    if ((error as { code?: unknown } | null)?.code !== FILE_CHANGED_ENGINE_CODE) return error;
    const status = CanopyError.unavailable(
      `${this.index}/${this.version} shard ${this.shard} cannot answer: ${(error as Error).message}`,
      error,
    );
    if (!this.fileChangeReported) {
      this.fileChangeReported = true;
      this.onFileChanged?.(this, status);
    }
    return status;
  }

  /** Unloads the forest; the engine defers it until in-flight searches finish. */
  release(): void {
    this.forest.unload();
  }

  private toNeighbors(result: SearchResult, query: ParsedQuery): Neighbor[] {
    const excluded = query.excludeIds.length > 0 ? new Set(query.excludeIds) : undefined;
    const out: Neighbor[] = [];
    for (let i = 0; i < result.ids.length; i++) {
      const id = this.ids[result.ids[i]!]!;
      if (excluded?.has(id)) continue;
      out.push({ id, distance: result.distances[i]! });
    }
    // The engine orders by distance only; ties are ordered by id here so
    // every replica cuts the list at the same place.
    out.sort(this.order);
    if (out.length > query.k) out.length = query.k;
    return out;
  }
}

/** The engine options of a query: only those it sets, so the engine's defaults apply to the rest. */
function engineOptions(q: ParsedQuery): EngineSearchOptions {
  return {
    ...(q.searchK === undefined ? {} : { searchK: q.searchK }),
    ...(q.exact ? { exact: true } : {}),
    ...(q.rerank === undefined ? {} : { rerank: q.rerank }),
    ...(q.ef === undefined ? {} : { ef: q.ef }),
  };
}

/** Asking the engine for k + |exclusions| keeps k answers after filtering. */
function fetchCount(q: ParsedQuery): number {
  return q.k + q.excludeIds.length;
}

// The versions a shard node holds, per index: several versions per index, one
// of them current, so requests can pin a version and a new one can load beside
// the one being served.
import type { LoadedVersion } from './loaded-version';
import { CanopyError } from '../wire/canopy-error';

interface IndexVersions {
  readonly versions: Map<string, LoadedVersion>;
  /** The version answering requests that name none; always a key of `versions`. */
  current: string;
}

export class ShardCatalog {
  private readonly indexes = new Map<string, IndexVersions>();

  /** Adds a loaded version; it becomes current when `makeCurrent` or when it is the index's first. */
  add(loaded: LoadedVersion, makeCurrent: boolean): void {
    const entry = this.indexes.get(loaded.index);
    if (entry === undefined) {
      this.indexes.set(loaded.index, { versions: new Map([[loaded.version, loaded]]), current: loaded.version });
      return;
    }
    if (entry.versions.has(loaded.version)) {
      throw new Error(`${loaded.index}/${loaded.version} is already loaded`);
    }
    entry.versions.set(loaded.version, loaded);
    if (makeCurrent) entry.current = loaded.version;
  }

  /** The version a request should use: the one it names, or the current one. Throws NOT_FOUND. */
  resolve(index: string, version: string): LoadedVersion {
    if (index === '') throw CanopyError.invalidArgument('index is required');
    const entry = this.indexes.get(index);
    if (entry === undefined) {
      throw CanopyError.notFound(`index ${JSON.stringify(index)} is not served here (serving: ${this.indexNames().join(', ') || 'none'})`);
    }
    const wanted = version === '' ? entry.current : version;
    const loaded = entry.versions.get(wanted);
    if (loaded === undefined) {
      throw CanopyError.notFound(`version ${JSON.stringify(wanted)} of index ${index} is not loaded here (loaded: ${[...entry.versions.keys()].join(', ')})`);
    }
    return loaded;
  }

  /** Like `resolve(index, '')`, but an empty name means the only index, when exactly one is served. */
  resolveCurrent(index: string): LoadedVersion {
    const names = this.indexNames();
    return this.resolve(index === '' && names.length === 1 ? names[0]! : index, '');
  }

  has(index: string, version: string): boolean {
    return this.indexes.get(index)?.versions.has(version) ?? false;
  }

  /** Makes a loaded version the one answering requests that name none. */
  setCurrent(index: string, version: string): void {
    const entry = this.indexes.get(index);
    if (!entry?.versions.has(version)) throw new Error(`${index}/${version} is not loaded`);
    entry.current = version;
  }

  /**
   * Takes a version out and releases it (the engine unmaps once in-flight
   * searches finish). The current version cannot be removed while others remain.
   */
  remove(index: string, version: string): void {
    const entry = this.indexes.get(index);
    const loaded = entry?.versions.get(version);
    if (entry === undefined || loaded === undefined) return;
    if (entry.current === version && entry.versions.size > 1) {
      throw new Error(`${index}/${version} is current; make another version current first`);
    }
    entry.versions.delete(version);
    if (entry.versions.size === 0) this.indexes.delete(index);
    loaded.release();
  }

  versionsOf(index: string): string[] {
    return [...(this.indexes.get(index)?.versions.keys() ?? [])];
  }

  /** Every loaded version, of every index. */
  *loaded(): IterableIterator<LoadedVersion> {
    for (const entry of this.indexes.values()) yield* entry.versions.values();
  }

  indexNames(): string[] {
    return [...this.indexes.keys()];
  }

  /** Releases every loaded version (on shutdown). */
  releaseAll(): void {
    for (const entry of this.indexes.values()) for (const loaded of entry.versions.values()) loaded.release();
    this.indexes.clear();
  }
}

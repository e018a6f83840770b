// Typed face of annoy_reference.py: build and query with the real Python annoy.
import { join } from 'node:path';

import type { Metric } from '../../src/format/metric';
import { runPythonJson } from './python';

const SCRIPT = join(__dirname, 'annoy_reference.py');

export interface ReferenceBuild {
  /** Raw float32 file of the items (row i is item i), from writeFloat32File. */
  data: string;
  dim: number;
  metric: Metric;
  nTrees: number;
  seed: number;
  /** Build threads (Annoy's n_jobs); 1 gives a reproducible file. */
  jobs?: number;
  out: string;
  /** Row r is added as item ids[r] (default r); ids never added stay holes. */
  ids?: number[];
}

export interface ReferenceBuilt {
  nItems: number;
  nTrees: number;
  buildSeconds: number;
}

export function annoyBuild(req: ReferenceBuild): ReferenceBuilt {
  return runPythonJson<ReferenceBuilt>(SCRIPT, { op: 'build', jobs: 1, ...req });
}

export interface ReferenceQuery {
  index: string;
  dim: number;
  metric: Metric;
  k: number;
  /** -1 is Annoy's default search_k. */
  searchKs: number[];
  /** Raw float32 file of query vectors. */
  queries?: string;
  byItem?: number[];
  itemVectors?: number[];
  distancePairs?: [number, number][];
}

export interface ReferenceAnswer {
  ids: number[];
  distances: number[];
}

export interface ReferenceSweep {
  searchK: number;
  /** One answer per query (or per item), in request order. */
  results: ReferenceAnswer[];
}

export interface ReferenceAnswers {
  nItems: number;
  nTrees: number;
  byVector?: ReferenceSweep[];
  byItem: ReferenceSweep[];
  itemVectors: number[][];
  distances: number[];
}

export function annoyQuery(req: ReferenceQuery): ReferenceAnswers {
  return runPythonJson<ReferenceAnswers>(SCRIPT, { op: 'query', ...req });
}

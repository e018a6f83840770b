// The one order of answers everywhere: closest first (for dot, the largest
// inner product first), ties broken by id so every hop and every replica
// agrees on the same top k.
import type { Metric } from '../format/metric';
import { largerIsCloser } from '../format/metric';
import type { Neighbor } from './contract';

export type NeighborComparator = (a: Neighbor, b: Neighbor) => number;

export function neighborComparator(metric: Metric): NeighborComparator {
  const sign = largerIsCloser(metric) ? -1 : 1;
  return (a, b) => {
    if (a.distance !== b.distance) return sign * (a.distance < b.distance ? -1 : 1);
    return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
  };
}

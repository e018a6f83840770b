/** Distance metrics, with Annoy's names and semantics. */
export type Metric = 'angular' | 'euclidean' | 'manhattan' | 'dot' | 'hamming';

export const METRICS: readonly Metric[] = ['angular', 'euclidean', 'manhattan', 'dot', 'hamming'];

/** Dot returns inner products, best (largest) first; every other metric returns distances, smallest first. */
export function largerIsCloser(metric: Metric): boolean {
  return metric === 'dot';
}

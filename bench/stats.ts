/** Small statistics helpers for the bench: percentiles and summaries of samples. */

export interface Summary {
  n: number;
  p50: number | null;
  p95: number | null;
  p99: number | null;
  max: number | null;
  mean: number | null;
}

/** Percentile with linear interpolation between closest ranks (numpy's default); null when empty. */
export function percentile(sorted: readonly number[], p: number): number | null {
  if (sorted.length === 0) return null;
  if (sorted.length === 1) return sorted[0]!;
  const rank = (p / 100) * (sorted.length - 1);
  const lo = Math.floor(rank);
  const hi = Math.ceil(rank);
  const a = sorted[lo]!;
  const b = sorted[hi]!;
  return a + (b - a) * (rank - lo);
}

export function round(v: number | null, digits = 1): number | null {
  if (v === null || !Number.isFinite(v)) return null;
  const f = 10 ** digits;
  return Math.round(v * f) / f;
}

export function summarize(values: readonly number[], digits = 1): Summary {
  const sorted = [...values].sort((a, b) => a - b);
  const mean = sorted.length === 0 ? null : sorted.reduce((s, v) => s + v, 0) / sorted.length;
  return {
    n: sorted.length,
    p50: round(percentile(sorted, 50), digits),
    p95: round(percentile(sorted, 95), digits),
    p99: round(percentile(sorted, 99), digits),
    max: round(sorted.length === 0 ? null : sorted[sorted.length - 1]!, digits),
    mean: round(mean, digits),
  };
}

export function median(values: readonly number[]): number | null {
  return percentile([...values].sort((a, b) => a - b), 50);
}

/** Absolute wall-clock time in ms with sub-ms resolution, comparable across threads. */
export function now(): number {
  return performance.timeOrigin + performance.now();
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/**
 * Least-squares slope of RSS against jobs done (KB per job), over the points from 20 % of the
 * way on: the first readings move with the garbage collectors' timing and the pool's threads
 * starting, not with a leak. Null with fewer than three such points.
 */
export function rssSlopeKbPerJob(curve: ReadonlyArray<{ jobs: number; rssBytes: number }>): number | null {
  if (curve.length === 0) return null;
  const last = Math.max(...curve.map((p) => p.jobs));
  const pts = curve.filter((p) => p.jobs >= 0.2 * last);
  if (pts.length < 3) return null;
  const mx = pts.reduce((s, p) => s + p.jobs, 0) / pts.length;
  const my = pts.reduce((s, p) => s + p.rssBytes, 0) / pts.length;
  const sxx = pts.reduce((s, p) => s + (p.jobs - mx) ** 2, 0);
  if (sxx === 0) return null;
  const sxy = pts.reduce((s, p) => s + (p.jobs - mx) * (p.rssBytes - my), 0);
  return round(sxy / sxx / 1024, 1);
}

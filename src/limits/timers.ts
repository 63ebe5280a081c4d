/**
 * Timers set from a job's own values. Node's timers take at most 2^31-1 ms (about 24.8 days): a
 * longer delay overflows and fires at once, so a wall limit of 30 days would end its job as
 * `timeout` immediately. Every such delay goes through clampTimerMs; a limit longer than the
 * largest timer is enforced at that largest timer. `within` bounds a wait without failing it.
 */

/** The longest delay setTimeout and setInterval honour. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** A delay setTimeout honours: 0 to MAX_TIMER_MS, whole ms; an unusable value (NaN) waits the longest. */
export function clampTimerMs(ms: number): number {
  if (Number.isNaN(ms)) return MAX_TIMER_MS;
  return Math.min(MAX_TIMER_MS, Math.max(0, Math.ceil(ms)));
}

/** Bounded wait: resolves with the promise's value, or `fallback` after `ms` (or when it rejects). */
export function within<T>(p: Promise<T>, ms: number, fallback: T): Promise<T> {
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve(fallback), clampTimerMs(ms));
    p.then(
      (v) => (clearTimeout(t), resolve(v)),
      () => (clearTimeout(t), resolve(fallback)),
    );
  });
}

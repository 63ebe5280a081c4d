/**
 * Deadlines for the engine calls of a job. A call the engine never answers (a hung dockerd, a
 * stuck storage driver) would hold its job's slot forever: each short call (create, start,
 * attach, inspect, update, kill, remove, list) gets ENGINE_CALL_MS, and `wait` gets the job's
 * wall limit plus WAIT_MARGIN_MS. A call past its deadline has its request aborted and rejects
 * with an EngineTimeoutError that names the call. IAD_ENGINE_CALL_TIMEOUT_MS and
 * IAD_ENGINE_RECOVERY_MS override the short deadline and the removal retries' bound (tests use
 * a few seconds).
 */
import { clampTimerMs } from "../limits/timers.js";

function envMs(name: string, fallback: number): number {
  const v = Number(process.env[name]);
  return Number.isFinite(v) && v > 0 ? v : fallback;
}

/** How long a short engine call may take. */
export const ENGINE_CALL_MS = envMs("IAD_ENGINE_CALL_TIMEOUT_MS", 30_000);

/**
 * How long a job's worker keeps trying to remove its containers after an engine call went
 * unanswered, before it leaves them to the main thread's periodic check.
 */
export const ENGINE_RECOVERY_MS = envMs("IAD_ENGINE_RECOVERY_MS", 10 * 60_000);

/** What `wait` gets beyond the container's wall limit (the kill at the limit, and its exit). */
export const WAIT_MARGIN_MS = 30_000;

export class EngineTimeoutError extends Error {
  constructor(readonly call: string, readonly ms: number) {
    super(`the Docker engine did not answer "${call}" within ${ms >= 1000 ? `${Math.round(ms / 100) / 10} s` : `${ms} ms`}`);
    this.name = "EngineTimeoutError";
  }
}

/** The deadline of `wait` for a container with this wall limit. */
export function waitDeadlineMs(wallSeconds: number): number {
  return clampTimerMs(wallSeconds * 1000 + WAIT_MARGIN_MS);
}

/**
 * Runs one engine call (given an AbortSignal to pass to dockerode as `abortSignal`) under a
 * deadline: its value, its own error, or an EngineTimeoutError once `ms` have passed.
 */
export function withDeadline<T>(call: string, ms: number, run: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const limit = clampTimerMs(ms);
  const abort = new AbortController();
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(new EngineTimeoutError(call, limit));
      abort.abort();
    }, limit);
    run(abort.signal).then(
      (v) => (clearTimeout(timer), resolve(v)),
      (err: unknown) => (clearTimeout(timer), reject(err instanceof Error ? err : new Error(String(err)))),
    );
  });
}

/**
 * Enforces a container's CPU-time and wall-time limits: CPU time from the engine's
 * stats stream (`cpu_stats.cpu_usage.total_usage`, ns), wall time from a timer started
 * when the container starts (clamped to the longest timer Node honours: see timers.ts). On the
 * first limit crossed it kills the container once.
 * `log` is expected to carry the container's id already.
 *
 * The stats stream opens late (statsDelayMs): a container on `cores` CPUs cannot use more than
 * `cores` CPU-seconds per second, so before half its limit could be spent there is nothing to
 * watch, and most jobs are over by then. That spares the engine a stats collector per short job.
 */
import type Docker from "dockerode";
import type { Logger } from "../log.js";
import { JsonLineSplitter } from "../protocol/json-lines.js";
import { clampTimerMs } from "./timers.js";

export type LimitExceeded = "cpu" | "wall";

export interface LimitWatch {
  readonly exceeded: LimitExceeded | null;
  /** Last CPU time seen, in seconds. */
  readonly cpuSeconds: number;
  stop(): void;
}

export function cpuUsageNs(stats: unknown): number | null {
  const v = (stats as { cpu_stats?: { cpu_usage?: { total_usage?: unknown } } })?.cpu_stats?.cpu_usage?.total_usage;
  return typeof v === "number" ? v : null;
}

/** How long the stats stream can wait: half the time `cores` CPUs need to spend the limit, at most 1 s. */
export function statsDelayMs(cpuSeconds: number, cores: number): number {
  return Math.max(0, Math.min(1000, Math.floor((cpuSeconds * 1000) / Math.max(1, cores) / 2)));
}

export function watchLimits(
  container: Docker.Container,
  limits: { cpuSeconds: number; wallSeconds: number; cpuBaselineNs?: number; statsDelayMs?: number },
  log: Logger,
): LimitWatch {
  let exceeded: LimitExceeded | null = null;
  let cpuSeconds = 0;
  let stopped = false;
  let statsStream: NodeJS.ReadableStream | null = null;

  const kill = (why: LimitExceeded, detail: string): void => {
    if (exceeded !== null || stopped) return;
    exceeded = why;
    log.info(`killing container: ${detail}`);
    container.kill().catch((err: { statusCode?: number; message: string }) => {
      if (err.statusCode !== 404 && err.statusCode !== 409) {
        log.warn({ err: err.message }, "failed to kill container over its limit");
      }
    });
  };

  const timer = setTimeout(
    () => kill("wall", `wall time over its limit of ${limits.wallSeconds} s`),
    clampTimerMs(limits.wallSeconds * 1000),
  );
  timer.unref();

  const limitNs = limits.cpuSeconds * 1e9;
  const openStats = (): void => void container
    .stats({ stream: true })
    .then((stream) => {
      statsStream = stream;
      if (stopped) {
        (statsStream as unknown as { destroy(): void }).destroy();
        return;
      }
      const lines = new JsonLineSplitter();
      statsStream.on("data", (chunk: Buffer) => {
        for (const sample of lines.push(chunk)) {
          const total = cpuUsageNs(sample);
          if (total === null) continue;
          // a warm container used some CPU before its job started: not the job's
          const ns = Math.max(0, total - (limits.cpuBaselineNs ?? 0));
          cpuSeconds = ns / 1e9;
          if (ns > limitNs) kill("cpu", `CPU time ${cpuSeconds.toFixed(1)} s over its limit of ${limits.cpuSeconds} s`);
        }
      });
      statsStream.on("error", () => {});
    })
    .catch((err: Error) => {
      if (!stopped) log.debug({ err: err.message }, "no stats stream for container");
    });
  const statsTimer = setTimeout(() => {
    if (!stopped) openStats();
  }, clampTimerMs(limits.statsDelayMs ?? 0));
  statsTimer.unref();

  return {
    get exceeded() {
      return exceeded;
    },
    get cpuSeconds() {
      return cpuSeconds;
    },
    stop() {
      stopped = true;
      clearTimeout(timer);
      clearTimeout(statsTimer);
      if (statsStream) (statsStream as unknown as { destroy(): void }).destroy();
    },
  };
}

/**
 * Enforces a container's CPU-time and wall-time limits: CPU time from the engine's
 * stats stream (`cpu_stats.cpu_usage.total_usage`, ns), wall time from a timer started
 * when the container starts. On the first limit crossed it kills the container once.
 * `log` is expected to carry the container's id already.
 */
import type Docker from "dockerode";
import type { Logger } from "../log.js";
import { JsonLineSplitter } from "../protocol/json-lines.js";

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

export function watchLimits(
  container: Docker.Container,
  limits: { cpuSeconds: number; wallSeconds: number; cpuBaselineNs?: number },
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
    limits.wallSeconds * 1000,
  );
  timer.unref();

  const limitNs = limits.cpuSeconds * 1e9;
  container
    .stats({ stream: true })
    .then((stream) => {
      statsStream = stream as unknown as NodeJS.ReadableStream;
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
      if (statsStream) (statsStream as unknown as { destroy(): void }).destroy();
    },
  };
}

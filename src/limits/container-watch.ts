/**
 * Enforces a container's CPU-time and wall-time limits: CPU time from the engine's
 * stats stream (`cpu_stats.cpu_usage.total_usage`, ns), wall time from a timer started
 * when the container starts (clamped to the longest timer Node honours: see timers.ts). On the
 * first limit crossed it kills the container once.
 * `log` is expected to carry the container's id already.
 *
 * The CPU watch starts late (statsDelayMs): a container on `cores` CPUs cannot use more than
 * `cores` CPU-seconds per second, so before half its limit could be spent there is nothing to
 * watch, and most jobs are over by then. From then on, where the container's cgroup can be read
 * (`readCpuNs`), its CPU time is read there every CPU_POLL_MS: a file read, where the engine's
 * stats stream costs an engine call, a collector of every figure and a sample to parse each
 * second. Where it cannot, the stats stream is opened.
 */
import type Docker from "dockerode";
import type { Logger } from "../log.js";
import { JsonLineSplitter } from "../protocol/json-lines.js";
import { clampTimerMs } from "./timers.js";

export type LimitExceeded = "cpu" | "wall";

/** How often the cgroup's CPU time is read: the engine's stats stream samples every second too. */
export const CPU_POLL_MS = 1000;

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

export interface WatchedLimits {
  cpuSeconds: number;
  wallSeconds: number;
  /** CPU time a warm container used before its job (not the job's), ns. */
  cpuBaselineNs?: number;
  statsDelayMs?: number;
  /** The container's CPU time from its cgroup, ns; null when it cannot be read (cgroup-cpu.ts). */
  readCpuNs?: () => number | null;
}

export function watchLimits(container: Docker.Container, limits: WatchedLimits, log: Logger): LimitWatch {
  let exceeded: LimitExceeded | null = null;
  let cpuSeconds = 0;
  let stopped = false;

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
  const cpu = watchCpu(container, limits, (total) => {
    if (stopped) return;
    const ns = Math.max(0, total - (limits.cpuBaselineNs ?? 0));
    cpuSeconds = ns / 1e9;
    if (ns > limitNs) kill("cpu", `CPU time ${cpuSeconds.toFixed(1)} s over its limit of ${limits.cpuSeconds} s`);
  }, log);

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
      cpu.stop();
    },
  };
}

/**
 * Hands `seen` the container's CPU time (ns, its whole life) from statsDelayMs on: read from
 * its cgroup every CPU_POLL_MS where it can be, else from the engine's stats stream.
 */
function watchCpu(container: Docker.Container, limits: WatchedLimits, seen: (ns: number) => void, log: Logger): { stop(): void } {
  let stopped = false;
  let statsStream: NodeJS.ReadableStream | null = null;
  let pollTimer: NodeJS.Timeout | null = null;
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
          if (total !== null) seen(total);
        }
      });
      statsStream.on("error", () => {});
    })
    .catch((err: Error) => {
      if (!stopped) log.debug({ err: err.message }, "no stats stream for container");
    });
  const startTimer = setTimeout(() => {
    const read = limits.readCpuNs;
    const first = read?.() ?? null;
    if (read === undefined || first === null) {
      // Each job that lands here costs an engine stream: a host whose cgroup layout the agent does not know.
      if (read !== undefined) log.debug({ cpuSource: "stats" }, "CPU time from the engine's stats stream: the container's cgroup cannot be read (here, or any more)");
      return openStats();
    }
    seen(first);
    pollTimer = setInterval(() => {
      const ns = read();
      if (ns !== null) seen(ns);
    }, CPU_POLL_MS);
    pollTimer.unref();
  }, clampTimerMs(limits.statsDelayMs ?? 0));
  startTimer.unref();
  return {
    stop() {
      stopped = true;
      clearTimeout(startTimer);
      if (pollTimer !== null) clearInterval(pollTimer);
      if (statsStream) (statsStream as unknown as { destroy(): void }).destroy();
    },
  };
}

/**
 * Event-loop delay of the main thread, which must stay free for the backend link.
 * Logged every minute. When `INGINIOUS_AGENT_STATS` names a file (the bench does), SIGUSR2
 * writes there the figures since the previous SIGUSR2 and starts a new window: nothing is
 * written between requests, so measuring costs the agent nothing while it is measured.
 *
 * The histogram samples every 50 ms: each sample wakes the thread, and at 10 ms the sampling
 * alone was most of an idle agent's CPU (100 wake-ups a second, about 7 ms/s here). A sample
 * that falls in a stall records what is left of it, so the share of time the loop is blocked,
 * and thus the percentiles, come out the same at any rate; only the count of samples drops.
 * Node records the whole time between two samples; the figures here are how late a sample
 * came (that time minus 50 ms), so an idle loop reads about 0.
 * The same file carries where the memory is (memory-report.ts): main isolate and pool threads.
 */
import { monitorEventLoopDelay } from "node:perf_hooks";
import { renameSync, writeFileSync } from "node:fs";
import type { Logger } from "./log.js";
import { askMemory, type MemoryBreakdown } from "./memory-report.js";

export const LOOP_SAMPLE_MS = 50;

/** What SIGUSR2 writes to the stats file. */
export interface LoopSnapshot {
  /** Date.now() when written: a reader waits for one newer than its request. */
  at: number;
  p50: number;
  p99: number;
  max: number;
  rss: number;
  cpu: NodeJS.CpuUsage;
  /** JS heaps and external memory of the main isolate and of the pool threads that answered. */
  memory: MemoryBreakdown;
}

/** `poolThreads`: how many pool threads are alive now (the memory query waits for their answers). */
export function installLoopMonitor(log: Logger, poolThreads: () => number): void {
  const h = monitorEventLoopDelay({ resolution: LOOP_SAMPLE_MS });
  h.enable();
  /** How late a sample came, in ms (2 decimals). */
  const ms = (ns: number): number => Math.max(0, Math.round((ns - LOOP_SAMPLE_MS * 1e6) / 1e4) / 100);
  setInterval(() => {
    log.info({ loopDelayMs: { p50: ms(h.percentile(50)), p99: ms(h.percentile(99)), max: ms(h.max) } }, "event loop delay");
    h.reset();
  }, 60_000).unref();
  const statsFile = process.env["INGINIOUS_AGENT_STATS"];
  if (!statsFile) return;
  process.on("SIGUSR2", () => void (async () => {
    const loop = { p50: ms(h.percentile(50)), p99: ms(h.percentile(99)), max: ms(h.max) };
    h.reset();
    const memory = await askMemory(poolThreads);
    const snapshot: LoopSnapshot = { at: Date.now(), ...loop, rss: process.memoryUsage.rss(), cpu: process.cpuUsage(), memory };
    try {
      // written aside and renamed, so that a reader never sees half a file
      writeFileSync(`${statsFile}.tmp`, JSON.stringify(snapshot));
      renameSync(`${statsFile}.tmp`, statsFile);
    } catch (err) {
      log.warn({ err: (err as Error).message, file: statsFile }, "cannot write the stats file");
    }
  })());
}

/**
 * Event-loop delay of the main thread, which must stay free for the backend link.
 * Logged every minute; exposed for the bench through the `INGINIOUS_AGENT_STATS` file when set.
 */
import { monitorEventLoopDelay } from "node:perf_hooks";
import { writeFileSync } from "node:fs";
import type { Logger } from "./log.js";

export function installLoopMonitor(log: Logger): void {
  const h = monitorEventLoopDelay({ resolution: 10 });
  h.enable();
  const statsFile = process.env["INGINIOUS_AGENT_STATS"];
  const ms = (ns: number): number => Math.round(ns / 1e4) / 100;
  const report = (): void => {
    const snapshot = {
      p50: ms(h.percentile(50)), p99: ms(h.percentile(99)), max: ms(h.max),
      rss: process.memoryUsage().rss, cpu: process.cpuUsage(),
    };
    if (statsFile) writeFileSync(statsFile, JSON.stringify(snapshot));
    return void snapshot;
  };
  setInterval(() => {
    log.info({ loopDelayMs: { p50: ms(h.percentile(50)), p99: ms(h.percentile(99)), max: ms(h.max) } }, "event loop delay");
    h.reset();
  }, 60_000).unref();
  if (statsFile) {
    setInterval(report, 500).unref();
    process.on("SIGUSR2", () => h.reset());
  }
}

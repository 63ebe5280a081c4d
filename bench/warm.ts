/**
 * Warm containers against the cold path, in one run: the same trivial jobs (the bench's
 * bench/tasks/bench/trivial: success feedback and a small archive) through the real
 * agent with --warm 0 and with --warm N, at concurrency 1 (latency) and at saturation
 * (2 x cores jobs in flight: throughput).
 *
 *   npm run build && node dist/bench/warm.js [--jobs 40] [--warm 2]
 *
 * Prints a table and writes bench/results/warm-latest.json. Targets: p50 latency at C = 1 with
 * warm containers <= 0.5 x cold; throughput at saturation no worse than cold (within 5%).
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { FakeBackend, newJob } from "../test/helpers/backend.js";
import { AgentProc } from "./agent-proc.js";
import { summarize, type Summary } from "./stats.js";

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const TASKS = path.join(REPO, "bench/tasks");

interface Level {
  concurrency: number;
  jobsPerSecond: number;
  latencyMs: Summary;
}

/** Sends `jobs` trivial jobs keeping `concurrency` in flight; returns throughput and latencies. */
async function drive(backend: FakeBackend, tag: string, jobs: number, concurrency: number): Promise<Level> {
  let next = 0;
  const latencies: number[] = [];
  const t0 = performance.now();
  const lane = async (): Promise<void> => {
    while (next < jobs) {
      const id = `${tag}-${next++}`;
      const sent = performance.now();
      await backend.send(newJob(id, { course_id: "bench", task_id: "trivial", inputdata: {} }));
      const d = await backend.done(id, 120_000);
      if ((d["result"] as string[])[0] !== "success") throw new Error(`${id}: ${JSON.stringify(d["result"])}`);
      latencies.push(performance.now() - sent);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, lane));
  const seconds = (performance.now() - t0) / 1000;
  return { concurrency, jobsPerSecond: Math.round((jobs / seconds) * 100) / 100, latencyMs: summarize(latencies) };
}

async function measure(warm: number, jobs: number, saturation: number): Promise<{ c1: Level; saturated: Level }> {
  const dir = mkdtempSync(path.join(os.tmpdir(), "iad-warm-bench-"));
  const tmpdir = path.join(dir, "agent");
  mkdirSync(tmpdir);
  const backend = await new FakeBackend().start();
  const agent = new AgentProc(path.join(REPO, "dist/src/cli.js"), [
    backend.address, "--tmpdir", tmpdir, "--tasks", TASKS, "--concurrency", String(saturation), "--warm", String(warm),
  ], dir);
  const stopPings = backend.pingEvery(1000);
  try {
    await backend.waitType("AgentHello", 60_000);
    await drive(backend, `w${warm}-warmup`, 4, 1); // images in cache, pool filled
    await new Promise((r) => setTimeout(r, 1500));
    const c1 = await drive(backend, `w${warm}-c1`, jobs, 1);
    const saturated = await drive(backend, `w${warm}-sat`, jobs * 2, saturation);
    return { c1, saturated };
  } finally {
    stopPings();
    agent.child.kill("SIGTERM");
    await agent.exited;
    backend.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<number> {
  const { values } = parseArgs({ options: { jobs: { type: "string" }, warm: { type: "string" } } });
  const jobs = Number(values.jobs ?? 40);
  const warm = Number(values.warm ?? 2);
  const saturation = 2 * os.availableParallelism();
  const cold = await measure(0, jobs, saturation);
  const hot = await measure(warm, jobs, saturation);
  const p50Ratio = hot.c1.latencyMs.p50! / cold.c1.latencyMs.p50!;
  const throughputRatio = hot.saturated.jobsPerSecond / cold.saturated.jobsPerSecond;
  const result = {
    when: new Date().toISOString(),
    machine: { cores: os.availableParallelism(), memoryGb: Math.round(os.totalmem() / 2 ** 30) },
    jobs, warm, saturation, cold, warmContainers: hot,
    p50LatencyRatioAtC1: Math.round(p50Ratio * 1000) / 1000,
    throughputRatioAtSaturation: Math.round(throughputRatio * 1000) / 1000,
    targets: { p50LatencyRatioAtC1: "<= 0.5", throughputRatioAtSaturation: ">= 0.95" },
  };
  const row = (name: string, r: { c1: Level; saturated: Level }): string =>
    `${name.padEnd(14)} ${String(r.c1.latencyMs.p50).padStart(8)} ${String(r.c1.latencyMs.p95).padStart(8)} ${String(r.c1.jobsPerSecond).padStart(8)} ${String(r.saturated.jobsPerSecond).padStart(10)}`;
  process.stdout.write(
    `${"".padEnd(14)} ${"p50 ms".padStart(8)} ${"p95 ms".padStart(8)} ${"jobs/s".padStart(8)} ${`jobs/s@${saturation}`.padStart(10)}\n` +
      `${row("cold", cold)}\n${row(`warm (${warm})`, hot)}\n` +
      `p50 latency at C=1, warm / cold: ${result.p50LatencyRatioAtC1} (target <= 0.5)\n` +
      `throughput at C=${saturation}, warm / cold: ${result.throughputRatioAtSaturation} (target >= 0.95)\n`,
  );
  mkdirSync(path.join(REPO, "bench/results"), { recursive: true });
  writeFileSync(path.join(REPO, "bench/results/warm-latest.json"), `${JSON.stringify(result, null, 2)}\n`);
  return 0;
}

process.exitCode = await main();

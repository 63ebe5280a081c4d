/**
 * Warm containers against the cold path, in one run: the same trivial jobs (the bench's
 * bench/tasks/bench/trivial: success feedback and a small archive) through the real
 * agent with --warm 0 and with --warm N, at concurrency 1 (latency) and at saturation
 * (2 x cores jobs in flight: throughput). Concurrency 1 is measured twice: jobs back to back,
 * where every job still pays for one container's create, start and removal (its replacement's)
 * on a machine the jobs alone keep busy, and with a pause after each job, as a job meets an
 * agent that is not saturated.
 *
 *   npm run build && node dist/bench/warm.js [--jobs 40] [--warm 2] [--paced-jobs 20] [--pause-ms 1000]
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

/**
 * Sends `jobs` trivial jobs keeping `concurrency` in flight (each lane pausing `pauseMs` after
 * each answer); returns throughput and latencies.
 */
async function drive(backend: FakeBackend, tag: string, jobs: number, concurrency: number, pauseMs = 0): Promise<Level> {
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
      if (pauseMs > 0) await new Promise((r) => setTimeout(r, pauseMs));
    }
  };
  await Promise.all(Array.from({ length: concurrency }, lane));
  const seconds = (performance.now() - t0) / 1000;
  return { concurrency, jobsPerSecond: Math.round((jobs / seconds) * 100) / 100, latencyMs: summarize(latencies) };
}

interface Measured {
  /** C = 1, jobs back to back: each job still costs one container's create, start and removal. */
  c1: Level;
  /** C = 1, a pause after each job: a job arriving at an agent with time to get ready for it. */
  c1Paced: Level;
  saturated: Level;
}

async function measure(warm: number, jobs: number, saturation: number, pacedJobs: number, pauseMs: number): Promise<Measured> {
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
    const c1Paced = await drive(backend, `w${warm}-paced`, pacedJobs, 1, pauseMs);
    const saturated = await drive(backend, `w${warm}-sat`, jobs * 2, saturation);
    return { c1, c1Paced, saturated };
  } finally {
    stopPings();
    agent.child.kill("SIGTERM");
    await agent.exited;
    backend.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: { jobs: { type: "string" }, warm: { type: "string" }, "paced-jobs": { type: "string" }, "pause-ms": { type: "string" } },
  });
  const jobs = Number(values.jobs ?? 40);
  const warm = Number(values.warm ?? 2);
  const pacedJobs = Number(values["paced-jobs"] ?? 20);
  const pauseMs = Number(values["pause-ms"] ?? 1000);
  const saturation = 2 * os.availableParallelism();
  const cold = await measure(0, jobs, saturation, pacedJobs, pauseMs);
  const hot = await measure(warm, jobs, saturation, pacedJobs, pauseMs);
  const p50Ratio = hot.c1.latencyMs.p50! / cold.c1.latencyMs.p50!;
  const pacedRatio = hot.c1Paced.latencyMs.p50! / cold.c1Paced.latencyMs.p50!;
  const throughputRatio = hot.saturated.jobsPerSecond / cold.saturated.jobsPerSecond;
  const result = {
    when: new Date().toISOString(),
    machine: { cores: os.availableParallelism(), memoryGb: Math.round(os.totalmem() / 2 ** 30) },
    jobs, pacedJobs, pauseMs, warm, saturation, cold, warmContainers: hot,
    p50LatencyRatioAtC1: Math.round(p50Ratio * 1000) / 1000,
    p50LatencyRatioAtC1Paced: Math.round(pacedRatio * 1000) / 1000,
    throughputRatioAtSaturation: Math.round(throughputRatio * 1000) / 1000,
    targets: { p50LatencyRatioAtC1: "<= 0.5", p50LatencyRatioAtC1Paced: "<= 0.5", throughputRatioAtSaturation: ">= 0.95" },
  };
  const cell = (v: string | number | null, w = 9): string => String(v).padStart(w);
  const row = (name: string, r: Measured): string =>
    `${name.padEnd(14)}${cell(r.c1.latencyMs.p50)}${cell(r.c1.latencyMs.p95)}${cell(r.c1.jobsPerSecond)}` +
    `${cell(r.c1Paced.latencyMs.p50, 11)}${cell(r.c1Paced.latencyMs.p95)}${cell(r.saturated.jobsPerSecond, 11)}`;
  process.stdout.write(
    `${"".padEnd(14)}${"C=1, back to back".padStart(27)}${`C=1, ${pauseMs} ms apart`.padStart(20)}${`C=${saturation}`.padStart(11)}\n` +
      `${"".padEnd(14)}${cell("p50 ms")}${cell("p95 ms")}${cell("jobs/s")}` +
      `${cell("p50 ms", 11)}${cell("p95 ms")}${cell("jobs/s", 11)}\n` +
      `${row("cold", cold)}\n${row(`warm (${warm})`, hot)}\n` +
      `p50 latency at C=1, warm / cold: ${result.p50LatencyRatioAtC1} back to back, ` +
      `${result.p50LatencyRatioAtC1Paced} with ${pauseMs} ms between jobs (target <= 0.5)\n` +
      `throughput at C=${saturation}, warm / cold: ${result.throughputRatioAtSaturation} (target >= 0.95)\n`,
  );
  mkdirSync(path.join(REPO, "bench/results"), { recursive: true });
  writeFileSync(path.join(REPO, "bench/results/warm-latest.json"), `${JSON.stringify(result, null, 2)}\n`);
  return 0;
}

process.exitCode = await main();

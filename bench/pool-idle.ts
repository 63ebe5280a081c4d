/**
 * Pool threads that start with work and end when idle, against an agent that keeps them: the
 * idle RSS of each, the p50 latency of the bench's trivial job at C = 1 back to back (threads
 * warm in both), and the p50 of jobs spaced beyond the idle timeout (every job meets a cold
 * thread) against the same spacing where the thread stays (a warm one). Agents run side by
 * side and their chunks alternate (A, B, B, A), so that a shared machine's drift weighs on both.
 *
 *   node dist/bench/pool-idle.js [--old DIR] [--jobs 24] [--paced 10] [--pause-ms 4000]
 *
 * --old DIR: the repository root of another build (e.g. a `git worktree` of main, built) to
 * compare against; without it, this build with a pool idle time of an hour stands in for it.
 * The cold case runs this build with `--pool-idle 1`, the pause being longer than that.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { FakeBackend, newJob } from "../test/helpers/backend.js";
import { AgentProc } from "./agent-proc.js";
import { summarize } from "./stats.js";

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const TASKS = path.join(REPO, "bench/tasks");

interface Subject {
  name: string;
  backend: FakeBackend;
  agent: AgentProc;
  dir: string;
  stopPings: () => void;
  latencies: Map<string, number[]>;
}

function rssMb(pid: number): { mb: number; threads: number } {
  const s = readFileSync(`/proc/${pid}/status`, "utf8");
  return { mb: Math.round(Number(/VmRSS:\s+(\d+)/.exec(s)![1]) / 102.4) / 10, threads: Number(/Threads:\s+(\d+)/.exec(s)![1]) };
}

async function start(name: string, root: string, args: string[]): Promise<Subject> {
  const dir = mkdtempSync(path.join(os.tmpdir(), "iad-pool-bench-"));
  mkdirSync(path.join(dir, "agent"));
  const backend = await new FakeBackend().start();
  const agent = new AgentProc(path.join(root, "dist/src/cli.js"), [
    backend.address, "--tmpdir", path.join(dir, "agent"), "--tasks", TASKS, "--debug-host", "127.0.0.1", ...args,
  ], dir);
  const stopPings = backend.pingEvery(1000);
  await backend.waitType("AgentHello", 60_000);
  return { name, backend, agent, dir, stopPings, latencies: new Map() };
}

async function stop(s: Subject): Promise<void> {
  s.stopPings();
  s.agent.child.kill("SIGTERM");
  await s.agent.exited;
  s.backend.close();
  rmSync(s.dir, { recursive: true, force: true });
}

let seq = 0;
async function job(s: Subject, tag: string): Promise<void> {
  const id = `${s.name}-${tag}-${seq++}`;
  const t0 = performance.now();
  await s.backend.send(newJob(id, { course_id: "bench", task_id: "trivial", inputdata: {} }));
  const d = await s.backend.done(id, 120_000);
  if ((d["result"] as string[])[0] !== "success") throw new Error(`${id}: ${JSON.stringify(d["result"])}`);
  if (!s.latencies.has(tag)) s.latencies.set(tag, []);
  s.latencies.get(tag)!.push(performance.now() - t0);
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: { old: { type: "string" }, jobs: { type: "string" }, paced: { type: "string" }, "pause-ms": { type: "string" } },
  });
  const jobs = Number(values.jobs ?? 24);
  const paced = Number(values.paced ?? 10);
  const pauseMs = Number(values["pause-ms"] ?? 4000);
  const subjects: Subject[] = [];
  try {
    const old = values.old === undefined ? await start("kept", REPO, ["--pool-idle", "3600"]) : await start("old", path.resolve(values.old), []);
    subjects.push(old);
    const now = await start("new", REPO, []);
    subjects.push(now);
    const cold = await start("cold", REPO, ["--pool-idle", "1"]);
    subjects.push(cold);
    await sleep(1500);
    const idle = Object.fromEntries(subjects.map((s) => [s.name, rssMb(s.agent.pid)]));
    for (const s of subjects) for (let i = 0; i < 3; i++) await job(s, "warmup");
    for (const s of [old, now, now, old]) {
      await sleep(1500);
      for (let i = 0; i < jobs / 4; i++) await job(s, "c1");
    }
    for (let i = 0; i < paced; i++) {
      for (const s of i % 2 === 0 ? [old, cold] : [cold, old]) {
        await sleep(pauseMs);
        await job(s, "paced");
      }
    }
    const p50 = (s: Subject, tag: string): number | null => summarize(s.latencies.get(tag) ?? []).p50;
    const result = {
      idle,
      c1P50Ms: { [old.name]: p50(old, "c1"), new: p50(now, "c1") },
      c1P50Ratio: Math.round((p50(now, "c1")! / p50(old, "c1")!) * 1000) / 1000,
      pacedP50Ms: { warmThread: p50(old, "paced"), coldThread: p50(cold, "paced") },
      coldThreadCostMs: Math.round(p50(cold, "paced")! - p50(old, "paced")!),
      pauseMs,
    };
    process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
    return 0;
  } finally {
    await Promise.all(subjects.map(stop));
  }
}

process.exitCode = await main();

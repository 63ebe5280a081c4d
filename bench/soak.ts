/**
 * The soak: thousands of mixed jobs (every outcome) through the real agent process at
 * concurrency 8, checking every result, the agent's RSS over time, and that nothing is left.
 *
 *   npm run build && node dist/bench/soak.js [--jobs 2000] [--concurrency 8] [--warm 2] [--out file.json]
 *
 * Prints a summary and writes bench/results/soak-latest.json. Every 100 jobs it reads where the
 * agent's memory is (soak-memory.ts); the summary says where RSS grew after job 500. Exit status
 * 0 only when every job got exactly one right answer, RSS grew by at most 5 % after job 500 and
 * no container or directory was left. Environment variables reach the agent (e.g. MALLOC_ARENA_MAX),
 * and BENCH_AGENT_NODE_ARGS adds node flags to it.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import Docker from "dockerode";
import { FakeBackend, newJob } from "../test/helpers/backend.js";
import { LABEL_AGENT, agentId } from "../src/docker/labels.js";
import type { BackendMessage } from "../src/protocol/messages.js";
import { AgentProc } from "./agent-proc.js";
import { MemoryCurve, growthSummary, type GrowthSummary } from "./soak-memory.js";

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const TASKS = path.join(REPO, "test/fixtures/tasks");

/** One kind of job of the mix: how to send it, and the result it must get. */
interface Kind {
  name: string;
  weight: number;
  job: (id: string) => BackendMessage;
  expect: string;
  /** Kill the job this many ms after sending it. */
  killAfterMs?: number;
}

const limits = (l: Record<string, unknown>) => ({ limits: { time: 20, hard_time: 60, memory: 200, ...l } });
const KINDS: Kind[] = [
  { name: "success", weight: 40, job: (id) => newJob(id, { task_id: "echo", inputdata: { n: "7" } }), expect: "success" },
  { name: "failed", weight: 20, job: (id) => newJob(id, { task_id: "failed" }), expect: "failed" },
  { name: "crash-norun", weight: 8, job: (id) => newJob(id, { task_id: "norun" }), expect: "crash" },
  { name: "crash-env", weight: 5, job: (id) => newJob(id, { environment: "no-such" }), expect: "crash" },
  { name: "crash-raw", weight: 5, job: (id) => newJob(id, { task_id: "raw", environment: "test-raw", inputdata: { mode: "wrong-types" } }), expect: "crash" },
  { name: "timeout-cpu", weight: 6, job: (id) => newJob(id, { task_id: "cpu", ...limits({ time: 1, hard_time: 30 }) }), expect: "timeout" },
  { name: "timeout-wall", weight: 6, job: (id) => newJob(id, { task_id: "sleep", ...limits({ time: 20, hard_time: 2 }) }), expect: "timeout" },
  { name: "overflow", weight: 5, job: (id) => newJob(id, { task_id: "memory", ...limits({ memory: 64 }) }), expect: "overflow" },
  { name: "killed", weight: 5, job: (id) => newJob(id, { task_id: "sleep" }), expect: "killed", killAfterMs: 1500 },
];

function pick(i: number): Kind {
  const total = KINDS.reduce((n, k) => n + k.weight, 0);
  let x = (i * 7919) % total; // deterministic, well spread
  for (const k of KINDS) {
    if (x < k.weight) return k;
    x -= k.weight;
  }
  return KINDS[0]!;
}

function writeSummary(out: string, summary: Record<string, unknown>, growth: GrowthSummary | null, ok: boolean): void {
  mkdirSync(path.dirname(out), { recursive: true });
  writeFileSync(out, `${JSON.stringify(summary, null, 2)}\n`);
  process.stdout.write(`${JSON.stringify({ ...summary, rss: undefined, memory: undefined, memoryGrowth: undefined }, null, 2)}\n`);
  if (growth) process.stdout.write(`memory: ${growth.text}\nRSS growth after job ${growth.fromJobs}: ${growth.pass ? "pass" : "FAIL"}\n`);
  process.stdout.write(`soak ${ok ? "passed" : "FAILED"}\n`);
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: { jobs: { type: "string" }, concurrency: { type: "string" }, warm: { type: "string" }, out: { type: "string" } },
  });
  const jobs = Number(values.jobs ?? 2000);
  const concurrency = Number(values.concurrency ?? 8);
  const warm = values.warm ?? "2";
  const dir = mkdtempSync(path.join(os.tmpdir(), "iad-soak-"));
  const tmpdir = path.join(dir, "agent");
  mkdirSync(tmpdir);
  const docker = new Docker();
  const backend = await new FakeBackend().start();
  const agent = new AgentProc(path.join(REPO, "dist/src/cli.js"), [
    backend.address, "--tmpdir", tmpdir, "--tasks", TASKS, "--concurrency", String(concurrency), "--warm", warm,
  ], dir);
  const stopPings = backend.pingEvery(1000);
  const started = Date.now();
  const curve = new MemoryCurve(agent, jobs);
  const wrong: string[] = [];
  const byKind = new Map<string, number>();
  let ok = true;
  try {
    await backend.waitType("AgentHello", 60_000);
    // Keep `concurrency` jobs in flight, as the backend does with the agent's slots.
    let next = 0;
    let done = 0;
    const runOne = async (): Promise<void> => {
      while (next < jobs) {
        const i = next++;
        const kind = pick(i);
        const id = `soak-${i}-${kind.name}`;
        await backend.send(kind.job(id));
        if (kind.killAfterMs !== undefined) {
          setTimeout(() => void backend.send({ type: "BackendKillJob", job_id: id, state: "" }), kind.killAfterMs);
        }
        const d = await backend.done(id, 300_000);
        const got = (d["result"] as string[])[0]!;
        if (got !== kind.expect) wrong.push(`${id}: ${got} (${(d["result"] as string[])[1]}) instead of ${kind.expect}`);
        byKind.set(kind.name, (byKind.get(kind.name) ?? 0) + 1);
        done++;
        if (done % 100 === 0) curve.sample(done, wrong.length);
      }
    };
    await Promise.all(Array.from({ length: concurrency }, runOne));
    await curve.finished();
    const doubles = new Set(backend.received.filter((r) => r.message["@type"] === "AgentJobDone").map((r) => r.message["job_id"]));
    const answers = backend.count("AgentJobDone");
    if (answers !== jobs || doubles.size !== jobs) {
      wrong.push(`${answers} AgentJobDone for ${jobs} jobs (${doubles.size} distinct)`);
    }
  } finally {
    stopPings();
    agent.child.kill("SIGTERM");
    await agent.exited;
    backend.close();
  }
  const left = await docker.listContainers({ all: true, filters: { label: [`${LABEL_AGENT}=${agentId(tmpdir)}`] } });
  const dirsLeft = (await import("node:fs")).readdirSync(tmpdir);
  const seconds = (Date.now() - started) / 1000;
  // RSS levels off: after job 500 (V8 and malloc size themselves before), at most 5 % growth
  const memory = curve.samples;
  const growth = growthSummary(memory, jobs);
  const summary = {
    when: new Date().toISOString(),
    jobs, concurrency, warm: Number(warm), seconds: Math.round(seconds), jobsPerSecond: Math.round((jobs / seconds) * 100) / 100,
    byKind: Object.fromEntries(byKind), wrong: wrong.slice(0, 20), wrongCount: wrong.length,
    rss: memory.map((m) => ({ jobs: m.jobs, mb: m.rssMb })), rssGrowth: growth?.growth ?? null,
    memoryGrowth: growth, memory,
    env: { MALLOC_ARENA_MAX: process.env["MALLOC_ARENA_MAX"] ?? null, nodeArgs: process.env["BENCH_AGENT_NODE_ARGS"] ?? null },
    containersLeft: left.length, directoriesLeft: dirsLeft.length,
    machine: { cores: os.availableParallelism(), memoryGb: Math.round(os.totalmem() / 2 ** 30) },
  };
  ok = wrong.length === 0 && left.length === 0 && dirsLeft.length === 0 && (growth === null || growth.pass);
  writeSummary(path.resolve(values.out ?? path.join(REPO, "bench/results/soak-latest.json")), summary, growth, ok);
  for (const c of left) await docker.getContainer(c.Id).remove({ force: true }).catch(() => {});
  rmSync(dir, { recursive: true, force: true });
  return ok ? 0 : 1;
}

process.exitCode = await main();

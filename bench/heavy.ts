/**
 * A heavy task with the copy and without it, in one run: a task folder of many files (20,000
 * files, 100 MB by default: bench/heavy-task.ts) graded by two real agents side by side, one with
 * --copy-task-folders and one that layers /task over the course's folder, their chunks of jobs
 * alternated (copy, layered, layered, copy, ...) so that a shared machine's drift weighs on both
 * alike. Each answer is checked (success, every file seen). Per way: job preparation (the agent's
 * own `prepare` phase), latency, throughput with the cleanups counted, and layered / copy.
 *
 *   npm run build && node dist/bench/heavy.js [--jobs 8] [--concurrency 2] [--files 20000] [--mb 100] [--rounds 2]
 *
 * Prints a table and writes OUT/heavy-latest.json (OUT: bench/results). The layered agent's start-up
 * check and each job's /task mount (as its grader read it) are in the output: a run whose layered
 * agent copied, at start-up or for any job, ends with status 1. Agents, containers, volumes, the
 * task folder and the temp directories are removed at the end, also on failure and Ctrl-C.
 * Exit status: 0 measured (targets met or not), 1 the run failed or the layered agent copied, 2 bad flags.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import Docker from "dockerode";
import { agentTimings, split } from "./figures.js";
import { HeavyAgent, type Layering } from "./heavy-agent.js";
import { layeringText, modeFigures, printTable, type Chunk, type HeavySummary } from "./heavy-figures.js";
import { buildHeavyTask, type HeavyTask } from "./heavy-task.js";
import { log } from "./log.js";

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const CLI = path.join(REPO, "dist/src/cli.js");
const IMAGE = "inginious-agent-docker/sample:latest";
const JOB_TIMEOUT_MS = 600_000;
const PREPARE_TARGET_MS = 50;
const THROUGHPUT_TARGET = 5;

const USAGE = `usage: node dist/bench/heavy.js [options]
  --jobs N           measured jobs per agent (default 8; quick 4)
  --concurrency C    jobs in flight, and each agent's --concurrency (default 2)
  --files N          files in the task folder (default 20000; quick 2000)
  --mb N             MiB of random bytes over those files (default 100; quick 10)
  --rounds N         chunks per agent, alternated copy/layered then layered/copy (default 2)
  --warmup N         unmeasured jobs per agent first (default 1; quick 0)
  --warm N           both agents' --warm (default 0: a warm container's task is copied into it)
  --agent-args=STR   more arguments for both agents, split on spaces
  --out DIR          where heavy-latest.json goes (default bench/results)
  --quick            --jobs 4 --files 2000 --mb 10 --warmup 0 (figures not meaningful)
  -h, --help         this help`;

interface Options {
  jobs: number;
  concurrency: number;
  files: number;
  mb: number;
  rounds: number;
  warmup: number;
  warm: number;
  agentArgs: string[];
  out: string;
  quick: boolean;
}

function parse(argv: string[]): Options | null {
  const str = { type: "string" } as const;
  const { values } = parseArgs({
    args: argv,
    options: {
      jobs: str, concurrency: str, files: str, mb: str, rounds: str, warmup: str, warm: str, "agent-args": str, out: str,
      quick: { type: "boolean", default: false }, help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return null;
  }
  const int = (name: string, v: string | undefined, dflt: number, min = 1): number => {
    const n = v === undefined ? dflt : Number(v);
    if (!Number.isInteger(n) || n < min) throw new Error(`--${name} must be an integer >= ${min}, got ${JSON.stringify(v)}`);
    return n;
  };
  const quick = values.quick;
  return {
    jobs: int("jobs", values.jobs, quick ? 4 : 8),
    concurrency: int("concurrency", values.concurrency, 2),
    files: int("files", values.files, quick ? 2000 : 20000),
    mb: int("mb", values.mb, quick ? 10 : 100),
    rounds: int("rounds", values.rounds, 2),
    warmup: int("warmup", values.warmup, quick ? 0 : 1, 0),
    warm: int("warm", values.warm, 0, 0),
    agentArgs: (values["agent-args"] ?? "").split(/\s+/).filter((a) => a !== ""),
    out: path.resolve(values.out ?? path.join(REPO, "bench/results")),
    quick,
  };
}

async function preflight(docker: Docker): Promise<void> {
  try {
    await docker.ping();
  } catch (err) {
    throw new Error(`the Docker engine does not answer (${(err as Error).message})`);
  }
  await docker.getImage(IMAGE).inspect().catch(() => {
    throw new Error(`the image ${IMAGE} is missing: run images/build.sh`);
  });
}

/** `n` jobs through `a`, `c` in flight; then waits for its slots to be free (its cleanups ended). */
async function chunk(a: HeavyAgent, tag: string, n: number, c: number, files: number): Promise<Chunk> {
  let next = 0;
  const jobs: Chunk["jobs"] = [];
  const t0 = performance.now();
  const lane = async (): Promise<void> => {
    while (next < n) {
      next++;
      jobs.push(await a.job(tag, files, JOB_TIMEOUT_MS));
    }
  };
  await Promise.all(Array.from({ length: Math.min(c, n) }, lane));
  const resultsS = (performance.now() - t0) / 1000;
  await a.settle(300_000);
  return { jobs, resultsS, settledS: (performance.now() - t0) / 1000 };
}

/** Fails unless the agent's start-up check chose `expected`, log line and gauge alike. */
function checkLayering(mode: string, l: Layering, expected: "copy" | "layered"): void {
  if (l.mode !== expected || l.gauge !== (expected === "layered" ? 1 : 0)) {
    throw new Error(`the ${mode} agent's task folders are not ${expected}: ${layeringText(l)}`);
  }
}

interface Measured {
  copy: { chunks: Chunk[]; figures: ReturnType<typeof modeFigures> };
  layered: { chunks: Chunk[]; figures: ReturnType<typeof modeFigures> };
  layering: { copy: Layering; layered: Layering };
}

/** Both agents started, checked and warmed up; then the rounds, each agent's chunks alternated. */
async function measure(opts: Options, task: HeavyTask, copy: HeavyAgent, layered: HeavyAgent): Promise<Measured> {
  const extra = ["--warm", String(opts.warm), ...opts.agentArgs];
  await Promise.all([copy, layered].map((a) => a.start(CLI, task.tasksDir, opts.concurrency, extra)));
  const layering = { copy: await copy.layering(), layered: await layered.layering() };
  log(`heavy: copy agent ${layeringText(layering.copy)}; layered agent ${layeringText(layering.layered)}`);
  checkLayering("copy", layering.copy, "copy");
  checkLayering("layered", layering.layered, "layered");
  for (const a of [copy, layered]) {
    for (let i = 0; i < opts.warmup; i++) await a.job("warmup", task.files, JOB_TIMEOUT_MS);
    await a.settle(300_000);
  }
  const before = { copy: await copy.cleanups(), layered: await layered.cleanups() };
  const chunks = new Map<HeavyAgent, Chunk[]>([[copy, []], [layered, []]]);
  const sizes = split(opts.jobs, opts.rounds);
  for (const [r, n] of sizes.entries()) {
    for (const a of r % 2 === 0 ? [copy, layered] : [layered, copy]) {
      const c = await chunk(a, `r${r}`, n, opts.concurrency, task.files);
      chunks.get(a)!.push(c);
      log(`heavy: round ${r + 1}/${sizes.length} ${a.mode}: ${n} jobs, ${c.resultsS.toFixed(1)} s to results, ${c.settledS.toFixed(1)} s to idle`);
    }
  }
  const figures = async (a: HeavyAgent, b: { seconds: number; count: number }): Promise<ReturnType<typeof modeFigures>> => {
    const after = await a.cleanups();
    return modeFigures(chunks.get(a)!, await agentTimings(a.agent!), { seconds: after.seconds - b.seconds, count: after.count - b.count });
  };
  return {
    copy: { chunks: chunks.get(copy)!, figures: await figures(copy, before.copy) },
    layered: { chunks: chunks.get(layered)!, figures: await figures(layered, before.layered) },
    layering,
  };
}

/** Jobs whose /task was not what their agent's mode means (layered: an overlay; copy: anything else). */
function wrongMounts(m: Measured): string[] {
  const out: string[] = [];
  for (const j of m.layered.chunks.flatMap((c) => c.jobs)) if (j.mount !== "overlay") out.push(`${j.id}: /task is ${j.mount ?? "unknown"}, not overlay`);
  for (const j of m.copy.chunks.flatMap((c) => c.jobs)) if (j.mount === "overlay") out.push(`${j.id}: /task is an overlay under --copy-task-folders`);
  return out;
}

function summary(opts: Options, task: HeavyTask, m: Measured): HeavySummary {
  const c = m.copy.figures;
  const l = m.layered.figures;
  const ratio = c.jobsPerS !== null && l.jobsPerS !== null ? Math.round((l.jobsPerS / c.jobsPerS) * 100) / 100 : null;
  const prep = l.prepareMs.p50;
  return {
    header: `heavy task: ${task.files} files, ${opts.mb} MiB in ${task.folders} folders (built in ${(task.buildMs / 1000).toFixed(1)} s); ` +
      `${opts.jobs} jobs an agent at C=${opts.concurrency}, ${opts.rounds} rounds alternated, --warm ${opts.warm}`,
    copy: c,
    layered: l,
    layering: m.layering,
    throughputRatio: ratio,
    targets: [
      { id: "preparationP50Layered", value: prep, limit: `<= ${PREPARE_TARGET_MS} ms`, met: prep === null ? null : prep <= PREPARE_TARGET_MS },
      { id: "throughputRatio", value: ratio, limit: `>= ${THROUGHPUT_TARGET}`, met: ratio === null ? null : ratio >= THROUGHPUT_TARGET },
    ],
  };
}

async function run(opts: Options, docker: Docker, root: string, agents: HeavyAgent[]): Promise<number> {
  const started = Date.now();
  await preflight(docker);
  log(`heavy: building ${opts.files} files, ${opts.mb} MiB under ${root}`);
  const task = buildHeavyTask(root, opts.files, opts.mb);
  log(`heavy: task folder built in ${(task.buildMs / 1000).toFixed(1)} s`);
  const copy = new HeavyAgent("copy", root);
  const layered = new HeavyAgent("layered", root);
  agents.push(copy, layered);
  const m = await measure(opts, task, copy, layered);
  const wrong = wrongMounts(m);
  const s = summary(opts, task, m);
  const results = {
    when: new Date().toISOString(), seconds: Math.round((Date.now() - started) / 1000), quick: opts.quick,
    machine: { cores: os.availableParallelism(), memoryGb: Math.round(os.totalmem() / 2 ** 30) },
    options: { ...opts, out: undefined },
    task: { files: task.files, bytes: task.bytes, folders: task.folders, buildMs: task.buildMs },
    layering: { ...m.layering, layeredJobs: m.layered.figures.mounts["overlay"] ?? 0, wrongMounts: wrong },
    copy: s.copy, layered: s.layered, throughputRatio: s.throughputRatio,
    preparationP50Ratio: s.copy.prepareMs.p50 && s.layered.prepareMs.p50 !== null ? Math.round((s.layered.prepareMs.p50 / s.copy.prepareMs.p50) * 10000) / 10000 : null,
    targets: s.targets,
  };
  mkdirSync(opts.out, { recursive: true });
  writeFileSync(path.join(opts.out, "heavy-latest.json"), `${JSON.stringify(results, null, 2)}\n`);
  printTable(s);
  if (wrong.length > 0) {
    process.stderr.write(`heavy bench: THE LAYERED AGENT DID NOT LAYER every job:\n  ${wrong.join("\n  ")}\n`);
    return 1;
  }
  return 0;
}

export async function main(argv: string[]): Promise<number> {
  let opts: Options | null;
  try {
    opts = parse(argv);
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n${USAGE}\n`);
    return 2;
  }
  if (opts === null) return 0;
  const docker = new Docker();
  const root = mkdtempSync(path.join(os.tmpdir(), "iad-heavy-"));
  const agents: HeavyAgent[] = [];
  let cleaned: Promise<void> | null = null;
  const cleanup = (): Promise<void> => (cleaned ??= (async () => {
    const left = (await Promise.all(agents.map((a) => a.stop(docker).catch(() => 0)))).reduce((n, x) => n + x, 0);
    if (left > 0) log(`heavy: removed ${left} containers and volumes the agents left`);
    rmSync(root, { recursive: true, force: true });
  })());
  let interrupted = false;
  for (const sig of ["SIGINT", "SIGTERM"] as const) {
    process.once(sig, () => {
      interrupted = true;
      log(`heavy: ${sig}: stopping the agents, removing their containers, volumes and the task folder`);
      void cleanup().finally(() => process.exit(130));
    });
  }
  try {
    return await run(opts, docker, root, agents);
  } catch (err) {
    if (interrupted) return 130;
    process.stderr.write(`heavy bench failed: ${(err as Error).stack ?? String(err)}\n`);
    for (const a of agents) if (a.agent !== null) process.stderr.write(`--- ${a.mode} agent's log, last lines:\n${await a.agent.tail(15)}\n`);
    return 1;
  } finally {
    await cleanup();
  }
}

if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const code = await main(process.argv.slice(2));
  setTimeout(() => process.exit(code), 100).unref();
  process.exitCode = code;
}

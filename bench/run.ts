/**
 * `npm run bench`: measures the agent against the Docker floor in one run.
 *
 *   1. Docker floor: the trivial job straight through dockerode, at each concurrency.
 *   2. The real agent process (driven by a ROUTER playing the backend, pinging every 100 ms):
 *      throughput, end-to-end latency and agent-added latency at each concurrency.
 *   3. Main-thread health while 2x cores jobs return 20 MB archives and 20 MB of stdout:
 *      Ping->Pong round trip and the agent's own event-loop delay.
 *   4. Memory: RSS idle, after warm-up, after 1,000 trivial jobs, under the load of 3.
 *   5. CPU per job: the agent (all threads), dockerd, containerd.
 *
 * Writes bench/results/<timestamp>.json, latest.json and latest.svg, prints a table.
 * See bench/README.md for the flags and what each figure means.
 */
import { execFileSync } from "node:child_process";
import { copyFileSync, mkdtempSync, mkdirSync, promises as fs, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";
import Docker from "dockerode";
import { agentId, LABEL_AGENT } from "../src/docker/labels.js";
import { JsonLineSplitter } from "../src/protocol/json-lines.js";
import type { BackendNewJob } from "../src/protocol/messages.js";
import { AgentProc, type LogLine } from "./agent-proc.js";
import { BENCH_LABEL, floorBatch, stopFloor, type FloorJob, type FloorOptions } from "./floor.js";
import { machineCpuMs, mainThreadCpuMs, pidsByName, processCpuMs, procStatus } from "./proc.js";
import { textReport, svgChart } from "./report.js";
import { median, now, round, rssSlopeKbPerJob, sleep, summarize, type Summary } from "./stats.js";
import type { DoneEvent, WireCommand, WireEvent } from "./wire.js";
import { frameTransferMs } from "./wire-floor.js";
import { CLI, COURSE, parseOptions, RAW_IMAGE, REPO, SAMPLE_IMAGE, TASKS, USAGE, type Options } from "./options.js";
import type { BenchResults, CpuFigures, LevelFigures, LoopDelay, RunFigures, Target } from "./results.js";

// ---------------------------------------------------------------------------------------------
// the wire thread

interface JobRecord {
  id: string;
  ok: boolean;
  result: string;
  text: string;
  sentAt: number;
  doneAt: number;
  size: number;
  archiveBytes: number;
  archiveIsGzip: boolean;
  stdoutBytes: number;
}

class Wire {
  readonly worker: Worker;
  readonly pongs: Array<{ sentAt: number; rtt: number; behindBig: boolean }> = [];
  readonly problems: string[] = [];
  address: Promise<string>;
  hello: Promise<Extract<WireEvent, { ev: "hello" }>>;
  private helloResolve!: (e: Extract<WireEvent, { ev: "hello" }>) => void;
  private readonly sentAt = new Map<string, number>();
  private readonly waiting = new Map<string, (d: DoneEvent) => void>();
  private verifyResolve: ((v: { ok: boolean; detail: string }) => void) | null = null;

  constructor() {
    this.worker = new Worker(new URL("./wire.js", import.meta.url), { workerData: { pingEveryMs: 100 } });
    let addressResolve!: (a: string) => void;
    let addressReject!: (e: Error) => void;
    this.address = new Promise((res, rej) => ((addressResolve = res), (addressReject = rej)));
    this.hello = new Promise((res) => (this.helloResolve = res));
    this.worker.on("error", (err) => {
      this.problems.push(`wire thread failed: ${err.message}`);
      addressReject(err);
    });
    this.worker.on("message", (e: WireEvent) => {
      switch (e.ev) {
        case "ready":
          addressResolve(e.address);
          return;
        case "hello":
          this.helloResolve(e);
          return;
        case "sent":
          this.sentAt.set(e.id, e.at);
          return;
        case "pong":
          this.pongs.push({ sentAt: e.sentAt, rtt: e.rtt, behindBig: e.behindBig });
          return;
        case "done": {
          const w = this.waiting.get(e.id);
          if (w) {
            this.waiting.delete(e.id);
            w(e);
          }
          return;
        }
        case "verified":
          this.verifyResolve?.(e);
          this.verifyResolve = null;
          return;
        case "error":
          if (this.problems.length < 20) this.problems.push(e.message);
          return;
        case "other":
          if (e.type !== "AgentHello" && this.problems.length < 20) this.problems.push(`unexpected message from the agent: ${e.type}`);
          return;
        case "started":
          return;
      }
    });
  }

  private post(c: WireCommand): void {
    this.worker.postMessage(c);
  }

  /** Sends a job and resolves with its AgentJobDone (or a failed record after `timeoutMs`). */
  job(msg: BackendNewJob, timeoutMs: number): Promise<JobRecord> {
    const id = msg.job_id;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        resolve({
          id, ok: false, result: "no answer", text: `no AgentJobDone within ${timeoutMs / 1000} s`,
          sentAt: this.sentAt.get(id) ?? now(), doneAt: now(), size: 0, archiveBytes: 0, archiveIsGzip: false, stdoutBytes: 0,
        });
      }, timeoutMs);
      this.waiting.set(id, (d) => {
        clearTimeout(timer);
        const sentAt = this.sentAt.get(id) ?? d.at;
        this.sentAt.delete(id);
        resolve({
          id, ok: d.result === "success", result: d.result, text: d.text, sentAt, doneAt: d.at, size: d.size,
          archiveBytes: d.archiveBytes, archiveIsGzip: d.archiveIsGzip, stdoutBytes: d.stdoutBytes,
        });
      });
      this.post({ cmd: "job", id, msg });
    });
  }

  pings(on: boolean): void {
    this.post({ cmd: "pings", on });
  }

  verifyKept(): Promise<{ ok: boolean; detail: string }> {
    return new Promise((resolve) => {
      this.verifyResolve = resolve;
      this.post({ cmd: "verifyKept" });
    });
  }

  pongsBetween(t0: number, t1: number, which: "all" | "notBehindBig" | "behindBig" = "all"): number[] {
    return this.pongs
      .filter((p) => p.sentAt >= t0 && p.sentAt <= t1)
      .filter((p) => which === "all" || (which === "behindBig") === p.behindBig)
      .map((p) => p.rtt);
  }

  async close(): Promise<void> {
    this.post({ cmd: "close" });
    await Promise.race([new Promise((r) => this.worker.once("exit", r)), sleep(2000)]);
    await this.worker.terminate();
  }
}

// ---------------------------------------------------------------------------------------------
// CPU accounting

interface CpuSnap {
  at: number;
  agent: number | null;
  agentMain: number | null;
  dockerd: number | null;
  containerd: number | null;
  machineBusy: number;
  bench: number;
}

interface Daemons {
  dockerd: number[];
  containerd: number[];
}

function sumCpu(pids: number[]): number | null {
  if (pids.length === 0) return null;
  let total = 0;
  for (const pid of pids) {
    const v = processCpuMs(pid);
    if (v === null) return null;
    total += v;
  }
  return total;
}

function cpuSnap(agentPid: number, d: Daemons): CpuSnap {
  return {
    at: now(),
    agent: processCpuMs(agentPid),
    agentMain: mainThreadCpuMs(agentPid),
    dockerd: sumCpu(d.dockerd),
    containerd: sumCpu(d.containerd),
    machineBusy: machineCpuMs().busy,
    bench: ((u) => (u.user + u.system) / 1000)(process.cpuUsage()),
  };
}

/** Adds up CPU deltas over several chunks. */
class CpuSum {
  private wall = 0;
  private readonly sums: Record<"agent" | "agentMain" | "dockerd" | "containerd" | "machineBusy" | "bench", number | null> = {
    agent: 0, agentMain: 0, dockerd: 0, containerd: 0, machineBusy: 0, bench: 0,
  };
  add(a: CpuSnap, b: CpuSnap): void {
    this.wall += b.at - a.at;
    for (const k of Object.keys(this.sums) as Array<keyof CpuSum["sums"]>) {
      const x = a[k];
      const y = b[k];
      const cur = this.sums[k];
      this.sums[k] = cur === null || x === null || y === null ? null : cur + (y - x);
    }
  }
  figures(jobs: number): CpuFigures {
    const per = (v: number | null): number | null => (v === null || jobs === 0 ? null : round(v / jobs, 2));
    return {
      wallS: round(this.wall / 1000, 2)!, jobs,
      agentMsPerJob: per(this.sums.agent), agentMainMsPerJob: per(this.sums.agentMain),
      dockerdMsPerJob: per(this.sums.dockerd), containerdMsPerJob: per(this.sums.containerd),
      machineBusyMsPerJob: per(this.sums.machineBusy), benchMsPerJob: per(this.sums.bench),
    };
  }
}

function cpuFigures(a: CpuSnap, b: CpuSnap, jobs: number): CpuFigures {
  const per = (x: number | null, y: number | null): number | null =>
    x === null || y === null || jobs === 0 ? null : round((y - x) / jobs, 2);
  return {
    wallS: round((b.at - a.at) / 1000, 2)!,
    jobs,
    agentMsPerJob: per(a.agent, b.agent),
    agentMainMsPerJob: per(a.agentMain, b.agentMain),
    dockerdMsPerJob: per(a.dockerd, b.dockerd),
    containerdMsPerJob: per(a.containerd, b.containerd),
    machineBusyMsPerJob: per(a.machineBusy, b.machineBusy),
    benchMsPerJob: per(a.bench, b.bench),
  };
}

// ---------------------------------------------------------------------------------------------
// the run

function gitState(): { gitCommit: string | null; gitChangedFiles: number | null } {
  try {
    const commit = execFileSync("git", ["-C", REPO, "rev-parse", "HEAD"], { encoding: "utf8" }).trim();
    const changed = execFileSync("git", ["-C", REPO, "status", "--porcelain", "--", "src", "workers"], { encoding: "utf8" })
      .split("\n").filter((l) => l.trim() !== "").length;
    return { gitCommit: commit, gitChangedFiles: changed };
  } catch {
    return { gitCommit: null, gitChangedFiles: null };
  }
}

const log = (msg: string): void => void process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);

function trivialJob(id: string): BackendNewJob {
  return {
    type: "BackendNewJob",
    job_id: id,
    course_id: COURSE,
    task_id: "trivial",
    task_problems: {},
    inputdata: { "@state": "", "@lang": "en" },
    environment_type: "docker",
    environment: "default",
    environment_parameters: { limits: { time: 20, hard_time: 60, memory: 200 }, network_grading: false, run_cmd: null },
    debug: false,
  };
}

function bigJob(id: string, bytes: number): BackendNewJob {
  return {
    type: "BackendNewJob",
    job_id: id,
    course_id: COURSE,
    task_id: "big",
    task_problems: {},
    inputdata: { "@state": "", "@lang": "en", size: String(bytes) },
    environment_type: "docker",
    environment: "test-raw",
    environment_parameters: { limits: { time: 30, hard_time: 120, memory: 768 }, network_grading: false, run_cmd: null },
    debug: true,
  };
}

let stoppingAgentJobs = false;

/** Runs `n` agent jobs made by `make`, `c` at a time. */
async function agentBatch(
  wire: Wire, n: number, c: number, make: (i: number) => BackendNewJob, timeoutMs: number,
  onDone: (done: number) => void = () => {}, enough: () => boolean = () => false,
): Promise<JobRecord[]> {
  const out: JobRecord[] = [];
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(c, n) }, async () => {
    while (next < n && !stoppingAgentJobs && !enough()) {
      const i = next++;
      out.push(await wire.job(make(i), timeoutMs));
      onDone(out.length);
    }
  }));
  if (stoppingAgentJobs) throw new Error("stopped");
  return out;
}

interface Rec {
  ok: boolean;
  start: number;
  end: number;
  error: string | null;
}

/** Figures of a run made of chunks (each chunk: jobs run `c` at a time from an empty start). */
function runFigures(chunks: Rec[][], c: number, cpu: CpuFigures): RunFigures {
  const records = chunks.flat();
  const ok = records.filter((r) => r.ok);
  let makespan = 0;
  let steadyJobs = 0;
  let steadyTime = 0;
  for (const chunk of chunks) {
    if (chunk.length === 0) continue;
    const first = Math.min(...chunk.map((r) => r.start));
    const lastStart = Math.max(...chunk.map((r) => r.start));
    const lastEnd = Math.max(...chunk.map((r) => r.end));
    makespan += lastEnd - first;
    const inWindow = chunk.filter((r) => r.ok && r.end <= lastStart).length;
    if (chunk.length > c && inWindow > 0) {
      steadyJobs += inWindow;
      steadyTime += lastStart - first;
    } else {
      // every job started at once: no steady state to measure, use the makespan
      steadyJobs += chunk.filter((r) => r.ok).length;
      steadyTime += lastEnd - first;
    }
  }
  return {
    jobs: records.length,
    failures: records.length - ok.length,
    firstFailure: records.find((r) => !r.ok)?.error ?? null,
    makespanS: round(makespan / 1000, 2)!,
    jobsPerS: round(steadyJobs / (steadyTime / 1000), 3)!,
    makespanJobsPerS: round(ok.length / (makespan / 1000), 3)!,
    latencyMs: summarize(ok.map((r) => r.end - r.start), 1),
    cpu,
  };
}

/** `n` split into `k` near-equal positive parts. */
function split(n: number, k: number): number[] {
  const parts = Math.max(1, Math.min(k, n));
  return Array.from({ length: parts }, (_, i) => Math.floor(n / parts) + (i < n % parts ? 1 : 0));
}

const fromAgent = (j: JobRecord): Rec => ({ ok: j.ok, start: j.sentAt, end: j.doneAt, error: j.ok ? null : `${j.result}: ${j.text}` });
const fromFloor = (j: FloorJob): Rec => ({ ok: j.ok, start: j.startAt, end: j.endAt, error: j.error });

function medianPhases(items: Array<Record<string, number>>): Record<string, number | null> {
  const keys = new Set(items.flatMap((p) => Object.keys(p)));
  const out: Record<string, number | null> = {};
  for (const k of keys) out[k] = round(median(items.map((p) => p[k]).filter((v): v is number => typeof v === "number")), 1);
  return out;
}

/** Event-loop delay over a window opened by loopWindow() at t0: the agent's 60 s log lines and the window's own figures. */
async function loopDelayWindow(agent: AgentProc, t0: number): Promise<LoopDelay | null> {
  const snap = await agent.loopWindow();
  const logs = await agent.readLog();
  const segments: Array<{ p50: number; p99: number; max: number }> = [];
  for (const l of logs) {
    if (l.msg !== "event loop delay" || typeof l.time !== "string") continue;
    const t = Date.parse(l.time);
    if (t <= t0) continue;
    const d = l["loopDelayMs"] as { p50: number; p99: number; max: number } | undefined;
    if (d) segments.push(d);
  }
  if (snap) segments.push(snap);
  if (segments.length === 0) return null;
  return {
    p50: Math.max(...segments.map((s) => s.p50)),
    p99: Math.max(...segments.map((s) => s.p99)),
    max: Math.max(...segments.map((s) => s.max)),
    segments: segments.length,
  };
}

async function removeContainers(docker: Docker, label: string): Promise<number> {
  let n = 0;
  try {
    const list = await docker.listContainers({ all: true, filters: { label: [label] } });
    for (const c of list) {
      try {
        await docker.getContainer(c.Id).remove({ force: true, v: true });
        n++;
      } catch {
        /* gone */
      }
    }
  } catch {
    /* engine unreachable: nothing more to do */
  }
  return n;
}

/** Counts containers created by others while the bench runs (they share the engine and the CPU). */
function watchForeignContainers(
  docker: Docker, mine: (labels: Record<string, string>) => boolean,
): { count(t0?: number, t1?: number): number; stop(): void } {
  const seen: number[] = [];
  let stream: NodeJS.ReadableStream | null = null;
  let stopped = false;
  docker.getEvents({ filters: { type: ["container"], event: ["create"] } }).then((s) => {
    stream = s;
    if (stopped) return void (s as unknown as { destroy(): void }).destroy();
    const lines = new JsonLineSplitter();
    s.on("data", (chunk: Buffer) => {
      for (const e of lines.push(chunk) as Array<{ Actor?: { Attributes?: Record<string, string> } }>) {
        if (!mine(e?.Actor?.Attributes ?? {})) seen.push(now());
      }
    });
    s.on("error", () => {});
  }, () => {});
  return {
    count: (t0 = 0, t1 = Infinity) => seen.filter((t) => t >= t0 && t <= t1).length,
    stop: () => {
      stopped = true;
      if (stream) (stream as unknown as { destroy(): void }).destroy();
    },
  };
}

export async function main(argv: string[]): Promise<number> {
  let opts: Options;
  try {
    opts = parseOptions(argv);
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n${USAGE}\n`);
    return 2;
  }
  const started = now();
  const startedAt = new Date().toISOString();
  const runId = startedAt.replace(/[:.]/g, "-");
  const cores = os.availableParallelism();
  const twoX = 2 * cores;
  const maxC = Math.max(...opts.levels, twoX);
  const docker = new Docker();
  const problems: string[] = [];

  // ---- preflight
  let dockerVersion = "?";
  let cgroupVersion = "?";
  let sampleId: string;
  try {
    await docker.ping();
    dockerVersion = (await docker.version()).Version;
    cgroupVersion = String(((await docker.info()) as { CgroupVersion?: string }).CgroupVersion ?? "?");
    sampleId = (await docker.getImage(SAMPLE_IMAGE).inspect()).Id;
    await docker.getImage(RAW_IMAGE).inspect();
  } catch (err) {
    process.stderr.write(`bench: Docker and the images ${SAMPLE_IMAGE} and ${RAW_IMAGE} are needed ` +
      `(scripts/ensure-docker.sh, images/build.sh): ${(err as Error).message}\n`);
    return 1;
  }
  try {
    await fs.access(CLI);
  } catch {
    process.stderr.write(`bench: ${CLI} is missing: build first (npm run build)\n`);
    return 1;
  }

  const tmp = mkdtempSync(path.join(os.tmpdir(), "iad-bench-"));
  const agentTmp = path.join(tmp, "agent");
  const floorTmp = path.join(tmp, "floor");
  mkdirSync(agentTmp);
  mkdirSync(floorTmp);
  const myAgentId = agentId(agentTmp);
  const foreign = watchForeignContainers(docker, (l) => l[BENCH_LABEL] !== undefined || l[LABEL_AGENT] === myAgentId);

  let wire: Wire | null = null;
  let agent: AgentProc | null = null;
  let agentArgsUsed: string[] = [];
  let cleaning: Promise<void> | null = null;
  const cleanup = (): Promise<void> => (cleaning ??= cleanupOnce());
  const cleanupOnce = async (): Promise<void> => {
    if (wire) wire.pings(false);
    if (agent?.alive) {
      log("stopping the agent (SIGTERM)");
      const code = await agent.stop();
      if (code !== 0) problems.push(`the agent exited with status ${code} after SIGTERM`);
    }
    if (wire) await wire.close();
    foreign.stop();
    if (opts.saveAgentLog && agent) {
      try {
        mkdirSync(opts.out, { recursive: true });
        copyFileSync(agent.logFile, path.join(opts.out, `${runId}.agent.log`));
      } catch (err) {
        problems.push(`could not save the agent's log: ${(err as Error).message}`);
      }
    }
    const left = (await removeContainers(docker, `${BENCH_LABEL}=${runId}`)) + (await removeContainers(docker, `${LABEL_AGENT}=${myAgentId}`));
    if (left > 0) problems.push(`${left} container(s) were left behind and removed by the bench`);
    try {
      const leftDirs = (await fs.readdir(agentTmp)).filter((d) => d.startsWith("job-"));
      if (leftDirs.length > 0) problems.push(`${leftDirs.length} job directorie(s) left in the agent's tmpdir`);
    } catch {
      /* gone */
    }
    rmSync(tmp, { recursive: true, force: true });
  };
  // the agent must not outlive the bench, whatever happens
  const onSignal = (sig: NodeJS.Signals): void => {
    log(`${sig}: cleaning up`);
    stoppingAgentJobs = true;
    void (async () => {
      // floor jobs under way remove their own containers; then the rest goes
      await Promise.race([stopFloor(), sleep(20_000)]);
      await cleanup();
      await removeContainers(docker, `${BENCH_LABEL}=${runId}`);
    })().finally(() => process.exit(130));
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  process.once("exit", () => {
    if (agent?.alive) agent.child.kill("SIGTERM");
    rmSync(tmp, { recursive: true, force: true });
  });

  try {
    const daemons: Daemons = { dockerd: pidsByName("dockerd"), containerd: pidsByName("containerd") };
    if (daemons.dockerd.length === 0) problems.push("no dockerd process found in /proc: its CPU is not measured");
    if (daemons.containerd.length === 0) problems.push("no containerd process found in /proc: its CPU is not measured");

    // ---- the backend side and the agent
    wire = new Wire();
    const address = await wire.address;
    const args = [
      address, "--tmpdir", agentTmp, "--tasks", TASKS, "--concurrency", String(maxC),
      "--pool-threads", String(opts.poolThreads), "--debug-host", "127.0.0.1", "--friendly-name", "bench",
      ...opts.agentArgs,
    ];
    agentArgsUsed = args;
    log(`starting the agent: node ${process.env["BENCH_AGENT_NODE_ARGS"] ?? ""} dist/src/cli.js ${args.join(" ")}`);
    agent = new AgentProc(CLI, args, tmp);
    const a = agent;
    const hello = await Promise.race([
      wire.hello,
      a.exited.then(async (code) => {
        throw new Error(`the agent exited with status ${code} before saying hello:\n${await a.tail()}`);
      }),
      sleep(60_000).then(async () => {
        throw new Error(`no AgentHello within 60 s:\n${await a.tail()}`);
      }),
    ]);
    for (const [t, n] of [["docker", "default"], ["docker", "test-raw"]] as const) {
      if (!(hello.environments[t] ?? []).includes(n)) throw new Error(`the agent does not offer ${t}/${n}: ${JSON.stringify(hello.environments)}`);
    }
    log(`agent ${a.pid} said hello (${hello.slots} slots)`);
    await sleep(1500);
    const idleStatus = procStatus(a.pid);

    const floorOpts: FloorOptions = {
      docker, imageId: sampleId, taskDir: path.join(TASKS, COURSE, "trivial"), workDir: floorTmp, memoryMb: 200, runId,
    };
    const TRIVIAL_TIMEOUT = 120_000;
    let trivialDone = 0;
    let seq = 0;
    const agentTrivial = async (
      prefix: string, n: number, c: number, onDone?: (done: number) => void, enough?: () => boolean,
    ): Promise<JobRecord[]> => {
      const recs = await agentBatch(wire!, n, c, () => trivialJob(`${prefix}-${++seq}`), TRIVIAL_TIMEOUT, onDone, enough);
      trivialDone += recs.length;
      if (!a.alive) throw new Error(`the agent died (status ${a.exitCode}):\n${await a.tail()}`);
      return recs;
    };

    // ---- warm-up
    if (opts.warmup > 0) {
      log(`warm-up: ${opts.warmup} floor jobs and ${opts.warmup} agent jobs`);
      await floorBatch(floorOpts, opts.warmup, Math.min(opts.warmup, twoX));
      await agentTrivial("warm", opts.warmup, Math.min(opts.warmup, twoX));
    }
    trivialDone = 0; // the leak check counts jobs from the idle-after-warm-up reading
    const idleT0 = now();
    await a.loopWindow();
    const idleCpu0 = cpuSnap(a.pid, daemons);
    await sleep(opts.settleMs);
    const idleCpu1 = cpuSnap(a.pid, daemons);
    const idleLoopDelayMs = await loopDelayWindow(a, idleT0);
    const warmStatus = procStatus(a.pid);
    const agentIdleMsPerS = idleCpu0.agent === null || idleCpu1.agent === null ? null
      : round((idleCpu1.agent - idleCpu0.agent) / ((idleCpu1.at - idleCpu0.at) / 1000), 2);
    log(`idle after warm-up: RSS ${((warmStatus?.rssBytes ?? 0) / 1048576).toFixed(1)} MB`);

    // ---- 1 + 2: floor and agent at each concurrency, side by side
    const levels: LevelFigures[] = [];
    const agentLevelRecords = new Map<number, JobRecord[]>();
    for (const c of opts.levels) {
      const levelT0 = now();
      const floorChunks: FloorJob[][] = [];
      const agentChunks: JobRecord[][] = [];
      const floorCpu = new CpuSum();
      const agentCpu = new CpuSum();
      const chunks = split(opts.jobs, opts.rounds);
      log(`C=${c}: ${opts.jobs} floor jobs and ${opts.jobs} agent jobs, in ${chunks.length} alternating chunk(s)`);
      for (const [r, n] of chunks.entries()) {
        const order = r % 2 === 0 ? ["floor", "agent"] : ["agent", "floor"];
        for (const who of order) {
          const x0 = cpuSnap(a.pid, daemons);
          if (who === "floor") floorChunks.push(await floorBatch(floorOpts, n, c));
          else agentChunks.push(await agentTrivial(`L${c}`, n, c));
          (who === "floor" ? floorCpu : agentCpu).add(x0, cpuSnap(a.pid, daemons));
        }
      }
      const levelT1 = now();
      const ag = agentChunks.flat();
      agentLevelRecords.set(c, ag);
      const floorFig = runFigures(floorChunks.map((ch) => ch.map(fromFloor)), c, floorCpu.figures(opts.jobs));
      const agentFig = runFigures(agentChunks.map((ch) => ch.map(fromAgent)), c, agentCpu.figures(opts.jobs));
      const pongs = agentChunks.flatMap((ch) => wire!.pongsBetween(Math.min(...ch.map((j) => j.sentAt)), Math.max(...ch.map((j) => j.doneAt))));
      levels.push({
        c,
        floor: { ...floorFig, phasesMs: medianPhases(floorChunks.flat().filter((j) => j.ok).map((j) => j.phases)) },
        agent: {
          ...agentFig, pongMs: summarize(pongs, 2), foreignContainers: foreign.count(levelT0, levelT1),
          phasesMs: {}, agentTotalMs: null,
        },
        ratio: round(agentFig.jobsPerS / floorFig.jobsPerS, 3),
        addedP50Ms: agentFig.latencyMs.p50 === null || floorFig.latencyMs.p50 === null ? null
          : round(agentFig.latencyMs.p50 - floorFig.latencyMs.p50, 1),
      });
      log(`C=${c}: floor ${floorFig.jobsPerS} j/s p50 ${floorFig.latencyMs.p50} ms; agent ${agentFig.jobsPerS} j/s p50 ${agentFig.latencyMs.p50} ms` +
        `${floorFig.failures + agentFig.failures > 0 ? `; failures floor ${floorFig.failures} agent ${agentFig.failures}` : ""}` +
        `; ${foreign.count(levelT0, levelT1)} foreign containers meanwhile`);
    }
    const levelsT1 = now();

    // ---- 4 + 5: the rest of the 1,000 trivial jobs (leak check, CPU per job)
    const fillJobs = Math.max(0, opts.leakJobs - trivialDone);
    const leakCurve: Array<{ jobs: number; rssBytes: number }> = [];
    if (warmStatus) leakCurve.push({ jobs: 0, rssBytes: warmStatus.rssBytes });
    const cpuC = Math.min(twoX, maxC);
    let cpuFig: CpuFigures;
    let fillRecords: JobRecord[] = [];
    if (fillJobs > 0) {
      log(`leak check: ${fillJobs} more trivial jobs at C=${cpuC} (${trivialDone} done so far)`);
      const c0 = cpuSnap(a.pid, daemons);
      const before = trivialDone;
      const step = Math.max(1, Math.round(opts.leakJobs / 10));
      // leave about two minutes of the budget for the big load and the end
      const deadline = started + (opts.budgetMin - 2) * 60_000;
      fillRecords = await agentTrivial("leak", fillJobs, cpuC, (done) => {
        const total = before + done;
        if (total % step === 0) {
          const st = procStatus(a.pid);
          if (st) leakCurve.push({ jobs: total, rssBytes: st.rssBytes });
        }
      }, () => now() > deadline);
      const c1 = cpuSnap(a.pid, daemons);
      cpuFig = cpuFigures(c0, c1, fillRecords.length);
      if (fillRecords.length < fillJobs) {
        problems.push(`time budget (--budget-min ${opts.budgetMin}): the leak check stopped after ${before + fillRecords.length} ` +
          `trivial jobs instead of ${opts.leakJobs} (the machine is slow or busy)`);
        log(`time budget reached: leak check cut at ${before + fillRecords.length} jobs`);
      }
    } else {
      // no fill: CPU over the levels' agent runs
      const all = levels.map((l) => l.agent.cpu);
      const jobs = all.reduce((s, x) => s + x.jobs, 0);
      const sum = (k: keyof CpuFigures): number | null =>
        all.some((x) => x[k] === null) ? null : round(all.reduce((s, x) => s + (x[k] as number) * x.jobs, 0) / jobs, 2);
      cpuFig = {
        wallS: round(all.reduce((s, x) => s + x.wallS, 0), 2)!, jobs,
        agentMsPerJob: sum("agentMsPerJob"), agentMainMsPerJob: sum("agentMainMsPerJob"),
        dockerdMsPerJob: sum("dockerdMsPerJob"), containerdMsPerJob: sum("containerdMsPerJob"),
        machineBusyMsPerJob: sum("machineBusyMsPerJob"), benchMsPerJob: sum("benchMsPerJob"),
      };
    }
    const leakFailures = fillRecords.filter((r) => !r.ok);
    if (leakFailures.length > 0) problems.push(`${leakFailures.length} leak-check jobs failed, e.g. ${leakFailures[0]!.result}: ${leakFailures[0]!.text}`);
    await sleep(opts.settleMs);
    const leakStatus = procStatus(a.pid);
    const leakJobs = trivialDone;
    log(`after ${leakJobs} trivial jobs: RSS ${((leakStatus?.rssBytes ?? 0) / 1048576).toFixed(1)} MB`);

    // ---- 3: main-thread health under big results
    const wireFrameMs = summarize(await frameTransferMs(2 * opts.bigBytes), 1);
    log(`one ${Math.round((2 * opts.bigBytes) / 1048576)} MiB frame over ZeroMQ, machine quiet: p50 ${wireFrameMs.p50} ms`);
    log(`load: ${opts.bigJobs} jobs at C=${twoX}, each returning ${opts.bigBytes / 1048576} MiB archive + ${opts.bigBytes / 1048576} MiB stdout`);
    let rssMax = 0;
    let threadsMax = 0;
    const sampler = setInterval(() => {
      const s = procStatus(a.pid);
      if (s) {
        rssMax = Math.max(rssMax, s.rssBytes);
        threadsMax = Math.max(threadsMax, s.threads);
      }
    }, 100);
    await a.loopWindow();
    const l0 = cpuSnap(a.pid, daemons);
    const big = await agentBatch(wire, opts.bigJobs, twoX, (i) => bigJob(`big-${i + 1}`, opts.bigBytes), 300_000);
    const l1 = cpuSnap(a.pid, daemons);
    clearInterval(sampler);
    const loadLoop = await loopDelayWindow(a, l0.at);
    const loadPongs = wire.pongsBetween(l0.at, l1.at);
    const verified = await wire.verifyKept();
    const bigOk = big.filter((j) => j.ok);
    const bigFig = runFigures([big.map(fromAgent)], twoX, cpuFigures(l0, l1, big.length));
    for (const j of bigOk) {
      if (!j.archiveIsGzip || j.archiveBytes < opts.bigBytes || j.stdoutBytes !== opts.bigBytes) {
        problems.push(`big job ${j.id}: archive ${j.archiveBytes} B (gzip ${j.archiveIsGzip}), stdout ${j.stdoutBytes} B`);
        break;
      }
    }
    await sleep(opts.settleMs);
    const afterLoadStatus = procStatus(a.pid);

    // ---- the agent's own per-phase timings, from its log
    const logs: LogLine[] = await a.readLog();
    const agentPhases = new Map<string, { ms: number; phases: Record<string, number> }>();
    for (const l of logs) {
      if (l.msg === "job done" && typeof l["job"] === "string") {
        agentPhases.set(l["job"], { ms: Number(l["ms"]), phases: (l["phases"] ?? {}) as Record<string, number> });
      }
    }
    for (const lv of levels) {
      const recs = (agentLevelRecords.get(lv.c) ?? []).map((r) => agentPhases.get(r.id)).filter((x) => x !== undefined);
      lv.agent.phasesMs = medianPhases(recs.map((x) => x.phases));
      lv.agent.agentTotalMs = round(median(recs.map((x) => x.ms)), 1);
    }
    const bigPhases = medianPhases(big.map((r) => agentPhases.get(r.id)).filter((x) => x !== undefined).map((x) => x.phases));

    const pongAll = summarize(opts.levels.length > 0 ? wire.pongsBetween(idleT0, levelsT1) : [], 2);
    problems.push(...wire.problems);

    // ---- figures and targets
    const memory: BenchResults["memory"] = {
      idleBytes: idleStatus?.rssBytes ?? null,
      idleAfterWarmupBytes: warmStatus?.rssBytes ?? null,
      afterLeakJobsBytes: leakStatus?.rssBytes ?? null,
      leakJobs,
      growthRatio: warmStatus && leakStatus ? round(leakStatus.rssBytes / warmStatus.rssBytes, 4) : null,
      slopeKbPerJob: rssSlopeKbPerJob(leakCurve),
      underLoadMaxBytes: rssMax || null,
      afterLoadBytes: afterLoadStatus?.rssBytes ?? null,
      leakCurve: [...leakCurve, ...(leakStatus ? [{ jobs: leakJobs, rssBytes: leakStatus.rssBytes }] : [])],
      threads: {
        idle: idleStatus?.threads ?? null, afterWarmup: warmStatus?.threads ?? null,
        afterLeakJobs: leakStatus?.threads ?? null, underLoadMax: threadsMax || null,
      },
    };
    const at2x = levels.find((l) => l.c === twoX) ?? null;
    const at1 = levels.find((l) => l.c === 1) ?? null;
    const target = (id: string, description: string, value: number | null, op: "<=" | ">=", limit: number, unit: string): Target => ({
      id, description, value, op, limit, unit,
      met: value === null ? null : op === "<=" ? value <= limit : value >= limit,
    });
    const targets: Target[] = [
      target("throughput", `throughput / floor at C=${twoX} (2x cores)`, at2x?.ratio ?? null, ">=", 0.95, "x"),
      target("cpu", "agent CPU per trivial job (all threads)", cpuFig.agentMsPerJob, "<=", 10, "ms"),
      target("latency", "agent-added p50 latency at C=1", at1?.addedP50Ms ?? null, "<=", 30, "ms"),
      target("pong", "Ping->Pong p99 under big results", summarize(loadPongs, 2).p99, "<=", 20, "ms"),
      target("loop", "event-loop delay p99 under big results", loadLoop?.p99 ?? null, "<=", 20, "ms"),
      target("rss", `RSS growth after ${leakJobs} trivial jobs`, memory.growthRatio === null ? null : round((memory.growthRatio - 1) * 100, 1), "<=", 10, "%"),
    ];
    const fails = levels.reduce((s, l) => s + l.floor.failures + l.agent.failures, 0);
    if (fails > 0) problems.push(`${fails} trivial jobs failed during the levels (see levels[].*.firstFailure)`);
    if (bigFig.failures > 0) problems.push(`${bigFig.failures} big jobs failed: ${bigFig.firstFailure}`);

    await cleanup();
    const { out: _out, ...optionsWithoutOut } = opts;
    const results: BenchResults = {
      meta: {
        startedAt, durationS: round((now() - started) / 1000, 1)!, quick: opts.quick, host: os.hostname(), cores,
        node: process.version, dockerVersion, cgroupVersion, ...gitState(), agentConcurrency: maxC, poolThreads: opts.poolThreads,
        jobsPerLevel: opts.jobs, agentNodeArgs: process.env["BENCH_AGENT_NODE_ARGS"] ?? "", agentArgs: agentArgsUsed,
        options: optionsWithoutOut, foreignContainers: foreign.count(),
      },
      levels,
      load: {
        c: twoX, jobs: big.length, failures: bigFig.failures, firstFailure: bigFig.firstFailure, jobsPerS: bigFig.jobsPerS,
        resultBytes: summarize(bigOk.map((j) => j.size), 0),
        archiveBytes: median(bigOk.map((j) => j.archiveBytes)), stdoutBytes: median(bigOk.map((j) => j.stdoutBytes)),
        latencyMs: bigFig.latencyMs, pongMs: summarize(loadPongs, 2),
        pongNotBehindBigMs: summarize(wire.pongsBetween(l0.at, l1.at, "notBehindBig"), 2),
        pongsBehindBig: wire.pongsBetween(l0.at, l1.at, "behindBig").length,
        wireFrameMs,
        loopDelayMs: loadLoop,
        rssMaxBytes: rssMax || null, cpu: bigFig.cpu, phasesMs: bigPhases, verified,
      },
      idleLoopDelayMs,
      memory,
      cpu: { ...cpuFig, c: cpuC, agentIdleMsPerS },
      pongAllLevelsMs: pongAll,
      targets,
      problems,
    };

    mkdirSync(opts.out, { recursive: true });
    const json = `${JSON.stringify(results, null, 2)}\n`;
    writeFileSync(path.join(opts.out, `${runId}.json`), json);
    writeFileSync(path.join(opts.out, "latest.json"), json);
    writeFileSync(path.join(opts.out, "latest.svg"), svgChart(results));
    process.stdout.write(`${textReport(results)}\n\nwrote ${path.join(opts.out, `${runId}.json`)}, latest.json, latest.svg\n`);
    if (opts.strict && targets.some((t) => t.met === false)) return 3;
    return 0;
  } catch (err) {
    if (stoppingAgentJobs) log("interrupted");
    else process.stderr.write(`bench failed: ${(err as Error).stack ?? err}\n`);
    return 1;
  } finally {
    await cleanup();
  }
}

if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const code = await main(process.argv.slice(2));
  // dockerode's keep-alive sockets must not hold the process open
  setTimeout(() => process.exit(code), 100).unref();
  process.exitCode = code;
}

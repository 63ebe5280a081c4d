/**
 * Hostile output, measured on the real agent process: what a grader that abuses its output
 * costs the agent. Two figures, each from an agent of its own (test fixture tasks, course `test`):
 *
 *   - archive inflation: the agent's RSS at its usual level (after a few ordinary jobs), then its
 *     peak during and after a job whose grader leaves 900 MiB of zeros in /archive (about 1 MB
 *     packed; task `archive-zeros`, which must still end `success`). Target: within +64 MB.
 *   - decoding amplification: with `--pool-threads 1`, the latency of ordinary jobs back to back
 *     alone, then while jobs whose grader sends a message decoding to 48 Mi empty maps (task
 *     `amplify`, refused by the decoder's cap: `crash`) run beside them on the same pool thread;
 *     both medians, their ratio, and the agent's RSS peak.
 *
 *   npm run build && node dist/bench/hostile.js [--jobs 10] [--amplify 8] [--out DIR] [--quick]
 *
 * Prints a table and writes OUT/hostile-latest.json (OUT: bench/results). Every agent is stopped,
 * its containers removed by label and its temp directory deleted, Ctrl-C included.
 * Exit status: 0 the figures were measured (targets met or not), 1 a job went wrong, 2 bad flags.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import Docker from "dockerode";
import { FakeBackend, newJob } from "../test/helpers/backend.js";
import { LABEL_AGENT, agentId } from "../src/docker/labels.js";
import { AgentProc } from "./agent-proc.js";
import { log } from "./log.js";
import { sleep, summarize, type Summary } from "./stats.js";

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const TASKS = path.join(REPO, "test/fixtures/tasks");
const GROWTH_TARGET_MB = 64;

const USAGE = `usage: node dist/bench/hostile.js [options]
  --jobs N      ordinary jobs per measure (usual level; alone; beside the amplification) (default 10)
  --amplify N   amplification jobs run one after the other beside the ordinary ones (default 8)
  --out DIR     where hostile-latest.json goes (default bench/results)
  --quick       --jobs 2 --amplify 1 (figures not meaningful)
  -h, --help    this help`;

interface Options {
  jobs: number;
  amplify: number;
  out: string;
}

/** The agent's VmRSS and VmHWM (peak since it started), in MB. */
function memMb(pid: number): { rss: number; hwm: number } {
  const text = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = (field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(text)?.[1] ?? NaN);
  return { rss: Math.round(kb("VmRSS") / 102.4) / 10, hwm: Math.round(kb("VmHWM") / 102.4) / 10 };
}

/** VmRSS read every 100 ms until stopped: its highest reading, in MB. */
function sampleRss(pid: number): () => number {
  let max = 0;
  const t = setInterval(() => {
    try {
      max = Math.max(max, memMb(pid).rss);
    } catch {
      /* the agent is gone: the job's own check reports it */
    }
  }, 100);
  return () => (clearInterval(t), max);
}

/** One agent with its fake backend, its temp directory and its containers' label. */
class Subject {
  readonly dir = mkdtempSync(path.join(os.tmpdir(), "iad-hostile-"));
  readonly tmpdir = path.join(this.dir, "agent");
  backend!: FakeBackend;
  agent!: AgentProc;
  private stopPings = (): void => {};
  private seq = 0;

  async start(args: string[]): Promise<this> {
    mkdirSync(this.tmpdir);
    this.backend = await new FakeBackend().start();
    this.agent = new AgentProc(path.join(REPO, "dist/src/cli.js"), [
      this.backend.address, "--tmpdir", this.tmpdir, "--tasks", TASKS, ...args,
    ], this.dir);
    this.stopPings = this.backend.pingEvery(1000);
    await this.backend.waitType("AgentHello", 60_000);
    log(`hostile: agent ${this.agent.pid} said hello (${args.join(" ")})`);
    return this;
  }

  /** Sends one job and waits for its result; returns [result, text] and the latency in ms. */
  async job(tag: string, over: Parameters<typeof newJob>[1], timeoutMs = 120_000): Promise<{ result: string[]; ms: number }> {
    const id = `${tag}-${++this.seq}`;
    const sent = performance.now();
    await this.backend.send(newJob(id, over));
    const d = await this.backend.done(id, timeoutMs);
    return { result: d["result"] as string[], ms: performance.now() - sent };
  }

  /** Ordinary jobs (task `success`) back to back while `more()` says so (at least one); their latencies. */
  async ordinary(tag: string, n: number, more: () => boolean = () => true): Promise<number[]> {
    const out: number[] = [];
    do {
      const { result, ms } = await this.job(tag, { inputdata: { q1: "x", "@state": "", "@lang": "en" } });
      if (result[0] !== "success") throw new Error(`an ordinary job ended ${JSON.stringify(result)}`);
      out.push(ms);
    } while (out.length < n && more());
    return out;
  }

  /** Stops the agent, removes its containers and its temp directory; returns what was left. */
  async stop(docker: Docker): Promise<number> {
    this.stopPings();
    if (this.agent?.alive) await this.agent.stop();
    this.backend?.close();
    const left = await docker.listContainers({ all: true, filters: { label: [`${LABEL_AGENT}=${agentId(this.tmpdir)}`] } });
    for (const c of left) await docker.getContainer(c.Id).remove({ force: true }).catch(() => {});
    rmSync(this.dir, { recursive: true, force: true });
    return left.length;
  }
}

/** Archive inflation: RSS at the usual level, then its peak around the 900 MiB archive. */
async function archiveInflation(s: Subject, opts: Options): Promise<Record<string, unknown>> {
  await s.ordinary("usual", opts.jobs);
  await sleep(2000);
  const usual = memMb(s.agent.pid);
  const stopSampling = sampleRss(s.agent.pid);
  const { result, ms } = await s.job("zeros", { task_id: "archive-zeros", limits: { time: 120, hard_time: 300, memory: 200 } }, 300_000);
  await sleep(3000);
  const after = memMb(s.agent.pid);
  const sampledPeak = stopSampling();
  if (result[0] !== "success") throw new Error(`the 900 MiB archive job ended ${JSON.stringify(result)}, not success`);
  // VmHWM catches a peak between two samples; it counts only when the job raised it.
  const peak = Math.max(sampledPeak, after.hwm > usual.hwm ? after.hwm : 0);
  const growthMb = Math.round((peak - usual.rss) * 10) / 10;
  return {
    result: result[0], jobMs: Math.round(ms),
    usualRssMb: usual.rss, usualHwmMb: usual.hwm, peakRssSampledMb: sampledPeak, hwmAfterMb: after.hwm,
    rssAfterMb: after.rss, growthMb, targetMb: GROWTH_TARGET_MB, met: growthMb <= GROWTH_TARGET_MB,
  };
}

/** Decoding amplification: ordinary jobs alone, then beside amplification jobs on the one pool thread. */
async function decodingAmplification(s: Subject, opts: Options): Promise<Record<string, unknown>> {
  await s.ordinary("warmup", 2);
  const alone = await s.ordinary("alone", opts.jobs);
  const usual = memMb(s.agent.pid);
  const stopSampling = sampleRss(s.agent.pid);
  let amplifying = true;
  const refused: string[][] = [];
  const amplifyMs: number[] = [];
  const lane = async (): Promise<void> => {
    try {
      for (let i = 0; i < opts.amplify; i++) {
        const { result, ms } = await s.job("amplify", { task_id: "amplify", environment: "test-raw", inputdata: { mode: "known", "@state": "" } });
        refused.push(result);
        amplifyMs.push(ms);
      }
    } finally {
      amplifying = false;
    }
  };
  const [, beside] = await Promise.all([lane(), s.ordinary("beside", Number.MAX_SAFE_INTEGER, () => amplifying)]);
  const after = memMb(s.agent.pid);
  const sampledPeak = stopSampling();
  const wrong = refused.filter((r) => r[0] !== "crash" || !/decodes to too much/.test(r[1] ?? ""));
  if (wrong.length > 0) throw new Error(`amplification jobs not refused by the cap: ${JSON.stringify(wrong)}`);
  const a = summarize(alone);
  const b = summarize(beside);
  return {
    poolThreads: 1, amplifyJobs: refused.length, amplifyMs: summarize(amplifyMs), refusedWith: refused[0]?.[1] ?? null,
    aloneMs: a, besideMs: b, p50Ratio: a.p50 && b.p50 ? Math.round((b.p50 / a.p50) * 100) / 100 : null,
    usualRssMb: usual.rss, peakRssSampledMb: sampledPeak, hwmAfterMb: after.hwm,
    growthMb: Math.round((Math.max(sampledPeak, after.hwm > usual.hwm ? after.hwm : 0) - usual.rss) * 10) / 10,
  };
}

function printTable(r: { archive: Record<string, unknown>; amplification: Record<string, unknown> }): void {
  const a = r.archive;
  const d = r.amplification;
  const ms = (s: unknown): string => String((s as Summary).p50);
  const rows: Array<[string, string]> = [
    ["archive: usual RSS (MB)", String(a["usualRssMb"])],
    ["archive: peak RSS, sampled / VmHWM (MB)", `${String(a["peakRssSampledMb"])} / ${String(a["hwmAfterMb"])}`],
    ["archive: RSS 3 s after (MB)", String(a["rssAfterMb"])],
    ["archive: growth (MB, target <= 64)", `${String(a["growthMb"])} ${a["met"] ? "met" : "MISSED"}`],
    ["archive: result, job time (ms)", `${String(a["result"])}, ${String(a["jobMs"])}`],
    ["amplify: ordinary p50 alone (ms)", ms(d["aloneMs"])],
    ["amplify: ordinary p50 beside (ms)", ms(d["besideMs"])],
    ["amplify: beside / alone", String(d["p50Ratio"])],
    ["amplify: usual / peak RSS (MB)", `${String(d["usualRssMb"])} / ${String(Math.max(d["peakRssSampledMb"] as number, d["hwmAfterMb"] as number))}`],
  ];
  process.stdout.write(`${rows.map(([k, v]) => `${k.padEnd(42)}${v}`).join("\n")}\n`);
}

function parse(argv: string[]): Options | null {
  const { values } = parseArgs({
    args: argv,
    options: {
      jobs: { type: "string" }, amplify: { type: "string" }, out: { type: "string" },
      quick: { type: "boolean", default: false }, help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return null;
  }
  const int = (name: string, v: string | undefined, dflt: number): number => {
    const n = v === undefined ? dflt : Number(v);
    if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} must be an integer >= 1, got ${JSON.stringify(v)}`);
    return n;
  };
  return {
    jobs: int("jobs", values.jobs, values.quick ? 2 : 10),
    amplify: int("amplify", values.amplify, values.quick ? 1 : 8),
    out: path.resolve(values.out ?? path.join(REPO, "bench/results")),
  };
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
  const subjects: Subject[] = [];
  const cleanup = async (): Promise<number> => (await Promise.all(subjects.splice(0).map((s) => s.stop(docker)))).reduce((n, x) => n + x, 0);
  process.once("SIGINT", () => void cleanup().finally(() => process.exit(130)));
  const started = Date.now();
  try {
    const first = new Subject();
    subjects.push(first);
    const archive = await archiveInflation(await first.start(["--concurrency", "4"]), opts);
    let left = await cleanup();
    const second = new Subject();
    subjects.push(second);
    const amplification = await decodingAmplification(await second.start(["--concurrency", "4", "--pool-threads", "1"]), opts);
    left += await cleanup();
    const results = {
      when: new Date().toISOString(), seconds: Math.round((Date.now() - started) / 1000),
      machine: { cores: os.availableParallelism(), memoryGb: Math.round(os.totalmem() / 2 ** 30) },
      options: opts, archive, amplification, containersLeft: left,
    };
    mkdirSync(opts.out, { recursive: true });
    writeFileSync(path.join(opts.out, "hostile-latest.json"), `${JSON.stringify(results, null, 2)}\n`);
    printTable(results);
    return 0;
  } catch (err) {
    process.stderr.write(`hostile bench failed: ${(err as Error).stack ?? String(err)}\n`);
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

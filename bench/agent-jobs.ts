/**
 * The agent's jobs as the bench sends them, playing the backend: the trivial job
 * (bench/tasks/bench/trivial in environment `default`) and the big one (bench/tasks/bench/big in
 * `test-raw`, debug, returning a big archive and a big stdout). AgentJobs keeps C of them in
 * flight through the wire, as a backend with C queued jobs would, counts the trivial jobs done
 * (the leak check counts from the end of the warm-up), and stops when the bench is interrupted
 * or, after a batch of trivial jobs, when the agent has died.
 */
import type { BackendNewJob } from "../src/protocol/messages.js";
import type { AgentProc } from "./agent-proc.js";
import { COURSE } from "./options.js";
import type { JobRecord, Wire } from "./wire-client.js";

const TRIVIAL_TIMEOUT_MS = 120_000;
const BIG_TIMEOUT_MS = 300_000;

/**
 * The trivial job's limits: what the INGInious frontend sends for a task that sets none (its
 * defaults: 1,024 MB of memory and 1,024 MB of disk), so that the disk watch every real job pays
 * is in the figures.
 */
export const TRIVIAL_LIMITS = { time: 20, hard_time: 60, memory: 1024, disk: 1024 } as const;

export function trivialJob(id: string): BackendNewJob {
  return {
    type: "BackendNewJob",
    job_id: id,
    course_id: COURSE,
    task_id: "trivial",
    task_problems: {},
    inputdata: { "@state": "", "@lang": "en" },
    environment_type: "docker",
    environment: "default",
    environment_parameters: { limits: { ...TRIVIAL_LIMITS }, network_grading: false, run_cmd: null },
    debug: false,
  };
}

export function bigJob(id: string, bytes: number): BackendNewJob {
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

export class AgentJobs {
  /** Trivial jobs done since the last reset (the warm-up's end). */
  trivialDone = 0;
  private seq = 0;

  constructor(private readonly wire: Wire, private readonly agent: AgentProc, private readonly stopping: () => boolean) {}

  /** Runs `n` trivial jobs `c` at a time (ids `prefix-<seq>`); `enough` stops it early. */
  async trivial(
    prefix: string, n: number, c: number, onDone?: (done: number) => void, enough?: () => boolean,
  ): Promise<JobRecord[]> {
    const recs = await this.batch(n, c, () => trivialJob(`${prefix}-${++this.seq}`), TRIVIAL_TIMEOUT_MS, onDone, enough);
    this.trivialDone += recs.length;
    if (!this.agent.alive) throw new Error(`the agent died (status ${this.agent.exitCode}):\n${await this.agent.tail()}`);
    return recs;
  }

  /** Runs `n` big jobs (`bytes` of archive data and of stdout each) `c` at a time. */
  big(n: number, c: number, bytes: number): Promise<JobRecord[]> {
    return this.batch(n, c, (i) => bigJob(`big-${i + 1}`, bytes), BIG_TIMEOUT_MS);
  }

  /** Runs `n` agent jobs made by `make`, `c` at a time. */
  private async batch(
    n: number, c: number, make: (i: number) => BackendNewJob, timeoutMs: number,
    onDone: (done: number) => void = () => {}, enough: () => boolean = () => false,
  ): Promise<JobRecord[]> {
    const out: JobRecord[] = [];
    let next = 0;
    await Promise.all(Array.from({ length: Math.min(c, n) }, async () => {
      while (next < n && !this.stopping() && !enough()) {
        const i = next++;
        out.push(await this.wire.job(make(i), timeoutMs));
        onDone(out.length);
      }
    }));
    if (this.stopping()) throw new Error("stopped");
    return out;
  }
}

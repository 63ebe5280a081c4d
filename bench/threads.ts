/**
 * The agent's CPU by thread: its main thread, its pool threads, and the rest (libuv's threadpool,
 * V8's helper threads, threads that ended). Node 20 names every thread "node", so the pool
 * threads are told apart by their nice value: each lowers its own priority when it loads
 * (workers/thread.ts) while every other thread keeps the main thread's. The threads are sampled
 * from /proc/<pid>/task/<tid>/stat every SAMPLE_MS, so that a thread ending during the window
 * keeps the CPU it was last seen with; the rest is the process's total less main and pool.
 */
import { readdirSync, readFileSync } from "node:fs";
import { msPerTick } from "./proc.js";
import { round } from "./stats.js";

const SAMPLE_MS = 200;
/** The nice value pool threads give themselves (workers/thread.ts). */
const POOL_NICE = 10;

export interface ThreadCpu {
  mainMsPerJob: number | null;
  poolMsPerJob: number | null;
  otherMsPerJob: number | null;
  /** Pool threads seen during the window (nice 10). */
  poolThreads: number;
  /** Threads seen during the window, all kinds. */
  threads: number;
}

interface Seen {
  first: number;
  last: number;
  pool: boolean;
}

/** One thread's CPU (ms) and nice value, or null when it is gone. */
function threadStat(pid: number, tid: string): { cpuMs: number; nice: number } | null {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/task/${tid}/stat`, "utf8");
  } catch {
    return null;
  }
  // fields after the comm's closing parenthesis: rest[0] is field 3; utime 14, stime 15, nice 19
  const rest = text.slice(text.lastIndexOf(")") + 2).split(" ");
  const cpu = (Number(rest[11]) + Number(rest[12])) * msPerTick;
  const nice = Number(rest[16]);
  return Number.isFinite(cpu) && Number.isFinite(nice) ? { cpuMs: cpu, nice } : null;
}

function totalMs(pid: number): number | null {
  try {
    const rest = readFileSync(`/proc/${pid}/stat`, "utf8");
    const f = rest.slice(rest.lastIndexOf(")") + 2).split(" ");
    return (Number(f[11]) + Number(f[12])) * msPerTick;
  } catch {
    return null;
  }
}

/** Samples the agent's threads from `start` until `stop`, which returns the figures per job. */
export class ThreadSampler {
  private readonly seen = new Map<string, Seen>();
  private timer: NodeJS.Timeout | null = null;
  private total0: number | null = null;
  /** Threads present when the window opened: what they had used before it is not counted. */
  private opened = false;

  constructor(private readonly pid: number) {}

  start(): void {
    this.total0 = totalMs(this.pid);
    this.sample();
    this.opened = true;
    this.timer = setInterval(() => this.sample(), SAMPLE_MS);
  }

  stop(jobs: number): ThreadCpu {
    if (this.timer) clearInterval(this.timer);
    this.sample();
    const total1 = totalMs(this.pid);
    let main = 0;
    let pool = 0;
    let poolThreads = 0;
    for (const [tid, s] of this.seen) {
      const used = s.last - s.first;
      if (tid === String(this.pid)) main += used;
      else if (s.pool) {
        pool += used;
        poolThreads++;
      }
    }
    const per = (v: number | null): number | null => (v === null || jobs === 0 ? null : round(v / jobs, 2));
    const total = this.total0 === null || total1 === null ? null : total1 - this.total0;
    return {
      mainMsPerJob: per(main), poolMsPerJob: per(pool), otherMsPerJob: per(total === null ? null : total - main - pool),
      poolThreads, threads: this.seen.size,
    };
  }

  private sample(): void {
    let tids: string[];
    try {
      tids = readdirSync(`/proc/${this.pid}/task`);
    } catch {
      return;
    }
    for (const tid of tids) {
      const st = threadStat(this.pid, tid);
      if (st === null) continue;
      const s = this.seen.get(tid);
      // a thread born during the window counts from zero
      if (s === undefined) this.seen.set(tid, { first: this.opened ? 0 : st.cpuMs, last: st.cpuMs, pool: st.nice >= POOL_NICE });
      else {
        s.last = st.cpuMs;
        s.pool ||= st.nice >= POOL_NICE;
      }
    }
  }
}

/**
 * Student containers' memory: a running job's worker asks for a student container's memory limit
 * before creating it (MainApi.reserveMemory). A request is reserved at once when it fits and no
 * other waits; else it waits, in order, ahead of queued jobs (its job already runs, and its end
 * releases memory), while ready warm containers are removed to make room. It is refused (the
 * worker answers run_student_retval 254) when it could never fit beside what its job already
 * holds, when its job ended, or when only jobs that are themselves waiting hold memory: none of
 * them would release any before its time limit. The dispatcher calls `serve` at each pump.
 * What a job's requests make the main thread log goes through a LogLimiter of that job's: a
 * grader's flood of requests costs so many lines a second, the others counted.
 */
import type { MemoryBudget } from "../limits/memory-budget.js";
import type { Logger } from "../log.js";
import { LogLimiter } from "../log-limit.js";
import type { Job } from "./job.js";
import type { WarmContainers } from "./warm-containers.js";
import { LAYER_HOLDER } from "../limits/layer-memory.js";

/** What asks, in log lines: a student container (its socket id), or a layered /task's allowance (layer-memory.ts). */
const asker = (holder: string): string => (holder === LAYER_HOLDER ? "the task layer's allowance" : "student container");

interface MemoryWait {
  job: Job;
  /** The student container's socket id: its reservation's name in its job's group. */
  holder: string;
  memoryMb: number;
  answer: (reserved: boolean) => void;
}

export class StudentMemory {
  private readonly waits: MemoryWait[] = [];
  private readonly limiters = new WeakMap<Job, LogLimiter>();

  constructor(
    private readonly memory: MemoryBudget,
    private readonly warm: WarmContainers,
    private readonly log: Logger,
    /** Asks the dispatcher to pump: a new request may be answered now. */
    private readonly pump: () => void,
  ) {}

  /** Requests waiting for memory. */
  get waiting(): number {
    return this.waits.length;
  }

  /** A student container's request: true once its memory is reserved under its job's id. */
  ask(job: Job, holder: string, memoryMb: number): Promise<boolean> {
    const held = this.memory.heldBy(job.id);
    if (!this.memory.couldEverFit(held + memoryMb)) {
      this.limiter(job).warn(this.log, { job: job.id, socket: holder, memoryMb, heldMb: held, usableMb: this.memory.usableMb },
        `${asker(holder)} refused: its memory could never fit beside its job's`);
      return Promise.resolve(false);
    }
    if (this.waits.length === 0 && this.memory.reserve(job.id, holder, memoryMb)) return Promise.resolve(true);
    return new Promise((answer) => {
      this.waits.push({ job, holder, memoryMb, answer });
      this.limiter(job).info(this.log, { job: job.id, socket: holder, memoryMb, reservedMb: this.memory.reservedMb, usableMb: this.memory.usableMb },
        `${asker(holder)} waits for memory`);
      this.pump();
    });
  }

  /** Answers the requests that can be answered, in order; true while some still wait (queued jobs wait behind them). */
  serve(): boolean {
    while (this.waits.length > 0) {
      const w = this.waits[0]!;
      if (w.job.phase !== "running") {
        this.waits.shift();
        w.answer(false);
        continue;
      }
      if (this.memory.reserve(w.job.id, w.holder, w.memoryMb)) {
        this.waits.shift();
        w.answer(true);
        continue;
      }
      this.warm.evictFor(w.memoryMb - this.memory.freeMb);
      const waitingJobs = new Set(this.waits.map((m) => m.job.id));
      if (!this.memory.groups().every((g) => waitingJobs.has(g))) return true;
      this.waits.shift();
      this.limiter(w.job).warn(this.log, { job: w.job.id, socket: w.holder, memoryMb: w.memoryMb, reservedMb: this.memory.reservedMb },
        `${asker(w.holder)} refused: only jobs waiting for memory themselves hold it`);
      w.answer(false);
    }
    return false;
  }

  /** The job's limiter of log lines (its summaries carry the job's id). */
  private limiter(job: Job): LogLimiter {
    let l = this.limiters.get(job);
    if (l === undefined) {
      l = new LogLimiter(this.log.child({ job: job.id }));
      this.limiters.set(job, l);
    }
    return l;
  }

  /** The job closed: its requests still waiting are refused, and what its limiter counted is told. */
  jobEnded(job: Job): void {
    this.limiters.get(job)?.flush();
    for (let i = this.waits.length - 1; i >= 0; i--) {
      const w = this.waits[i]!;
      if (w.job !== job) continue;
      this.waits.splice(i, 1);
      w.answer(false);
    }
  }
}

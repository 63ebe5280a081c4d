/**
 * Dispatch: from an admitted job to a pool thread. It answers each BackendNewJob with
 * AgentJobStarted, asks admission (admission.ts) whether the job can run here, takes the host
 * ports the plan wants, checks (one asynchronous stat) that the task folder exists, and queues the
 * job, in the order the jobs arrived whatever order their stats answer in (arrivals.ts). Its pump hands queued jobs to the worker pool while job slots are free and the job's memory
 * limit fits in the memory not reserved (see limits/memory-budget.ts), first come, first served: a
 * job that does not fit holds the head of the queue until it does, and ready warm containers are
 * removed to make room for it. A job may wait for a warm container already being made for its
 * environment rather than start cold, for WARM_WAIT_MS at most. Student containers' requests for
 * memory (student-memory.ts) are answered first: their jobs already run. Last, the pump asks the warm
 * containers to refill with the slots and memory left. Jobs it accepts are recorded in the registry
 * (registry.ts), which tells it through its hooks when a job closed or a slot or memory freed.
 */
import { randomBytes } from "node:crypto";
import { promises as fs } from "node:fs";
import path from "node:path";
import type { Piscina } from "piscina";
import type { Outbox } from "./outbox.js";
import type { Logger } from "../log.js";
import type { BackendNewJob } from "../protocol/messages.js";
import type { MemoryBudget } from "../limits/memory-budget.js";
import type { PortPool } from "../limits/port-pool.js";
import { admit, previousStateOf, type AdmissionPlan, type AdmissionRefusal, type AdmissionSnapshot } from "./admission.js";
import { Arrivals } from "./arrivals.js";
import { Job } from "./job.js";
import { JOB_DIR_PREFIX } from "./job-directory.js";
import type { JobSpec, WorkerOutcome } from "./job-task.js";
import { jobDone } from "./outcome.js";
import type { JobRegistry } from "./registry.js";
import { StudentMemory } from "./student-memory.js";
import type { WarmContainers } from "./warm-containers.js";
import { taskDirOf } from "./warm-pool.js";

const TASK_UNAVAILABLE =
  "Task unavailable on agent. Please retry later, the agents should synchronize soon. If the error persists, please contact your course administrator.";

/**
 * How long a job waits for a warm container being made for its environment before it starts in a
 * new container instead: a creation that stalls (a slow engine, an image that takes long to start)
 * must not hold the job longer than a cold start would take.
 */
export const WARM_WAIT_MS = 3000;

/**
 * How long a job's task folder look-up may hold the jobs that arrived after it back (a look-up
 * that takes longer, on a hung network file system say, lets them go first).
 */
export const LOOKUP_PATIENCE_MS = 5000;

/** Whether a task folder exists (a directory); the dispatcher's one file-system look-up. */
export type TaskFolderLookup = (taskDir: string) => Promise<boolean>;

const statTaskFolder: TaskFolderLookup = (taskDir) => fs.stat(taskDir).then((st) => st.isDirectory(), () => false);

export interface DispatchOptions {
  lookUpTaskFolder?: TaskFolderLookup;
  lookupPatienceMs?: number;
}

/** What the pump did with the job at the head of the queue. */
type HeadMove = "started" | "set-aside" | "needs-memory";

export class Dispatcher {
  /** Jobs waiting for a slot, in order. */
  private readonly queue: Array<{ job: Job; task: JobSpec }> = [];
  /** Accepted jobs on their way into the queue, in arrival order. */
  private readonly arrivals: Arrivals;
  private readonly lookUpTaskFolder: TaskFolderLookup;
  /** Student containers waiting for memory, in order. */
  private readonly students: StudentMemory;
  /** When each job waiting for a warm container under way began to wait. */
  private readonly warmWaitSince = new Map<Job, number>();
  private warmWaitTimer: NodeJS.Timeout | null = null;
  /** Jobs already logged as waiting for memory. */
  private readonly loggedMemoryWait = new WeakSet<Job>();
  /** Queued jobs that have a free slot but wait for memory, as of the latest pump. */
  private memoryBound = 0;
  private pool: Piscina | null = null;
  /** Set once the agent shuts down: new jobs are refused and nothing leaves the queue. */
  private closing = false;
  /** Set while jobs are being ended in bulk (restart, shutdown): nothing new leaves the queue. */
  private draining = false;

  constructor(
    /** Jobs that may hold a worker at once (--concurrency). */
    private readonly slots: number,
    private readonly tmpdir: string,
    private readonly log: Logger,
    private readonly registry: JobRegistry,
    private readonly ports: PortPool,
    private readonly memory: MemoryBudget,
    private readonly warm: WarmContainers,
    private readonly outbox: Outbox,
    options: DispatchOptions = {},
  ) {
    this.students = new StudentMemory(memory, warm, log, () => this.pump());
    this.lookUpTaskFolder = options.lookUpTaskFolder ?? statTaskFolder;
    this.arrivals = new Arrivals(options.lookupPatienceMs ?? LOOKUP_PATIENCE_MS, (behind) =>
      log.warn({ behind, patienceMs: options.lookupPatienceMs ?? LOOKUP_PATIENCE_MS }, "a task folder look-up is slow: the jobs that arrived after it go first"));
  }

  get queuedJobs(): number {
    return this.queue.length;
  }

  /** Queued jobs that have a free slot but wait for memory (metrics). */
  get jobsWaitingForMemory(): number {
    return this.memoryBound;
  }

  /** Student containers waiting for memory (metrics). */
  get studentsWaitingForMemory(): number {
    return this.students.waiting;
  }

  /** Jobs run in `pool` from now on (the agent starts it once everything else is ready). */
  usePool(pool: Piscina): void {
    this.pool = pool;
  }

  /** The agent shuts down: jobs from now on are refused, and none leaves the queue. */
  stop(): void {
    this.closing = true;
    if (this.warmWaitTimer !== null) clearTimeout(this.warmWaitTimer);
  }

  onNewJob(msg: BackendNewJob, snapshot: AdmissionSnapshot): void {
    const log = this.log.child({ job: msg.job_id });
    if (this.registry.has(msg.job_id)) {
      log.warn("a job with this id is already running: ignoring the second one");
      return;
    }
    this.outbox.send({ type: "AgentJobStarted", job_id: msg.job_id });
    if (this.closing) {
      this.registry.refuse(msg.job_id, previousStateOf(msg), "The agent is shutting down. Please retry.", "agent shutting down", log);
      return;
    }
    const admission = admit(msg, snapshot);
    if (admission.kind === "refusal") {
      const { previousState, text, reason, afterTaskFolder } = admission;
      if (afterTaskFolder === null) {
        this.registry.refuse(msg.job_id, previousState, text, reason, log);
        return;
      }
      this.refuseOnceFound(msg.job_id, admission, afterTaskFolder, log);
      return;
    }
    this.accept(admission, log);
  }

  /**
   * A refusal the Python agent makes only once it found the task folder: a missing folder is
   * said first. Meanwhile the job is recorded (queued), so that a kill, or the same id again,
   * finds it.
   */
  private refuseOnceFound(jobId: string, refusal: AdmissionRefusal, taskDir: string, log: Logger): void {
    const job = new Job(jobId, refusal.previousState, path.join(this.tmpdir, jobDirName(jobId)));
    this.registry.add(job);
    const close = (text: string, reason: string) => (): void => {
      log.warn({ reason }, "job refused");
      this.registry.close(job, jobDone(job.id, "crash", text, job.previousState));
    };
    const missing = close(TASK_UNAVAILABLE, "task unavailable on this agent");
    this.arrivals.add(this.lookUpTaskFolder(taskDir).then((found) => (found ? close(refusal.text, refusal.reason) : missing), () => missing));
  }

  /** Takes the plan's ports, records the job, and queues it once its task folder is found. */
  private accept(plan: AdmissionPlan, log: Logger): void {
    const { task: planned, wantedPorts } = plan;
    const job = new Job(planned.jobId, plan.previousState, path.join(this.tmpdir, jobDirName(planned.jobId)));
    const ports: Record<number, number> = {};
    if (wantedPorts.length > 0) {
      const got = this.ports.take(wantedPorts.length);
      if (got === null) {
        this.registry.refuse(job.id, job.previousState, "No ports are available right now. Please retry later.", "no free debug port", log);
        return;
      }
      wantedPorts.forEach((p, i) => {
        ports[p] = got[i]!;
        job.ports.add(got[i]!);
      });
    }
    const task: JobSpec = { ...planned, jobDir: job.jobDir, ports };
    this.registry.add(job);
    const taskDir = task.taskDir;
    const queue = (): void => this.enqueue(job, task, plan.warmKey);
    if (taskDir === null) {
      this.arrivals.add(queue);
      return;
    }
    // The only file-system look-up on this thread: one stat, asynchronous; what follows it waits
    // for the jobs that came before.
    this.arrivals.add(this.lookUpTaskFolder(taskDir).then(
      (found) => (found ? queue : () => this.refuseMissingTask(job, log)),
      () => () => this.refuseMissingTask(job, log),
    ));
  }

  private refuseMissingTask(job: Job, log: Logger): void {
    log.warn("task unavailable on this agent");
    this.registry.close(job, jobDone(job.id, "crash", TASK_UNAVAILABLE, job.previousState));
  }

  private enqueue(job: Job, task: JobSpec, warmKey: string | null): void {
    if (job.phase !== "queued") return;
    if (job.killed) return;
    if (warmKey !== null) {
      this.warm.noteDemand(warmKey, task.memoryMb, task.taskDir);
      job.warmEnv = warmKey;
      job.warmTask = task.taskDir;
    }
    this.queue.push({ job, task });
    this.log.debug({ job: job.id, queued: this.queue.length }, "job queued");
    this.pump();
  }

  /**
   * Answers student containers waiting for memory, then hands queued jobs to the pool while slots
   * and memory allow, in order, then lets the warm containers refill with what is left.
   */
  pump(): void {
    if (this.draining || this.closing) return;
    // Jobs set aside, in order, to wait for a warm container already being made for their
    // environment: it is ready sooner than a cold one would be, and a cold start meanwhile would
    // make the engine do both. At most one job per container under way.
    const waiting: typeof this.queue = [];
    const promised = new Map<string, number>();
    let needsMemory = this.students.serve();
    while (!needsMemory && this.registry.slotsInUse < this.slots && this.queue.length > 0) {
      const queued = this.queue[0]!;
      if (queued.job.phase !== "queued") {
        this.queue.shift();
        this.warmWaitSince.delete(queued.job);
        continue;
      }
      const move = this.moveHead(queued.job, queued.task, promised);
      if (move === "needs-memory") {
        needsMemory = true; // first come, first served: it keeps the head, the jobs behind it wait
        break;
      }
      this.queue.shift();
      if (move === "set-aside") waiting.push(queued);
      else this.warmWaitSince.delete(queued.job);
    }
    this.queue.unshift(...waiting);
    const freeSlots = Math.max(0, this.slots - this.registry.slotsInUse);
    this.memoryBound = needsMemory ? Math.min(this.queue.length - waiting.length, freeSlots) : 0;
    this.watchWarmWaits(waiting);
    if (this.pool !== null && !needsMemory) {
      // One free slot is kept out of the budget: near saturation, a warm container being made
      // would only compete with the next job's own container for the engine.
      this.warm.refill(this.pool, this.slots - this.registry.slotsInUse - this.queue.length - 1, this.registry.anyJobRunning());
    }
  }

  /** Starts the job at the head of the queue (warm or cold), sets it aside for a warm container, or finds no memory for it. */
  private moveHead(job: Job, task: JobSpec, promised: Map<string, number>): HeadMove {
    // a heavy task's jobs take containers made for their task (its layer at /task), others their environment's
    const warmKey = job.warmEnv === null ? null : this.warm.keyFor(job.warmEnv, job.warmTask);
    const warmMb = warmKey === null ? null : this.warm.readyMemoryMb(warmKey);
    if (warmKey !== null && warmMb !== null) {
      // taking it hands its reservation over to the job: only the difference must fit
      if (!this.memory.fits(task.memoryMb - warmMb)) return this.waitForMemory(job, task, task.memoryMb - warmMb);
      const warm = this.warm.take(warmKey)!;
      job.jobDir = warm.jobDir;
      job.ranWarm = true;
      const layered = taskDirOf(warm.key) !== null;
      this.run(job, { ...task, jobDir: warm.jobDir, warm: {
        containerId: warm.containerId, cpuBaselineNs: warm.cpuBaselineNs, memoryMb: warm.memoryMb, layered, lower: warm.lower,
      } });
      return "started";
    }
    if (warmKey !== null && this.warm.awaitable(warmKey) > (promised.get(warmKey) ?? 0) && !this.warmWaitOver(job)) {
      promised.set(warmKey, (promised.get(warmKey) ?? 0) + 1);
      return "set-aside";
    }
    if (!this.memory.fits(task.memoryMb)) return this.waitForMemory(job, task, task.memoryMb);
    this.run(job, task);
    return "started";
  }

  /** The head job does not fit: it keeps its place, and ready warm containers make room for it. */
  private waitForMemory(job: Job, task: JobSpec, neededMb: number): HeadMove {
    const evicting = this.warm.evictFor(neededMb - this.memory.freeMb);
    if (!this.loggedMemoryWait.has(job)) {
      this.loggedMemoryWait.add(job);
      this.log.info(
        { job: job.id, memoryMb: task.memoryMb, reservedMb: this.memory.reservedMb, usableMb: this.memory.usableMb, warmRemoved: evicting },
        "job waits for memory",
      );
    }
    return "needs-memory";
  }

  /** Whether the job has waited WARM_WAIT_MS for a warm container (its wait starts now if it had not begun). */
  private warmWaitOver(job: Job): boolean {
    const since = this.warmWaitSince.get(job);
    if (since === undefined) {
      this.warmWaitSince.set(job, performance.now());
      return false;
    }
    const waited = performance.now() - since;
    if (waited < WARM_WAIT_MS) return false;
    this.log.info({ job: job.id, waitedMs: Math.round(waited) }, "no warm container ready in time: starting the job in a new one");
    return true;
  }

  /** Pumps again when the first of the jobs set aside for a warm container has waited long enough. */
  private watchWarmWaits(waiting: Array<{ job: Job }>): void {
    if (this.warmWaitTimer !== null) clearTimeout(this.warmWaitTimer);
    this.warmWaitTimer = null;
    const first = Math.min(...waiting.map((q) => this.warmWaitSince.get(q.job) ?? Infinity));
    if (!Number.isFinite(first)) return;
    this.warmWaitTimer = setTimeout(() => {
      this.warmWaitTimer = null;
      this.pump();
    }, Math.max(0, first + WARM_WAIT_MS - performance.now()) + 1);
    this.warmWaitTimer.unref();
  }

  /** A student container of a running job asks for memory (see StudentMemory.ask). */
  askMemory(job: Job, holder: string, memoryMb: number): Promise<boolean> {
    return this.students.ask(job, holder, memoryMb);
  }

  private run(job: Job, task: JobSpec): void {
    // fits: checked by moveHead (a warm container's reservation was just handed over)
    this.memory.reserve(job.id, "grading", task.memoryMb);
    this.log.debug({ job: job.id, warm: task.warm !== null, memoryMb: task.memoryMb, reservedMb: this.memory.reservedMb }, "job dispatched");
    job.phase = "running";
    job.dispatchedAt = performance.now();
    const settled = this.pool!
      .run(task)
      .then(
        (outcome: WorkerOutcome) => this.registry.workerReturned(job, outcome),
        (err: Error) => this.registry.workerFailed(job, err),
      )
      .finally(() => this.registry.workerFinished(job));
    this.registry.handedToWorker(job, settled);
  }

  /**
   * The registry closed a job: one still queued leaves the queue, its student containers waiting
   * for memory are refused, and what fits may have changed.
   */
  jobClosed(job: Job, wasQueued: boolean): void {
    if (wasQueued) {
      const i = this.queue.findIndex((q) => q.job === job);
      if (i >= 0) this.queue.splice(i, 1);
      this.warmWaitSince.delete(job);
    }
    this.students.jobEnded(job);
    this.pump();
  }

  /** Runs `work` (ending jobs in bulk) with nothing leaving the queue meanwhile, then pumps. */
  async drain(work: () => Promise<void>): Promise<void> {
    this.draining = true;
    try {
      await work();
    } finally {
      this.draining = false;
      this.pump(); // nothing pumped while draining: the warm pool may be short (a stop pumps nothing)
    }
  }
}

function jobDirName(jobId: string): string {
  const safe = jobId.replace(/[^A-Za-z0-9_-]/g, "_").slice(0, 40);
  return `${JOB_DIR_PREFIX}${safe}-${randomBytes(4).toString("hex")}`;
}

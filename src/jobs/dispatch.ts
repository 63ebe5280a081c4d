/**
 * Dispatch: from an admitted job to a pool thread. It answers each BackendNewJob with
 * AgentJobStarted, asks admission (admission.ts) whether the job can run here, takes the host
 * ports the plan wants, checks (one asynchronous stat) that the task folder exists, and queues the
 * job. Its pump hands queued jobs to the worker pool while job slots are free, lets a job wait for
 * a warm container already being made for its environment rather than start cold, and asks the
 * warm containers to refill with what is left. Jobs it accepts are recorded in the registry
 * (registry.ts), which tells it through its hooks when a job closed or a slot freed.
 */
import { randomBytes } from "node:crypto";
import { promises as fs } from "node:fs";
import path from "node:path";
import type { Piscina } from "piscina";
import type { Outbox } from "../link/outbox.js";
import type { Logger } from "../log.js";
import type { BackendNewJob } from "../protocol/messages.js";
import type { PortPool } from "../limits/port-pool.js";
import { admit, previousStateOf, type AdmissionPlan, type AdmissionSnapshot } from "./admission.js";
import { Job } from "./job.js";
import { JOB_DIR_PREFIX } from "./job-directory.js";
import type { JobSpec, WorkerOutcome } from "./job-task.js";
import { jobDone } from "./outcome.js";
import type { JobRegistry } from "./registry.js";
import type { WarmContainers } from "./warm-containers.js";

const TASK_UNAVAILABLE =
  "Task unavailable on agent. Please retry later, the agents should synchronize soon. If the error persists, please contact your course administrator.";

export class Dispatcher {
  /** Jobs waiting for a slot, in order. */
  private readonly queue: Array<{ job: Job; task: JobSpec }> = [];
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
    private readonly warm: WarmContainers,
    private readonly outbox: Outbox,
  ) {}

  get queuedJobs(): number {
    return this.queue.length;
  }

  /** Jobs run in `pool` from now on (the agent starts it once everything else is ready). */
  usePool(pool: Piscina): void {
    this.pool = pool;
  }

  /** The agent shuts down: jobs from now on are refused, and none leaves the queue. */
  stop(): void {
    this.closing = true;
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
      this.registry.refuse(msg.job_id, admission.previousState, admission.text, admission.reason, log);
      return;
    }
    this.accept(admission, log);
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
    if (taskDir === null) {
      this.enqueue(job, task, plan.warmKey);
      return;
    }
    // The only file-system look-up on this thread: one stat, asynchronous.
    fs.stat(taskDir).then(
      (st) => (st.isDirectory() ? this.enqueue(job, task, plan.warmKey) : this.refuseMissingTask(job, log)),
      () => this.refuseMissingTask(job, log),
    );
  }

  private refuseMissingTask(job: Job, log: Logger): void {
    log.warn("task unavailable on this agent");
    this.registry.close(job, jobDone(job.id, "crash", TASK_UNAVAILABLE, job.previousState));
  }

  private enqueue(job: Job, task: JobSpec, warmKey: string | null): void {
    if (job.phase !== "queued") return;
    if (job.killed) return;
    if (warmKey !== null) {
      this.warm.noteDemand(warmKey, task.memoryMb);
      job.warmEnv = warmKey;
    }
    this.queue.push({ job, task });
    this.pump();
  }

  /** Hands queued jobs to the pool while slots are free, then lets the warm containers refill. */
  pump(): void {
    if (this.draining || this.closing) return;
    // Jobs that wait, in order, for a warm container already being made for their environment:
    // it is ready sooner than a cold one would be, and a cold start meanwhile would make the
    // engine do both. At most one job per container under way.
    const waiting: typeof this.queue = [];
    const promised = new Map<string, number>();
    while (this.registry.slotsInUse < this.slots && this.queue.length > 0) {
      const queued = this.queue.shift()!;
      const { job, task } = queued;
      const warmKey = job.warmEnv;
      if (job.phase !== "queued") continue;
      const warm = warmKey !== null ? this.warm.take(warmKey) : null;
      if (warm !== null) {
        job.jobDir = warm.jobDir;
        job.ranWarm = true;
        this.run(job, { ...task, jobDir: warm.jobDir, warm: { containerId: warm.containerId, cpuBaselineNs: warm.cpuBaselineNs, memoryMb: warm.memoryMb } });
      } else if (warmKey !== null && this.warm.awaitable(warmKey) > (promised.get(warmKey) ?? 0)) {
        promised.set(warmKey, (promised.get(warmKey) ?? 0) + 1);
        waiting.push(queued);
      } else this.run(job, task);
    }
    this.queue.unshift(...waiting);
    if (this.pool !== null) {
      // One free slot is kept out of the budget: near saturation, a warm container being made
      // would only compete with the next job's own container for the engine.
      this.warm.refill(this.pool, this.slots - this.registry.slotsInUse - this.queue.length - 1, this.registry.anyJobRunning());
    }
  }

  private run(job: Job, task: JobSpec): void {
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

  /** The registry closed a job: one still queued leaves the queue, and what fits may have changed. */
  jobClosed(job: Job, wasQueued: boolean): void {
    if (wasQueued) {
      const i = this.queue.findIndex((q) => q.job === job);
      if (i >= 0) this.queue.splice(i, 1);
    }
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

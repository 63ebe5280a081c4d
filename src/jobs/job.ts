/**
 * One job as the main thread sees it. A job is queued, then running, then closed; it is
 * closed exactly once, and that is the only place its AgentJobDone comes from.
 */
export type JobPhase = "queued" | "running" | "closed";

/** Why the main thread stopped a job's grading container: the backend's kill, or the engine's `oom` event. */
export type StopReason = "killed" | "overflow";

export class Job {
  phase: JobPhase = "queued";
  killed = false;
  /**
   * The last of the backend's kill and the engine's `oom` event for its grading container, as
   * the Python agent's `_containers_killed` keeps it (each one overwrites the other).
   */
  stoppedBy: StopReason | null = null;
  sshSent = false;
  readonly containers = new Set<string>();
  readonly ports = new Set<number>();
  readonly startedAt = performance.now();
  /** When it left the queue for a worker. */
  dispatchedAt: number | null = null;
  /**
   * The environment whose warm containers could run it, set once it counts as their demand (null:
   * none could: network, ports, or not queued yet).
   */
  warmEnv: string | null = null;
  /** Its task folder, as its warm key's task (see WarmContainers.keyFor). */
  warmTask: string | null = null;
  /** It runs in one of those warm containers (else in a container made for it). */
  ranWarm = false;

  constructor(
    readonly id: string,
    readonly previousState: string,
    /** The job directory the worker will create (or a warm container's); removed here if the worker dies. */
    public jobDir: string,
  ) {}

  /** Moves to `closed` once; returns false if the job was already closed. */
  close(): boolean {
    if (this.phase === "closed") return false;
    this.phase = "closed";
    return true;
  }
}

/** Remembers the ids of recently finished jobs, so that a late kill sends nothing. */
export class RecentJobs {
  private readonly ids = new Set<string>();
  private readonly order: string[] = [];
  constructor(private readonly capacity = 10000) {}
  add(id: string): void {
    if (this.ids.has(id)) return;
    this.ids.add(id);
    this.order.push(id);
    if (this.order.length > this.capacity) this.ids.delete(this.order.shift()!);
  }
  has(id: string): boolean {
    return this.ids.has(id);
  }
}

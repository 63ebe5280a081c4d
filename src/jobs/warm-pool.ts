/**
 * Grading containers created and started ahead of time, waiting for `start` on stdin with their
 * job directory already bound (network none, no ports). A job that fits (same environment, no
 * network, no ports) takes one and skips container create and start: most of a trivial job's
 * latency. A container serves one job, never two.
 *
 * Sizing: only environments that served a job in the last `demandWindowMs` get warm containers,
 * at most `cap` each, and never more in all than the slots free right now, so that warm
 * containers never stand where a job needs a slot, nor more than the memory not reserved right
 * now holds (each is sized like its environment's latest job).
 *
 * Timing: making a container costs the engine and the machine about as much as a trivial job,
 * and a job running beside it waits for both. So an environment whose jobs come with pauses
 * between them gets its replacements once no job runs (in the pause); one whose jobs come back
 * to back has no pause to wait for and gets them at once. An environment with no container
 * ready nor under way gets them at once in any case, so that a busy machine delays a paced
 * environment's replacements but never leaves it without one for long.
 *
 * Heavy tasks: a job whose /task is layered over its task folder (task-layer.ts) and whose task
 * has at least HEAVY_TASK_ENTRIES entries is graded fastest in a container whose /task is already
 * that layer: copying such a task into a warm container costs seconds, more than a cold start. So
 * a task reported heavy gets a key of its own (taskKeyOf): its jobs take only containers made for
 * it (never the environment's, which they would have to fill), and an environment's replacements
 * are made for the key of its latest job (the task's when that task is heavy, else the
 * environment's). Both kinds count in the same cap per environment and the same slot and memory
 * budgets; a container whose key saw no job for `demandWindowMs` (for the environment's key: no
 * job of a task that is not heavy) is stale, and goes; so is a heavy task's once its task is
 * reported light or copied again. A farm of many tasks thus holds at most `cap` containers per
 * environment, following where its jobs went lately.
 *
 * Pure bookkeeping: the agent creates and removes the containers.
 */
import type { FolderIdentity } from "./task-identity.js";

/** See WarmPool.settleMsFor. */
export const WARM_PROBATION_SETTLE_MS = 1000;

/**
 * A job that arrives sooner than this after its environment's previous job ended (or while
 * another is open) finds its environment busy: see WarmPool.plan. About what it takes to create
 * and start a warm container here: one started at a job's end would not be ready for it.
 */
export const BACK_TO_BACK_GAP_MS = 500;

/**
 * A task with at least this many entries (files, folders, links) is heavy: copying it into a
 * warm container (about 0.5 ms per file here) would cost more than a cold container's start.
 */
export const HEAVY_TASK_ENTRIES = 1000;

/** Between an environment's key and a task folder in a task's key (never in either). */
const TASK_SEP = "\u0001";

/** The key of a task of an environment: its warm containers have that task's layer at /task. */
export function taskKeyOf(envKey: string, taskDir: string | null): string {
  return `${envKey}${TASK_SEP}${taskDir ?? ""}`;
}

/** The environment of a key (a task's key or the environment's own). */
export function envKeyOf(key: string): string {
  const i = key.indexOf(TASK_SEP);
  return i < 0 ? key : key.slice(0, i);
}

/** The task folder of a task's key (null: an environment's key). */
export function taskDirOf(key: string): string | null {
  const i = key.indexOf(TASK_SEP);
  return i < 0 ? null : key.slice(i + 1);
}

export interface WarmContainer {
  containerId: string;
  jobDir: string;
  /** What it was made for: an environment's key, or a heavy task's (taskKeyOf). */
  key: string;
  /** CPU time (ns) the container had used when it became ready: not the job's (null: see WarmCreated). */
  cpuBaselineNs: number | null;
  /** Its memory limit: a job that asks for the same needs no update before it starts. */
  memoryMb: number;
  /** A task's container: the folder its layer was made over (task-identity.ts); else null. */
  lower: FolderIdentity | null;
}

export class WarmPool {
  /** Ready containers and creations under way, by key (an environment's or a task's). */
  private readonly ready = new Map<string, WarmContainer[]>();
  private readonly creating = new Map<string, number>();
  private readonly lastDemand = new Map<string, number>();
  /** When each task (taskKeyOf) last had a job, and the latest task of each environment. */
  private readonly taskDemand = new Map<string, number>();
  private readonly latestTask = new Map<string, string>();
  /** Tasks reported heavy and layered (see the rule above): their jobs take their own containers. */
  private readonly heavy = new Set<string>();
  /** Whether heavy tasks get containers of their own (layered task folders, see WarmContainers). */
  taskKeyed = false;
  /** The memory limit of the latest job of each environment: what its next job likely asks for. */
  private readonly lastMemoryMb = new Map<string, number>();
  /** Environments whose warm containers died before any job used them: not warmed again. */
  private readonly unwarmable = new Set<string>();
  private readonly earlyDeaths = new Map<string, number>();
  /** Environments a warm container has served (gave a result): their containers are ready once started. */
  private readonly served = new Set<string>();
  /** Jobs of each environment accepted and not ended yet. */
  private readonly open = new Map<string, number>();
  /** When each environment's latest job ended. */
  private readonly lastEnd = new Map<string, number>();
  /** Environments whose latest job came back to back with the one before (see BACK_TO_BACK_GAP_MS). */
  private readonly backToBack = new Set<string>();

  constructor(
    readonly cap: number,
    private readonly demandWindowMs = 120_000,
    private readonly now: () => number = () => performance.now(),
  ) {}

  get enabled(): boolean {
    return this.cap > 0;
  }

  /** Warm containers ready, in all environments. */
  get size(): number {
    let n = 0;
    for (const list of this.ready.values()) n += list.length;
    return n;
  }

  private inFlight(): number {
    let n = 0;
    for (const c of this.creating.values()) n += c;
    return n;
  }

  /** A job of this environment (and task: taskKeyOf) was accepted; each such job is ended once with noteJobEnded. */
  noteDemand(envKey: string, memoryMb: number, taskKey: string = taskKeyOf(envKey, null)): void {
    const now = this.now();
    const open = this.open.get(envKey) ?? 0;
    const gap = open > 0 ? 0 : now - (this.lastEnd.get(envKey) ?? -Infinity);
    this.open.set(envKey, open + 1);
    if (gap < BACK_TO_BACK_GAP_MS) this.backToBack.add(envKey);
    else this.backToBack.delete(envKey);
    if (this.unwarmable.has(envKey)) return;
    this.lastDemand.set(envKey, now);
    this.lastMemoryMb.set(envKey, memoryMb);
    this.taskDemand.set(taskKey, now);
    this.latestTask.set(envKey, taskKey);
  }

  /** What a job of this task learned of it: heavy and layered, or not (see the rule above). True when that changed it. */
  noteTaskWeight(taskKey: string, heavy: boolean): boolean {
    const was = this.heavy.has(taskKey);
    if (heavy && this.taskKeyed && this.taskDemand.has(taskKey)) this.heavy.add(taskKey);
    else this.heavy.delete(taskKey);
    return was !== this.heavy.has(taskKey);
  }

  /** The key whose containers a job of this task takes: its task's when heavy, else its environment's. */
  keyFor(taskKey: string): string {
    return this.heavy.has(taskKey) ? taskKey : envKeyOf(taskKey);
  }

  /** When a key last had a job: for a task's key, its task's (while heavy); for an environment's, its tasks' that are not. */
  private demandOf(key: string): number {
    if (taskDirOf(key) !== null) return this.heavy.has(key) ? (this.taskDemand.get(key) ?? -Infinity) : -Infinity;
    let at = -Infinity;
    for (const [task, t] of this.taskDemand) {
      if (t > at && !this.heavy.has(task) && envKeyOf(task) === key) at = t;
    }
    return at;
  }

  /** Containers ready or under way for every key of an environment. */
  private held(envKey: string): number {
    let n = 0;
    for (const [key, list] of this.ready) if (envKeyOf(key) === envKey) n += list.length;
    for (const [key, c] of this.creating) if (envKeyOf(key) === envKey) n += c;
    return n;
  }

  /** A job counted by noteDemand ended (its result is out, or it was refused or killed). */
  noteJobEnded(envKey: string): void {
    const n = (this.open.get(envKey) ?? 1) - 1;
    if (n > 0) this.open.set(envKey, n);
    else this.open.delete(envKey);
    this.lastEnd.set(envKey, this.now());
  }

  /** The memory limit to give this environment's next warm container (null: no job seen yet). */
  memoryFor(envKey: string): number | null {
    return this.lastMemoryMb.get(envKey) ?? null;
  }

  /** A warm container of this environment died unused; after two, the environment stays cold. */
  noteEarlyDeath(envKey: string): boolean {
    const n = (this.earlyDeaths.get(envKey) ?? 0) + 1;
    this.earlyDeaths.set(envKey, n);
    if (n >= 2) {
      this.unwarmable.add(envKey);
      this.lastDemand.delete(envKey);
      return true;
    }
    return false;
  }

  /** Containers of this key being created right now. */
  creatingFor(key: string): number {
    return this.creating.get(key) ?? 0;
  }

  /** A warm container of this environment gave its job a result. */
  noteServed(envKey: string): void {
    this.served.add(envKey);
  }

  /**
   * How long a new warm container of this environment must keep running after its start before
   * it counts as ready. Until one has served a job, an environment is on probation: an image whose
   * command needs /task before `start` exits within moments, and a job that took such a container
   * at once would get "no result" instead of going cold.
   */
  settleMsFor(key: string): number {
    return this.served.has(envKeyOf(key)) ? 0 : WARM_PROBATION_SETTLE_MS;
  }

  /** The ready container `take` would hand out for this key, left in the pool, or null. */
  peek(key: string): WarmContainer | null {
    return this.ready.get(key)?.[0] ?? null;
  }

  /** Hands out a ready container for this key (see keyFor), or null. */
  take(key: string): WarmContainer | null {
    const list = this.ready.get(key);
    const warm = list?.shift() ?? null;
    return warm;
  }

  /**
   * How many containers to start creating now, per key (an environment's, or a heavy task's: the
   * key of the environment's latest job), given the free job slots, whether jobs are running (see
   * the timing rule above) and the memory not reserved. Every key of an environment counts in its cap.
   */
  plan(freeSlots: number, jobsRunning: boolean, freeMemoryMb = Infinity): Map<string, number> {
    const out = new Map<string, number>();
    if (!this.enabled) return out;
    let budget = freeSlots - this.size - this.inFlight();
    const now = this.now();
    const envs = [...this.lastDemand.entries()]
      .filter(([, at]) => now - at <= this.demandWindowMs)
      .sort((a, b) => b[1] - a[1]);
    for (const [envKey] of envs) {
      if (budget <= 0) break;
      const key = this.keyFor(this.latestTask.get(envKey) ?? taskKeyOf(envKey, null));
      const have = this.held(envKey);
      const haveForKey = (this.ready.get(key)?.length ?? 0) + (this.creating.get(key) ?? 0);
      const wait = jobsRunning && haveForKey > 0 && !this.backToBack.has(envKey);
      const mb = this.lastMemoryMb.get(envKey) ?? 0;
      const want = wait ? 0 : Math.min(this.cap - have, budget, mb > 0 ? Math.floor(freeMemoryMb / mb) : Infinity);
      if (want > 0) {
        out.set(key, want);
        budget -= want;
        freeMemoryMb -= want * mb;
      }
    }
    return out;
  }

  creationStarted(key: string): void {
    this.creating.set(key, (this.creating.get(key) ?? 0) + 1);
  }

  /** Records the end of a creation; `warm` is null when it failed. */
  creationEnded(key: string, warm: WarmContainer | null): void {
    const n = (this.creating.get(key) ?? 1) - 1;
    if (n > 0) this.creating.set(key, n);
    else this.creating.delete(key);
    if (warm === null) return;
    const list = this.ready.get(key) ?? [];
    list.push(warm);
    this.ready.set(key, list);
  }

  /** Forgets a container that died or was removed; returns it if it was ready here. */
  forget(containerId: string): WarmContainer | null {
    for (const list of this.ready.values()) {
      const i = list.findIndex((w) => w.containerId === containerId);
      if (i >= 0) return list.splice(i, 1)[0]!;
    }
    return null;
  }

  /**
   * Containers ready and no longer wanted: keys without a job in the window (see demandOf). Tasks
   * without a job in the window are forgotten, heavy or not.
   */
  stale(): WarmContainer[] {
    const now = this.now();
    for (const [task, at] of this.taskDemand) {
      if (now - at > this.demandWindowMs) {
        this.taskDemand.delete(task);
        this.heavy.delete(task);
      }
    }
    const out: WarmContainer[] = [];
    for (const [key, list] of this.ready) {
      if (now - this.demandOf(key) > this.demandWindowMs) out.push(...list.splice(0));
    }
    return out;
  }

  /** Takes one ready container out of the pool, from the key whose latest job is the oldest; null when none is ready. */
  drainOne(): WarmContainer | null {
    const keys = [...this.ready.entries()].filter(([, list]) => list.length > 0)
      .sort((x, y) => this.demandOf(x[0]) - this.demandOf(y[0]));
    return keys[0]?.[1].shift() ?? null;
  }

  /** Takes out the ready containers of `key` that `gone` picks. */
  removeWhere(key: string, gone: (w: WarmContainer) => boolean): WarmContainer[] {
    const list = this.ready.get(key) ?? [];
    const out = list.filter(gone);
    this.ready.set(key, list.filter((w) => !gone(w)));
    return out;
  }

  /** Empties the pool (shutdown, restart). */
  drain(): WarmContainer[] {
    const out: WarmContainer[] = [];
    for (const list of this.ready.values()) out.push(...list.splice(0));
    return out;
  }
}

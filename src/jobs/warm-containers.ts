/**
 * The warm containers themselves: creating them in the worker pool, handing one to a job,
 * removing the ones that died, went stale, outlived the agent, or stand in the way of a job's
 * memory. Each holds its memory limit in the MemoryBudget from the start of its creation until it
 * is removed, or until a job takes it (the job's own reservation covers it from then on). Which
 * ones to keep is WarmPool's decision (warm-pool.ts); this class carries it out. A container made
 * for a heavy task has that task's overlay volume at /task (task-layer.ts), removed with it.
 */
import { randomBytes } from "node:crypto";
import path from "node:path";
import type Docker from "dockerode";
import type { Piscina } from "piscina";
import { removeQuietly, removeVolumeQuietly } from "../docker/engine.js";
import { WARM_GROUP, type MemoryBudget } from "../limits/memory-budget.js";
import type { Logger } from "../log.js";
import { JOB_DIR_PREFIX, removeJobFolders } from "./job-directory.js";
import { jobLayerFolder } from "./layer-place.js";
import type { WarmCreated, WarmSpec } from "./job-task.js";
import { taskVolumeName } from "./task-layer.js";
import { describeFolder, sameFolder, type FolderIdentity } from "./task-identity.js";
import { envKeyOf, taskDirOf, taskKeyOf, WarmPool, type WarmContainer } from "./warm-pool.js";

/** What every warm container gets but its directory, image and runtime: its default memory and its labels. */
export type WarmSettings = Pick<WarmSpec, "memoryMb" | "labels">;

/** What a warm container is for: the environment, its image and runtime. */
export function warmKey(envtype: string, environment: string, image: string, runtime: string): string {
  return [envtype, environment, image, runtime].join("\0");
}

/** Old folders remembered per task (a swap each): enough for deploys that come faster than jobs. */
const OLD_FOLDERS_KEPT = 4;

export class WarmContainers {
  private readonly pool: WarmPool;
  /** The agent's layers' folder (layer-place.ts), once its start-up check chose it: a task's container has its layer there. */
  taskLayersDir: string | null = null;
  /** Warm containers by id, from their creation until a job adopts them or they are removed. */
  private readonly ids = new Set<string>();
  /** Creations under way, so that a stop can wait for them and remove what they made. */
  private readonly creations = new Set<Promise<void>>();
  /** The directories of the containers being made, ready, or being removed (their volumes are the pool's). */
  private readonly dirs = new Set<string>();
  private stopping = false;
  /** MB held by ready containers being removed to make room for a job (released once they are gone). */
  private evictingMb = 0;
  /** Folders a job found its task had been swapped away from (by task key): a container made over one of them is not kept. */
  private readonly oldFolders = new Map<string, FolderIdentity[]>();

  constructor(
    cap: number,
    private readonly tmpdir: string,
    /** Read at each creation: some settings (the cgroup version) are known only once the agent started. */
    private readonly settings: () => WarmSettings,
    private readonly docker: Docker,
    private readonly log: Logger,
    private readonly memory: MemoryBudget,
    /** Called when a creation ends (a container ready or not) or a container's memory is released: a job may be waiting for either. */
    private readonly onCreationEnded: () => void,
  ) {
    this.pool = new WarmPool(cap);
  }

  /** Containers that belong to the pool (for reconciliation: not orphans). */
  get owned(): ReadonlySet<string> {
    return this.ids;
  }

  /** The layered /task volumes that the pool's containers hold or are being made with (for reconciliation: not orphans). */
  get ownedVolumes(): ReadonlySet<string> {
    return new Set([...this.dirs].map(taskVolumeName));
  }

  /** Containers ready for a job right now. */
  get ready(): number {
    return this.pool.size;
  }

  /**
   * Heavy tasks get warm containers of their own from now on (the agent layers task folders and
   * can remove a layer's files itself). Without it, jobs of every task share their environment's.
   */
  keyByTask(on: boolean): void {
    this.pool.taskKeyed = on;
  }

  noteDemand(key: string, memoryMb: number, taskDir: string | null): void {
    this.pool.noteDemand(key, memoryMb, taskKeyOf(key, taskDir));
  }

  /** The key whose containers a job of this environment and task takes (its task's when the task is heavy). */
  keyFor(key: string, taskDir: string | null): string {
    return this.pool.keyFor(taskKeyOf(key, taskDir));
  }

  /** A job's worker found its task heavy and layered, or not: a task no longer heavy loses its containers. */
  noteTaskWeight(key: string, taskDir: string, heavy: boolean): void {
    if (!this.pool.noteTaskWeight(taskKeyOf(key, taskDir), heavy)) return;
    this.log.info({ task: taskDir, heavy }, heavy ? "heavy task: its jobs get warm containers of their own" : "the task is no longer heavy and layered: its jobs share their environment's warm containers");
    this.removeStale(); // the environment's own may be no one's now, or this task's
    this.onCreationEnded(); // replacements for the key the environment's jobs now want
  }

  /**
   * A job found its task folder changed since its warm container was made (`was`: the folder that
   * container's layer was made over): the task's ready containers made over another folder than
   * `now` go, and so does each one being made over `was` once it is ready.
   */
  noteTaskFolderChanged(key: string, taskDir: string, was: FolderIdentity, now: FolderIdentity): void {
    const old = this.oldFolders.get(taskKeyOf(key, taskDir)) ?? [];
    if (!old.some((f) => sameFolder(f, was))) this.oldFolders.set(taskKeyOf(key, taskDir), [was, ...old].slice(0, OLD_FOLDERS_KEPT));
    const gone = this.pool.removeWhere(taskKeyOf(key, taskDir), (w) => w.lower !== null && !sameFolder(w.lower, now));
    if (gone.length === 0) return;
    this.log.info({ task: taskDir, now: describeFolder(now), containers: gone.length }, "the task folder changed: removing its warm grading containers made over the old one");
    for (const w of gone) void this.remove(w);
    this.onCreationEnded(); // replacements, over the task as it is now
  }

  noteJobEnded(key: string): void {
    this.pool.noteJobEnded(key);
  }

  noteServed(key: string): void {
    this.pool.noteServed(key);
  }

  /**
   * Containers being made for this key that a job may wait for rather than start cold:
   * none while the environment is on probation (they are ready only a second after their start).
   */
  awaitable(key: string): number {
    return this.pool.settleMsFor(key) === 0 ? this.pool.creatingFor(key) : 0;
  }

  /** The memory limit of the container `take` would hand out for this key, or null when none is ready. */
  readyMemoryMb(key: string): number | null {
    return this.pool.peek(key)?.memoryMb ?? null;
  }

  /**
   * A ready container for a job of this key (see keyFor), or null: it is the job's from now on, and so
   * is its memory (its reservation here is released: the caller reserves the job's).
   */
  take(key: string): WarmContainer | null {
    const w = this.pool.take(key);
    if (w !== null) {
      this.ids.delete(w.containerId);
      this.dirs.delete(w.jobDir); // the job's now (JobRegistry.jobVolumes)
      this.memory.release(WARM_GROUP, w.jobDir);
    }
    return w;
  }

  /**
   * Removes ready containers (any environment, oldest first) until `mb` more will be free once
   * they are gone, counting removals already under way; onCreationEnded is called as each one's
   * memory is released. Returns whether any removal is under way.
   */
  evictFor(mb: number): boolean {
    let wanted = mb - this.evictingMb;
    while (wanted > 0) {
      const w = this.pool.drainOne();
      if (w === null) break;
      wanted -= w.memoryMb;
      this.evictingMb += w.memoryMb;
      this.log.info({ container: w.containerId, memoryMb: w.memoryMb }, "removing a warm grading container: a job needs its memory");
      void this.remove(w).finally(() => {
        this.evictingMb -= w.memoryMb;
        this.onCreationEnded();
      });
    }
    return this.evictingMb > 0;
  }

  /** Starts creating the containers the pool wants, given the job slots and the memory free right now. */
  refill(workers: Piscina, freeSlots: number, jobsRunning: boolean): void {
    if (!this.pool.enabled || this.stopping) return;
    for (const [key, count] of this.pool.plan(freeSlots, jobsRunning, this.memory.freeMb)) {
      for (let i = 0; i < count; i++) this.create(workers, key);
    }
  }

  private create(workers: Piscina, key: string): void {
    const envKey = envKeyOf(key);
    const taskDir = taskDirOf(key);
    const [envtype, name, image, runtime] = envKey.split("\0") as [string, string, string, string];
    const jobDir = path.join(this.tmpdir, `${JOB_DIR_PREFIX}warm-${randomBytes(6).toString("hex")}`);
    const settings = this.settings();
    // sized like the environment's latest job, so that the next one usually starts it as it is
    const task: WarmSpec = {
      ...settings, jobDir, image, runtime, memoryMb: this.pool.memoryFor(envKey) ?? settings.memoryMb, settleMs: this.pool.settleMsFor(key),
      taskDir, courseDir: taskDir === null ? null : path.dirname(taskDir),
    };
    if (!this.memory.reserve(WARM_GROUP, jobDir, task.memoryMb)) return;
    this.pool.creationStarted(key);
    this.dirs.add(jobDir);
    const creation: Promise<void> = workers.run(task, { name: "createWarm" }).then(
      (created: WarmCreated) => {
        if (created.kind === "unlayered") {
          this.pool.creationEnded(key, null);
          this.dirs.delete(jobDir);
          this.memory.release(WARM_GROUP, jobDir); // the worker made nothing
          this.pool.noteTaskWeight(key, false);
          this.removeStale();
          this.log.info({ envtype, environment: name, task: taskDir, reason: created.detail }, "no warm grading container for this task: it cannot be layered now");
          this.onCreationEnded();
          return undefined;
        }
        if (created.kind === "exited") {
          this.pool.creationEnded(key, null);
          this.dirs.delete(jobDir);
          this.memory.release(WARM_GROUP, jobDir); // the worker removed it
          const cold = this.pool.noteEarlyDeath(envKey);
          this.log.warn({ envtype, environment: name, detail: created.detail, environmentKeptCold: cold }, "a warm grading container exited before any job");
          this.onCreationEnded();
          return undefined;
        }
        const w: WarmContainer = {
          containerId: created.containerId, jobDir, key, cpuBaselineNs: created.cpuBaselineNs, memoryMb: task.memoryMb, lower: created.lower,
        };
        this.ids.add(w.containerId);
        const lower = w.lower;
        const outdated = lower !== null && (this.oldFolders.get(key) ?? []).some((f) => sameFolder(f, lower));
        if (this.stopping || outdated) {
          this.pool.creationEnded(key, null);
          if (!outdated) return this.remove(w);
          this.log.info({ container: w.containerId, task: taskDir }, "a warm grading container was made over the task's old folder: removing it");
          return this.remove(w).then(() => this.onCreationEnded());
        }
        this.pool.creationEnded(key, w);
        this.log.debug({ container: w.containerId, envtype, environment: name, task: taskDir }, "warm grading container ready");
        this.removeStale(); // made for a task that turned light (or an environment whose only task turned heavy) meanwhile
        this.onCreationEnded();
        return undefined;
      },
      (err: Error) => {
        this.pool.creationEnded(key, null);
        this.dirs.delete(jobDir);
        this.memory.release(WARM_GROUP, jobDir); // the worker removed what it made
        if (!this.stopping) this.log.warn({ envtype, environment: name, err: err.message }, "failed to create a warm grading container");
        this.onCreationEnded();
      },
    ).finally(() => this.creations.delete(creation));
    this.creations.add(creation);
  }

  /** The engine says a container died: if it was waiting here, it goes. */
  onDie(containerId: string): void {
    const w = this.pool.forget(containerId);
    if (w === null) return;
    const cold = this.pool.noteEarlyDeath(envKeyOf(w.key));
    this.log.warn({ container: containerId, environmentKeptCold: cold }, "a warm grading container died before its job: removing it");
    void this.remove(w);
  }

  /** Removes the containers of environments and tasks that no longer see jobs (see WarmPool.stale). */
  removeStale(): void {
    for (const w of this.pool.stale()) {
      this.log.debug({ container: w.containerId, task: taskDirOf(w.key) }, "removing a warm grading container no job wants");
      void this.remove(w);
    }
  }

  /** Waits for creations under way and removes every warm container (agent stopping). */
  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.all([...this.creations]); // each removes what it made once stopping is set
    await Promise.all(this.pool.drain().map((w) => this.remove(w)));
  }

  private async remove(w: WarmContainer): Promise<void> {
    this.ids.delete(w.containerId);
    await removeQuietly(this.docker, w.containerId, this.log);
    // a task's container: its layer goes once the container is gone (the engine keeps a volume in use)
    if (taskDirOf(w.key) !== null) await removeVolumeQuietly(this.docker, taskVolumeName(w.jobDir), this.log);
    this.dirs.delete(w.jobDir);
    this.memory.release(WARM_GROUP, w.jobDir);
    try {
      await removeJobFolders(w.jobDir, taskDirOf(w.key) !== null ? jobLayerFolder(this.taskLayersDir, w.jobDir) : null);
    } catch (err) {
      this.log.error({ dir: w.jobDir, err: (err as Error).message }, "failed to remove a warm container's directory");
    }
  }
}

/**
 * Warm grading containers: made ahead of their job (createWarm, which piscina calls by name for
 * the warm pool of src/jobs/warm-containers.ts), running and waiting for `start` with their job
 * directory bound; and adopted by a job (adoptWarm), which fills that directory in place, sets
 * the job's memory and attaches, or falls back to the cold path when the container died waiting.
 * A warm container made for a heavy task has the task's layer at /task already (warm-layer.ts):
 * nothing of the task is copied into it. Every engine call has its deadline (src/docker/deadline.ts).
 */
import type { Duplex } from "node:stream";
import type Docker from "dockerode";
import type { Logger } from "../src/log.js";
import { ENGINE_CALL_MS, EngineTimeoutError, withDeadline } from "../src/docker/deadline.js";
import { removeVolumeQuietly } from "../src/docker/engine.js";
import {
  fillJobDirectory, jobPaths, prepareFailureText, prepareJobDirectory, removeJobFolders, type JobPaths,
} from "../src/jobs/job-directory.js";
import { jobLayerOf } from "../src/jobs/layer-place.js";
import { layerRefusal, taskVolumeName } from "../src/jobs/task-layer.js";
import { cgroupCpuNs } from "../src/limits/cgroup-cpu.js";
import { cpuUsageNs } from "../src/limits/container-watch.js";
import type { JobTask, WarmCreated, WarmTask } from "../src/jobs/job-task.js";
import type { FolderIdentity } from "../src/jobs/task-identity.js";
import { gradingContainerSpec } from "./container-specs.js";
import { ATTACH_OPTIONS, createAndStart, KILLED_BEFORE_START, type NotStarted, type Started } from "./grading-container.js";
import { GradingStdin } from "./grading-stdin.js";
import { engineCall, phase, type JobContext } from "./job-context.js";
import { upperDirOf } from "./job-limits.js";
import { setOomGroup } from "../src/limits/oom-group.js";
import { layerTally, reserveLayerMemory } from "./layer-allowance.js";
import { prepareWarmLayer, refreshWarmLayer, reportTaskWeight, type WarmLayerRefusal } from "./warm-layer.js";

/**
 * The warm path: the container is running and waiting for `start`, its directory bound. Fill the
 * directory in place (a bind mount pins the directory it was given), set the job's memory unless
 * the container already has it, attach. The engine calls go out together, the directory is
 * filled while they are answered.
 */
export async function adoptWarm(ctx: JobContext, warm: NonNullable<JobTask["warm"]>): Promise<Started | NotStarted> {
  const t = ctx.task;
  const container = ctx.docker.getContainer(warm.containerId);
  const log = ctx.log.child({ container: warm.containerId });
  const settle = <T>(p: Promise<T>): Promise<T | Error> => p.catch((err: unknown) => (err instanceof Error ? err : new Error(String(err))));
  const engine = Promise.all([
    engineCall(ctx, "inspect", (abortSignal) => container.inspect({ abortSignal })).then((i) => {
      ctx.upperDir = { containerId: warm.containerId, dir: upperDirOf(i) }; // for the disk limit: no second inspect
      return i.State?.Running === true;
    }, () => false),
    settle(engineCall(ctx, "attach", (abortSignal) => container.attach({ ...ATTACH_OPTIONS, abortSignal }) as Promise<Duplex>)),
    // a task's container: its memory is set once its layer's allowance is known (below)
    warm.layered || warm.memoryMb === t.memoryMb ? null : settle(updateMemory(ctx, container, t.memoryMb)),
  ]);
  ctx.grading = container;
  // a task's warm container: the cleanup removes its layer's volume with it
  ctx.paths = warm.layered ? { ...jobPaths(t.jobDir, jobLayerOf(t)), taskVolume: taskVolumeName(t.jobDir) } : jobPaths(t.jobDir);
  const owned = await ctx.api.containerCreated(t.jobId, warm.containerId, "grading");
  let failure: Error | null = null;
  let fillFailed = false;
  let unlayered: WarmLayerRefusal | null = null;
  if (owned) {
    try {
      unlayered = fill(ctx, warm, ctx.paths);
    } catch (err) {
      failure = err as Error;
      fillFailed = true;
    }
  }
  const [running, attached, updatedEnv] = await engine;
  let updated = updatedEnv;
  const stream = attached instanceof Error ? null : attached;
  if (!owned) {
    stream?.destroy();
    return KILLED_BEFORE_START;
  }
  if (unlayered !== null) {
    stream?.destroy();
    if (unlayered.changed !== null) {
      log.info({ task: t.taskDir, reason: unlayered.reason }, "the task folder changed since its warm grading container was made: not using it");
      ctx.api.taskFolderChanged(t.jobId, unlayered.changed.was, unlayered.changed.now).catch(() => {});
    } else {
      log.info({ task: t.taskDir, reason: unlayered.reason }, "the task can no longer be layered: not using the warm grading container made for it");
    }
    return goCold(ctx, container, log);
  }
  if (!running) {
    stream?.destroy();
    log.info("the warm grading container is not running: using a new one");
    return goCold(ctx, container, log);
  }
  if (warm.layered && failure === null && !(attached instanceof Error)) {
    // the layer's kernel memory is allowed beside the job's (workers/layer-allowance.ts); refused: a new container, which copies
    if (ctx.tally === null || !(await reserveLayerMemory(ctx, ctx.tally))) {
      stream?.destroy();
      return goCold(ctx, container, log);
    }
    const limitMb = t.memoryMb + ctx.layerMemoryMb;
    if (warm.memoryMb !== limitMb) updated = await settle(updateMemory(ctx, container, limitMb));
  }
  failure ??= attached instanceof Error ? attached : updated instanceof Error ? updated : null;
  if (failure !== null || stream === null) {
    stream?.destroy();
    const message = failure?.message ?? "no stream";
    log.warn({ err: message }, "failed to adopt a warm grading container");
    // the copy into its directory: the same text as a cold job's copy (the Python agent's, where it has one)
    if (fillFailed) return { text: prepareFailureText(failure), detail: message };
    return { text: `The agent could not prepare the grading container: ${message}. Please retry.` };
  }
  ctx.stdin = new GradingStdin(stream);
  phase(ctx, "prepare");
  log.debug({ memoryUpdated: updated !== null }, "adopted warm grading container");
  return { container, stream };
}

/**
 * The job directory's task: copied in (an environment's warm container), or, in a task's, the
 * copied folders made again (null, or why the container cannot serve the job: then a new container).
 */
function fill(ctx: JobContext, warm: NonNullable<JobTask["warm"]>, p: JobPaths): WarmLayerRefusal | null {
  const t = ctx.task;
  if (warm.layered) {
    ctx.tally = layerTally(t);
    const refused = refreshWarmLayer(t, p, warm.lower, ctx.tally);
    // a changed folder is still layered (the new container layers it): the task stays heavy
    reportTaskWeight(ctx, () => refused === null || refused.changed !== null);
    return refused;
  }
  fillJobDirectory(p, t.taskDir, t.courseDir);
  reportTaskWeight(ctx, () => t.taskDir !== null && t.courseDir !== null && layerRefusal(t.taskDir, t.courseDir, t.jobDir) === null);
  return null;
}

/** Sets a container's memory limit (and memory+swap: no swap). */
function updateMemory(ctx: JobContext, container: Docker.Container, memoryMb: number): Promise<unknown> {
  const bytes = memoryMb * 1024 * 1024;
  return engineCall(ctx, "update", (abortSignal): Promise<unknown> => container.update({ Memory: bytes, MemorySwap: bytes, abortSignal }));
}

/** The warm container died waiting (an image whose command needs /task before `start`, say), or cannot serve the job: a new one. */
async function goCold(ctx: JobContext, container: Docker.Container, log: Logger): Promise<Started | NotStarted> {
  try {
    await engineCall(ctx, "remove", (abortSignal) => container.remove({ force: true, abortSignal }));
  } catch (err) {
    // Gone already, or being removed: fine. Not answered: still the job's, the cleanup removes it.
    if (!(err instanceof EngineTimeoutError)) return replaceCold(ctx, container);
    log.warn({ err: (err as Error).message }, "failed to remove the dead warm grading container");
    return { text: `The agent could not replace its grading container: ${(err as Error).message}. Please retry.` };
  }
  return replaceCold(ctx, container);
}

async function replaceCold(ctx: JobContext, container: Docker.Container): Promise<Started | NotStarted> {
  await ctx.api.containerRemoved(ctx.task.jobId, container.id);
  ctx.grading = null;
  const volume = ctx.paths?.taskVolume ?? null; // a task's warm container: its layer, before the directory under it
  if (volume !== null) await engineCall(ctx, "volume remove", () => removeVolumeQuietly(ctx.docker, volume, ctx.log)).catch(() => false);
  ctx.paths = null;
  await removeJobFolders(ctx.task.jobDir, volume === null ? null : jobLayerOf(ctx.task)).catch(() => {});
  return createAndStart(ctx);
}

/** CPU time a container has used so far, asked from the engine (one stats sample, without waiting for a second one). */
async function engineCpuNs(container: Docker.Container): Promise<number> {
  try {
    const stats = await withDeadline("stats", ENGINE_CALL_MS, (abortSignal) => {
      const once: { stream: false; "one-shot": true } = { stream: false, "one-shot": true };
      return container.stats(Object.assign(once, { abortSignal }));
    });
    return cpuUsageNs(stats) ?? 0;
  } catch {
    return 0;
  }
}

/**
 * Makes a warm container: its directory (for a task: with the task's layer, see warm-layer.ts),
 * then create and start; on probation, it must still run after settleMs.
 */
export async function createWarm(docker: Docker, log: Logger, task: WarmTask): Promise<WarmCreated> {
  let container: Docker.Container | null = null;
  let layered = false;
  let lower: FolderIdentity | null = null;
  try {
    let paths: JobPaths;
    if (task.taskDir !== null && task.courseDir !== null) {
      layered = true; // from here on, a failure removes the volume too
      const made = await prepareWarmLayer(docker, { ...task, taskDir: task.taskDir, courseDir: task.courseDir });
      if (typeof made === "string") {
        await removeJobFolders(task.jobDir, jobLayerOf(task)).catch(() => {});
        return { kind: "unlayered", detail: made };
      }
      paths = made.paths;
      lower = made.lower;
    } else {
      paths = prepareJobDirectory(task.jobDir, task.jobDirMarker, null, null);
    }
    const spec = gradingContainerSpec(task, paths, task.memoryMb, {}, false);
    container = await withDeadline("create", ENGINE_CALL_MS, (abortSignal) => docker.createContainer({ ...spec, abortSignal }));
    const made = container;
    await withDeadline("start", ENGINE_CALL_MS, (abortSignal) => made.start({ abortSignal }));
    await setOomGroup(made.id, task, log);
    if (task.settleMs > 0) {
      // its environment is on probation: it must still be running after a moment
      await new Promise((r) => setTimeout(r, task.settleMs));
      const state = (await withDeadline("inspect", ENGINE_CALL_MS, (abortSignal) => made.inspect({ abortSignal }))).State;
      if (state?.Running !== true) {
        const detail = `exited with status ${state?.ExitCode ?? "?"} ${task.settleMs} ms after its start, before any job`;
        await withDeadline("remove", ENGINE_CALL_MS, (abortSignal) => made.remove({ force: true, abortSignal })).catch(() => {});
        if (layered) await removeVolumeQuietly(docker, taskVolumeName(task.jobDir), log);
        await removeJobFolders(task.jobDir, layered ? jobLayerOf(task) : null).catch(() => {});
        return { kind: "exited", detail };
      }
    }
    // Where its cgroup is visible, what it used before its job is read when a job takes it.
    if (cgroupCpuNs(container.id, task.cgroupVersion) !== null) {
      log.debug({ container: container.id }, "warm grading container ready");
      return { kind: "ready", containerId: container.id, cpuBaselineNs: null, lower };
    }
    // Else: let the container side reach its read of `start`, then ask the engine what it used.
    if (task.settleMs < 300) await new Promise((r) => setTimeout(r, 300 - task.settleMs));
    const cpuBaselineNs = await engineCpuNs(container);
    log.debug({ container: container.id }, "warm grading container ready");
    return { kind: "ready", containerId: container.id, cpuBaselineNs, lower };
  } catch (err) {
    // A container the engine did not answer for is left to the main thread's periodic check (it is labelled as this agent's).
    const made = container;
    if (made) await withDeadline("remove", ENGINE_CALL_MS, (abortSignal) => made.remove({ force: true, abortSignal })).catch(() => {});
    if (layered) await removeVolumeQuietly(docker, taskVolumeName(task.jobDir), log);
    await removeJobFolders(task.jobDir, layered ? jobLayerOf(task) : null).catch(() => {});
    throw err;
  }
}

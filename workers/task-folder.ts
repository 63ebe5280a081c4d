/**
 * A job's directory and its /task: layered over the task folder when the agent does that and the
 * task allows it (src/jobs/task-layer.ts says why not, and the job copies), else copied; the
 * layer's upper/ and work/ in the job's layer folder when the agent has a layers' place
 * (src/jobs/layer-place.ts). When the engine refuses the layer of one job (its volume cannot be
 * created, or cannot be mounted when the grading container starts: the task folder vanished, a
 * mount error), that job drops the layer and copies, and its log says why (`copying the task
 * folder: the engine refused its layer`); an engine that does not answer ends the job as before.
 */
import type Docker from "dockerode";
import { realpathSync } from "node:fs";
import { removeVolumeQuietly } from "../src/docker/engine.js";
import { prepareJobDirectory, prepareLayeredJobDirectory, removeJobDirectorySync, type JobPaths } from "../src/jobs/job-directory.js";
import { jobLayerOf } from "../src/jobs/layer-place.js";
import { layerRefusal, taskVolumeName, taskVolumeSpec } from "../src/jobs/task-layer.js";
import { engineCall, type JobContext } from "./job-context.js";
import { reportTaskWeight } from "./warm-layer.js";
import { layerTally, releaseLayerMemory, reserveLayerMemory } from "./layer-allowance.js";

/** Makes the job directory (`copy`: a copy even where the layer is possible). */
export async function prepareTaskFolder(ctx: JobContext, copy = false): Promise<JobPaths> {
  const t = ctx.task;
  if (copy || !t.layeredTasks || t.taskDir === null || t.courseDir === null) return prepareJobDirectory(t.jobDir, t.jobDirMarker, t.taskDir, t.courseDir);
  const tally = layerTally(t);
  const refused = layerRefusal(t.taskDir, t.courseDir, t.jobDir, tally);
  reportTaskWeight(ctx, () => refused === null); // a heavy task gets warm containers of its own (warm-pool.ts)
  if (refused !== null) {
    ctx.log.info({ task: t.taskDir, reason: refused }, "copying the task folder: it cannot be layered");
    return prepareJobDirectory(t.jobDir, t.jobDirMarker, t.taskDir, t.courseDir);
  }
  if (!(await reserveLayerMemory(ctx, tally))) return prepareJobDirectory(t.jobDir, t.jobDirMarker, t.taskDir, t.courseDir);
  const volume = taskVolumeName(t.jobDir);
  const p = prepareLayeredJobDirectory(t.jobDir, t.jobDirMarker, t.taskDir, t.courseDir, volume, jobLayerOf(t));
  ctx.paths = p; // the cleanup removes the volume from here on, even if its creation is not answered
  const spec = taskVolumeSpec(volume, realpathSync(t.taskDir), p.upper, p.work, t.labels, t.layerMetacopy);
  try {
    await engineCall(ctx, "volume create", (abortSignal) => ctx.docker.createVolume({ ...spec, abortSignal }));
  } catch (err) {
    if (ctx.timedOut.length > 0 || !(await dropLayer(ctx, (err as Error).message))) throw err;
    return prepareJobDirectory(t.jobDir, t.jobDirMarker, t.taskDir, t.courseDir);
  }
  return p;
}

/** Whether the grading container's start failed because the engine could not mount the job's layer. */
export function layerMountFailed(ctx: JobContext, err: unknown): boolean {
  const volume = ctx.paths?.taskVolume ?? null;
  const message = (err as Error)?.message ?? "";
  return volume !== null && ctx.timedOut.length === 0 && message.includes(volume) && /mount/i.test(message);
}

/**
 * After the engine could not mount the job's layer, when the grading container was created (the
 * engine mounts a local volume with options then) or started: the container, if any, removed (the
 * main thread told), the layer dropped; true when the job may start again with a copy, false when
 * something could not be removed (the job then crashes as before).
 */
export async function dropRefusedLayer(ctx: JobContext, container: Docker.Container | null, err: Error): Promise<boolean> {
  ctx.stdin?.destroy();
  ctx.stdin = null;
  if (container !== null) {
    try {
      await engineCall(ctx, "remove", (abortSignal) => container.remove({ force: true, v: true, abortSignal }));
    } catch (removeErr) {
      ctx.log.warn({ container: container.id, err: (removeErr as Error).message }, "cannot remove the container whose layer did not mount");
      return false;
    }
    await ctx.api.containerRemoved(ctx.task.jobId, container.id);
    ctx.grading = null;
  }
  return dropLayer(ctx, err.message);
}

/** Removes the job's volume, layer folder and directory (nothing a container wrote is in them yet). */
async function dropLayer(ctx: JobContext, why: string): Promise<boolean> {
  ctx.log.warn({ task: ctx.task.taskDir, reason: why }, "copying the task folder: the engine refused its layer");
  await releaseLayerMemory(ctx);
  const volume = ctx.paths?.taskVolume ?? null;
  if (volume !== null && !(await engineCall(ctx, "volume remove", () => removeVolumeQuietly(ctx.docker, volume, ctx.log)).catch(() => false))) return false;
  try {
    const layer = jobLayerOf(ctx.task);
    if (layer !== null) removeJobDirectorySync(layer);
    removeJobDirectorySync(ctx.task.jobDir);
  } catch (err) {
    ctx.log.warn({ err: (err as Error).message }, "cannot remove the job directory of the refused layer");
    return false;
  }
  ctx.paths = null;
  return true;
}

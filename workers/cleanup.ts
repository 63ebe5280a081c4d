/**
 * The end of every job in its worker, whatever happened: its student containers removed and their
 * ports freed, its grading container removed, each removal told to the main thread, its layered
 * /task volume removed (src/jobs/task-layer.ts), and its layer folder (src/jobs/layer-place.ts)
 * and job directory deleted; files that a container wrote as another user (and the overlay's
 * work/work, root's) are removed as root by a short container of the job's own image when the
 * agent itself is not root.
 *
 * When an engine call of the job went unanswered, or a removal failed, the cleanup does not end
 * until the engine lists none of the job's containers: the task settles only then, and the main
 * thread keeps the job's ports (and slot) until it does, so that no port is published twice.
 */
import type Docker from "dockerode";
import { ENGINE_RECOVERY_MS, waitDeadlineMs } from "../src/docker/deadline.js";
import { removeVolumeQuietly } from "../src/docker/engine.js";
import { LABEL_AGENT, LABEL_JOB } from "../src/docker/labels.js";
import { removeJobDirectory, removeJobDirectorySync } from "../src/jobs/job-directory.js";
import { rootCleanupSpec } from "./container-specs.js";
import { engineCall, type JobContext } from "./job-context.js";
import { releaseStudentPorts, removeStudent } from "./students.js";
import { jobLayerOf } from "../src/jobs/layer-place.js";

/** Backoff between removal attempts while the engine does not answer. */
const RETRY_FIRST_MS = 1000;
const RETRY_MAX_MS = 30_000;

export async function cleanup(ctx: JobContext): Promise<void> {
  ctx.stdin?.destroy();
  const removed = await removeKnown(ctx);
  if (!removed || ctx.timedOut.length > 0) await removeUntilGone(ctx);
  const volume = ctx.paths?.taskVolume ?? null;
  if (volume !== null) {
    await engineCall(ctx, "volume remove", () => removeVolumeQuietly(ctx.docker, volume, ctx.log)).catch(() => false);
  }
  const layer = jobLayerOf(ctx.task);
  for (const dir of layer === null ? [ctx.task.jobDir] : [layer, ctx.task.jobDir]) {
    try {
      removeJobDirectorySync(dir);
    } catch (err) {
      await removeAsRoot(ctx, dir, err as Error);
    }
  }
  ctx.floodLog.flush();
}

/** The job's student containers, then its grading container: true when all are gone. */
async function removeKnown(ctx: JobContext): Promise<boolean> {
  const students = await Promise.all([...ctx.students.values()].map((run) => {
    if (run.id !== null) return removeStudent(ctx, ctx.docker.getContainer(run.id), run);
    releaseStudentPorts(ctx, run);
    return Promise.resolve(true);
  }));
  const grading = ctx.grading === null || (await removeContainer(ctx, ctx.grading.id, "grading"));
  if (grading) ctx.grading = null;
  return grading && students.every(Boolean);
}

/** Removes one container and tells the main thread; false when the engine failed or did not answer. */
async function removeContainer(ctx: JobContext, id: string, role: string): Promise<boolean> {
  try {
    await engineCall(ctx, "remove", (abortSignal) => ctx.docker.getContainer(id).remove({ force: true, v: true, abortSignal }));
    ctx.log.debug({ container: id }, `removed ${role} container`);
  } catch (err) {
    const status = (err as { statusCode?: number }).statusCode;
    if (status !== 404 && status !== 409) {
      ctx.log.warn({ container: id, err: (err as Error).message }, `failed to remove ${role} container`);
      return false;
    }
  }
  await ctx.api.containerRemoved(ctx.task.jobId, id);
  return true;
}

/**
 * Tries again, with backoff, until the engine lists none of the job's containers (by its labels:
 * a container whose create was answered too late is not known by id) and every known one is
 * removed; for at most ENGINE_RECOVERY_MS, after which the main thread's periodic check removes
 * what is left (labelled containers that no running job owns).
 */
async function removeUntilGone(ctx: JobContext): Promise<void> {
  const deadline = performance.now() + ENGINE_RECOVERY_MS;
  ctx.log.warn({ calls: ctx.timedOut }, "removing the job's containers once the engine answers again");
  for (let delay = RETRY_FIRST_MS; ; delay = Math.min(delay * 2, RETRY_MAX_MS)) {
    if (await removeListed(ctx)) {
      ctx.log.info("the job's containers are removed");
      return;
    }
    if (performance.now() + delay > deadline) {
      ctx.log.error({ ms: ENGINE_RECOVERY_MS }, "the engine did not let the job's containers be removed: leaving them to the periodic check");
      return;
    }
    await new Promise((r) => setTimeout(r, delay));
  }
}

/** One attempt: the known containers and every container the engine lists under the job's labels; true when all are gone. */
async function removeListed(ctx: JobContext): Promise<boolean> {
  const labels = [LABEL_AGENT, LABEL_JOB].map((k) => `${k}=${ctx.task.labels[k] ?? ""}`);
  let listed: string[];
  try {
    const found = await engineCall(ctx, "list", (abortSignal) =>
      ctx.docker.listContainers({ all: true, filters: { label: labels }, abortSignal } as Docker.ContainerListOptions));
    listed = found.map((c) => c.Id);
  } catch (err) {
    ctx.log.debug({ err: (err as Error).message }, "cannot list the job's containers yet");
    return false;
  }
  const recorded = new Set([ctx.grading?.id, ...[...ctx.students.values()].map((run) => run.id)]);
  const known = await removeKnown(ctx);
  const unknown = listed.filter((id) => !recorded.has(id));
  const others = await Promise.all(unknown.map(async (id) => {
    const gone = await removeContainer(ctx, id, "unrecorded");
    if (gone) ctx.log.info({ container: id }, "removed a container of the job that the engine made without telling it");
    return gone;
  }));
  return known && others.every(Boolean);
}

/**
 * A job directory (or layer folder) holding files a container wrote as another user cannot be
 * removed by an agent that is not root: a short container of the job's own image removes them as root.
 */
async function removeAsRoot(ctx: JobContext, dir: string, first: Error): Promise<void> {
  if (!/permission denied/.test(first.message)) {
    ctx.log.error({ err: first.message }, "failed to remove job directory");
    return;
  }
  ctx.log.info({ dir }, "removing the job directory's files through a container (they belong to another user)");
  let helper: Docker.Container | null = null;
  try {
    const spec = rootCleanupSpec(ctx.task, dir);
    const made = await engineCall(ctx, "create", (abortSignal) => ctx.docker.createContainer({ ...spec, abortSignal }));
    helper = made;
    await engineCall(ctx, "start", (abortSignal) => made.start({ abortSignal }));
    await engineCall(ctx, "wait", (abortSignal) => made.wait({ abortSignal }), waitDeadlineMs(ctx.task.hardTime));
    await removeJobDirectory(dir);
  } catch (err) {
    ctx.log.error({ dir, err: (err as Error).message }, `failed to remove job directory: ${first.message}`);
  } finally {
    const made = helper;
    if (made) await engineCall(ctx, "remove", (abortSignal) => made.remove({ force: true, abortSignal })).catch(() => {});
  }
}

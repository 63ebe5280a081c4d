/**
 * The end of every job in its worker, whatever happened: its student containers removed and their
 * ports freed, its grading container removed, each removal told to the main thread, and its job
 * directory deleted; files that a container wrote as another user are removed as root by a short
 * container of the job's own image when the agent itself is not root.
 */
import type Docker from "dockerode";
import { removeJobDirectory, removeJobDirectorySync } from "../src/jobs/job-directory.js";
import { rootCleanupSpec } from "./container-specs.js";
import type { JobContext } from "./job-context.js";
import { releaseStudentPorts, removeStudent } from "./students.js";

export async function cleanup(ctx: JobContext): Promise<void> {
  const removals: Promise<unknown>[] = [];
  for (const run of ctx.students.values()) {
    if (run.id !== null) removals.push(removeStudent(ctx, ctx.docker.getContainer(run.id), run));
    else releaseStudentPorts(ctx, run);
  }
  await Promise.all(removals);
  if (ctx.grading !== null) {
    try {
      await ctx.grading.remove({ force: true, v: true });
      ctx.log.debug({ container: ctx.grading.id }, "removed grading container");
    } catch (err) {
      const status = (err as { statusCode?: number }).statusCode;
      if (status !== 404 && status !== 409) {
        ctx.log.warn({ container: ctx.grading.id, err: (err as Error).message }, "failed to remove grading container");
      }
    }
    await ctx.api.containerRemoved(ctx.task.jobId, ctx.grading.id);
  }
  try {
    removeJobDirectorySync(ctx.task.jobDir);
  } catch (err) {
    await removeAsRoot(ctx, err as Error);
  }
}

/**
 * A job directory holding files a container wrote as another user cannot be removed by an
 * agent that is not root: a short container of the job's own image removes them as root.
 */
async function removeAsRoot(ctx: JobContext, first: Error): Promise<void> {
  const dir = ctx.task.jobDir;
  if (!/permission denied/.test(first.message)) {
    ctx.log.error({ err: first.message }, "failed to remove job directory");
    return;
  }
  ctx.log.info({ dir }, "removing the job directory's files through a container (they belong to another user)");
  let helper: Docker.Container | null = null;
  try {
    helper = await ctx.docker.createContainer(rootCleanupSpec(ctx.task, dir));
    await helper.start();
    await helper.wait();
    await removeJobDirectory(dir);
  } catch (err) {
    ctx.log.error({ dir, err: (err as Error).message }, `failed to remove job directory: ${first.message}`);
  } finally {
    if (helper) await helper.remove({ force: true }).catch(() => {});
  }
}

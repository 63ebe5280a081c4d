/**
 * The cold path of a job: a fresh job directory, then the grading container created, recorded
 * with the main thread, attached and started. Returns the container and its attach stream, or the
 * text of the crash that ends the job; each step's time goes into the job's phase timings. Each
 * engine call has its deadline: a call the engine does not answer ends the job as a crash that
 * names it.
 */
import type Docker from "dockerode";
import { realpathSync } from "node:fs";
import {
  prepareFailureText, prepareJobDirectory, prepareLayeredJobDirectory, type JobPaths,
} from "../src/jobs/job-directory.js";
import { layerRefusal, taskVolumeName, taskVolumeSpec } from "../src/jobs/task-layer.js";
import { gradingContainerSpec } from "./container-specs.js";
import { engineCall, phase, type JobContext } from "./job-context.js";
import { setOomGroup } from "../src/limits/oom-group.js";
import { reportTaskWeight } from "./warm-layer.js";

/** A running grading container and its attach stream (stdin, stdout and stderr). */
export interface Started {
  container: Docker.Container;
  stream: NodeJS.ReadWriteStream;
}

/** Why the grading container could not be had, as the crash text the student sees. */
export interface NotStarted {
  text: string;
}

/** The attach of a grading container: stdin for the agent's messages, stdout for the grader's, stderr for its tail. */
export const ATTACH_OPTIONS = { stream: true, stdin: true, stdout: true, stderr: true, hijack: true } as const;

export const KILLED_BEFORE_START: NotStarted = { text: "The job was killed before its container started." };

/**
 * The job directory: with /task layered over the task folder when the agent does that and the
 * task allows it (src/jobs/task-layer.ts says why not, and the job copies), else copied.
 */
async function prepare(ctx: JobContext): Promise<JobPaths> {
  const t = ctx.task;
  if (!t.layeredTasks || t.taskDir === null || t.courseDir === null) return prepareJobDirectory(t.jobDir, t.jobDirMarker, t.taskDir, t.courseDir);
  const refused = layerRefusal(t.taskDir, t.courseDir, t.jobDir);
  reportTaskWeight(ctx, () => refused === null); // a heavy task gets warm containers of its own (warm-pool.ts)
  if (refused !== null) {
    ctx.log.info({ task: t.taskDir, reason: refused }, "copying the task folder: it cannot be layered");
    return prepareJobDirectory(t.jobDir, t.jobDirMarker, t.taskDir, t.courseDir);
  }
  const volume = taskVolumeName(t.jobDir);
  const p = prepareLayeredJobDirectory(t.jobDir, t.jobDirMarker, t.taskDir, t.courseDir, volume);
  ctx.paths = p; // the cleanup removes the volume from here on, even if its creation is not answered
  const spec = taskVolumeSpec(volume, realpathSync(t.taskDir), p.upper, p.work, t.labels);
  await engineCall(ctx, "volume create", (abortSignal) => ctx.docker.createVolume({ ...spec, abortSignal }));
  return p;
}

export async function createAndStart(ctx: JobContext): Promise<Started | NotStarted> {
  const t = ctx.task;
  try {
    ctx.paths = await prepare(ctx);
    phase(ctx, "prepare");
  } catch (err) {
    ctx.log.error({ err: (err as Error).message, dir: t.jobDir }, "failed to prepare job directory");
    return { text: prepareFailureText(err) };
  }
  let container: Docker.Container;
  try {
    ctx.log.debug("creating grading container");
    const spec = gradingContainerSpec(t, ctx.paths, t.memoryMb, t.ports, t.network);
    container = await engineCall(ctx, "create", (abortSignal) => ctx.docker.createContainer({ ...spec, abortSignal }));
  } catch (err) {
    ctx.log.warn({ err: (err as Error).message }, "failed to create grading container");
    return { text: `The agent could not create the grading container: ${(err as Error).message}` };
  }
  ctx.grading = container;
  phase(ctx, "create");
  const log = ctx.log.child({ container: container.id });
  log.debug("created grading container");
  if (!(await ctx.api.containerCreated(t.jobId, container.id, "grading"))) return KILLED_BEFORE_START;
  try {
    const stream = await engineCall(ctx, "attach", (abortSignal): Promise<NodeJS.ReadWriteStream> => container.attach({
      ...ATTACH_OPTIONS, abortSignal,
    }));
    ctx.stdin = stream;
    await engineCall(ctx, "start", (abortSignal) => container.start({ abortSignal }));
    await setOomGroup(container.id, t, log); // before the `start` message: the image checks it
    phase(ctx, "start");
    log.debug("started grading container");
    return { container, stream };
  } catch (err) {
    log.warn({ err: (err as Error).message }, "failed to start grading container");
    return { text: `The agent could not start the grading container: ${(err as Error).message}` };
  }
}

/**
 * The cold path of a job: a fresh job directory, then the grading container created, recorded
 * with the main thread, attached and started. Returns the container and its attach stream, or the
 * text of the crash that ends the job; each step's time goes into the job's phase timings. Each
 * engine call has its deadline: a call the engine does not answer ends the job as a crash that
 * names it.
 */
import type Docker from "dockerode";
import { EngineTimeoutError } from "../src/docker/deadline.js";
import { prepareFailureText } from "../src/jobs/job-directory.js";
import { CANNOT_CREATE_CONTAINER, CANNOT_START_CONTAINER } from "../src/protocol/python-texts.js";
import { gradingContainerSpec } from "./container-specs.js";
import { GradingStdin } from "./grading-stdin.js";
import { engineCall, phase, type JobContext } from "./job-context.js";
import { dropRefusedLayer, layerMountFailed, prepareTaskFolder } from "./task-folder.js";
import { setOomGroup } from "../src/limits/oom-group.js";

/** A running grading container and its attach stream (stdin, stdout and stderr). */
export interface Started {
  container: Docker.Container;
  stream: NodeJS.ReadWriteStream;
}

/** Why the grading container could not be had, as the crash text the student sees (and what exactly failed, for the log). */
export interface NotStarted {
  text: string;
  detail?: string;
}

/**
 * The Python agent's text for a container it could not create or start, with the engine's
 * error for the log; a call the engine did not answer (the Python agent would wait for ever)
 * is named in the text.
 */
function notStarted(pythonText: string, step: "create" | "start", err: Error): NotStarted {
  const ours = `The agent could not ${step} the grading container: ${err.message}`;
  return err instanceof EngineTimeoutError ? { text: ours } : { text: pythonText, detail: ours };
}

/** The attach of a grading container: stdin for the agent's messages, stdout for the grader's, stderr for its tail. */
export const ATTACH_OPTIONS = { stream: true, stdin: true, stdout: true, stderr: true, hijack: true } as const;

export const KILLED_BEFORE_START: NotStarted = { text: "The job was killed before its container started." };

/** `copy`: the job's layer was refused once (workers/task-folder.ts): its task is copied. */
export async function createAndStart(ctx: JobContext, copy = false): Promise<Started | NotStarted> {
  const t = ctx.task;
  try {
    ctx.paths = await prepareTaskFolder(ctx, copy);
    phase(ctx, "prepare");
  } catch (err) {
    ctx.log.error({ err: (err as Error).message, dir: t.jobDir }, "failed to prepare job directory");
    return { text: prepareFailureText(err) };
  }
  let container: Docker.Container;
  try {
    ctx.log.debug("creating grading container");
    // a layered /task's kernel memory is allowed on top of the job's own (workers/layer-allowance.ts)
    const spec = gradingContainerSpec(t, ctx.paths, t.memoryMb + ctx.layerMemoryMb, t.ports, t.network);
    container = await engineCall(ctx, "create", (abortSignal) => ctx.docker.createContainer({ ...spec, abortSignal }));
  } catch (err) {
    if (!copy && layerMountFailed(ctx, err) && (await dropRefusedLayer(ctx, null, err as Error))) return createAndStart(ctx, true);
    ctx.log.warn({ err: (err as Error).message }, "failed to create grading container");
    return notStarted(CANNOT_CREATE_CONTAINER, "create", err as Error);
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
    ctx.stdin = new GradingStdin(stream);
    await engineCall(ctx, "start", (abortSignal) => container.start({ abortSignal }));
    await setOomGroup(container.id, t, log); // before the `start` message: the image checks it
    phase(ctx, "start");
    log.debug("started grading container");
    return { container, stream };
  } catch (err) {
    if (!copy && layerMountFailed(ctx, err) && (await dropRefusedLayer(ctx, container, err as Error))) return createAndStart(ctx, true);
    log.warn({ err: (err as Error).message }, "failed to start grading container");
    return notStarted(CANNOT_START_CONTAINER, "start", err as Error);
  }
}

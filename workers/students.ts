/**
 * Student containers: what a grading container asks for with `run_student` (an environment of
 * its envtype, limits no larger than its own, a shared network or an SSH port), each run in a
 * container of its own that talks to the grading container through a socket of the job
 * directory. Replies `run_student_started` and then `run_student_retval` (253 timeout,
 * 252 out of memory, 254 refused or failed), and removes the container and frees its port.
 * An engine call past its deadline (src/docker/deadline.ts) also ends the job, as a crash. Each
 * one's memory limit is reserved on the main thread before it is created (the request may wait
 * there for memory; 254 when it could never be had) and released once it is removed.
 * A job runs at most task.studentContainers of them at once; further requests wait for one to
 * end, in the order asked. A socket id serves once: asked again, it gets 254 at once, and so does
 * a request past the caps of workers/student-caps.ts. What the container binds is proven to be
 * the job's own first (workers/student-binds.ts). What a grader's requests make the job log goes
 * through its LogLimiter (ctx.floodLog): so many lines a second, the rest counted.
 */
import type Docker from "dockerode";
import type { Logger } from "../src/log.js";
import { EngineTimeoutError, waitDeadlineMs } from "../src/docker/deadline.js";
import { cgroupCpuReader } from "../src/limits/cgroup-cpu.js";
import { watchLimits, type LimitWatch } from "../src/limits/container-watch.js";
import { followMemoryEvents, mayBeOomKilled } from "../src/limits/oom.js";
import { studentRetval } from "../src/jobs/outcome.js";
import type { ContainerMessage } from "../src/protocol/container-stream.js";
import { studentContainerSpec, type StudentRequest } from "./container-specs.js";
import { engineCall, failJob, writeToGrading, type JobContext, type StudentRun } from "./job-context.js";
import { inspectOomKilled, statsDelay, upperDir } from "./job-limits.js";
import { setOomGroup } from "../src/limits/oom-group.js";
import { capRefusal } from "./student-caps.js";
import { checkPinned, ensureScripts, pinSocket, proveStudentDirectories, StudentBindRefused, unpinSocket } from "./student-binds.js";

const REFUSED = 254;

/**
 * Checks a run_student message and starts its student container; the run is recorded under its
 * socket id. A request refused at once (caps, an unknown environment, root) keeps nothing.
 */
export function onRunStudent(ctx: JobContext, msg: ContainerMessage, log: Logger): void {
  const t = ctx.task;
  const socketId = msg["socket_id"];
  if (typeof socketId !== "string" || socketId.includes("/") || socketId === "" || socketId.includes("\0")) {
    failJob(ctx, "The grader asked for a student container with an invalid socket id.", log);
    return;
  }
  const refuse = (fields: Record<string, unknown>, why: string): void => {
    ctx.floodLog.warn(log, { socket: socketId.slice(0, 64), ...fields }, why);
    writeToGrading(ctx, { type: "run_student_retval", socket_id: socketId, retval: REFUSED });
  };
  const refusal = capRefusal(ctx, socketId);
  if (refusal !== null) return refuse({}, refusal);
  const ssh = Boolean(msg["ssh"]);
  if (ssh && !(t.network && t.envtypeHasSsh && t.sshAllowed)) {
    failJob(ctx, "ssh for student requires to allow ssh and internet access in the task environment configuration tab!", log);
    return;
  }
  const req = studentRequest(t, msg, ssh);
  // as the Python agent, in this order, before anything is taken for it
  if (studentEnvironment(t, req.environment) === undefined) {
    return refuse({ environment: req.environment.slice(0, 200) }, "student container asked for an unknown environment: 254");
  }
  if (req.runAsRoot) return refuse({}, "student containers cannot run as root: 254");
  const run: StudentRun = { id: null, ports: [], sshPort: null, socket: null, done: Promise.resolve() };
  ctx.students.set(socketId, run);
  run.done = inSlot(ctx, log, socketId, () => runStudent(ctx, run, socketId, req, log))
    .catch((err: Error) => {
      ctx.floodLog.error(log, { err: err.message, socket: socketId }, "student container handling failed");
      writeToGrading(ctx, { type: "run_student_retval", socket_id: socketId, retval: REFUSED });
    })
    .finally(() => {
      // over: only its id is kept; a container the engine did not remove stays for the cleanup
      if (run.id !== null) return;
      ctx.students.delete(socketId);
      ctx.usedSockets.add(socketId);
    });
}

/** What the request asks for: limits no larger than the grading container's own. */
function studentRequest(t: JobContext["task"], msg: ContainerMessage, ssh: boolean): StudentRequest {
  const num = (v: unknown): number => (typeof v === "number" && Number.isFinite(v) && v > 0 ? v : 0);
  const limit = (asked: unknown, parent: number): number => Math.min(num(asked) || parent, parent);
  return {
    environment: typeof msg["environment"] === "string" && msg["environment"] !== "" ? msg["environment"] : t.environment,
    memoryMb: limit(msg["memory_limit"], t.memoryMb),
    time: limit(msg["time_limit"], t.time),
    hardTime: limit(msg["hard_time_limit"], t.hardTime),
    shareNetwork: Boolean(msg["share_network"]),
    ssh,
    runAsRoot: Boolean(msg["run_as_root"]),
  };
}

/** The job's student environment of that name (its own entries only: "constructor" is no environment). */
function studentEnvironment(t: JobContext["task"], name: string): JobContext["task"]["studentEnvironments"][string] | undefined {
  return Object.hasOwn(t.studentEnvironments, name) ? t.studentEnvironments[name] : undefined;
}

/**
 * Runs `body` in one of the job's student container slots, once one is free (in the order asked);
 * skips it when the grading container ended while it waited.
 */
async function inSlot(ctx: JobContext, log: Logger, socketId: string, body: () => Promise<void>): Promise<void> {
  const slots = ctx.studentSlots;
  if (slots.running < ctx.task.studentContainers) slots.running++;
  else {
    ctx.floodLog.debug(log, { socket: socketId, running: slots.running }, "student container waits for one of the job's to end");
    // a slot is handed over by the run that releases it: `running` stays as it is
    await new Promise<void>((resolve) => slots.waiting.push(resolve));
  }
  try {
    if (!ctx.parentGone) await body();
  } finally {
    const next = slots.waiting.shift();
    if (next !== undefined) next();
    else slots.running--;
  }
}

async function runStudent(ctx: JobContext, run: StudentRun, socketId: string, req: StudentRequest, parentLog: Logger): Promise<void> {
  const log = parentLog.child({ socket: socketId });
  const retval = (value: number): void => writeToGrading(ctx, { type: "run_student_retval", socket_id: socketId, retval: value });
  if (!(await ctx.api.reserveMemory(ctx.task.jobId, socketId, req.memoryMb))) {
    ctx.floodLog.warn(log, { memoryMb: req.memoryMb }, "no memory for the student container");
    return retval(REFUSED);
  }
  await runReserved(ctx, run, socketId, req, log, retval);
  // its container is gone (if that failed, the job's end releases it with the rest of the job's memory)
  void ctx.api.releaseMemory(ctx.task.jobId, socketId);
}

async function runReserved(
  ctx: JobContext, run: StudentRun, socketId: string, req: StudentRequest, log: Logger, retval: (value: number) => void,
): Promise<void> {
  const container = await createStudent(ctx, run, socketId, req, log);
  if (container === null) return retval(REFUSED);
  run.id = container.id;
  if (!(await ctx.api.containerCreated(ctx.task.jobId, container.id, "student")) || ctx.parentGone || !bindsStillOwn(ctx, run, log)) {
    await removeStudent(ctx, container, run);
    return retval(REFUSED);
  }
  if (ctx.disk !== null) {
    const upper = await upperDir(container);
    if (upper !== null) ctx.diskRoots.push(upper);
  }
  writeToGrading(ctx, { type: "run_student_started", socket_id: socketId, container_id: container.id });
  const value = await startAndWait(ctx, container, req, log.child({ container: container.id }));
  if (value === null) {
    await removeStudent(ctx, container, run);
    return retval(REFUSED);
  }
  retval(value);
  await removeStudent(ctx, container, run);
}

/** Creates the student container (taking its SSH port first); null, with a reason logged, when it cannot be. */
async function createStudent(
  ctx: JobContext, run: StudentRun, socketId: string, req: StudentRequest, log: Logger,
): Promise<Docker.Container | null> {
  const t = ctx.task;
  const p = ctx.paths!;
  const env = studentEnvironment(t, req.environment)!; // onRunStudent checked it
  try {
    proveStudentDirectories(p);
    ensureScripts(p);
    run.socket = pinSocket(p, socketId);
  } catch (err) {
    refused(ctx, err, log);
    return null;
  }
  let ports: Record<number, number> = {};
  if (req.ssh) {
    const got = await ctx.api.allocatePorts(t.jobId, 1);
    if (got === null || got.length === 0) {
      ctx.floodLog.warn(log, {}, "no free port for a student SSH container");
      releaseSocket(run);
      return null;
    }
    run.ports = got;
    run.sshPort = got[0]!;
    ports = { 22: got[0]! };
  }
  const networkMode = req.ssh ? "bridge" : req.shareNetwork && ctx.grading ? `container:${ctx.grading.id}` : "none";
  try {
    const spec = studentContainerSpec(t, env, p, run.socket, req.memoryMb, ports, networkMode);
    return await engineCall(ctx, "create", (abortSignal) => ctx.docker.createContainer({ ...spec, abortSignal }));
  } catch (err) {
    ctx.floodLog.warn(log, { err: (err as Error).message }, "failed to create student container");
    failOnTimeout(ctx, err, log);
    releaseStudentPorts(ctx, run);
    releaseSocket(run);
    return null;
  }
}

/** The proof again, just before the start (when the engine mounts): a runtime that does not pin the folders fails here. */
function bindsStillOwn(ctx: JobContext, run: StudentRun, log: Logger): boolean {
  try {
    proveStudentDirectories(ctx.paths!);
    if (run.socket !== null) checkPinned(run.socket);
    return true;
  } catch (err) {
    refused(ctx, err, log);
    return false;
  }
}

function refused(ctx: JobContext, err: unknown, log: Logger): void {
  const reason = err instanceof StudentBindRefused ? err.message : `unexpected: ${(err as Error).message}`;
  ctx.floodLog.warn(log, { reason }, "refused a student container: what it would bind is not the job's own folder or socket");
}

function releaseSocket(run: StudentRun): void {
  if (run.socket !== null) unpinSocket(run.socket);
  run.socket = null;
}

/** Starts the student container under its limits and waits for it: its retval, or null when it failed. */
async function startAndWait(ctx: JobContext, container: Docker.Container, req: StudentRequest, log: Logger): Promise<number | null> {
  let watch: LimitWatch | null = null;
  let memoryEvents: ReturnType<typeof followMemoryEvents> | null = null;
  let code = -1;
  try {
    await engineCall(ctx, "start", (abortSignal) => container.start({ abortSignal }));
    await setOomGroup(container.id, ctx.task, log);
    log.debug("started student container");
    memoryEvents = followMemoryEvents(container.id, ctx.task.cgroupVersion);
    watch = watchLimits(container, {
      cpuSeconds: req.time, wallSeconds: req.hardTime, statsDelayMs: statsDelay(req.time),
      readCpuNs: cgroupCpuReader(container.id, ctx.task.cgroupVersion),
    }, log);
    const wait = (abortSignal: AbortSignal): Promise<{ StatusCode?: number }> => container.wait({ abortSignal });
    const r = await engineCall(ctx, "wait", wait, waitDeadlineMs(req.hardTime));
    code = r?.StatusCode ?? -1;
  } catch (err) {
    ctx.floodLog.warn(log, { err: (err as Error).message }, "student container failed");
    failOnTimeout(ctx, err, log);
    watch?.stop();
    memoryEvents?.stop();
    return null;
  }
  watch.stop();
  memoryEvents?.stop();
  const oom = (await ctx.api.wasOutOfMemory(container.id))
    || (mayBeOomKilled(ctx.task.cgroupVersion, code) && (await inspectOomKilled(container, memoryEvents?.last() ?? null)));
  const value = studentRetval({ timeout: watch.exceeded !== null, outOfMemory: oom, exitCode: code });
  log.debug({ retval: value }, "student container ended");
  return value;
}

export function releaseStudentPorts(ctx: JobContext, run: StudentRun): void {
  if (run.ports.length > 0) void ctx.api.releasePorts(ctx.task.jobId, run.ports);
  run.ports = [];
}

/** An engine call of a student container that the engine did not answer ends the job. */
function failOnTimeout(ctx: JobContext, err: unknown, log: Logger): void {
  if (err instanceof EngineTimeoutError) failJob(ctx, `The agent could not run a student container: ${err.message}. Please retry.`, log);
}

/**
 * Removes a student container and frees its port; false, with both kept, when the engine failed
 * or did not answer (the job's cleanup tries again until it does).
 */
export async function removeStudent(ctx: JobContext, container: Docker.Container, run: StudentRun): Promise<boolean> {
  try {
    await engineCall(ctx, "remove", (abortSignal) => container.remove({ force: true, v: true, abortSignal }));
  } catch (err) {
    const status = (err as { statusCode?: number }).statusCode;
    if (status !== 404 && status !== 409) {
      ctx.log.warn({ container: container.id, err: (err as Error).message }, "failed to remove student container");
      return false;
    }
  }
  void ctx.api.containerRemoved(ctx.task.jobId, container.id);
  run.id = null;
  releaseStudentPorts(ctx, run);
  releaseSocket(run);
  return true;
}

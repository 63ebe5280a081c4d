/**
 * A job's grading run, as its steps: prepare its directory and get its grading container (created
 * and started, or a warm one adopted), watch its limits, write `start`, read its output until it
 * exits, end its student containers, then decide the outcome (src/jobs/outcome.ts owns the
 * precedence) and collect the result: checked and encoded here, so that the main thread only
 * forwards the bytes of results that can weigh tens of megabytes. Waiting for the exit has a
 * deadline of its own: the wall limit plus a margin (src/docker/deadline.ts).
 */
import type Docker from "dockerode";
import type { Logger } from "../src/log.js";
import { waitDeadlineMs } from "../src/docker/deadline.js";
import { cgroupCpuNs, cgroupCpuReader } from "../src/limits/cgroup-cpu.js";
import { watchLimits } from "../src/limits/container-watch.js";
import { followMemoryEvents, mayBeOomKilled } from "../src/limits/oom.js";
import { collectResult, runOutcome } from "../src/jobs/outcome.js";
import type { GradingOutcome } from "../src/jobs/job-task.js";
import { Packed, type Packable } from "../src/protocol/msgpack.js";
import { createAndStart, type NotStarted, type Started } from "./grading-container.js";
import { readOutput, type Output } from "./grading-output.js";
import { engineCall, killContainer, killStudents, phase, writeToGrading, type JobContext } from "./job-context.js";
import { inspectOomKilled, statsDelay, watchDiskLimit } from "./job-limits.js";
import { adoptWarm } from "./warm.js";
import { exitThreadIfAsked } from "./fault-hook.js";

export async function runGrading(ctx: JobContext): Promise<GradingOutcome> {
  const t = ctx.task;
  const started = await getGradingContainer(ctx);
  if ("text" in started) return { kind: "crash", text: started.text, ...(started.detail !== undefined ? { detail: started.detail } : {}), timeout: false, oomKilled: false };
  const { container, stream } = started;
  const log = ctx.log.child({ container: container.id });
  exitThreadIfAsked(t.jobId, log);
  const watch = watchLimits(container, {
    cpuSeconds: t.time, wallSeconds: t.hardTime, cpuBaselineNs: started.cpuBaselineNs, statsDelayMs: statsDelay(t.time),
    readCpuNs: cgroupCpuReader(container.id, t.cgroupVersion),
  }, log);
  const memoryEvents = followMemoryEvents(container.id, t.cgroupVersion);
  if (t.diskMb !== null) await watchDiskLimit(ctx, container, t.diskMb, log);
  const exit = waitForExit(ctx, container);
  writeStart(ctx);
  const output = readOutput(ctx, stream, log);

  const exitCode = await runUntilExit(ctx, container, output, exit.code);
  phase(ctx, "run");
  await output.drain();
  watch.stop();
  ctx.disk?.stop();
  await endStudents(ctx);
  memoryEvents.stop();
  const oomKilled = mayBeOomKilled(t.cgroupVersion, exitCode) ? await inspectOomKilled(container, memoryEvents.last()) : false;
  const timeout = watch.exceeded !== null;
  log.debug({ exitCode, timeout, cpu: watch.cpuSeconds }, "grading container ended");
  const outcome = await decide(ctx, {
    timeout, oomKilled, engineLost: exit.lost(), rawResult: output.rawResult, streamError: output.streamError, streamUnreadable: output.streamUnreadable,
  }, log);
  // Without a result, what the container said on stderr is what an operator has to go on.
  const noResult = outcome.kind === "crash" || outcome.kind === "no-result";
  return noResult && output.stderrTail !== "" ? { ...outcome, stderrTail: output.stderrTail } : outcome;
}

/** The job's grading container: a warm one adopted, else one created for it; with the CPU time it used before the job. */
async function getGradingContainer(ctx: JobContext): Promise<(Started & { cpuBaselineNs: number }) | NotStarted> {
  const t = ctx.task;
  if (t.warm === null) {
    const created = await createAndStart(ctx);
    return "text" in created ? created : { ...created, cpuBaselineNs: 0 };
  }
  const adopted = await adoptWarm(ctx, t.warm);
  if ("text" in adopted) return adopted;
  // What the container used before this job (its entry program's start) is not the job's;
  // a dead warm container was replaced by a cold one, which counts from zero.
  const warmed = adopted.container.id === t.warm.containerId;
  const cpuBaselineNs = warmed ? (t.warm.cpuBaselineNs ?? cgroupCpuNs(adopted.container.id, t.cgroupVersion) ?? 0) : 0;
  return { ...adopted, cpuBaselineNs };
}

/** The container's exit status (-1 when unknown), and why waiting failed if the engine went away. */
function waitForExit(ctx: JobContext, container: Docker.Container): { code: Promise<number>; lost(): string | null } {
  let lost: string | null = null;
  const wait = (abortSignal: AbortSignal): Promise<{ StatusCode?: number }> => container.wait({ abortSignal });
  const code = engineCall(ctx, "wait", wait, waitDeadlineMs(ctx.task.hardTime)).then(
    (r: { StatusCode?: number }) => r?.StatusCode ?? -1,
    (err: Error) => {
      lost = err.message;
      return -1;
    },
  );
  return { code, lost: () => lost };
}

/** Sends the `start` message: the student's input and how to run the grader. */
function writeStart(ctx: JobContext): void {
  const t = ctx.task;
  const start: Record<string, Packable> = {
    type: "start",
    input: new Packed(t.inputdata),
    debug: t.debug,
    envtypes: Object.fromEntries(t.envtypes.map((e) => [e, true])),
  };
  if (t.runCmd !== null) start["run_cmd"] = t.runCmd;
  start["run_as_root"] = t.runAsRoot;
  writeToGrading(ctx, start as { type: string } & Record<string, Packable>);
}

/**
 * Waits for the container's exit. The stream ends when the container exits; a container that
 * closed its stdout keeps the job alive until it exits or hits a limit. Unreadable output or a
 * fatal error of the job kill it.
 */
async function runUntilExit(ctx: JobContext, container: Docker.Container, output: Output, exited: Promise<number>): Promise<number> {
  await Promise.race([output.done, exited]);
  if (output.streamError !== null || ctx.fatal !== null) await killContainer(ctx, container.id);
  return exited;
}

/** The parent is gone: its student containers go with it. */
async function endStudents(ctx: JobContext): Promise<void> {
  ctx.parentGone = true;
  await killStudents(ctx);
  await Promise.all([...ctx.students.values()].map((run) => run.done));
}

function decide(
  ctx: JobContext,
  seen: { timeout: boolean; oomKilled: boolean; engineLost: string | null; rawResult: unknown; streamError: string | null; streamUnreadable: boolean },
  log: Logger,
): Promise<GradingOutcome> {
  if (seen.engineLost !== null) log.warn({ err: seen.engineLost }, "lost the Docker engine while the job ran");
  const disk = ctx.disk?.exceeded ? ctx.disk.peakBytes : null;
  return runOutcome({ jobId: ctx.task.jobId, ...seen, diskExceededBytes: disk, fatal: ctx.fatal }, async (raw, observed) => {
    try {
      return await collectResult(ctx.task.jobId, raw, observed);
    } finally {
      phase(ctx, "collect");
    }
  });
}

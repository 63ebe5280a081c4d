/**
 * Turns what happened to a job into its one AgentJobDone (protocol.md section 4). This module
 * owns the outcome precedence, first match wins, in the Python agent's order (`handle_job_closing`):
 * the container OOM-killed at its exit > the last of the backend's kill and the engine's `oom`
 * event (killed or overflow) > timeout > disk limit > engine lost > fatal grader error >
 * unreadable output > no result > the container's own result (or the crash its check finds).
 * The Python agent records a kill and an OOM in one slot per container, each overwriting the
 * other, and its `die` handler writes the OOM last when the engine says OOMKilled; that slot wins
 * over its timeout watcher. The worker decides the tail from disk limit on (`runOutcome`), since
 * only it holds the result's bytes to check and encode; the main thread, which alone knows of
 * kills and of the engine's `oom` events, applies the head (`composeOutcome`).
 */
import { checkArchive } from "../protocol/archive.js";
import { BadResultError, checkGradingResult } from "../protocol/grading-result.js";
import { NO_RESULT } from "../protocol/python-texts.js";
import { encodeAgentMessage, type AgentJobDone, type EncodedJobDone, type JobResultKind } from "../protocol/messages.js";
import type { CheckedResult, GradingOutcome } from "./job-task.js";
import type { StopReason } from "./job.js";

export interface JobFacts {
  jobId: string;
  /** inputdata["@state"]: reported when the job does not finish with a result of its own. */
  previousState: string;
  /** The last of the backend's kill and the engine's `oom` event for the grading container, or null. */
  stoppedBy: StopReason | null;
}

export function defaultGrade(result: JobResultKind, grade: number | null): number {
  if (grade !== null) return grade;
  return result === "success" ? 100.0 : 0.0;
}

export function jobDone(
  jobId: string,
  result: JobResultKind,
  text: string,
  state: AgentJobDone["state"],
  extra: Partial<Pick<AgentJobDone, "grade" | "problems" | "tests" | "custom" | "archive" | "stdout" | "stderr">> = {},
): AgentJobDone {
  return {
    type: "AgentJobDone",
    job_id: jobId,
    result: [result, text],
    grade: defaultGrade(result, extra.grade ?? null),
    problems: extra.problems ?? {},
    tests: extra.tests ?? {},
    custom: extra.custom ?? {},
    state,
    archive: extra.archive ?? null,
    stdout: extra.stdout === undefined ? null : extra.stdout,
    stderr: extra.stderr === undefined ? null : extra.stderr,
  };
}

/** The AgentJobDone that carries a container's own (checked) result. */
function resultDone(jobId: string, r: CheckedResult): AgentJobDone {
  return jobDone(jobId, r.result as JobResultKind, r.text, r.state, {
    grade: r.grade ?? undefined,
    problems: r.problems,
    tests: r.tests,
    custom: r.custom,
    archive: r.archive,
    stdout: r.stdout,
    stderr: r.stderr,
  });
}

/**
 * OOM-killed > killed or overflow (the last one) > timeout > the container's own result (or the
 * crash the worker saw). A job without a result keeps the grading container's stderr tail for
 * its log line.
 */
export function composeOutcome(facts: JobFacts, outcome: GradingOutcome): AgentJobDone | EncodedJobDone {
  const done = precedence(facts, outcome);
  const tail = outcome.kind === "crash" || outcome.kind === "no-result" ? outcome.stderrTail : undefined;
  if (tail !== undefined && done.type === "AgentJobDone") done.stderrTail = tail;
  if (outcome.kind === "crash" && outcome.detail !== undefined && done.type === "AgentJobDone" && done.result[0] === "crash") done.detail = outcome.detail;
  return done;
}

function precedence(facts: JobFacts, outcome: GradingOutcome): AgentJobDone | EncodedJobDone {
  const plain = { stdout: "", stderr: "" };
  const stopped = outcome.oomKilled ? "overflow" : facts.stoppedBy;
  if (stopped !== null) return jobDone(facts.jobId, stopped, "", facts.previousState, plain);
  if (outcome.timeout) return jobDone(facts.jobId, "timeout", "", facts.previousState, plain);
  if (outcome.diskExceededBytes !== undefined) {
    const mb = Math.round(outcome.diskExceededBytes / 1024 / 1024);
    return jobDone(facts.jobId, "overflow", `The job wrote too much to disk (${mb} MB, over its limit).`, facts.previousState, plain);
  }
  if (outcome.kind === "encoded-result") {
    return { type: "EncodedJobDone", job_id: facts.jobId, result: outcome.result, grade: outcome.grade, frame: outcome.frame };
  }
  if (outcome.kind !== "result") return jobDone(facts.jobId, "crash", outcome.text, facts.previousState, plain);
  return resultDone(facts.jobId, outcome.result);
}

/** What a worker saw of its grading run once the grading container ended. */
export interface RunFacts {
  jobId: string;
  /** A CPU or wall time limit was crossed. */
  timeout: boolean;
  oomKilled: boolean;
  /** Largest usage seen when the job went over its disk limit; null when it did not. */
  diskExceededBytes: number | null;
  /** Why waiting for the container failed (the engine went away), or null. */
  engineLost: string | null;
  /** The text of the error that ended the job (a bad request from the grader, say), or null. */
  fatal: string | null;
  /** Why the container's output could not be read, or null. */
  streamError: string | null;
  /** The Python agent could not have read it either: without a result, its no-result text. */
  streamUnreadable?: boolean;
  /** The `result` message's content; undefined when the container sent none. */
  rawResult: unknown;
}

type Seen = Pick<GradingOutcome, "timeout" | "oomKilled">;

/** The container's result, checked and encoded as the job's AgentJobDone (so that the main thread only forwards the bytes). */
export async function collectResult(jobId: string, raw: unknown, seen: Seen): Promise<GradingOutcome> {
  try {
    const r = checkGradingResult(raw);
    const done = resultDone(jobId, { ...r, archive: r.archive === null ? null : await checkArchive(r.archive) });
    return { kind: "encoded-result", result: done.result[0], grade: done.grade, frame: encodeAgentMessage(done), ...seen };
  } catch (err) {
    const detail = err instanceof BadResultError && err.detail !== err.message ? { detail: err.detail } : {};
    return { kind: "crash", text: (err as Error).message, ...detail, ...seen };
  }
}

/**
 * The worker's part of the precedence: disk limit > engine lost (without a result) > fatal >
 * unreadable output > no result > the result, which `collect` checks (collectResult by default).
 */
export async function runOutcome(
  f: RunFacts,
  collect: (raw: unknown, seen: Seen) => Promise<GradingOutcome> = (raw, seen) => collectResult(f.jobId, raw, seen),
): Promise<GradingOutcome> {
  const seen: Seen = { timeout: f.timeout, oomKilled: f.oomKilled };
  if (f.diskExceededBytes !== null) return { kind: "crash", text: "disk limit", ...seen, diskExceededBytes: f.diskExceededBytes };
  if (f.engineLost !== null && f.rawResult === undefined) {
    return {
      kind: "crash",
      text: `The agent lost contact with the Docker engine while the job ran (${f.engineLost}). Please retry.`,
      ...seen,
    };
  }
  if (f.fatal !== null) return { kind: "crash", text: f.fatal, ...seen };
  if (f.streamError !== null) {
    const ours = `The grader's output could not be read: ${f.streamError}.`;
    // Where the Python agent would have stopped reading too and found no result, its text; ours goes to the log.
    if (f.streamUnreadable === true && f.rawResult === undefined) return { kind: "crash", text: NO_RESULT, detail: ours, ...seen };
    return { kind: "crash", text: ours, ...seen };
  }
  if (f.rawResult === undefined) return { kind: "no-result", text: NO_RESULT, ...seen };
  return collect(f.rawResult, seen);
}

/** run_student_retval for a student container that went over its memory limit, as INGInious's `overflow`. */
export const STUDENT_OVERFLOW = 252;
/** run_student_retval for a student container stopped by its CPU or wall limit, as INGInious's `timeout`. */
export const STUDENT_TIMEOUT = 253;

/**
 * A student container's run_student_retval, as INGInious's agent decides it when the container
 * closes: an overflow (the engine's `oom`, or the kernel's OOM kill) wins over a timeout (in
 * `handle_student_job_closing`, the containers killed for an overflow override what the
 * timeout watcher said), and either wins over the container's own exit status.
 */
export function studentRetval(seen: { timeout: boolean; outOfMemory: boolean; exitCode: number }): number {
  if (seen.outOfMemory) return STUDENT_OVERFLOW;
  if (seen.timeout) return STUDENT_TIMEOUT;
  return seen.exitCode;
}

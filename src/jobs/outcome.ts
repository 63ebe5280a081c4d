/** Turns what happened to a job into its one AgentJobDone (protocol.md section 4, outcome precedence). */
import type { AgentJobDone, EncodedJobDone, JobResultKind } from "../protocol/messages.js";
import type { CheckedResult, GradingOutcome } from "./job-task.js";

export interface JobFacts {
  jobId: string;
  /** inputdata["@state"]: reported when the job does not finish with a result of its own. */
  previousState: string;
  /** Set when the backend killed the job. */
  killed: boolean;
  /** The engine reported an `oom` event for the grading container. */
  oomEvent: boolean;
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
export function resultDone(jobId: string, r: CheckedResult): AgentJobDone {
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

/** killed > timeout > overflow > the container's own result (or the crash the worker saw). */
export function composeOutcome(facts: JobFacts, outcome: GradingOutcome): AgentJobDone | EncodedJobDone {
  const plain = { stdout: "", stderr: "" };
  if (facts.killed) return jobDone(facts.jobId, "killed", "", facts.previousState, plain);
  if (outcome.timeout) return jobDone(facts.jobId, "timeout", "", facts.previousState, plain);
  if (facts.oomEvent || outcome.oomKilled) return jobDone(facts.jobId, "overflow", "", facts.previousState, plain);
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

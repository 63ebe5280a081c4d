/**
 * Checks the `result` map a grading container sends (protocol.md section 4),
 * the way INGInious's agent does, and turns it into a typed value.
 */
import { JOB_RESULT_KINDS, type JobResultKind } from "./messages.js";

export interface GradingResult {
  result: JobResultKind;
  text: string;
  grade: number | null;
  problems: Record<string, unknown>;
  tests: Record<string, unknown>;
  custom: Record<string, unknown>;
  state: string;
  /** base64 text as the container sent it; decoded and checked separately. */
  archive: string | null;
  stdout: string;
  stderr: string;
}

const PROBLEM_ID = /^[a-z0-9\-_.]+$/i;
const TEST_ID = /^[a-z0-9\-_.*]+$/i;

type Check = (v: unknown) => boolean;
const isString: Check = (v) => typeof v === "string";
const isNumber: Check = (v) => typeof v === "number" && Number.isFinite(v);
const isMap: Check = (v) => typeof v === "object" && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);

const KEYS: Record<string, Check> = {
  result: isString, text: isString, grade: isNumber, problems: isMap, tests: isMap, custom: isMap,
  state: isString, archive: isString, stdout: isString, stderr: isString,
};

export class BadResultError extends Error {
  constructor(detail: string) {
    super(`The grader did not return a readable output: its feedback is badly formatted (${detail}).`);
    this.name = "BadResultError";
  }
}

/** Validates a container's result map; throws BadResultError with a readable reason. */
export function checkGradingResult(value: unknown): GradingResult {
  if (!isMap(value)) throw new BadResultError("the result is not a map");
  const r = value as Record<string, unknown>;
  for (const [key, item] of Object.entries(r)) {
    const check = KEYS[key];
    if (!check) throw new BadResultError(`unknown key ${JSON.stringify(key)}`);
    if (!check(item)) throw new BadResultError(`${key} has the wrong type`);
  }
  for (const [key, pattern] of [["problems", PROBLEM_ID], ["tests", TEST_ID]] as const) {
    const m = (r[key] ?? {}) as Record<string, unknown>;
    for (const [id, item] of Object.entries(m)) {
      if (!pattern.test(id)) throw new BadResultError(`${key} has an invalid id ${JSON.stringify(id)}`);
      if (isMap(item)) throw new BadResultError(`${key}.${id} must not be a map`);
    }
  }
  const result = (r["result"] as string | undefined) ?? "error";
  if (!(JOB_RESULT_KINDS as readonly string[]).includes(result)) {
    throw new BadResultError(`unknown result ${JSON.stringify(result)}`);
  }
  return {
    result: result as JobResultKind,
    text: (r["text"] as string | undefined) ?? "",
    grade: (r["grade"] as number | undefined) ?? null,
    problems: (r["problems"] as Record<string, unknown> | undefined) ?? {},
    tests: (r["tests"] as Record<string, unknown> | undefined) ?? {},
    custom: (r["custom"] as Record<string, unknown> | undefined) ?? {},
    state: (r["state"] as string | undefined) ?? "",
    archive: (r["archive"] as string | undefined) ?? null,
    stdout: (r["stdout"] as string | undefined) ?? "",
    stderr: (r["stderr"] as string | undefined) ?? "",
  };
}

/**
 * Compares a job's result with a recorded submission as `inginious-autotest` does: `result` with
 * the result's first element, `text` with its second, each recorded problem as a pair (result,
 * feedback; problems the file does not name are not compared), every other field equal (maps
 * whatever their key order, numbers whatever their type, as Python's `==`). The archive is never
 * compared, nor a field absent from the file or left empty by the job. Also the short diffs shown
 * for a mismatch.
 */
import { roundGrade, type AgentJobDone } from "../protocol/messages.js";
import type { RecordedField, TestFile } from "./test-files.js";

export interface Mismatch {
  /** The field, or `problems.<id>` for one problem. */
  field: string;
  expected: unknown;
  actual: unknown;
}

/** Python's `==` on the values YAML and msgpack give: maps by keys, lists in order, bytes by content. */
export function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  const scalar = (v: unknown): boolean => typeof v === "boolean" || typeof v === "number";
  if (scalar(a) && scalar(b)) return Number(a) === Number(b); // True == 1, 1 == 1.0
  if (a instanceof Date || b instanceof Date) return a instanceof Date && b instanceof Date && a.getTime() === b.getTime();
  if (a instanceof Uint8Array || b instanceof Uint8Array) return a instanceof Uint8Array && b instanceof Uint8Array && Buffer.from(a).equals(Buffer.from(b));
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((v, i) => deepEqual(v, b[i]));
  if (typeof a === "object" && typeof b === "object" && a !== null && b !== null && !Array.isArray(a) && !Array.isArray(b)) {
    const ka = Object.keys(a);
    const kb = Object.keys(b);
    return ka.length === kb.length && ka.every((k) => Object.hasOwn(b, k) && deepEqual((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
  }
  return false;
}

/** The value of each recorded field in a job's result, as the frontend stores it. */
export function resultFields(done: AgentJobDone): Record<RecordedField, unknown> {
  return {
    result: done.result[0],
    text: done.result[1],
    grade: roundGrade(done.grade),
    problems: done.problems,
    tests: done.tests,
    custom: done.custom,
    state: done.state,
    stdout: done.stdout,
    stderr: done.stderr,
  };
}

function compareProblems(expected: Record<string, unknown>, actual: Record<string, unknown>): Mismatch[] {
  const out: Mismatch[] = [];
  for (const [pid, want] of Object.entries(expected)) {
    const got = actual[pid];
    const pair = (v: unknown): unknown[] | null => (Array.isArray(v) && v.length >= 2 ? v : null);
    const w = pair(want);
    const g = pair(got);
    if (w === null || g === null || !deepEqual(w[0], g[0]) || !deepEqual(w[1], g[1])) {
      out.push({ field: `problems.${pid}`, expected: want, actual: got ?? null });
    }
  }
  return out;
}

/** The fields where the job's result differs from the recording (empty: it matches). */
export function compareResult(expected: TestFile["expected"], done: AgentJobDone): Mismatch[] {
  const actual = resultFields(done);
  const out: Mismatch[] = [];
  for (const [field, want] of Object.entries(expected) as Array<[RecordedField, unknown]>) {
    const got = actual[field];
    if (got === null || got === undefined) continue;
    if (field === "problems") out.push(...compareProblems(want as Record<string, unknown>, got as Record<string, unknown>));
    else if (!deepEqual(want, got)) out.push({ field, expected: want, actual: got });
  }
  return out;
}

/** A value in one short line: text quoted, long values cut. */
export function brief(value: unknown, max = 60): string {
  const bytes = (v: unknown): number | null => {
    if (v instanceof Uint8Array) return v.length;
    const b = v as { type?: unknown; data?: unknown } | null;
    return b?.type === "Buffer" && Array.isArray(b.data) ? b.data.length : null; // a Buffer after its toJSON
  };
  const text = JSON.stringify(value, (_k, v: unknown) => (bytes(v) === null ? v : `<${bytes(v)} bytes>`)) ?? String(value);
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

/**
 * A short diff of one mismatch: `field: expected X, got Y` for short values; for multi-line
 * text, the first differing line of each side, with its line number.
 */
export function shortDiff(m: Mismatch): string[] {
  const { expected: e, actual: a } = m;
  if (Array.isArray(e) && Array.isArray(a) && e.length === 2 && a.length === 2) {
    // a problem's [result, feedback]: the part that differs
    const parts = [0, 1].filter((i) => !deepEqual(e[i], a[i]));
    return parts.flatMap((i) => shortDiff({ field: `${m.field} ${i === 0 ? "result" : "feedback"}`, expected: e[i], actual: a[i] }));
  }
  if (typeof e === "string" && typeof a === "string" && (e.includes("\n") || a.includes("\n"))) {
    const el = e.split("\n");
    const al = a.split("\n");
    let i = 0;
    while (i < el.length && i < al.length && el[i] === al[i]) i++;
    const line = (v: string | undefined): string => (v === undefined ? "(no line)" : brief(v, 100));
    return [`${m.field}: line ${i + 1} differs`, `  - ${line(el[i])}`, `  + ${line(al[i])}`];
  }
  return [`${m.field}: expected ${brief(e)}, got ${brief(a)}`];
}

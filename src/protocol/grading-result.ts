/**
 * Checks the `result` map a grading container sends (protocol.md section 4),
 * the way INGInious's agent does, and turns it into a typed value.
 *
 * It works on the map's msgpack bytes (decodeContainerMessage keeps them): what the agent reads
 * (`result`, `text`, `grade`, `archive`) is decoded; what it only forwards (`problems`, `tests`,
 * `custom`, `state`, `stdout`, `stderr`) is checked in place and kept as its bytes, to be spliced
 * into AgentJobDone unchanged. A map key of `custom` (or inside any forwarded value) may have any
 * type: it is kept. The Python agent reads the container's output with msgpack's strict keys and
 * fails on such a key; the backend link unpacks with `strict_map_key=False` and takes it.
 */
import { JOB_RESULT_KINDS, type JobResultKind } from "./messages.js";
import { Packed } from "./msgpack.js";
import { FLOAT, forEachEntry, Head, INT, MAP, STR } from "./msgpack-walk.js";
import { ViewReader } from "./msgpack-view.js";

export interface GradingResult {
  result: JobResultKind;
  text: string;
  grade: number | null;
  problems: Packed;
  tests: Packed;
  custom: Packed;
  state: Packed;
  /**
   * The bytes of the base64 text as the container sent it (a view into the result's bytes, not a
   * string of tens of MB); decoded in place and checked separately (protocol/archive.ts).
   */
  archive: Uint8Array | null;
  stdout: Packed;
  stderr: Packed;
}

const PROBLEM_ID = /^[a-z0-9\-_.]+$/i;
const TEST_ID = /^[a-z0-9\-_.*]+$/i;

/** The msgpack type each key must have (`grade`: any number; Python wants a float, see the docs). */
const KEYS: Record<string, "str" | "number" | "map"> = {
  result: "str", text: "str", grade: "number", problems: "map", tests: "map", custom: "map",
  state: "str", archive: "str", stdout: "str", stderr: "str",
};

const EMPTY_MAP = new Packed(Uint8Array.of(0x80));
const EMPTY_STR = new Packed(Uint8Array.of(0xa0));

export class BadResultError extends Error {
  constructor(detail: string) {
    super(`The grader did not return a readable output: its feedback is badly formatted (${detail}).`);
    this.name = "BadResultError";
  }
}

/**
 * Validates a container's result, given as the msgpack bytes of its `result` value (walked
 * already by decodeContainerMessage); throws BadResultError with a readable reason.
 */
export function checkGradingResult(packed: unknown): GradingResult {
  if (!(packed instanceof Uint8Array)) throw new TypeError("checkGradingResult takes the msgpack bytes of a result");
  const b = packed;
  const view = new ViewReader(b);
  const head = new Head();
  const spans = new Map<string, [number, number]>();
  const end = forEachEntry(b, 0, b.length, (keyAt, valueAt, valueEnd) => {
    const key = view.string(keyAt, valueAt);
    const want = key === null ? undefined : KEYS[key];
    if (key === null || want === undefined) {
      throw new BadResultError(`unknown key ${key === null ? "of another type than str" : JSON.stringify(key)}`);
    }
    const kind = head.read(b, valueAt, valueEnd).kind;
    const ok = want === "map" ? kind === MAP : want === "str" ? kind === STR : kind === INT || kind === FLOAT;
    if (!ok) throw new BadResultError(`${key} has the wrong type`);
    if (want === "number" && !Number.isFinite(view.read(valueAt, valueEnd).value)) throw new BadResultError(`${key} has the wrong type`);
    spans.set(key, [valueAt, valueEnd]); // a key given twice: the last one counts, as in Python
  });
  if (end < 0) throw new BadResultError("the result is not a map");
  for (const [key, pattern] of [["problems", PROBLEM_ID], ["tests", TEST_ID]] as const) {
    const at = spans.get(key);
    if (at === undefined) continue;
    forEachEntry(b, at[0], at[1], (keyAt, valueAt, valueEnd) => {
      const id = view.string(keyAt, valueAt);
      if (id === null || !pattern.test(id)) {
        throw new BadResultError(`${key} has an invalid id ${id === null ? "(not a str)" : JSON.stringify(id)}`);
      }
      if (head.read(b, valueAt, valueEnd).kind === MAP) throw new BadResultError(`${key}.${id} must not be a map`);
    });
  }
  const decoded = (key: string): unknown => {
    const at = spans.get(key);
    return at === undefined ? undefined : view.read(at[0], at[1]).value;
  };
  const kept = (key: string, fallback: Packed): Packed => {
    const at = spans.get(key);
    return at === undefined ? fallback : new Packed(b.subarray(at[0], at[1]));
  };
  const strBytes = (key: string): Uint8Array | null => {
    const at = spans.get(key);
    return at === undefined ? null : b.subarray(head.read(b, at[0], at[1]).body, at[1]);
  };
  const result = (decoded("result") as string | undefined) ?? "error";
  if (!(JOB_RESULT_KINDS as readonly string[]).includes(result)) {
    throw new BadResultError(`unknown result ${JSON.stringify(result)}`);
  }
  return {
    result: result as JobResultKind,
    text: (decoded("text") as string | undefined) ?? "",
    grade: (decoded("grade") as number | undefined) ?? null,
    problems: kept("problems", EMPTY_MAP),
    tests: kept("tests", EMPTY_MAP),
    custom: kept("custom", EMPTY_MAP),
    state: kept("state", EMPTY_STR),
    archive: strBytes("archive"),
    stdout: kept("stdout", EMPTY_STR),
    stderr: kept("stderr", EMPTY_STR),
  };
}


/**
 * Checks the `result` map a grading container sends (protocol.md section 4),
 * the way INGInious's agent does, and turns it into a typed value; a result it refuses is a
 * BadResultError whose text is the Python agent's for the same refusal (python-texts.ts), and
 * whose `detail` says exactly what is wrong, for the log.
 *
 * It works on the map's msgpack bytes (decodeContainerMessage keeps them): what the agent reads
 * (`result`, `text`, `grade`, `archive`) is decoded; what it only forwards (`problems`, `tests`,
 * `custom`, `state`, `stdout`, `stderr`) is checked in place and kept as its bytes, to be spliced
 * into AgentJobDone unchanged. A map key that is not a str, anywhere in the result, is refused
 * with its path (map-keys.ts): the frontend could not store it, and the Python agent, reading
 * with msgpack's strict map keys, would not have read the result at all.
 */
import { findNonStringKey, formatPath } from "./map-keys.js";
import { JOB_RESULT_KINDS, type JobResultKind } from "./messages.js";
import { Packed } from "./msgpack.js";
import { ARRAY, BIN, BOOL, EXT, FLOAT, forEachEntry, Head, INT, MAP, NIL, STR } from "./msgpack-walk.js";
import { ViewReader } from "./msgpack-view.js";
import { BADLY_FORMATTED, NO_RESULT, UNREADABLE_OUTPUT, notAMapText, unknownKeyText } from "./python-texts.js";

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
  /** What exactly is wrong, for the log (the text may be the Python agent's, which says less). */
  readonly detail: string;
  constructor(text: string, detail: string = text) {
    super(text);
    this.name = "BadResultError";
    this.detail = detail;
  }
}

const badlyFormatted = (detail: string): BadResultError => new BadResultError(BADLY_FORMATTED, detail);

/** The Python type msgpack (`use_list=False`) gives a value that is not a map, for its AttributeError's text. */
const PYTHON_TYPE = { [INT]: "int", [FLOAT]: "float", [BOOL]: "bool", [STR]: "str", [BIN]: "bytes", [ARRAY]: "tuple" } as const;

/** A key that is not a str: where (`custom["a"][0]`, or the result itself) and what it is. */
function nonStringKey(b: Uint8Array): BadResultError | null {
  const found = findNonStringKey(b, 0, b.length);
  if (found === null) return null;
  const where = found.path.length === 0 ? "the result" : formatPath(found.path);
  const stored = ["problems", "tests", "custom"].includes(String(found.path[0]));
  return new BadResultError(
    `${UNREADABLE_OUTPUT}${where} has a map key that is not a string (${found.key})${stored ? "; INGInious stores only string keys" : ""}.`,
  );
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
  // The Python agent's strict unpack fails on such a key before any check: it goes first here too.
  const badKey = nonStringKey(b);
  if (badKey !== null) throw badKey;
  const kind = head.read(b, 0, b.length).kind;
  if (kind === NIL) throw new BadResultError(NO_RESULT, "the result is nil");
  if (kind !== MAP) {
    const type = kind === EXT ? (head.extType === -1 ? "Timestamp" : "ExtType") : PYTHON_TYPE[kind];
    throw new BadResultError(notAMapText(type), "the result is not a map");
  }
  const spans = new Map<string, [number, number]>();
  // In the map's order, as the Python agent checks: the first key that is wrong decides the text.
  forEachEntry(b, 0, b.length, (keyAt, valueAt, valueEnd) => {
    const key = view.string(keyAt, valueAt)!;
    const want = KEYS[key];
    if (want === undefined) throw new BadResultError(unknownKeyText(key), `unknown key ${JSON.stringify(key)}`);
    const kind = head.read(b, valueAt, valueEnd).kind;
    const ok = want === "map" ? kind === MAP : want === "str" ? kind === STR : kind === INT || kind === FLOAT;
    if (!ok) throw badlyFormatted(`${key} has the wrong type`);
    if (want === "number" && !Number.isFinite(view.read(valueAt, valueEnd).value)) {
      throw new BadResultError(`${UNREADABLE_OUTPUT}grade is not a finite number.`);
    }
    if (key === "problems" || key === "tests") checkIds(b, view, key, valueAt, valueEnd);
    spans.set(key, [valueAt, valueEnd]); // a key given twice: the last one counts, as in Python
  });
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
    throw new BadResultError(`${UNREADABLE_OUTPUT}unknown result ${JSON.stringify(result)}.`);
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


/** Problem and test ids must be ids, and their values must not be maps (the Python agent's rule). */
function checkIds(b: Uint8Array, view: ViewReader, key: "problems" | "tests", at: number, end: number): void {
  const pattern = key === "problems" ? PROBLEM_ID : TEST_ID;
  const head = new Head();
  forEachEntry(b, at, end, (keyAt, valueAt, valueEnd) => {
    const id = view.string(keyAt, valueAt)!; // every key is a str: nonStringKey saw them all
    if (!pattern.test(id)) throw badlyFormatted(`${key} has an invalid id ${JSON.stringify(id)}`);
    if (head.read(b, valueAt, valueEnd).kind === MAP) throw badlyFormatted(`${key}.${id} must not be a map`);
  });
}

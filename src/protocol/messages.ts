/**
 * The messages exchanged with the INGInious backend (protocol.md section 1):
 * typed values, their encoding in INGInious's field order, and a strict decoder
 * for what the backend sends.
 *
 * Values the agent only forwards are never decoded: a job's `inputdata` stays the bytes the
 * backend sent (a `Packed`, spliced into the container's `start`), and AgentJobDone's
 * `problems`, `tests`, `custom`, `state`, `stdout` and `stderr` may be the container's own bytes.
 * So every value keeps its msgpack type both ways, map keys of any type and key order included.
 */
import { Float64, pack, Packed, unpack, type Packable } from "./msgpack.js";
import { DEFAULT_DECODE_LIMITS, forEachEntry, MsgpackWalker, MAP, Head, NO_OBJECT_LIMIT } from "./msgpack-walk.js";
import { ViewReader } from "./msgpack-view.js";

export type JobResultKind = "success" | "failed" | "error" | "crash" | "timeout" | "overflow" | "killed";
export const JOB_RESULT_KINDS: readonly JobResultKind[] = [
  "success", "failed", "error", "crash", "timeout", "overflow", "killed",
];

export interface EnvironmentInfo {
  id: string;
  title: string;
  created: number;
  ports: number[];
  runtime: string;
  advertised: boolean;
}
/** envtype -> environment name -> info */
export type Environments = Record<string, Record<string, EnvironmentInfo>>;

export interface AgentHello {
  type: "AgentHello";
  friendly_name: string;
  available_job_slots: number;
  available_environments: Environments;
}
export interface AgentJobStarted {
  type: "AgentJobStarted";
  job_id: string;
}
export interface AgentJobDone {
  type: "AgentJobDone";
  job_id: string;
  /** For the `job done` log line only (the grading container's last stderr bytes): never encoded. */
  stderrTail?: string;
  /** For the `job done` log line only: what exactly was wrong, where the text is the Python agent's shorter one. Never encoded. */
  detail?: string;
  result: [JobResultKind, string];
  grade: number;
  /** Maps (`Packed`: a container's own bytes). */
  problems: Packed | Record<string, unknown>;
  tests: Packed | Record<string, unknown>;
  custom: Packed | Record<string, unknown>;
  state: string | Packed;
  archive: Uint8Array | null;
  stdout: string | Packed | null;
  stderr: string | Packed | null;
}
export interface AgentJobSSHDebug {
  type: "AgentJobSSHDebug";
  job_id: string;
  host: string;
  port: number;
  user: string;
  password: string;
}
export interface Pong {
  type: "Pong";
}
export type AgentMessage = AgentHello | AgentJobStarted | AgentJobDone | AgentJobSSHDebug | Pong;

/**
 * An AgentJobDone a worker already encoded (results can carry tens of MB: encoding them is kept
 * off the main thread). The fields beside the frame are for logs and observers only.
 */
export interface EncodedJobDone {
  type: "EncodedJobDone";
  job_id: string;
  result: JobResultKind;
  grade: number;
  frame: Uint8Array;
}

/** What the agent hands to its link: a message to encode, or one encoded already. */
export type OutgoingMessage = AgentMessage | EncodedJobDone;

export interface BackendNewJob {
  type: "BackendNewJob";
  job_id: string;
  course_id: string | null;
  task_id: string | null;
  task_problems: Record<string, unknown>;
  /**
   * A map. From the backend: a `Packed`, the bytes as sent (see inputdataBytes, inputState);
   * the `grade` command and tests may give plain values.
   */
  inputdata: Packed | Record<string, unknown>;
  environment_type: string;
  environment: string;
  environment_parameters: Record<string, unknown>;
  debug: boolean | "ssh";
}
export interface BackendKillJob {
  type: "BackendKillJob";
  job_id: string;
  state: string;
}
export interface Ping {
  type: "Ping";
}
export type BackendMessage = BackendNewJob | BackendKillJob | Ping;

/**
 * Python's round(x, 2): half to even, on the exact binary value of x (so 2.675 -> 2.67,
 * because the double nearest 2.675 is slightly below it).
 */
export function roundGrade(grade: number): number {
  if (!Number.isFinite(grade)) return grade;
  const exact = Math.abs(grade).toFixed(100); // exact decimal expansion of the double
  const dot = exact.indexOf(".");
  const kept = exact.slice(0, dot + 3);
  const rest = exact.slice(dot + 3);
  let value = Number(kept);
  const half = "5".padEnd(rest.length, "0");
  const lastDigit = Number(kept[kept.length - 1]);
  if (rest > half || (rest === half && lastDigit % 2 === 1)) value = Number((value + 0.01).toFixed(2));
  return grade < 0 ? -value : value;
}

function environmentsValue(envs: Environments): Packable {
  const out: Record<string, Packable> = {};
  for (const [envtype, byName] of Object.entries(envs)) {
    const inner: Record<string, Packable> = {};
    for (const [name, e] of Object.entries(byName)) {
      inner[name] = {
        id: e.id, title: e.title, created: e.created, ports: e.ports, runtime: e.runtime, advertised: e.advertised,
      };
    }
    out[envtype] = inner;
  }
  return out;
}

/** Encodes an agent message as one ZeroMQ frame: fields in INGInious's order, then "@type". */
export function encodeAgentMessage(m: AgentMessage): Buffer {
  switch (m.type) {
    case "AgentHello":
      return pack({
        friendly_name: m.friendly_name,
        available_job_slots: m.available_job_slots,
        available_environments: environmentsValue(m.available_environments),
        "@type": m.type,
      });
    case "AgentJobStarted":
      return pack({ job_id: m.job_id, "@type": m.type });
    case "AgentJobDone":
      return pack({
        job_id: m.job_id,
        result: m.result,
        grade: new Float64(roundGrade(m.grade)),
        problems: m.problems as Packable,
        tests: m.tests as Packable,
        custom: m.custom as Packable,
        state: m.state,
        archive: m.archive,
        stdout: m.stdout,
        stderr: m.stderr,
        "@type": m.type,
      });
    case "AgentJobSSHDebug":
      return pack({
        job_id: m.job_id, host: m.host, port: m.port, user: m.user, password: m.password, "@type": m.type,
      });
    case "Pong":
      return pack({ "@type": m.type });
  }
}

/** The frame for an outgoing message (an encoded one is used as it is). */
export function encodeOutgoing(m: OutgoingMessage): Buffer {
  if (m.type === "EncodedJobDone") return Buffer.from(m.frame.buffer, m.frame.byteOffset, m.frame.byteLength);
  return encodeAgentMessage(m);
}

/** Reads back an encoded AgentJobDone (the `grade` command prints it). */
export function decodeJobDone(frame: Uint8Array): AgentJobDone {
  const raw = unpack(frame) as Record<string, unknown>;
  return {
    type: "AgentJobDone",
    job_id: raw["job_id"] as string,
    result: raw["result"] as [JobResultKind, string],
    grade: raw["grade"] as number,
    problems: raw["problems"] as Record<string, unknown>,
    tests: raw["tests"] as Record<string, unknown>,
    custom: raw["custom"] as Record<string, unknown>,
    state: raw["state"] as string,
    archive: (raw["archive"] as Uint8Array | null) ?? null,
    stdout: (raw["stdout"] as string | null) ?? null,
    stderr: (raw["stderr"] as string | null) ?? null,
  };
}

/** Encodes a backend message (used by tests and the bench, which play the backend). */
export function encodeBackendMessage(m: BackendMessage): Buffer {
  switch (m.type) {
    case "BackendNewJob":
      return pack({
        job_id: m.job_id,
        course_id: m.course_id,
        task_id: m.task_id,
        task_problems: m.task_problems as Packable,
        inputdata: m.inputdata as Packable,
        environment_type: m.environment_type,
        environment: m.environment,
        environment_parameters: m.environment_parameters as Packable,
        debug: m.debug,
        "@type": m.type,
      });
    case "BackendKillJob":
      return pack({ job_id: m.job_id, state: m.state, "@type": m.type });
    case "Ping":
      return pack({ "@type": m.type });
  }
}

/** A frame from the backend that could not be used. `jobId` is set when the frame named a job. */
export class BadFrameError extends Error {
  constructor(
    message: string,
    readonly messageType: string | null,
    readonly size: number,
    readonly jobId: string | null,
  ) {
    super(message);
    this.name = "BadFrameError";
  }
}

const FIELDS: Record<BackendMessage["type"], readonly string[]> = {
  BackendNewJob: [
    "job_id", "course_id", "task_id", "task_problems", "inputdata", "environment_type", "environment",
    "environment_parameters", "debug",
  ],
  BackendKillJob: ["job_id", "state"],
  Ping: [],
};

function isMap(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);
}

/**
 * Decodes and checks one frame from the backend. Throws BadFrameError with the reason,
 * the message type when it could be read, and the job id when it could be read.
 * `inputdata` is checked (msgpack Python loads, nesting up to 512) and kept as its bytes.
 */
export function decodeBackendMessage(frame: Uint8Array): BackendMessage {
  const view = new ViewReader(frame);
  const spans = new Map<string, [number, number]>();
  let type: unknown = undefined;
  let jobId: string | null = null;
  try {
    if (new Head().read(frame, 0, frame.length).kind !== MAP) {
      throw new BadFrameError("not a msgpack map", null, frame.length, null);
    }
    const end = forEachEntry(frame, 0, frame.length, (keyAt, valueAt, valueEnd) => {
      const key = view.read(keyAt, valueAt).value;
      const name = typeof key === "string" ? key : `<${typeof key} key>`;
      spans.set(name, [valueAt, valueEnd]);
      if (name === "@type") type = view.read(valueAt, valueEnd).value;
      if (name === "job_id") jobId = view.string(valueAt, valueEnd);
    }, new MsgpackWalker(frame, NO_OBJECT_LIMIT, false)); // the layout first: the type and job id come last and first
    if (end !== frame.length) throw new BadFrameError("bytes after the msgpack map", null, frame.length, jobId);
    new MsgpackWalker(frame, NO_OBJECT_LIMIT).skip(0, frame.length); // then what is in it
  } catch (err) {
    if (err instanceof BadFrameError) throw err;
    const t = typeof type === "string" ? type : null;
    throw new BadFrameError(`not msgpack: ${(err as Error).message}`, t, frame.length, jobId);
  }
  if (typeof type !== "string") throw new BadFrameError("no @type", null, frame.length, jobId);
  if (!Object.hasOwn(FIELDS, type)) {
    throw new BadFrameError(`unknown message type ${JSON.stringify(type)}`, type, frame.length, jobId);
  }
  const t = type as BackendMessage["type"];
  const fail = (reason: string): never => {
    throw new BadFrameError(`${t}: ${reason}`, t, frame.length, jobId);
  };
  const expected = FIELDS[t];
  const present = [...spans.keys()].filter((k) => k !== "@type");
  const missing = expected.filter((k) => !spans.has(k));
  const extra = present.filter((k) => !expected.includes(k));
  if (missing.length > 0) fail(`missing field(s) ${missing.join(", ")}`);
  if (extra.length > 0) fail(`unexpected field(s) ${extra.join(", ")}`);

  // every field the agent reads is decoded; inputdata is only checked to be a map
  const field = (k: string): unknown => view.read(spans.get(k)![0], spans.get(k)![1]).value;
  const str = (k: string): string => {
    const v = field(k);
    if (typeof v !== "string") fail(`field ${k} must be a string`);
    return v as string;
  };
  const strOrNull = (k: string): string | null => (field(k) === null ? null : str(k));
  const map = (k: string): Record<string, unknown> => {
    const v = field(k);
    if (!isMap(v)) fail(`field ${k} must be a map`);
    return v as Record<string, unknown>;
  };
  /** A map kept as the bytes the backend sent. */
  const packedMap = (k: string): Packed => {
    const [start, end] = spans.get(k)!;
    if (new Head().read(frame, start, end).kind !== MAP) fail(`field ${k} must be a map`);
    return new Packed(frame.subarray(start, end));
  };

  switch (t) {
    case "Ping":
      return { type: "Ping" };
    case "BackendKillJob":
      return { type: "BackendKillJob", job_id: str("job_id"), state: str("state") };
    case "BackendNewJob": {
      const debug = field("debug");
      if (debug !== true && debug !== false && debug !== "ssh") fail('field debug must be true, false or "ssh"');
      return {
        type: "BackendNewJob",
        job_id: str("job_id"),
        course_id: strOrNull("course_id"),
        task_id: strOrNull("task_id"),
        task_problems: map("task_problems"),
        inputdata: packedMap("inputdata"),
        environment_type: str("environment_type"),
        environment: str("environment"),
        environment_parameters: map("environment_parameters"),
        debug: debug as boolean | "ssh",
      };
    }
  }
}

/**
 * Decodes an agent message (for tests and the bench, which play the backend). Loose: no field
 * checks; the same caps as a container message (a frame over them throws).
 */
export function decodeAgentFrame(frame: Uint8Array): Record<string, unknown> & { "@type": string } {
  const raw = unpack(frame, DEFAULT_DECODE_LIMITS);
  if (!isMap(raw) || typeof raw["@type"] !== "string") throw new Error("not an agent message");
  return raw as Record<string, unknown> & { "@type": string };
}

/** The msgpack bytes of a job's inputdata, for the container's `start` (the backend's own bytes when it has them). */
export function inputdataBytes(inputdata: BackendNewJob["inputdata"]): Uint8Array {
  return inputdata instanceof Packed ? inputdata.bytes : pack(inputdata as Packable);
}

/** inputdata["@state"] when it is a str, else "" (the state a job reports when it ends without a result of its own). */
export function inputState(inputdata: BackendNewJob["inputdata"]): string {
  if (!(inputdata instanceof Packed)) {
    const state = inputdata["@state"];
    return typeof state === "string" ? state : "";
  }
  const b = inputdata.bytes;
  const view = new ViewReader(b);
  let state = "";
  forEachEntry(b, 0, b.length, (keyAt, valueAt, valueEnd) => {
    if (view.string(keyAt, valueAt) === "@state") state = view.string(valueAt, valueEnd) ?? "";
  });
  return state;
}

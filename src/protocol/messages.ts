/**
 * The messages exchanged with the INGInious backend (protocol.md section 1):
 * typed values, their encoding in INGInious's field order, and a strict decoder
 * for what the backend sends.
 */
import { Float64, pack, unpack, type Packable } from "./msgpack.js";

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
  result: [JobResultKind, string];
  grade: number;
  problems: Record<string, unknown>;
  tests: Record<string, unknown>;
  custom: Record<string, unknown>;
  state: string;
  archive: Uint8Array | null;
  stdout: string | null;
  stderr: string | null;
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
  inputdata: Record<string, unknown>;
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
 */
export function decodeBackendMessage(frame: Uint8Array): BackendMessage {
  let raw: unknown;
  try {
    raw = unpack(frame);
  } catch (err) {
    throw new BadFrameError(`not msgpack: ${(err as Error).message}`, null, frame.length, null);
  }
  if (!isMap(raw)) throw new BadFrameError("not a msgpack map", null, frame.length, null);
  const type = raw["@type"];
  const jobId = typeof raw["job_id"] === "string" ? raw["job_id"] : null;
  if (typeof type !== "string") throw new BadFrameError("no @type", null, frame.length, jobId);
  if (!Object.hasOwn(FIELDS, type)) {
    throw new BadFrameError(`unknown message type ${JSON.stringify(type)}`, type, frame.length, jobId);
  }
  const t = type as BackendMessage["type"];
  const fail = (reason: string): never => {
    throw new BadFrameError(`${t}: ${reason}`, t, frame.length, jobId);
  };
  const expected = FIELDS[t];
  const present = Object.keys(raw).filter((k) => k !== "@type");
  const missing = expected.filter((k) => !Object.hasOwn(raw as object, k));
  const extra = present.filter((k) => !expected.includes(k));
  if (missing.length > 0) fail(`missing field(s) ${missing.join(", ")}`);
  if (extra.length > 0) fail(`unexpected field(s) ${extra.join(", ")}`);

  const str = (k: string): string => {
    const v = raw[k];
    if (typeof v !== "string") fail(`field ${k} must be a string`);
    return v as string;
  };
  const strOrNull = (k: string): string | null => (raw[k] === null || raw[k] === undefined ? null : str(k));
  const map = (k: string): Record<string, unknown> => {
    const v = raw[k];
    if (!isMap(v)) fail(`field ${k} must be a map`);
    return v as Record<string, unknown>;
  };

  switch (t) {
    case "Ping":
      return { type: "Ping" };
    case "BackendKillJob":
      return { type: "BackendKillJob", job_id: str("job_id"), state: str("state") };
    case "BackendNewJob": {
      const debug = raw["debug"];
      if (debug !== true && debug !== false && debug !== "ssh") fail('field debug must be true, false or "ssh"');
      return {
        type: "BackendNewJob",
        job_id: str("job_id"),
        course_id: strOrNull("course_id"),
        task_id: strOrNull("task_id"),
        task_problems: map("task_problems"),
        inputdata: map("inputdata"),
        environment_type: str("environment_type"),
        environment: str("environment"),
        environment_parameters: map("environment_parameters"),
        debug: debug as boolean | "ssh",
      };
    }
  }
}

/** Decodes an agent message (for tests and the bench, which play the backend). Loose: no field checks. */
export function decodeAgentFrame(frame: Uint8Array): Record<string, unknown> & { "@type": string } {
  const raw = unpack(frame);
  if (!isMap(raw) || typeof raw["@type"] !== "string") throw new Error("not an agent message");
  return raw as Record<string, unknown> & { "@type": string };
}

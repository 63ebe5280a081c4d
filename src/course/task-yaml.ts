/**
 * A task's `task.yaml` read as INGInious's frontend reads it before it sends a job: the old
 * formats migrated (a top-level `environment` with `limits`, `run_cmd`, `network_grading`
 * becomes `environment_id`/`environment_type`/`environment_parameters`; `ssh_allowed` gives the
 * `-ssh` environment type), the environment type checked (multiple-choice tasks are graded by
 * INGInious's MCQ agent, not in a container, and are refused), and the container parameters
 * cleaned up with the frontend's defaults (limits `time` 20 s, `hard_time` 3 x time, `memory`
 * and `disk` 1,024 MB; an empty `run_cmd` is none). Errors name the file and the field.
 */
import { promises as fs } from "node:fs";
import path from "node:path";
import { parseYamlMapping, YamlFileError } from "./yaml11.js";

/** The environment types INGInious's frontend knows whose jobs run in a container. */
export const CONTAINER_ENV_TYPES: readonly string[] = ["docker", "docker-ssh", "nvidia", "nvidia-ssh"];
const DEFAULT_TIME = 20;
const DEFAULT_MEMORY = 1024;
const DEFAULT_DISK = 1024;

export interface TaskLimits {
  time: number;
  /** Absent when the task gives no `limits` at all: the agent then takes 3 x time, as INGInious's does. */
  hard_time?: number;
  memory: number;
  disk: number;
}

/** What the frontend sends as a job's `environment_parameters` for a container task. */
export interface ContainerParameters {
  run_cmd: unknown;
  network_grading: unknown;
  limits: TaskLimits;
}

export interface ContainerTask {
  file: string;
  environmentType: string;
  environmentId: string;
  environmentParameters: ContainerParameters;
  /** The task's `problems`, as the frontend sends them (`task_problems`). */
  problems: Record<string, unknown>;
}

/** A task the agent cannot grade: not an error in the file, but no container job either. */
export class NotAContainerTaskError extends YamlFileError {}

const isMapping = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array) && !(v instanceof Date);

/** Python's `int(value)` for the values YAML can give: whole-number text, numbers (truncated), booleans. */
export function pythonInt(value: unknown): number | null {
  if (typeof value === "boolean") return value ? 1 : 0;
  if (typeof value === "number") return Number.isFinite(value) ? Math.trunc(value) : null;
  if (typeof value === "bigint") return Number(value);
  if (typeof value === "string" && /^\s*[+-]?\d+(_\d+)*\s*$/.test(value)) return Number.parseInt(value.replace(/_/g, ""), 10);
  return null;
}

/** The frontend's migration of task files written before INGInious 0.7, and of 0.8.5's `ssh_allowed`. */
function migrate(content: Record<string, unknown>, file: string): Record<string, unknown> {
  const out = { ...content };
  if ("environment" in out) {
    out["environment_id"] = out["environment"];
    out["environment_type"] = out["environment_id"] !== "mcq" ? "docker" : "mcq";
    delete out["environment"];
    out["environment_parameters"] = {
      limits: "limits" in out ? out["limits"] : {},
      run_cmd: "run_cmd" in out ? out["run_cmd"] : "",
      network_grading: "network_grading" in out ? out["network_grading"] : false,
    };
  }
  const params = out["environment_parameters"] ?? {};
  if (!isMapping(params)) throw new YamlFileError(file, "environment_parameters", "expected a mapping");
  if (params["ssh_allowed"]) {
    if (typeof out["environment_type"] !== "string") {
      throw new YamlFileError(file, "environment_type", "missing, while environment_parameters.ssh_allowed is set");
    }
    out["environment_type"] = `${out["environment_type"]}-ssh`;
  }
  return out;
}

function limit(limits: Record<string, unknown>, key: string, fallback: unknown, file: string): number {
  const raw = key in limits ? limits[key] : fallback;
  const value = pythonInt(raw);
  if (value === null || value <= 0) {
    throw new YamlFileError(file, `environment_parameters.limits.${key}`, `expected a positive whole number, got ${JSON.stringify(raw) ?? String(raw)}`);
  }
  return value;
}

/** The frontend's check of a container task's parameters, with its defaults. */
function containerParameters(params: Record<string, unknown>, file: string): ContainerParameters {
  const runCmd = params["run_cmd"] ?? "";
  if (typeof runCmd !== "string") throw new YamlFileError(file, "environment_parameters.run_cmd", "expected a command line (text)");
  const out: ContainerParameters = {
    run_cmd: runCmd === "" ? null : runCmd,
    network_grading: params["network_grading"] ?? false,
    limits: { time: DEFAULT_TIME, memory: DEFAULT_MEMORY, disk: DEFAULT_DISK },
  };
  if (!("limits" in params)) return out;
  const limits = params["limits"];
  if (!isMapping(limits)) throw new YamlFileError(file, "environment_parameters.limits", "expected a mapping (time, hard_time, memory, disk)");
  const time = limit(limits, "time", DEFAULT_TIME, file);
  const hardRaw = limits["hard_time"];
  const hardEmpty = !("hard_time" in limits) || (typeof hardRaw === "string" && hardRaw.trim() === "");
  out.limits = {
    time,
    hard_time: hardEmpty ? 3 * time : limit(limits, "hard_time", "", file),
    memory: limit(limits, "memory", DEFAULT_MEMORY, file),
    disk: limit(limits, "disk", DEFAULT_DISK, file),
  };
  return out;
}

function checkProblems(problems: unknown, file: string): Record<string, unknown> {
  if (problems === undefined) throw new YamlFileError(file, "problems", "missing: a task must describe its problems");
  if (!isMapping(problems)) throw new YamlFileError(file, "problems", "expected a mapping of problem ids to problems");
  for (const [pid, problem] of Object.entries(problems)) {
    if (!isMapping(problem)) throw new YamlFileError(file, `problems.${pid}`, "expected a mapping (type, header, ...)");
    if (typeof problem["type"] !== "string" || problem["type"] === "") {
      throw new YamlFileError(file, `problems.${pid}.type`, "missing: each problem needs a type (code, file, multiple_choice, ...)");
    }
  }
  return problems;
}

/** A task's content, as parsed from its `task.yaml`, read into the job the frontend would send. */
export function taskFromContent(content: Record<string, unknown>, file: string): ContainerTask {
  const data = migrate(content, file);
  const problems = checkProblems(data["problems"], file);
  const environmentId = data["environment_id"] ?? "default";
  if (typeof environmentId !== "string" || environmentId === "") {
    throw new YamlFileError(file, "environment_id", `expected the environment's name, got ${JSON.stringify(environmentId)}`);
  }
  const environmentType = data["environment_type"];
  if (environmentType === undefined) {
    throw new YamlFileError(file, "environment_type", `missing (the frontend refuses a task without one; e.g. docker)`);
  }
  if (environmentType === "mcq") {
    throw new NotAContainerTaskError(file, "environment_type",
      "mcq: a multiple-choice task is graded by INGInious's MCQ agent, not in a container; there is nothing to grade here");
  }
  if (typeof environmentType !== "string" || !CONTAINER_ENV_TYPES.includes(environmentType)) {
    throw new YamlFileError(file, "environment_type",
      `unknown type ${JSON.stringify(environmentType)} (container types: ${CONTAINER_ENV_TYPES.join(", ")}; mcq is not graded in a container)`);
  }
  const params = (data["environment_parameters"] ?? {}) as Record<string, unknown>;
  return { file, environmentType, environmentId, environmentParameters: containerParameters(params, file), problems };
}

/** Reads COURSE/TASK/task.yaml under a tasks folder. */
export async function readTask(tasksDir: string, courseId: string, taskId: string): Promise<ContainerTask> {
  const file = path.join(tasksDir, courseId, taskId, "task.yaml");
  let text: string;
  try {
    text = await fs.readFile(file, "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new YamlFileError(file, null, code === "ENOENT" ? "no such file (every task folder has a task.yaml)" : (err as Error).message);
  }
  return taskFromContent(parseYamlMapping(text, file), file);
}

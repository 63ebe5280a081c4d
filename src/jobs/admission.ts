/**
 * Admission: whether this agent can run a BackendNewJob, decided from the message and a snapshot
 * of the agent (its environments and runtimes, usable memory, SSH debug host, tasks folder and
 * container settings). A pure function: it reads no file, takes no port and asks Docker nothing.
 * It returns a plan (the job's task but for its directory and host ports, the ports it wants,
 * the warm containers that could run it) or a refusal (the text the student sees and the reason
 * the log gives). Taking the ports, checking that the task folder exists and deciding what runs
 * now are dispatch's (dispatch.ts). The id rule and the memory rule live here, one place each.
 */
import path from "node:path";
import type { RuntimeSpec } from "../config.js";
import { containerLabels } from "../docker/labels.js";
import { inputdataBytes, inputState, type BackendNewJob, type Environments } from "../protocol/messages.js";
import { UNKNOWN_CONTAINER } from "../protocol/python-texts.js";
import { parseJobParameters, type JobParameters } from "./job-params.js";
import type { JobSpec, StudentEnvironment } from "./job-task.js";
import { isValidId } from "./ids.js";
import { warmKey } from "./warm-containers.js";

/** CPU and wall-clock limit of a job with published ports (SSH debug): the student works in it. */
const SSH_DEBUG_LIMIT_SECONDS = 30 * 60;
/** The least memory a job's container gets, whatever it asks. */
const MIN_JOB_MEMORY_MB = 20;

/** What admission knows of the agent when a job arrives. */
export interface AdmissionSnapshot {
  environments: Environments;
  /** By envtype. */
  runtimes: ReadonlyMap<string, RuntimeSpec>;
  /**
   * The memory all jobs may reserve together (host memory less the reserve): a job asking for more
   * could never run here, even alone. Whether it fits now is dispatch's question.
   */
  usableMemoryMb: number;
  /** Where students connect for SSH debug; null: SSH debug is off. */
  debugHost: string | null;
  /** Absolute tasks folder. */
  tasksRoot: string;
  agentId: string;
  /** Whether `limits.disk` is enforced (--disable-disk-limit turns it off). */
  diskLimit: boolean;
}

export interface AdmissionPlan {
  kind: "plan";
  previousState: string;
  /** The job's task, but for its directory and its ports, which dispatch gives it. */
  task: Omit<JobSpec, "jobDir" | "ports">;
  /** Container ports to publish, each on a host port dispatch takes for it. */
  wantedPorts: number[];
  /** The warm containers that could run it (see warm-containers.ts), or null. */
  warmKey: string | null;
}

export interface AdmissionRefusal {
  kind: "refusal";
  previousState: string;
  /** What the job's result says. */
  text: string;
  /** What the log says. */
  reason: string;
  /**
   * A refusal the Python agent makes only once it found the task folder: a job whose folder is
   * missing is refused for that first (dispatch looks it up). Null when the refusal comes first.
   */
  afterTaskFolder: string | null;
}

export type Admission = AdmissionPlan | AdmissionRefusal;

/** The state the job's `@state` input carries over from the student's previous submission. */
export function previousStateOf(msg: BackendNewJob): string {
  return inputState(msg.inputdata);
}

export function admit(msg: BackendNewJob, snap: AdmissionSnapshot): Admission {
  const previousState = previousStateOf(msg);
  const refuse = (text: string, reason: string, afterTaskFolder: string | null = null): AdmissionRefusal =>
    ({ kind: "refusal", previousState, text, reason, afterTaskFolder });
  // The Python agent's order: for a job of a task, the environment, then the task folder
  // (dispatch), then the parameters and the memory; for a task-less job, the parameters, the
  // memory, then the environment (with another text).
  const taskless = msg.course_id === null && msg.task_id === null;
  // own keys only: "constructor" or "__proto__" from a backend must not reach Object's members
  const byName = Object.hasOwn(snap.environments, msg.environment_type) ? snap.environments[msg.environment_type] : undefined;
  const env = byName !== undefined && Object.hasOwn(byName, msg.environment) ? byName[msg.environment] : undefined;
  const runtime = snap.runtimes.get(msg.environment_type);
  const unknownEnvironment = env === undefined || runtime === undefined;
  const envReason = `unknown environment ${msg.environment_type}/${msg.environment}`;
  if (!taskless && unknownEnvironment) {
    return refuse("This environment is not available in this agent. Please contact your course administrator.", envReason);
  }
  const folders = taskFolders(msg, snap.tasksRoot);
  if (folders === null) {
    return refuse("This job names an invalid course or task. Please contact your course administrator.", "invalid course or task id");
  }
  const later = folders.taskDir;
  let params: JobParameters;
  try {
    params = parseJobParameters(msg.environment_parameters);
  } catch (err) {
    return refuse("The agent is unable to parse the parameters", (err as Error).message, later);
  }
  let memoryMb = params.limits.memoryMb;
  if (memoryMb < MIN_JOB_MEMORY_MB) memoryMb = MIN_JOB_MEMORY_MB;
  else if (memoryMb > snap.usableMemoryMb) {
    // INGInious's own text, with what could be available here rather than a slot's share
    return refuse(
      `Not enough memory on agent (available: ${snap.usableMemoryMb}MB). Please contact your course administrator.`,
      `asks for ${memoryMb}MB`,
      later,
    );
  }
  if (env === undefined || runtime === undefined) return refuse(UNKNOWN_CONTAINER, envReason);
  const wantedPorts = [...env.ports];
  if (msg.debug === "ssh" && !wantedPorts.includes(22)) wantedPorts.push(22);
  if (wantedPorts.length > 0 && snap.debugHost === null && msg.debug === "ssh") {
    return refuse("SSH debug is not available on this agent. Please contact your course administrator.", "no debug host", folders.taskDir);
  }
  const debugLimits = wantedPorts.length > 0;
  const task: AdmissionPlan["task"] = {
    jobId: msg.job_id,
    taskDir: folders.taskDir,
    courseDir: folders.courseDir,
    image: env.id,
    runtime: env.runtime,
    envtype: msg.environment_type,
    environment: msg.environment,
    time: debugLimits ? SSH_DEBUG_LIMIT_SECONDS : params.limits.time,
    hardTime: debugLimits ? SSH_DEBUG_LIMIT_SECONDS : params.limits.hardTime,
    memoryMb,
    diskMb: snap.diskLimit ? params.limits.diskMb : null,
    network: params.networkGrading,
    inputdata: inputdataBytes(msg.inputdata),
    debug: msg.debug,
    runCmd: params.runCmd,
    envtypes: [...snap.runtimes.keys()],
    runAsRoot: runtime.runAsRoot,
    labels: containerLabels(snap.agentId, msg.job_id, "grading"),
    studentLabels: containerLabels(snap.agentId, msg.job_id, "student"),
    studentEnvironments: studentEnvironments(snap.environments, msg.environment_type),
    envtypeHasSsh: msg.environment_type.includes("ssh"),
    warm: null,
  };
  // Jobs with no network and no ports may run in a warm container of their environment.
  const warmFor = !params.networkGrading && wantedPorts.length === 0
    ? warmKey(msg.environment_type, msg.environment, env.id, env.runtime)
    : null;
  return { kind: "plan", previousState, task, wantedPorts, warmKey: warmFor };
}

/** The task and course folders of a job (both null for a task-less job), or null for bad ids. */
function taskFolders(msg: BackendNewJob, tasksRoot: string): { taskDir: string | null; courseDir: string | null } | null {
  if (msg.course_id === null && msg.task_id === null) return { taskDir: null, courseDir: null };
  if (msg.course_id === null || msg.task_id === null || !isValidId(msg.course_id) || !isValidId(msg.task_id)) return null;
  const courseDir = path.join(tasksRoot, msg.course_id);
  return { courseDir, taskDir: path.join(courseDir, msg.task_id) };
}

/** The environments of an envtype, by name, that the job's run_student may start. */
function studentEnvironments(environments: Environments, envtype: string): Record<string, StudentEnvironment> {
  const out: Record<string, StudentEnvironment> = {};
  for (const [name, e] of Object.entries(environments[envtype] ?? {})) out[name] = { image: e.id, runtime: e.runtime };
  return out;
}

/**
 * What the engine is asked to create for a job: the grading container (or a warm one waiting for
 * its job), a student container, and the short root container that removes files another user
 * left in a job directory. Pure functions of the task and the job's paths: memory and swap, the
 * runtime, nofile and pids limits, an SELinux level drawn from the job directory, port bindings,
 * networks and bind mounts. No log driver: the agent reads what it needs from the attach stream.
 */
import { createHash } from "node:crypto";
import type Docker from "dockerode";
import type { JobPaths } from "../src/jobs/job-directory.js";
import type { JobTask, StudentEnvironment } from "../src/jobs/job-task.js";

/** Two SELinux MCS categories drawn from a seed, so that jobs cannot read each other's files. */
function selinuxLevel(seed: string): string {
  const h = createHash("sha256").update(seed).digest();
  const c1 = h.readUInt16BE(0) % 1024;
  let c2 = h.readUInt16BE(2) % 1024;
  if (c2 === c1) c2 = (c1 + 1) % 1024;
  return `label=level:s0:c${Math.min(c1, c2)},c${Math.max(c1, c2)}`;
}

type ContainerSettings = Pick<JobTask, "cgroupVersion" | "runtime" | "nofile" | "pidsLimit">;

function hostConfigCommon(task: ContainerSettings, memoryMb: number, seed: string): Docker.HostConfig {
  const bytes = memoryMb * 1024 * 1024;
  return {
    Memory: bytes,
    MemorySwap: bytes,
    ...(task.cgroupVersion === 1 ? { MemorySwappiness: 0, OomKillDisable: true } : {}),
    Runtime: task.runtime,
    Ulimits: [{ Name: "nofile", Soft: task.nofile.soft, Hard: task.nofile.hard }],
    SecurityOpt: [selinuxLevel(seed)],
    PidsLimit: task.pidsLimit,
    // The agent reads what it needs through the attach stream and removes the container right
    // after: a copy of every byte in the engine's log driver (json-file: escaped JSON on disk)
    // would only cost the engine CPU and disk, tens of megabytes for a big result.
    LogConfig: { Type: "none", Config: {} },
  };
}

function portBindings(ports: Record<number, number>): {
  exposed: Record<string, object>;
  bindings: Record<string, Array<{ HostPort: string }>>;
} {
  const exposed: Record<string, object> = {};
  const bindings: Record<string, Array<{ HostPort: string }>> = {};
  for (const [internal, external] of Object.entries(ports)) {
    exposed[`${internal}/tcp`] = {};
    bindings[`${internal}/tcp`] = [{ HostPort: String(external) }];
  }
  return { exposed, bindings };
}

/** The grading container of a job (or a warm one, waiting for its job). */
export function gradingContainerSpec(
  t: ContainerSettings & Pick<JobTask, "image" | "labels">,
  p: JobPaths,
  memoryMb: number,
  ports: Record<number, number>,
  network: boolean,
): Docker.ContainerCreateOptions {
  const { exposed, bindings } = portBindings(ports);
  const useNetwork = network || Object.keys(ports).length > 0;
  return {
    Image: t.image,
    OpenStdin: true,
    StdinOnce: false,
    AttachStdin: true,
    AttachStdout: true,
    AttachStderr: false,
    Tty: false,
    Env: ["DEBUGGER=False"],
    Labels: t.labels,
    ExposedPorts: exposed,
    HostConfig: {
      ...hostConfigCommon(t, memoryMb, p.root),
      NetworkMode: useNetwork ? "bridge" : "none",
      PortBindings: bindings,
      ExtraHosts: ["host.docker.internal:host-gateway"],
      // task/student and task/systemfiles are mounts of their own: the grading code can empty
      // and refill them, not rename, remove or replace them, so a student container's bind of
      // them stays the job's folder (workers/student-binds.ts). The engine mounts by depth.
      Binds: [
        // A layered /task (src/jobs/task-layer.ts) is not relabelled: that would copy every
        // file of the course's folder up into the job's layer.
        p.taskVolume === null ? `${p.task}:/task:Z` : `${p.taskVolume}:/task`,
        `${p.student}:/task/student:Z`,
        `${p.systemfiles}:/task/systemfiles:Z`,
        `${p.sockets}:/sockets:Z`,
        `${p.courseCommon}:/course/common:ro,Z`,
        `${p.courseCommonStudent}:/course/common/student:ro,Z`,
      ],
    },
  };
}

/** What a grading container asked for in a run_student message, once checked against its own limits. */
export interface StudentRequest {
  environment: string;
  memoryMb: number;
  time: number;
  hardTime: number;
  shareNetwork: boolean;
  ssh: boolean;
  runAsRoot: boolean;
}

/**
 * A student container, talking to its grading container through `socket` (the grader's socket
 * as pinned by workers/student-binds.ts). Its /task/student/scripts is the student folder's own
 * subfolder, not a bind of its own: a link the grader puts there resolves inside this container.
 */
export function studentContainerSpec(
  t: ContainerSettings & Pick<JobTask, "studentLabels">,
  env: StudentEnvironment,
  p: JobPaths,
  socket: string,
  memoryMb: number,
  ports: Record<number, number>,
  networkMode: string,
): Docker.ContainerCreateOptions {
  const { exposed, bindings } = portBindings(ports);
  return {
    Image: env.image,
    Cmd: ["_run_student_intern"],
    OpenStdin: true,
    StdinOnce: false,
    Tty: false,
    Labels: t.studentLabels,
    ExposedPorts: exposed,
    HostConfig: {
      ...hostConfigCommon({ ...t, runtime: env.runtime }, memoryMb, p.root),
      NetworkMode: networkMode,
      PortBindings: bindings,
      Binds: [
        `${p.student}:/task/student:Z`,
        `${socket}:/__parent.sock:Z`,
        `${p.systemfiles}:/task/systemfiles:ro,Z`,
        `${p.courseCommonStudent}:/course/common/student:ro,Z`,
      ],
    },
  };
}

/** A container of the job's own image that removes, as root, what the job's containers left in `dir`. */
export function rootCleanupSpec(t: Pick<JobTask, "image" | "labels" | "runtime">, dir: string): Docker.ContainerCreateOptions {
  return {
    Image: t.image,
    Cmd: ["rm", "-rf", "/job/task", "/job/sockets", "/job/student-sockets", "/job/course", "/job/upper", "/job/work"],
    User: "0",
    Labels: t.labels,
    HostConfig: { Binds: [`${dir}:/job:Z`], NetworkMode: "none", Runtime: t.runtime },
  };
}

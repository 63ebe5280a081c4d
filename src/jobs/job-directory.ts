/**
 * A job's private directory under --tmpdir (protocol.md section 4):
 *   task/ (copy of the task, with student/ and systemfiles/), sockets/, course/common/ (copy of
 *   `$common` or empty), course/common/student/, and student-sockets/, which no container sees
 *   (workers/student-binds.ts). Directories containers write to are mode 0777; task/student/ and
 *   task/systemfiles/ exist before any container is made, as student containers bind them.
 * A marker file names the agent that made it, so that a later run removes only its own.
 */
import { chmodSync, existsSync, mkdirSync, promises as fs, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { copyTree } from "./copy-tree.js";

export const JOB_DIR_PREFIX = "job-";
export const JOB_DIR_MARKER = ".inginious-agent-docker";

export interface JobPaths {
  root: string;
  task: string;
  student: string;
  studentScripts: string;
  systemfiles: string;
  sockets: string;
  /** Where the sockets bound into student containers are linked: no container sees it. */
  studentSockets: string;
  courseCommon: string;
  courseCommonStudent: string;
}

export function jobPaths(root: string): JobPaths {
  const task = path.join(root, "task");
  const student = path.join(task, "student");
  return {
    root,
    task,
    student,
    studentScripts: path.join(student, "scripts"),
    systemfiles: path.join(task, "systemfiles"),
    sockets: path.join(root, "sockets"),
    studentSockets: path.join(root, "student-sockets"),
    courseCommon: path.join(root, "course", "common"),
    courseCommonStudent: path.join(root, "course", "common", "student"),
  };
}

function mkdirOpen(p: string): void {
  mkdirSync(p, { recursive: true });
  chmodSync(p, 0o777);
}

/*
 * Making and filling a job directory runs in pool threads and is synchronous: a handful of
 * blocking system calls there cost far less CPU than a promise around each of them.
 */

/** Creates and fills the job directory. `root` must not exist yet. */
export function prepareJobDirectory(root: string, marker: string, taskDir: string | null, courseDir: string | null): JobPaths {
  const p = jobPaths(root);
  mkdirSync(root, { mode: 0o777 });
  chmodSync(root, 0o777);
  writeFileSync(path.join(root, JOB_DIR_MARKER), marker);
  mkdirOpen(p.sockets);
  mkdirSync(p.studentSockets, { mode: 0o700 });
  if (taskDir !== null) copyTree(taskDir, p.task);
  mkdirOpen(p.task);
  mkdirOpen(p.student);
  mkdirOpen(p.systemfiles);
  mkdirSync(path.join(root, "course"), { recursive: true });
  const common = courseDir !== null ? path.join(courseDir, "$common") : null;
  if (common !== null && existsSync(common)) copyTree(common, p.courseCommon);
  mkdirSync(p.courseCommon, { recursive: true });
  const commonStudent = common !== null ? path.join(common, "student") : null;
  if (commonStudent === null || !existsSync(commonStudent)) mkdirSync(p.courseCommonStudent, { recursive: true });
  return p;
}

/**
 * Fills an existing, bound job directory in place (warm containers): the task's files into task/,
 * `$common` into course/common/. The directories themselves must stay: mounts pin them (task/,
 * task/student/ and task/systemfiles/ are each a mount of the warm container: the copy merges
 * into them).
 */
export function fillJobDirectory(p: JobPaths, taskDir: string | null, courseDir: string | null): void {
  if (taskDir !== null) copyTree(taskDir, p.task);
  mkdirOpen(p.student);
  const common = courseDir !== null ? path.join(courseDir, "$common") : null;
  if (common !== null && existsSync(common)) copyTree(common, p.courseCommon);
  mkdirSync(p.courseCommonStudent, { recursive: true });
}

function removeError(root: string, err: unknown): unknown {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === "EACCES" || code === "EPERM") {
    return new Error(
      `cannot remove job directory ${root}: permission denied on files a container wrote as another user; ` +
        `run the agent as root (or as a user allowed to remove them)`,
    );
  }
  return err;
}

/** removeJobDirectory for pool threads (see above). */
export function removeJobDirectorySync(root: string): void {
  try {
    rmSync(root, { recursive: true, force: true, maxRetries: 2 });
  } catch (err) {
    throw removeError(root, err);
  }
}

/** Removes a job directory; says plainly when files written by containers cannot be removed. */
export async function removeJobDirectory(root: string): Promise<void> {
  try {
    await fs.rm(root, { recursive: true, force: true, maxRetries: 2 });
  } catch (err) {
    throw removeError(root, err);
  }
}

/**
 * A job's private directory under --tmpdir (protocol.md section 4):
 *   task/ (copy of the task, with student/), sockets/, course/common/ (copy of `$common`
 *   or empty), course/common/student/. Directories containers write to are mode 0777.
 * A marker file names the agent that made it, so that a later run removes only its own.
 */
import { constants as fsc, promises as fs } from "node:fs";
import path from "node:path";

export const JOB_DIR_PREFIX = "job-";
export const JOB_DIR_MARKER = ".inginious-agent-docker";

export interface JobPaths {
  root: string;
  task: string;
  student: string;
  studentScripts: string;
  systemfiles: string;
  sockets: string;
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
    courseCommon: path.join(root, "course", "common"),
    courseCommonStudent: path.join(root, "course", "common", "student"),
  };
}

async function exists(p: string): Promise<boolean> {
  try {
    await fs.access(p, fsc.F_OK);
    return true;
  } catch {
    return false;
  }
}

async function mkdirOpen(p: string): Promise<void> {
  await fs.mkdir(p, { recursive: true });
  await fs.chmod(p, 0o777);
}

/** Creates and fills the job directory. `root` must not exist yet. */
export async function prepareJobDirectory(
  root: string,
  marker: string,
  taskDir: string | null,
  courseDir: string | null,
): Promise<JobPaths> {
  const p = jobPaths(root);
  await fs.mkdir(root, { mode: 0o777 });
  await fs.chmod(root, 0o777);
  await fs.writeFile(path.join(root, JOB_DIR_MARKER), marker);
  await mkdirOpen(p.sockets);
  if (taskDir !== null) {
    await fs.cp(taskDir, p.task, { recursive: true, errorOnExist: false, force: true });
  }
  await mkdirOpen(p.task);
  await mkdirOpen(p.student);
  await fs.mkdir(path.join(root, "course"), { recursive: true });
  const common = courseDir !== null ? path.join(courseDir, "$common") : null;
  if (common !== null && (await exists(common))) await fs.cp(common, p.courseCommon, { recursive: true });
  await fs.mkdir(p.courseCommon, { recursive: true });
  const commonStudent = common !== null ? path.join(common, "student") : null;
  if (commonStudent === null || !(await exists(commonStudent))) await fs.mkdir(p.courseCommonStudent, { recursive: true });
  return p;
}

/**
 * Fills an existing, bound job directory in place (warm containers): the task's files into task/,
 * `$common` into course/common/. The directories themselves must stay: mounts pin them.
 */
export async function fillJobDirectory(p: JobPaths, taskDir: string | null, courseDir: string | null): Promise<void> {
  if (taskDir !== null) await fs.cp(taskDir, p.task, { recursive: true, force: true });
  await mkdirOpen(p.student);
  const common = courseDir !== null ? path.join(courseDir, "$common") : null;
  if (common !== null && (await exists(common))) await fs.cp(common, p.courseCommon, { recursive: true, force: true });
  await fs.mkdir(p.courseCommonStudent, { recursive: true });
}

/** Removes a job directory; says plainly when files written by containers cannot be removed. */
export async function removeJobDirectory(root: string): Promise<void> {
  try {
    await fs.rm(root, { recursive: true, force: true, maxRetries: 2 });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "EACCES" || code === "EPERM") {
      throw new Error(
        `cannot remove job directory ${root}: permission denied on files a container wrote as another user; ` +
          `run the agent as root (or as a user allowed to remove them)`,
      );
    }
    throw err;
  }
}

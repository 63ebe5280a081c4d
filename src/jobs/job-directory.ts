/**
 * A job's private directory under --tmpdir (protocol.md section 4):
 *   task/ (copy of the task, with student/ and systemfiles/), sockets/, course/common/ (copy of
 *   `$common` or empty), course/common/student/, and student-sockets/, which no container sees
 *   (workers/student-binds.ts). Directories containers write to are mode 0777; task/student/ and
 *   task/systemfiles/ exist before any container is made, as student containers bind them.
 * A marker file names the agent that made it, so that a later run removes only its own.
 * The folders the agent itself creates, opens or binds into containers (`student`,
 * `student/scripts`, `systemfiles` and `$common/student`) must not be symbolic links in the
 * course: the agent would follow them onto the host. Such a task is refused (TaskFolderError).
 */
import { chmodSync, existsSync, lstatSync, mkdirSync, promises as fs, readdirSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { EngineTimeoutError } from "../docker/deadline.js";
import { CANNOT_MAKE_TEMP_DIRECTORY, UNKNOWN_AGENT_ERROR } from "../protocol/python-texts.js";
import { copyTree, CopyTreeError } from "./copy-tree.js";

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
  /** The writable layer and the overlay's work directory when /task is layered (task-layer.ts). */
  upper: string;
  work: string;
  /** The job's layer folder holding upper/ and work/ when it is not the job directory (layer-place.ts). */
  layer: string | null;
  /** The engine volume mounted at /task instead of task/ (null: task/ is a copy, bound there). */
  taskVolume: string | null;
}

/** `layer`: the job's layer folder outside its directory (layer-place.ts), holding upper/ and work/. */
export function jobPaths(root: string, layer: string | null = null): JobPaths {
  const task = path.join(root, "task");
  const layerRoot = layer ?? root;
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
    upper: path.join(layerRoot, "upper"),
    work: path.join(layerRoot, "work"),
    layer,
    taskVolume: null,
  };
}

/** Folders of a task the agent opens or binds itself: never links. */
const OPENED_IN_TASK = ["student", path.join("student", "scripts"), "systemfiles"];
/** Likewise in `$common`. */
const OPENED_IN_COMMON = ["student"];

/** A task folder the agent will not use; `message` is fit for the job's crash text. */
export class TaskFolderError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "TaskFolderError";
  }
}

/** Throws TaskFolderError when one of `names` under `dir` is a symbolic link. */
export function refuseLinks(dir: string, label: string, names: readonly string[]): void {
  for (const name of names) {
    let link = false;
    try {
      link = lstatSync(path.join(dir, name)).isSymbolicLink();
    } catch {
      /* absent (or under a link, refused before): the agent makes it */
    }
    if (link) {
      throw new TaskFolderError(
        `${label}/${name} is a symbolic link; the agent creates and opens that folder itself and does not follow links there: make it a plain folder`,
      );
    }
  }
}

/** Copies with the rules of copy-tree.ts, after refusing links the agent would follow. */
export function copyChecked(src: string, dst: string, courseDir: string, label: string, opened: readonly string[]): void {
  refuseLinks(src, label, opened);
  try {
    copyTree(src, dst, courseDir);
  } catch (err) {
    if (err instanceof CopyTreeError) throw new TaskFolderError(`${label}: ${err.message}`);
    throw err;
  }
  refuseLinks(dst, label, opened); // the source may have changed while it was copied
}

/**
 * The crash text for a job whose directory could not be made: the Python agent's where it has
 * one (its temporary directory, its copy's failure as an unknown error), else the agent's own.
 */
export function prepareFailureText(err: unknown): string {
  if (err instanceof TaskFolderError) return `The task folder cannot be used: ${err.message}. Please contact your course administrator.`;
  if (err instanceof JobRootError) return CANNOT_MAKE_TEMP_DIRECTORY;
  if (err instanceof EngineTimeoutError) return `The agent could not prepare the job's directory (${err.message}). Please retry.`;
  return UNKNOWN_AGENT_ERROR;
}

/**
 * Makes one folder of a job directory (its parent must exist), or leaves the one there. Never
 * recursive: a pool thread still filling a directory that the main thread has removed (its job
 * ended meanwhile) must fail, not make the directory again without its marker, where no reaper
 * would find it.
 */
function mkdirIn(p: string): void {
  try {
    mkdirSync(p);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
  }
}

function mkdirOpen(p: string): void {
  mkdirIn(p);
  chmodSync(p, 0o777);
}

/*
 * Making and filling a job directory runs in pool threads and is synchronous: a handful of
 * blocking system calls there cost far less CPU than a promise around each of them.
 */

/** The job's own directory could not be made (the tmpdir is full, or not writable). */
export class JobRootError extends Error {
  constructor(root: string, cause: Error) {
    super(`cannot make ${root}: ${cause.message}`);
    this.name = "JobRootError";
  }
}

function makeRoot(root: string, marker: string, layer: string | null = null): JobPaths {
  const p = jobPaths(root, layer);
  try {
    mkdirSync(root, { mode: 0o777 });
    chmodSync(root, 0o777);
    writeFileSync(path.join(root, JOB_DIR_MARKER), marker);
    mkdirOpen(p.sockets);
    mkdirSync(p.studentSockets, { mode: 0o700 });
  } catch (err) {
    throw new JobRootError(root, err as Error);
  }
  return p;
}

/** Creates and fills the job directory. `root` must not exist yet. */
export function prepareJobDirectory(root: string, marker: string, taskDir: string | null, courseDir: string | null): JobPaths {
  const p = makeRoot(root, marker);
  if (taskDir !== null && courseDir !== null) copyChecked(taskDir, p.task, courseDir, "task", OPENED_IN_TASK);
  mkdirOpen(p.task);
  return finishDirectory(p, courseDir);
}

/**
 * Creates the job directory of a layered /task (task-layer.ts): the empty writable layer and the
 * overlay's work directory instead of a copy of the task, in the job's layer folder `layer` (made
 * here, with the job directory's marker) or else the job directory; only task/student and
 * task/systemfiles are copied, as real folders of the job directory, mounted over the layer
 * (student containers bind them: workers/student-binds.ts).
 */
export function prepareLayeredJobDirectory(
  root: string, marker: string, taskDir: string, courseDir: string, volume: string, layer: string | null = null,
): JobPaths {
  const p = makeRoot(root, marker, layer);
  refuseLinks(taskDir, "task", OPENED_IN_TASK);
  if (layer !== null) {
    mkdirSync(layer, { mode: 0o700 });
    writeFileSync(path.join(layer, JOB_DIR_MARKER), marker);
  }
  mkdirOpen(p.upper); // the layer's root takes this mode, as the copy's task/ has 0777
  mkdirSync(p.work, { mode: 0o700 });
  mkdirOpen(p.task);
  for (const [name, dst] of [["student", p.student], ["systemfiles", p.systemfiles]] as const) {
    const src = path.join(taskDir, name);
    if (existsSync(src)) copyChecked(src, dst, courseDir, `task/${name}`, name === "student" ? ["scripts"] : []);
  }
  return finishDirectory({ ...p, taskVolume: volume }, courseDir);
}

/** What every job directory has after its task: the student folders and `$common`. */
function finishDirectory(p: JobPaths, courseDir: string | null): JobPaths {
  mkdirOpen(p.student);
  mkdirOpen(p.systemfiles);
  mkdirIn(path.join(p.root, "course"));
  const common = courseDir !== null ? path.join(courseDir, "$common") : null;
  if (common !== null && existsSync(common)) copyChecked(common, p.courseCommon, courseDir!, "$common", OPENED_IN_COMMON);
  mkdirIn(p.courseCommon);
  const commonStudent = common !== null ? path.join(common, "student") : null;
  if (commonStudent === null || !existsSync(commonStudent)) mkdirIn(p.courseCommonStudent);
  return p;
}

/**
 * Fills an existing, bound job directory in place (warm containers): the task's files into task/,
 * `$common` into course/common/. The directories themselves must stay: mounts pin them (task/,
 * task/student/ and task/systemfiles/ are each a mount of the warm container: the copy merges
 * into them).
 */
export function fillJobDirectory(p: JobPaths, taskDir: string | null, courseDir: string | null): void {
  if (taskDir !== null && courseDir !== null) copyChecked(taskDir, p.task, courseDir, "task", OPENED_IN_TASK);
  mkdirOpen(p.student);
  const common = courseDir !== null ? path.join(courseDir, "$common") : null;
  if (common !== null && existsSync(common)) copyChecked(common, p.courseCommon, courseDir!, "$common", OPENED_IN_COMMON);
  mkdirIn(p.courseCommonStudent);
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

const RM = { recursive: true, force: true, maxRetries: 2 } as const;

/** The entries of a directory but its marker ([] when it is gone). */
function entriesButMarker(names: string[]): string[] {
  return names.filter((n) => n !== JOB_DIR_MARKER);
}

/** removeJobDirectory for pool threads (see above). */
export function removeJobDirectorySync(root: string): void {
  try {
    let names: string[];
    try {
      names = readdirSync(root);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return;
      throw err;
    }
    for (const n of entriesButMarker(names)) rmSync(path.join(root, n), RM);
    rmSync(root, RM);
  } catch (err) {
    throw removeError(root, err);
  }
}

/**
 * Removes a job directory; says plainly when files written by containers cannot be removed. Its
 * marker goes last: a removal that fails half-way leaves a directory the reaper still knows as
 * this agent's (docker/reaper.ts), removed at the next sweep.
 */
export async function removeJobDirectory(root: string): Promise<void> {
  try {
    let names: string[];
    try {
      names = await fs.readdir(root);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return;
      throw err;
    }
    await Promise.all(entriesButMarker(names).map((n) => fs.rm(path.join(root, n), RM)));
    await fs.rm(root, RM);
  } catch (err) {
    throw removeError(root, err);
  }
}

/** Removes a job's layer folder (when it has one outside its directory: layer-place.ts), then its directory. */
export async function removeJobFolders(root: string, layer: string | null): Promise<void> {
  if (layer !== null) await removeJobDirectory(layer);
  await removeJobDirectory(root);
}

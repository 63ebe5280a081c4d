/**
 * The host paths a student container binds, proven to be the job's own at the moment they are
 * used. Code in the grading container may replace anything it can write under /task or /sockets
 * by a symbolic link to a host path, and the engine resolves a bind's source on the host, so:
 * - task/student/ and task/systemfiles/ are mount points of their own in the grading container
 *   (workers/container-specs.ts): it can empty and refill them, but not rename, remove or replace
 *   them. Each use still checks them, one component at a time from the job directory down: no
 *   link, a directory (a runtime that would not pin them fails this check, not the host).
 * - task/student/scripts/ is not bound on its own: student containers see it through
 *   task/student/, where a link the grader made resolves inside the student container. When it is
 *   missing the agent makes it, without following a link made meanwhile.
 * - the socket, made by the grading container under a name it chooses, is hard-linked into
 *   student-sockets/, a folder of the job no container sees (link() does not follow a link),
 *   checked there to be a socket, and that name is bound; it goes with the student container.
 *   Where the agent may not link a file it does not own (fs.protected_hardlinks, agent not root)
 *   the socket is moved there instead (rename() does not follow a link either).
 * Anything else is refused with a StudentBindRefused, before the engine is asked for anything.
 */
import { closeSync, constants, fchmodSync, linkSync, lstatSync, mkdirSync, openSync, renameSync, rmSync } from "node:fs";
import path from "node:path";
import type { JobPaths } from "../src/jobs/job-directory.js";

/** A bind source that is not, or no longer, the job's own: the request gets 254. */
export class StudentBindRefused extends Error {
  constructor(message: string) {
    super(message);
    this.name = "StudentBindRefused";
  }
}

const errno = (err: unknown): string => (err as NodeJS.ErrnoException).code ?? String(err);

/** `root/parts...`, each component a directory and none a link; the path, or StudentBindRefused. */
function provenDirectory(root: string, parts: string[]): string {
  let at = root;
  for (const part of ["", ...parts]) {
    at = part === "" ? at : path.join(at, part);
    let st;
    try {
      st = lstatSync(at);
    } catch (err) {
      throw new StudentBindRefused(`${at}: ${errno(err)}`);
    }
    if (st.isSymbolicLink()) throw new StudentBindRefused(`${at} is a symbolic link`);
    if (!st.isDirectory()) throw new StudentBindRefused(`${at} is not a directory`);
  }
  return at;
}

/** The directories a student container binds, checked where they are: task/student, task/systemfiles, course/common/student. */
export function proveStudentDirectories(p: JobPaths): void {
  provenDirectory(p.root, ["task", "student"]);
  provenDirectory(p.root, ["task", "systemfiles"]);
  provenDirectory(p.root, ["course", "common", "student"]);
}

/**
 * Makes task/student/scripts/ when the grader left none (INGInious's engine makes it for its
 * bind). mkdir() does not follow a link in the last component, and the mode is set through a
 * descriptor opened without following one: a link swapped in meanwhile is left alone.
 */
export function ensureScripts(p: JobPaths): void {
  provenDirectory(p.root, ["task", "student"]);
  try {
    mkdirSync(p.studentScripts);
  } catch (err) {
    if (errno(err) === "EEXIST") return; // whatever it is, only the student container sees it
    throw new StudentBindRefused(`cannot make ${p.studentScripts}: ${errno(err)}`);
  }
  let fd: number;
  try {
    fd = openSync(p.studentScripts, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW);
  } catch {
    return; // replaced already: not ours to change
  }
  try {
    fchmodSync(fd, 0o777);
  } finally {
    closeSync(fd);
  }
}

/**
 * Takes hold of sockets/<socketId>.sock: a hard link (or, failing that, the socket itself moved)
 * in student-sockets/, checked to be a socket. Returns the path to bind; unpinSocket removes it.
 */
export function pinSocket(p: JobPaths, socketId: string): string {
  provenDirectory(p.root, ["sockets"]);
  provenDirectory(p.root, ["student-sockets"]);
  const name = `${socketId}.sock`;
  const source = path.join(p.sockets, name);
  const pinned = path.join(p.studentSockets, name);
  try {
    linkSync(source, pinned);
  } catch (err) {
    const code = errno(err);
    // EPERM is also link()'s answer for a directory: that one is no socket, and stays where it is
    if ((code !== "EPERM" && code !== "EACCES") || !isSocket(source)) throw new StudentBindRefused(`cannot take hold of ${source}: ${code}`);
    try {
      renameSync(source, pinned);
    } catch (again) {
      throw new StudentBindRefused(`cannot take hold of ${source}: ${code}, then ${errno(again)}`);
    }
  }
  checkPinned(pinned, source);
  return pinned;
}

/** The pinned name is still a socket (nothing but the agent writes in student-sockets/). */
export function checkPinned(pinned: string, source = pinned): void {
  let st;
  try {
    st = lstatSync(pinned);
  } catch (err) {
    throw new StudentBindRefused(`${pinned}: ${errno(err)}`);
  }
  if (st.isSocket()) return;
  unpinSocket(pinned);
  throw new StudentBindRefused(`${source} is ${st.isSymbolicLink() ? "a symbolic link" : "not a socket"}`);
}

function isSocket(p: string): boolean {
  try {
    return lstatSync(p).isSocket();
  } catch {
    return false;
  }
}

/** Removes a pinned name (whatever it turned out to be; rm does not follow links). */
export function unpinSocket(pinned: string): void {
  try {
    rmSync(pinned, { recursive: true, force: true });
  } catch {
    /* gone with the job directory already */
  }
}

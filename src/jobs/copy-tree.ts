/**
 * Copies a task folder (or a course's `$common`) into a job directory the way INGInious copies
 * it (`_recursive_overwrite` in inginious/common/filesystems/local.py): directories are walked,
 * files copied with their modes, and every symbolic link is copied as a link, with the same
 * target text (relative or absolute, dangling or not), so that `lib.sh -> /course/common/lib.sh`
 * means inside the container what it meant to its author. One rule is stricter than INGInious's:
 * a link to a directory is walked (copied as that directory's content) only when the directory
 * is inside the course folder and does not contain the directory being copied (a link to `.`,
 * `..` or the course itself would loop); any other link to a directory, e.g. to one of the host's,
 * stays a link. So nothing outside the course folder is ever copied into a job.
 * Existing files are overwritten, existing directories merged (keeping their modes), so that it
 * also refills a directory a warm container has bound; an existing link in the way is replaced,
 * never written through.
 *
 * Synchronous on purpose: it runs in a pool thread, where a few blocking system calls cost
 * far less CPU than promises around each of them (node's fs.cp checks and stats every entry
 * several times, and for the few files of a typical task that cost more than the copy itself).
 */
import {
  chmodSync, constants, copyFileSync, lstatSync, mkdirSync, readdirSync, readlinkSync, realpathSync, rmSync, symlinkSync,
  type Dirent,
} from "node:fs";
import path from "node:path";

/** Deeper than any real task: stops a tree made too deep by links between directories. */
const MAX_DEPTH = 32;

/** A task folder the agent will not copy; the message names the path relative to the folder. */
export class CopyTreeError extends Error {
  constructor(message: string, readonly path: string) {
    super(message);
    this.name = "CopyTreeError";
  }
}

interface Walk {
  /** Real path of the course folder: the only place links to directories are walked into. */
  courseReal: string;
  /** The folder being copied, as given, for messages. */
  srcRoot: string;
}

/** Whether real path `p` is `dir` or under it. */
export function isInside(p: string, dir: string): boolean {
  return p === dir || p.startsWith(dir.endsWith(path.sep) ? dir : dir + path.sep);
}

/**
 * Copies `src` into `dst`. `courseDir` is the course folder: `src` itself must resolve inside it
 * (a task folder or `$common` that is a link to elsewhere is refused).
 */
export function copyTree(src: string, dst: string, courseDir: string): void {
  const courseReal = realpathSync(courseDir);
  const real = realpathSync(src);
  if (!isInside(real, courseReal)) {
    throw new CopyTreeError("the folder is a symbolic link to a folder outside the course folder", src);
  }
  copyDir({ courseReal, srcRoot: src }, src, dst, lstatSync(real).mode & 0o7777, [real]);
}

/** `ancestors`: real paths of the directories being copied, outermost first. */
function copyDir(w: Walk, src: string, dst: string, mode: number, ancestors: string[]): void {
  if (ancestors.length > MAX_DEPTH) {
    throw new CopyTreeError(`${path.relative(w.srcRoot, src)}: more than ${MAX_DEPTH} levels deep through symbolic links`, src);
  }
  makeDir(dst, mode);
  const real = ancestors[ancestors.length - 1]!;
  for (const e of readdirSync(src, { withFileTypes: true })) {
    copyEntry(w, e, path.join(src, e.name), path.join(dst, e.name), path.join(real, e.name), ancestors);
  }
}

function copyEntry(w: Walk, entry: Dirent, src: string, dst: string, real: string, ancestors: string[]): void {
  if (entry.isFile()) return copyFile(src, dst);
  if (entry.isDirectory()) return copyDir(w, src, dst, lstatSync(src).mode & 0o7777, [...ancestors, real]);
  if (!entry.isSymbolicLink()) return; // sockets, fifos, devices: nothing a grader reads
  const target = walkableDirectory(w, src, ancestors);
  if (target !== null) return copyDir(w, src, dst, lstatSync(target).mode & 0o7777, [...ancestors, target]);
  return copyLink(src, dst);
}

/** The real directory a link leads to, when it is one to walk (see the header); else null. */
function walkableDirectory(w: Walk, link: string, ancestors: readonly string[]): string | null {
  let target: string;
  try {
    target = realpathSync(link);
  } catch {
    return null; // dangling, a loop of links, unreadable: copied as the link it is
  }
  if (!isInside(target, w.courseReal)) return null;
  if (ancestors.some((a) => isInside(a, target))) return null;
  try {
    return lstatSync(target).isDirectory() ? target : null;
  } catch {
    return null;
  }
}

function makeDir(dst: string, mode: number): void {
  try {
    mkdirSync(dst);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    // an existing directory keeps its mode (a warm container's task/ must stay writable)
    if (lstatSync(dst).isDirectory()) return;
    rmSync(dst, { recursive: true, force: true }); // a link or file in the way: never write through it
    mkdirSync(dst);
  }
  chmodSync(dst, mode); // not through mkdir: the umask would cut it
}

/** Exclusive create first: an existing file, or a link (which copyFile would follow), is removed. */
function copyFile(src: string, dst: string): void {
  try {
    copyFileSync(src, dst, constants.COPYFILE_EXCL);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    rmSync(dst, { recursive: true, force: true });
    copyFileSync(src, dst, constants.COPYFILE_EXCL);
  }
}

function copyLink(src: string, dst: string): void {
  const target = readlinkSync(src);
  try {
    symlinkSync(target, dst);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    rmSync(dst, { recursive: true, force: true });
    symlinkSync(target, dst);
  }
}

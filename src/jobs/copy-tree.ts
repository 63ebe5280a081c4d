/**
 * Copies a task folder into a job directory, as Python's shutil.copytree does by default:
 * directories and regular files with their modes, symbolic links followed (a link inside a
 * container would point at a path of the host). Existing files are overwritten, existing
 * directories merged (keeping their modes), so that it also refills a directory a warm
 * container has bound.
 *
 * Synchronous on purpose: it runs in a pool thread, where a few blocking system calls cost
 * far less CPU than promises around each of them (node's fs.cp checks and stats every entry
 * several times, and for the few files of a typical task that cost more than the copy itself).
 */
import { chmodSync, copyFileSync, mkdirSync, readdirSync, rmSync, statSync, type Dirent } from "node:fs";
import path from "node:path";

/** Deeper than any real task; stops a symbolic link loop. */
const MAX_DEPTH = 32;

export class CopyTreeError extends Error {
  constructor(message: string, readonly path: string) {
    super(message);
    this.name = "CopyTreeError";
  }
}

export function copyTree(src: string, dst: string): void {
  copyDir(src, dst, statSync(src).mode & 0o7777, 0);
}

function copyDir(src: string, dst: string, mode: number, depth: number): void {
  if (depth > MAX_DEPTH) throw new CopyTreeError(`${src}: more than ${MAX_DEPTH} levels deep (a symbolic link loop?)`, src);
  try {
    mkdirSync(dst);
    chmodSync(dst, mode); // not through mkdir: the umask would cut it
  } catch (err) {
    // an existing directory keeps its mode (a warm container's task/ must stay writable)
    if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
  }
  for (const e of readdirSync(src, { withFileTypes: true })) copyEntry(e, path.join(src, e.name), path.join(dst, e.name), depth);
}

function copyEntry(entry: Dirent, src: string, dst: string, depth: number): void {
  if (entry.isFile()) return copyFileSync(src, dst);
  if (entry.isDirectory()) return copyDir(src, dst, statSync(src).mode & 0o7777, depth + 1);
  if (!entry.isSymbolicLink()) return; // sockets, fifos, devices: nothing a grader reads
  let target;
  try {
    target = statSync(src);
  } catch (err) {
    throw new CopyTreeError(`${src}: symbolic link to nothing (${(err as NodeJS.ErrnoException).code ?? "unreadable"})`, src);
  }
  if (target.isDirectory()) return copyDir(src, dst, target.mode & 0o7777, depth + 1);
  if (!target.isFile()) return;
  // a link where the copy goes would be followed by copyFile: replace it by a file
  rmSync(dst, { force: true });
  return copyFileSync(src, dst);
}

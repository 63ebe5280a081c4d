/**
 * Which folder a task folder is right now: the resolved real path, with its device and inode. A
 * heavy task's warm container has its /task layered over the folder its task path led to when
 * the container was made (an overlay keeps the folder it mounted); a course updated by swapping
 * the task folder (a link renamed over the old one, or a folder renamed into place) leads the same
 * path elsewhere. A job that takes such a container compares the two, and a changed identity
 * sends it to a new container over the task as it is now (workers/warm-layer.ts).
 */
import { realpathSync, statSync } from "node:fs";

export interface FolderIdentity {
  /** The real path (links resolved). */
  path: string;
  dev: number;
  ino: number;
}

/** The identity of the folder `dir` leads to now; throws when it cannot be resolved. */
export function folderIdentity(dir: string): FolderIdentity {
  const real = realpathSync(dir);
  const st = statSync(real);
  return { path: real, dev: st.dev, ino: st.ino };
}

export function sameFolder(a: FolderIdentity, b: FolderIdentity): boolean {
  return a.path === b.path && a.dev === b.dev && a.ino === b.ino;
}

/** How a changed identity reads in a log line. */
export function describeFolder(f: FolderIdentity): string {
  return `${f.path} (device ${f.dev}, inode ${f.ino})`;
}

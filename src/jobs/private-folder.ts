/**
 * A folder of the agent's own in a place other users share (/dev/shm, /tmp): nobody else may be
 * able to read it, rename it away or put theirs in its stead. So every folder from `/` down to the
 * place must be a real directory (its real path: no link) owned by root or the agent's user and
 * writable by no one else unless sticky, as /dev/shm and /tmp are (others may add entries there,
 * never rename or remove ours); the folder itself must be a directory of the agent's user, mode
 * 0700 (nothing for group or others), checked on a descriptor opened with O_NOFOLLOW so that a
 * link in its place is refused, not followed. The agent makes it when it is missing; one that
 * exists and fails the rule (another user made it first, or it is open to others) is refused with
 * the reason and left as it is.
 */
import { closeSync, constants, fstatSync, lstatSync, mkdirSync, openSync, realpathSync, type Stats } from "node:fs";
import path from "node:path";

/** A folder the agent will not use; the message says which and why. */
export class UnsafeFolderError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UnsafeFolderError";
  }
}

const uid = (): number => process.getuid?.() ?? 0;
const octal = (mode: number): string => (mode & 0o7777).toString(8).padStart(4, "0");

/** Why another user could swap `st` (folder `p`) or what is in it; null when nobody can. */
function sharedRefusal(p: string, st: Stats): string | null {
  if (st.isSymbolicLink()) return `${p} is a symbolic link`;
  if (!st.isDirectory()) return `${p} is not a directory`;
  if (st.uid !== uid() && st.uid !== 0) return `${p} belongs to uid ${st.uid}, neither this agent's user (uid ${uid()}) nor root`;
  if ((st.mode & 0o022) !== 0 && (st.mode & 0o1000) === 0) return `${p} is writable by others (mode ${octal(st.mode)}) and not sticky`;
  return null;
}

/** Why folder `real` (a real path) or one above it lets another user swap what is in it; null: none does. */
export function placeRefusal(real: string): string | null {
  for (let p = real; ; p = path.dirname(p)) {
    let st: Stats;
    try {
      st = lstatSync(p);
    } catch (err) {
      return `cannot read ${p}: ${(err as Error).message}`;
    }
    const why = sharedRefusal(p, st);
    if (why !== null) return why;
    if (path.dirname(p) === p) return null;
  }
}

/** Why `dir` is not the agent's own private folder (null: it is). */
export function privateRefusal(dir: string): string | null {
  let fd: number;
  try {
    fd = openSync(dir, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== "ELOOP" && code !== "ENOTDIR") return `cannot open ${dir}: ${(err as Error).message}`;
    return lstatSync(dir, { throwIfNoEntry: false })?.isSymbolicLink() === true ? `${dir} is a symbolic link` : `${dir} is not a directory`;
  }
  try {
    const st = fstatSync(fd);
    if (st.uid !== uid()) return `${dir} belongs to uid ${st.uid}, not to this agent's user (uid ${uid()}): another user made it`;
    if ((st.mode & 0o077) !== 0) return `${dir} is open to others (mode ${octal(st.mode)}, not 0700)`;
    return null;
  } finally {
    closeSync(fd);
  }
}

/** The agent's private folder `name` in `place` (made, mode 0700, when missing), by its real path. Throws UnsafeFolderError. */
export function privateFolder(place: string, name: string): string {
  let real: string;
  try {
    real = realpathSync(place);
  } catch (err) {
    throw new UnsafeFolderError(`cannot use ${place}: ${(err as Error).message}`);
  }
  const above = placeRefusal(real);
  if (above !== null) throw new UnsafeFolderError(`cannot use ${place}: ${above}, so another user could swap the agent's folder there`);
  const own = path.join(real, name);
  try {
    mkdirSync(own, { mode: 0o700 });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== "EEXIST") throw new UnsafeFolderError(`cannot make ${own}: ${(err as Error).message}`);
  }
  const why = privateRefusal(own);
  if (why !== null) throw new UnsafeFolderError(`the agent's folder ${why}; it is not used (remove it, or choose another place with --task-layers-dir)`);
  return own;
}

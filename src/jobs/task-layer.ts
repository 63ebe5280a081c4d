/**
 * A job's `/task` without copying the task's files: an engine-made local volume of type overlay,
 * the course's task folder as its read-only lower layer and an `upper/` (with `work/`) as its
 * writable layer, in the job's layer folder (src/jobs/layer-place.ts) or else the job directory. The grader reads, writes, deletes and renames anything; what it
 * changes lands in `upper/`, never in the course or another job. The engine mounts it when the
 * grading container starts (in whatever mount namespace the engine lives in) and the agent removes
 * the volume with the job; its labels are the job's, so a later run's reaper finds it.
 * Where the layered view would not show the tree the copy makes (copy-tree.ts walks a link to a
 * directory inside the course, the layer shows the link), or the paths cannot be written in the
 * mount's options, `layerRefusal` says why and the job copies as before.
 */
import { lstatSync, readdirSync, realpathSync, statSync } from "node:fs";
import path from "node:path";
import { isInside } from "./copy-tree.js";
import { tallyEntry, type LayerTally } from "../limits/layer-memory.js";

/** The volume of a job directory: one name per job, derived so that any cleanup can find it. */
export function taskVolumeName(jobDir: string): string {
  return `inginious-task-${path.basename(jobDir)}`;
}

/** Deeper than any real task (copy-tree.ts has the same bound). */
const MAX_DEPTH = 32;

/** Characters the overlay's option string cannot carry in a path. */
const UNSAFE_IN_OPTIONS = /[,:\\\s]/;

/** Why one of `paths` cannot be written in an overlay mount's options (null: all can). */
export function unsafePathRefusal(...paths: string[]): string | null {
  const bad = paths.find((p) => UNSAFE_IN_OPTIONS.test(p));
  return bad === undefined ? null : `the path ${bad} has a character (comma, colon, backslash or space) an overlay mount cannot name`;
}

/**
 * Why `taskDir` cannot be the lower layer of a job's `/task` (null: it can). Walks the task's
 * directories once (names and types only; a stat only for each link, and for each file when
 * `tally` counts data), counting its entries into `tally` (the layer's memory, layer-memory.ts).
 */
export function layerRefusal(taskDir: string, courseDir: string, jobDir: string, tally?: LayerTally): string | null {
  let lower: string;
  let courseReal: string;
  try {
    lower = realpathSync(taskDir);
    courseReal = realpathSync(courseDir);
  } catch (err) {
    return `cannot resolve the task folder: ${(err as Error).message}`;
  }
  if (!isInside(lower, courseReal)) return "the task folder is a link to a folder outside the course folder";
  const unsafe = unsafePathRefusal(lower, jobDir);
  if (unsafe !== null) return unsafe;
  const walked = linkToWalk(lower, courseReal, [lower], tally);
  return walked === null ? null : `${path.relative(lower, walked)} is a link to a directory inside the course, which the copy expands`;
}

/**
 * The first link under `dir` that copy-tree.ts would walk as a directory, or null: one to a
 * directory inside the course that does not contain a directory being walked (`ancestors`, real
 * paths, outermost first; the copy keeps a link to `.` or `..` as a link).
 */
function linkToWalk(dir: string, courseReal: string, ancestors: string[], tally?: LayerTally): string | null {
  if (ancestors.length > MAX_DEPTH) return null;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (tally !== undefined) tallyEntry(tally, tally.withData && e.isFile() ? lstatSync(p).size : null);
    if (e.isDirectory()) {
      const found = linkToWalk(p, courseReal, [...ancestors, path.join(ancestors[ancestors.length - 1]!, e.name)], tally);
      if (found !== null) return found;
    } else if (e.isSymbolicLink() && walkable(p, courseReal, ancestors)) {
      return p;
    }
  }
  return null;
}

function walkable(link: string, courseReal: string, ancestors: readonly string[]): boolean {
  try {
    const target = realpathSync(link);
    return isInside(target, courseReal) && !ancestors.some((a) => isInside(a, target)) && statSync(target).isDirectory();
  } catch {
    return false; // dangling or a loop: the copy keeps it as a link too
  }
}

/**
 * Mount options that make a change of owner or mode copy up only a file's metadata, not its data
 * (and let a renamed directory stay in the lower layer): the grading images change the owner of
 * every file of /task. Not every kernel accepts them; the start-up check tries.
 */
export const METACOPY_OPTIONS = "metacopy=on,redirect_dir=on";

/** What the engine is asked to create: a local volume of type overlay, with the job's labels. */
export function taskVolumeSpec(
  name: string, lower: string, upper: string, work: string, labels: Record<string, string>, metacopy = false,
): { Name: string; Driver: string; DriverOpts: Record<string, string>; Labels: Record<string, string> } {
  const o = `lowerdir=${lower},upperdir=${upper},workdir=${work}${metacopy ? `,${METACOPY_OPTIONS}` : ""}`;
  return { Name: name, Driver: "local", DriverOpts: { type: "overlay", device: "overlay", o }, Labels: labels };
}

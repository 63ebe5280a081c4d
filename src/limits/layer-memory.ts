/**
 * The kernel memory a layered /task costs its job. INGInious's grading images change the owner and
 * mode of every entry of /task before the grader runs (`set_directory_rights`; this project's
 * images do the same), and overlayfs copies each entry up first: with metacopy, only its metadata,
 * but every copied-up entry is a new inode and dentry in the writable layer and in the overlay,
 * kernel memory charged to the container's memory cgroup. Measured here (bench/layer-kmem.ts,
 * docs/benchmarks.md) at about 2.1 KB per entry on a tmpfs layer; without metacopy on a tmpfs,
 * each file's data pages too. The Python agent's copy is made by the agent, whose cgroup pays for
 * it: so a task of 50,000 files that grades under 100 MB there ran out of memory here. The agent
 * adds this allowance to the grading container's memory limit and reserves it beside the job's
 * own limit in memory admission (held as LAYER_HOLDER in the job's group).
 */

/** Bytes allowed per entry of a layered task folder: the 2.1 KB measured, with a margin. */
export const LAYER_BYTES_PER_ENTRY = 2560;
/** Page size: a file's data copied up into a tmpfs costs whole pages. */
const PAGE = 4096;
/** The job's reservation of its layer's allowance, in its memory group. */
export const LAYER_HOLDER = "\0task-layer";

/** What the walk of a task folder counts for the allowance. */
export interface LayerTally {
  /** Entries (folders, files, links), the task folder itself included. */
  entries: number;
  /** Whether files' data is copied up into memory too (a tmpfs layer without metacopy). */
  readonly withData: boolean;
  /** Their data, in whole pages (counted only withData). */
  dataBytes: number;
}

export function newTally(withData: boolean): LayerTally {
  return { entries: 1, withData, dataBytes: 0 };
}

/** Adds one entry (and, withData, a regular file's size in pages). */
export function tallyEntry(t: LayerTally, fileSize: number | null): void {
  t.entries++;
  if (t.withData && fileSize !== null) t.dataBytes += Math.ceil(fileSize / PAGE) * PAGE;
}

/**
 * MB added to the container's limit and reserved for the layer: whole MB, rounded down, so that
 * a task of a few hundred entries (under 1 MB of kernel memory, within any limit's slack) changes
 * nothing of its job's memory.
 */
export function layerAllowanceMb(t: LayerTally): number {
  return Math.floor((t.entries * LAYER_BYTES_PER_ENTRY + t.dataBytes) / (1024 * 1024));
}

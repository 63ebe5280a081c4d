/**
 * The heavy task of bench/heavy.ts, built once per run in a course folder of its own:
 * `COURSE/TASK/data/` holds N files of random bytes (nothing sparse, nothing gzip or a
 * deduplicating layer could shrink) totalling M MB, 100 files a folder and 20 folders a group,
 * as a task shipping its libraries or a data set would. Its `run` is trivial on purpose: it counts
 * the files under /task/data (the grader sees the whole tree, layered or copied), reads the file
 * system type of the /task mount (`overlay` when the job's /task is a layer over the course's
 * folder, the job directory's own otherwise) and says both in the feedback text; `success` only
 * when the count is right. The cost is in the image's entry, which chowns every file under /task
 * before the grader runs and chmods every one after, as INGInious's images do.
 */
import { randomFillSync } from "node:crypto";
import { chmodSync, mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";

export const HEAVY_COURSE = "heavy";
export const HEAVY_TASK = "heavy";

const FILES_PER_FOLDER = 100;
const FOLDERS_PER_GROUP = 20;

export interface HeavyTask {
  /** The --tasks folder of the agents (it holds the course folder). */
  tasksDir: string;
  taskDir: string;
  files: number;
  bytes: number;
  folders: number;
  buildMs: number;
}

/** The grader: the count and the mount type in the text, e.g. `files=20000 task=overlay`. */
function runScript(files: number): string {
  return [
    "#!/bin/sh",
    "# The heavy bench's grader: the cost is in the image's entry (chown and chmod of every file).",
    "n=$(find /task/data -type f | wc -l)",
    "fs=$(grep ' /task ' /proc/self/mounts | tail -n 1 | cut -d ' ' -f 3)",
    'feedback-msg -m "files=$n task=$fs"',
    `if [ "$n" -eq ${files} ]; then feedback-result success; else feedback-result failed; fi`,
    "",
  ].join("\n");
}

/** What a heavy job's feedback text says: the files it saw and its /task mount's type. */
export function parseHeavyText(text: string): { files: number | null; mount: string | null } {
  const files = /files=(\d+)/.exec(text)?.[1];
  const mount = /task=(\S+)/.exec(text)?.[1];
  return { files: files === undefined ? null : Number(files), mount: mount ?? null };
}

/** `total` bytes split into `n` near-equal sizes. */
function sizes(n: number, total: number): (i: number) => number {
  const base = Math.floor(total / n);
  const extra = total % n;
  return (i) => base + (i < extra ? 1 : 0);
}

/** Builds the heavy task under `root` (which must exist): `root/tasks/heavy/heavy/`. */
export function buildHeavyTask(root: string, files: number, mb: number): HeavyTask {
  const t0 = performance.now();
  const tasksDir = path.join(root, "tasks");
  const taskDir = path.join(tasksDir, HEAVY_COURSE, HEAVY_TASK);
  mkdirSync(path.join(taskDir, "data"), { recursive: true });
  writeFileSync(path.join(taskDir, "run"), runScript(files));
  chmodSync(path.join(taskDir, "run"), 0o755);
  const bytes = mb * 1024 * 1024;
  const sizeOf = sizes(files, bytes);
  const buf = Buffer.alloc(sizeOf(0));
  let folder = "";
  let folders = 0;
  for (let i = 0; i < files; i++) {
    if (i % FILES_PER_FOLDER === 0) {
      const f = i / FILES_PER_FOLDER;
      folder = path.join(taskDir, "data", `g${Math.floor(f / FOLDERS_PER_GROUP)}`, `d${f % FOLDERS_PER_GROUP}`);
      mkdirSync(folder, { recursive: true });
      folders++;
    }
    const b = buf.subarray(0, sizeOf(i));
    randomFillSync(b);
    writeFileSync(path.join(folder, `f${i}.bin`), b);
  }
  return { tasksDir, taskDir, files, bytes, folders, buildMs: Math.round(performance.now() - t0) };
}

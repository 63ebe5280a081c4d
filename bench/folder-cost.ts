/**
 * The cost of a job's folder: the CPU the agent's own code (src/jobs/job-directory.ts) spends to
 * make a trivial job's directory with its copy of the task, then to delete it, measured in the
 * bench process on the bench's trivial task, outside any other phase. The functions are
 * synchronous (the agent calls them on a pool thread), so CPU and wall time are close; both are
 * given. With the agent's CPU per job, the share of it that the folder takes.
 */
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { prepareJobDirectory, removeJobDirectorySync } from "../src/jobs/job-directory.js";
import { COURSE, TASKS } from "./options.js";
import type { JobFolderFigures } from "./results.js";
import { now, round } from "./stats.js";

export type FolderCost = Pick<JobFolderFigures, "n" | "prepareCpuMs" | "removeCpuMs" | "prepareWallMs">;

const cpuMs = (): number => ((u) => (u.user + u.system) / 1000)(process.cpuUsage());

/** Makes and deletes `n` job folders of the trivial task, timing each half. */
export function folderCost(n: number): FolderCost {
  const tmp = mkdtempSync(path.join(os.tmpdir(), "iad-bench-folders-"));
  const taskDir = path.join(TASKS, COURSE, "trivial");
  const courseDir = path.join(TASKS, COURSE);
  let prepCpu = 0;
  let prepWall = 0;
  let rmCpu = 0;
  try {
    for (let i = 0; i < n; i++) {
      const root = path.join(tmp, `job-${i}`);
      const c0 = cpuMs();
      const w0 = now();
      prepareJobDirectory(root, "bench", taskDir, courseDir);
      const c1 = cpuMs();
      prepWall += now() - w0;
      removeJobDirectorySync(root);
      rmCpu += cpuMs() - c1;
      prepCpu += c1 - c0;
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  return { n, prepareCpuMs: round(prepCpu / n, 3)!, removeCpuMs: round(rmCpu / n, 3)!, prepareWallMs: round(prepWall / n, 3)! };
}

/**
 * What `test` says about one recorded submission (a case), the counts over a run, and the exit
 * status they give: 0 when every case that ran matched, 1 on any mismatch or unreadable file,
 * 3 when cases could not run (no engine, no grading image, interrupted). Usage errors (2) are
 * found before any case exists.
 */
import type { Mismatch } from "./compare.js";

/**
 * pass: the result matches; fail: it differs; error: the test file or its task.yaml cannot be
 * used; skipped: nothing to replay (a database id instead of the input, an ignored or
 * multiple-choice task); unrun: the job could not run here; recorded: `--record` wrote the file.
 */
export type CaseStatus = "pass" | "fail" | "error" | "skipped" | "unrun" | "recorded";

export interface CaseReport {
  /** The test file, as given (relative to the current folder when the course folder was). */
  file: string;
  courseId: string;
  taskId: string;
  status: CaseStatus;
  mismatches: Mismatch[];
  /** Why a case is skipped, in error or unrun; what `--record` did. */
  message: string;
  /** The job's result and grade, when it ran. */
  result: string | null;
  grade: number | null;
  seconds: number;
}

export type Counts = Record<CaseStatus, number> & { total: number };

export function countCases(cases: readonly CaseReport[]): Counts {
  const counts: Counts = { total: cases.length, pass: 0, fail: 0, error: 0, skipped: 0, unrun: 0, recorded: 0 };
  for (const c of cases) counts[c.status]++;
  return counts;
}

export const EXIT_OK = 0;
export const EXIT_MISMATCH = 1;
export const EXIT_USAGE = 2;
export const EXIT_NOT_RUN = 3;
/** Ctrl-C or SIGTERM, as shells report a SIGINT. */
export const INTERRUPTED = 130;

/** Cases that could not run make the run inconclusive: that status wins over mismatches. */
export function exitStatus(counts: Counts): number {
  if (counts.unrun > 0) return EXIT_NOT_RUN;
  if (counts.fail > 0 || counts.error > 0) return EXIT_MISMATCH;
  return EXIT_OK;
}

/**
 * What the grading core tells its observers (the metrics, the tests): one event when a job's
 * result goes out, one when a worker finished removing what the job used.
 */
import type { PhaseTimings } from "./job-task.js";

export interface JobClosedInfo {
  jobId: string;
  result: string;
  /** Milliseconds from the job's arrival to its result. */
  totalMs: number;
  /** Milliseconds it waited for a slot (null when it never reached a worker). */
  queueMs: number | null;
  timings: PhaseTimings;
}

export interface AgentEvents {
  jobClosed: [info: JobClosedInfo];
  /** A worker finished removing what a job used, after the job's result went out. */
  jobCleanedUp: [info: { jobId: string; cleanupMs: number | null }];
}

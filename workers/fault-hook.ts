/**
 * A fault the tests inject: IAD_TEST_POOL_THREAD_EXIT names a job id; the pool thread running
 * that job ends itself (as a thread that crashed would) once the job's grading container runs,
 * before `start` is sent. The main thread then sees the job's task fail and must remove what the
 * thread left (src/jobs/leftovers.ts). Unset in production; a job id is only ever compared.
 */
import type { Logger } from "../src/log.js";

export const THREAD_EXIT_ENV = "IAD_TEST_POOL_THREAD_EXIT";

export function exitThreadIfAsked(jobId: string, log: Logger): void {
  const asked = process.env[THREAD_EXIT_ENV];
  if (asked === undefined || asked === "" || asked !== jobId) return;
  log.warn({ job: jobId }, `${THREAD_EXIT_ENV}: this pool thread ends itself now`);
  process.exit(70);
}

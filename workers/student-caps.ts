/**
 * What one job's grader may ask of student containers before it is answered 254 at once, with
 * nothing kept of the request: socket ids that can name a socket file, each used once, so many
 * socket ids in all, so many requests waiting for one of the job's --student-containers slots.
 * Without these, a grader sending hundreds of thousands of small `run_student` messages (about
 * 200,000 decode in a second) grew its pool thread's heap by about 1.2 KB each, outside memory
 * admission, until the thread died with the other jobs it ran.
 *
 * How INGInious's container side uses socket ids (base-containers/base/inginious_container_api,
 * `run_student.py`): each call of `run_student` makes a new one, the name of a file it creates
 * with `mkstemp` in /sockets (a `p` and 8 random characters), binds `<id>.sock` beside it, and
 * blocks, in its process or thread, until the answer comes. So a real grader never asks twice
 * with one id, has at most one waiting request per process or thread of its container (which
 * --pids-limit caps, 1,024 by default), and uses one id per student container it runs.
 */
import type { JobContext } from "./job-context.js";

/**
 * Requests of one job that may wait for a slot. As many as the grading container can have
 * processes and threads under the default --pids-limit: a grader using INGInious's container
 * side cannot have more waiting. About 1.2 KB each while they wait.
 */
export const STUDENT_WAITING_MAX = 1024;

/**
 * Socket ids one job may use. Each one served costs a student container (created, started,
 * waited for, removed): the engine here does about 3 a second over 2 cores, so 10,000 is an
 * hour of student containers back to back at 3 a second, far beyond a real task's tens. A used
 * id is kept as its string alone (at most SOCKET_ID_MAX_BYTES): 10,000 of them hold at most a
 * few MB, once the job's end frees them.
 */
export const SOCKET_IDS_MAX = 10_000;

/**
 * Longest socket id: `<id>.sock` must be a file name of the job's sockets/ folder, at most
 * 255 bytes (NAME_MAX). A longer one could never be bound (the Python agent's create fails, which
 * it answers 254 too); refused before anything is kept of it.
 */
export const SOCKET_ID_MAX_BYTES = 255 - ".sock".length;

/** Why a run_student for `socketId` is answered 254 at once (the warning's text), or null. */
export function capRefusal(ctx: JobContext, socketId: string): string | null {
  if (Buffer.byteLength(socketId) > SOCKET_ID_MAX_BYTES) return "run_student with a socket id too long to name a socket file: 254";
  if (ctx.students.has(socketId) || ctx.usedSockets.has(socketId)) return "run_student for a socket id the job used already: 254";
  if (ctx.students.size + ctx.usedSockets.size >= SOCKET_IDS_MAX) return `run_student past the job's ${SOCKET_IDS_MAX} socket ids: 254`;
  if (ctx.studentSlots.waiting.length >= STUDENT_WAITING_MAX) {
    return `run_student past the job's ${STUDENT_WAITING_MAX} requests waiting for a student container: 254`;
  }
  return null;
}

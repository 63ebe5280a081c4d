/**
 * What the grading container says on its stdout while its job runs: msgpack messages read and
 * checked as they come (src/protocol/container-stream.ts). `result` is kept for the end of the job,
 * `run_student` starts a student container, `ssh_debug` and `ssh_student` forward SSH access to
 * the main thread (which sends it once per job); a fatal error of the job stops the reading. After
 * the container exits, the rest of its output gets a short while to arrive. Of its stderr, only
 * the last 4 KB are kept, for the log of a job that ends without a result.
 */
import type { Logger } from "../src/log.js";
import { within } from "../src/limits/timers.js";
import { ContainerStreamDecoder, ContainerStreamError, type ContainerMessage } from "../src/protocol/container-stream.js";
import { FOREIGN_STUDENT_SSH } from "../src/protocol/python-texts.js";
import { failJob, type JobContext } from "./job-context.js";
import { onRunStudent } from "./students.js";

/** After the exit, reading goes on while bytes keep coming, and stops after this long without any. */
const DRAIN_QUIET_MS = 2000;

/** The grading container's output as it is read. */
export interface Output {
  /** Settles when the stream ends or breaks, or when a fatal error of the job stopped the reading. */
  readonly done: Promise<void>;
  /** The `result` message's content; undefined while none came. */
  readonly rawResult: unknown;
  /** Why the output could not be read (a malformed or oversized message, a broken stream), or null. */
  readonly streamError: string | null;
  /** The Python agent could not have read it either (see ContainerStreamError.pythonCannotRead). */
  readonly streamUnreadable: boolean;
  /** The last 4 KB of the container's stderr (see STDERR_TAIL_BYTES). */
  readonly stderrTail: string;
  /** Once the container exited: reads what is still coming, then closes the stream. */
  drain(): Promise<void>;
}

export function readOutput(ctx: JobContext, stream: NodeJS.ReadWriteStream, log: Logger): Output {
  const decoder = new ContainerStreamDecoder(ctx.task.maxMessageBytes);
  let lastChunkAt = performance.now();
  let rawResult: unknown = undefined;
  let streamError: string | null = null;
  let streamUnreadable = false;
  const done = (async () => {
    try {
      for await (const chunk of stream as AsyncIterable<Buffer>) {
        lastChunkAt = performance.now();
        for (const msg of decoder.push(chunk)) {
          if (msg.type === "result") rawResult = msg["result"];
          else onMessage(ctx, msg, log);
        }
        if (ctx.fatal !== null) break;
      }
      if (ctx.fatal === null) decoder.end();
    } catch (err) {
      // The engine may drop the connection abruptly when the container exits (seen when
      // attached after start): at a message boundary, that is just the end of the stream.
      const transportEnd = !(err instanceof ContainerStreamError) && decoder.idle;
      if (ctx.fatal === null && !transportEnd) {
        streamError = (err as Error).message;
        // a stream that broke in the middle of a message: the Python agent's read fails as well
        streamUnreadable = err instanceof ContainerStreamError ? err.pythonCannotRead : true;
      }
    }
  })();
  const drain = async (): Promise<void> => {
    // After the exit, the rest of the output may still be on its way (a big result, a busy engine).
    let readingDone = false;
    void done.then(() => (readingDone = true));
    lastChunkAt = Math.max(lastChunkAt, performance.now());
    while (!readingDone && performance.now() - lastChunkAt < DRAIN_QUIET_MS) await within(done, 200, undefined);
    (stream as unknown as { destroy(): void }).destroy();
  };
  return {
    done,
    get rawResult() {
      return rawResult;
    },
    get streamError() {
      return streamError;
    },
    get streamUnreadable() {
      return streamUnreadable;
    },
    get stderrTail() {
      return decoder.stderrTail;
    },
    drain,
  };
}

function onMessage(ctx: JobContext, msg: ContainerMessage, log: Logger): void {
  switch (msg.type) {
    case "run_student":
      onRunStudent(ctx, msg, log);
      return;
    case "ssh_debug": {
      const port = ctx.task.ports[22];
      if (port === undefined) {
        ctx.floodLog.warn(log, {}, "ssh_debug from a job that has no SSH port: ignored");
        return;
      }
      sendSsh(ctx, port, msg["ssh_user"], msg["ssh_key"], log);
      return;
    }
    case "ssh_student": {
      const wanted = msg["container_id"];
      const run = [...ctx.students.values()].find((s) => s.id !== null && s.id === wanted);
      if (!run || run.sshPort === null) {
        failJob(ctx, FOREIGN_STUDENT_SSH, log);
        return;
      }
      sendSsh(ctx, run.sshPort, msg["ssh_user"], msg["ssh_key"], log);
      return;
    }
    default:
      ctx.floodLog.debug(log, { type: msg.type.slice(0, 64) }, "ignoring unknown message from grading container");
  }
}

/**
 * Forwards SSH access to the main thread, which sends the first one of a job to the backend and
 * ignores the others: so only the first is forwarded (a flood of them costs the main thread nothing).
 */
function sendSsh(ctx: JobContext, port: number, user: unknown, key: unknown, log: Logger): void {
  if (typeof user !== "string" || typeof key !== "string") {
    ctx.floodLog.warn(log, {}, "ssh message without a user and key: ignored");
    return;
  }
  if (ctx.sshForwarded) return;
  ctx.sshForwarded = true;
  void ctx.api.sshDebug(ctx.task.jobId, port, user, key);
}

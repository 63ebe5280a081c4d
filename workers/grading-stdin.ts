/**
 * The agent's side of the grading container's stdin: the `start` message, then the answers to
 * its `run_student` requests. Writes respect the stream's backpressure: once a write is not
 * taken (the engine's socket and the container's pipe are full), the following messages wait
 * here, in order, until the stream drains. A grader that stops reading its stdin while it keeps
 * asking would make that wait grow without end: past STDIN_WAITING_MAX_BYTES it is refused
 * (`over`), and the job ends as `crash` (workers/job-context.ts, writeToGrading).
 */

/**
 * Bytes of messages that may wait for the grading container to read its stdin. INGInious's
 * container side reads its stdin all the time (a loop of its own that hands each answer to
 * the process waiting for it), so a grader using it lets hardly anything wait here. The agent's
 * messages after `start` are answers of about 60 bytes, at most two per request: 8 MiB is more
 * than the answers to 100,000 requests (a flood, answered 254), so a grader that reads its
 * answers, however slowly, is never stopped by a flood of that size; a grader that does not read
 * is stopped after some 140,000 unread answers, on top of what the engine and the pipe hold.
 * Small messages wait copied into chunks of WAITING_CHUNK_BYTES: they cost their bytes, not an
 * object each.
 */
export const STDIN_WAITING_MAX_BYTES = 8 * 1024 * 1024;

const WAITING_CHUNK_BYTES = 64 * 1024;

export type StdinWrite = "written" | "waiting" | "over" | "closed";

export class GradingStdin {
  /** Frames waiting, in order; the last one may be a chunk still being filled (its first `tailUsed` bytes). */
  private readonly waiting: Buffer[] = [];
  private tail: Buffer | null = null;
  private tailUsed = 0;
  private waitingBytes = 0;
  private blocked = false;
  private closed = false;

  constructor(
    private readonly stream: NodeJS.WritableStream & { destroy?: () => void },
    private readonly maxWaitingBytes = STDIN_WAITING_MAX_BYTES,
  ) {
    stream.on("drain", () => this.onDrain());
    stream.on("close", () => (this.closed = true));
    stream.on("error", () => (this.closed = true));
  }

  /** Bytes waiting for the stream to drain. */
  get waitingFor(): number {
    return this.waitingBytes;
  }

  write(frame: Buffer): StdinWrite {
    if (this.closed) return "closed";
    if (this.blocked) {
      if (this.waitingBytes + frame.length > this.maxWaitingBytes) return "over";
      this.queue(frame);
      return "waiting";
    }
    try {
      if (!this.stream.write(frame)) this.blocked = true;
    } catch {
      this.closed = true;
      return "closed";
    }
    return "written";
  }

  /** Drops what waits and closes the stream (the job is over). */
  destroy(): void {
    this.closed = true;
    this.waiting.length = 0;
    this.tail = null;
    this.waitingBytes = 0;
    this.stream.destroy?.();
  }

  private queue(frame: Buffer): void {
    this.waitingBytes += frame.length;
    if (frame.length >= WAITING_CHUNK_BYTES / 4) {
      this.closeTail();
      this.waiting.push(frame);
      return;
    }
    if (this.tail === null || this.tailUsed + frame.length > this.tail.length) {
      this.closeTail();
      this.tail = Buffer.allocUnsafe(WAITING_CHUNK_BYTES);
      this.tailUsed = 0;
    }
    frame.copy(this.tail, this.tailUsed);
    this.tailUsed += frame.length;
  }

  /** The chunk being filled joins the waiting frames as it is. */
  private closeTail(): void {
    if (this.tail !== null) this.waiting.push(this.tail.subarray(0, this.tailUsed));
    this.tail = null;
  }

  private onDrain(): void {
    this.blocked = false;
    this.closeTail();
    while (!this.blocked && this.waiting.length > 0 && !this.closed) {
      const frame = this.waiting.shift()!;
      this.waitingBytes -= frame.length;
      try {
        if (!this.stream.write(frame)) this.blocked = true;
      } catch {
        this.closed = true;
      }
    }
  }
}

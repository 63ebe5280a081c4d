/**
 * Serialises sends on one ZeroMQ socket: zeromq v6 allows a single pending send at a time.
 * Messages go out in the order they were queued, except urgent ones (Pongs), which overtake
 * every message still waiting here: a Pong queued behind results of tens of megabytes would
 * reach the backend only after them, and the backend drops an agent that misses five Pongs.
 * The socket itself is meant to hold next to nothing (a low send high-water mark), so that the
 * backlog waits here, where a Pong can pass it. A failed send is reported and the rest go on.
 */
export interface Sender {
  send(frame: Buffer): Promise<void>;
}

export class SendQueue {
  /** Urgent frames first (the first `urgent` entries), then the others, each in arrival order. */
  private readonly pending: Buffer[] = [];
  private urgent = 0;
  private flushing = false;
  private closed = false;

  constructor(
    private readonly socket: Sender,
    private readonly onError: (err: Error) => void,
  ) {}

  get length(): number {
    return this.pending.length;
  }

  push(frame: Buffer): void {
    if (this.closed) return;
    this.pending.push(frame);
    if (!this.flushing) void this.flush();
  }

  /** Queues a frame ahead of every non-urgent one still waiting (after earlier urgent ones). */
  pushUrgent(frame: Buffer): void {
    if (this.closed) return;
    this.pending.splice(this.urgent, 0, frame);
    this.urgent++;
    if (!this.flushing) void this.flush();
  }

  /** Drops whatever was not sent yet (the socket is going away). */
  close(): void {
    this.closed = true;
    this.pending.length = 0;
    this.urgent = 0;
  }

  private async flush(): Promise<void> {
    this.flushing = true;
    while (this.pending.length > 0 && !this.closed) {
      const frame = this.pending.shift()!;
      if (this.urgent > 0) this.urgent--;
      try {
        await this.socket.send(frame);
      } catch (err) {
        if (!this.closed) this.onError(err as Error);
      }
    }
    this.flushing = false;
  }
}

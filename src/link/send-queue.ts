/**
 * Serialises sends on one ZeroMQ socket: zeromq v6 allows a single pending send at a time.
 * Messages go out in the order they were queued; a failed send is reported and the rest go on.
 */
export interface Sender {
  send(frame: Buffer): Promise<void>;
}

export class SendQueue {
  private readonly pending: Buffer[] = [];
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

  /** Drops whatever was not sent yet (the socket is going away). */
  close(): void {
    this.closed = true;
    this.pending.length = 0;
  }

  private async flush(): Promise<void> {
    this.flushing = true;
    while (this.pending.length > 0 && !this.closed) {
      const frame = this.pending.shift()!;
      try {
        await this.socket.send(frame);
      } catch (err) {
        if (!this.closed) this.onError(err as Error);
      }
    }
    this.flushing = false;
  }
}

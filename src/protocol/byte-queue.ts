/** A FIFO of byte chunks that hands out exact-length slices without re-copying on every push. */
export class ByteQueue {
  private chunks: Buffer[] = [];
  private head = 0; // offset into chunks[0]
  private size = 0;

  get length(): number {
    return this.size;
  }

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.size += chunk.length;
  }

  /** Reads `n` (<= 8) bytes at the front without consuming them. */
  peek(n: number): Buffer {
    if (n > this.size) throw new RangeError("peek past the end of the queue");
    const out = Buffer.allocUnsafe(n);
    let copied = 0;
    let i = 0;
    let offset = this.head;
    while (copied < n) {
      const c = this.chunks[i]!;
      const take = Math.min(n - copied, c.length - offset);
      c.copy(out, copied, offset, offset + take);
      copied += take;
      i++;
      offset = 0;
    }
    return out;
  }

  /** Removes and returns the first `n` bytes (one copy at most). */
  take(n: number): Buffer {
    if (n > this.size) throw new RangeError("take past the end of the queue");
    const first = this.chunks[0];
    if (first && first.length - this.head >= n) {
      const out = first.subarray(this.head, this.head + n);
      this.consume(n);
      return out;
    }
    const out = Buffer.allocUnsafe(n);
    let copied = 0;
    while (copied < n) {
      const c = this.chunks[0]!;
      const take = Math.min(n - copied, c.length - this.head);
      c.copy(out, copied, this.head, this.head + take);
      copied += take;
      this.consume(take);
    }
    return out;
  }

  private consume(n: number): void {
    this.size -= n;
    this.head += n;
    while (this.chunks.length > 0 && this.head >= this.chunks[0]!.length) {
      this.head -= this.chunks[0]!.length;
      this.chunks.shift();
    }
  }
}

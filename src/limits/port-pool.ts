/** The external ports of --debug-ports, handed out to jobs and given back when they end. */
import type { PortRange } from "../config.js";

export class PortPool {
  private readonly free: number[] = [];
  private readonly taken = new Set<number>();

  constructor(range: PortRange | null) {
    if (range) for (let p = range.begin; p <= range.end; p++) this.free.push(p);
  }

  get available(): number {
    return this.free.length;
  }

  /** Takes `count` ports, or none at all (null) when fewer are free. */
  take(count: number): number[] | null {
    if (count > this.free.length) return null;
    const ports = this.free.splice(0, count);
    for (const p of ports) this.taken.add(p);
    return ports;
  }

  /** Gives ports back; ports not taken from this pool are ignored, so releasing twice is harmless. */
  release(ports: Iterable<number>): void {
    for (const p of ports) {
      if (!this.taken.delete(p)) continue;
      this.free.push(p);
    }
    this.free.sort((a, b) => a - b);
  }
}

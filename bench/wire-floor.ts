/**
 * The wire's own floor for big results: how long one frame of a result's size takes from a
 * DEALER to a ROUTER over loopback TCP on this machine, measured with nothing else running.
 * ZeroMQ sends a message whole, so a Pong queued behind such a frame waits at least this long
 * whatever the agent does; the bench prints it beside the Pong figures of the big-result load.
 */
import { Dealer, Router } from "zeromq";

/** Milliseconds from send to receipt of each of `count` frames of `bytes` bytes. */
export async function frameTransferMs(bytes: number, count = 5): Promise<number[]> {
  const router = new Router({ linger: 0 });
  const dealer = new Dealer({ linger: 0, sendHighWaterMark: 1 });
  try {
    await router.bind("tcp://127.0.0.1:*");
    dealer.connect(router.lastEndpoint!);
    const frame = Buffer.alloc(bytes, 0x5a);
    const times: number[] = [];
    for (let i = 0; i < count; i++) {
      const t0 = performance.now();
      await dealer.send(frame);
      const [, got] = await router.receive();
      if (got?.length !== bytes) throw new Error(`wire floor: got ${got?.length ?? 0} bytes, sent ${bytes}`);
      times.push(performance.now() - t0);
    }
    return times;
  } finally {
    dealer.close();
    router.close();
  }
}

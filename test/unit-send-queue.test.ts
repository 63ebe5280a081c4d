import assert from "node:assert/strict";
import { test } from "node:test";
import { SendQueue, type Sender } from "../src/link/send-queue.js";

/** A socket whose sends complete only when the test says so. */
class HeldSocket implements Sender {
  readonly sent: string[] = [];
  private release: (() => void) | null = null;
  send(frame: Buffer): Promise<void> {
    this.sent.push(frame.toString());
    return new Promise((r) => (this.release = r));
  }
  async next(): Promise<void> {
    const r = this.release;
    this.release = null;
    r?.();
    await new Promise((r) => setImmediate(r));
  }
}

test("urgent frames overtake waiting ones, each kind keeping its order", async () => {
  const socket = new HeldSocket();
  const q = new SendQueue(socket, (e) => assert.fail(e));
  q.push(Buffer.from("result-1")); // taken by the socket at once
  q.push(Buffer.from("result-2"));
  q.push(Buffer.from("result-3"));
  q.pushUrgent(Buffer.from("pong-1"));
  q.pushUrgent(Buffer.from("pong-2"));
  q.push(Buffer.from("result-4"));
  assert.equal(q.length, 5);
  for (let i = 0; i < 6; i++) await socket.next();
  assert.deepEqual(socket.sent, ["result-1", "pong-1", "pong-2", "result-2", "result-3", "result-4"]);
  assert.equal(q.length, 0);
});

test("an urgent frame on an idle queue goes out at once; closing drops the rest", async () => {
  const socket = new HeldSocket();
  const q = new SendQueue(socket, (e) => assert.fail(e));
  q.pushUrgent(Buffer.from("pong-1"));
  assert.deepEqual(socket.sent, ["pong-1"]);
  q.push(Buffer.from("result-1"));
  q.pushUrgent(Buffer.from("pong-2"));
  q.close();
  q.push(Buffer.from("result-2"));
  q.pushUrgent(Buffer.from("pong-3"));
  await socket.next();
  await socket.next();
  assert.deepEqual(socket.sent, ["pong-1"]);
  assert.equal(q.length, 0);
});

test("a failed send is reported and the next frames still go", async () => {
  const errors: string[] = [];
  const sent: string[] = [];
  const q = new SendQueue({
    send: async (f) => {
      if (f.toString() === "bad") throw new Error("socket said no");
      sent.push(f.toString());
    },
  }, (e) => errors.push(e.message));
  q.push(Buffer.from("bad"));
  q.push(Buffer.from("result"));
  q.pushUrgent(Buffer.from("pong"));
  await new Promise((r) => setTimeout(r, 10));
  assert.deepEqual(errors, ["socket said no"]);
  assert.deepEqual(sent, ["pong", "result"]);
});

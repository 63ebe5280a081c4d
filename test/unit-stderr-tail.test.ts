/** The grading container's stderr as the decoder keeps it: only its last 4 KB, whatever the frames, and stdout untouched. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { ContainerStreamDecoder, STDERR_TAIL_BYTES, encodeContainerMessage } from "../src/protocol/container-stream.js";
import { unpack } from "../src/protocol/msgpack.js";

function frame(stream: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(8);
  h[0] = stream;
  h.writeUInt32BE(payload.length, 4);
  return Buffer.concat([h, payload]);
}

const text = (n: number): string => Array.from({ length: n }, (_, i) => String.fromCharCode(33 + (i % 90))).join("");

test("short stderr is kept whole", () => {
  const d = new ContainerStreamDecoder();
  d.push(frame(2, Buffer.from("Traceback: boom\n")));
  assert.equal(d.stderrTail, "Traceback: boom\n");
});

test("only the last 4 KB of stderr are kept, across many small frames and one big one", () => {
  const all = text(50_000);
  const small = new ContainerStreamDecoder();
  for (let i = 0; i < all.length; i += 777) small.push(frame(2, Buffer.from(all.slice(i, i + 777))));
  assert.equal(STDERR_TAIL_BYTES, 4096);
  assert.equal(small.stderrTail, all.slice(-4096));
  assert.equal(small.stderrSeen, 50_000);

  const big = new ContainerStreamDecoder();
  big.push(frame(2, Buffer.from(all)));
  assert.equal(big.stderrTail, all.slice(-4096));
});

test("a character cut in two at the start of the tail is dropped, not garbled", () => {
  const d = new ContainerStreamDecoder();
  d.push(frame(2, Buffer.from(`${"é".repeat(3000)}x`)));
  assert.ok(!d.stderrTail.includes("\ufffd"));
  assert.equal(d.stderrTail, `${"é".repeat(2047)}x`);
});

test("stderr interleaved with stdout leaves the messages as they were", () => {
  const d = new ContainerStreamDecoder();
  const msg = encodeContainerMessage({ type: "result", result: { result: "success" } });
  const out = [
    ...d.push(Buffer.concat([frame(1, msg.subarray(0, 5)), frame(2, Buffer.from(text(5000)))])),
    ...d.push(frame(1, msg.subarray(5))),
  ];
  // a result keeps its map's msgpack bytes (see container-stream.ts)
  assert.equal(out.length, 1);
  assert.equal(out[0]!.type, "result");
  assert.deepEqual(unpack(out[0]!["result"] as Uint8Array), { result: "success" });
  assert.equal(d.stderrTail.length, 4096);
});

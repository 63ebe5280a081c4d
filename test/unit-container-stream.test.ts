/**
 * Unit tests for the grading container's stream: Docker attach frames carrying
 * length-prefixed msgpack messages, the byte queue under it, and the JSON-lines splitter.
 */
import { test, describe } from "node:test";
import assert from "node:assert/strict";
import {
  ContainerStreamDecoder,
  ContainerStreamError,
  decodeContainerMessage,
  encodeContainerMessage,
  type ContainerMessage,
} from "../src/protocol/container-stream.js";
import { ByteQueue } from "../src/protocol/byte-queue.js";
import { JsonLineSplitter } from "../src/protocol/json-lines.js";
import { pack, unpack } from "../src/protocol/msgpack.js";

/** One Docker attach frame: [stream, 0, 0, 0, size BE] + payload. */
function frame(stream: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(8);
  h[0] = stream;
  h.writeUInt32BE(payload.length, 4);
  return Buffer.concat([h, payload]);
}

const msgA = { type: "ssh_debug", ssh_user: "worker", ssh_key: "k".repeat(40) };
const msgB = { type: "result", result: { result: "success", text: "ok", grade: 100, problems: { q1: ["success", "é"] } } };
const msgC = { type: "run_student", environment: null, time_limit: 0, socket_id: "s1", blob: Buffer.from([0, 1, 2, 255]) };

/** A stream of three messages: A+B in one frame split mid-B, stderr noise, the rest of B, then C. */
function sampleStream(): Buffer {
  const a = encodeContainerMessage(msgA);
  const b = encodeContainerMessage(msgB);
  const c = encodeContainerMessage(msgC);
  const cut = 7;
  return Buffer.concat([
    frame(1, Buffer.concat([a, b.subarray(0, cut)])),
    frame(2, Buffer.from("some stderr text\n")),
    frame(1, Buffer.alloc(0)),
    frame(1, b.subarray(cut)),
    frame(1, c),
  ]);
}

/** JSON form; a result's `result` (kept as its msgpack bytes) decoded for the comparison. */
function normalise(msgs: ContainerMessage[]): unknown {
  const open = msgs.map((m) => (m["result"] instanceof Uint8Array ? { ...m, result: unpack(m["result"]) } : m));
  return JSON.parse(JSON.stringify(open));
}
const expected = normalise([msgA, msgB, msgC]);

describe("ContainerStreamDecoder", () => {
  test("whole stream in one chunk gives every message in order", () => {
    const d = new ContainerStreamDecoder();
    const out = d.push(sampleStream());
    assert.deepEqual(normalise(out), expected);
    assert.equal(d.idle, true);
    d.end();
  });

  test("the stream split into two chunks at every byte boundary", () => {
    const s = sampleStream();
    for (let i = 0; i <= s.length; i++) {
      const d = new ContainerStreamDecoder();
      const out = [...d.push(s.subarray(0, i)), ...d.push(s.subarray(i))];
      assert.deepEqual(normalise(out), expected, `split at ${i}`);
      d.end();
    }
  });

  test("the stream fed one byte at a time", () => {
    const s = sampleStream();
    const d = new ContainerStreamDecoder();
    const out: ContainerMessage[] = [];
    for (let i = 0; i < s.length; i++) out.push(...d.push(s.subarray(i, i + 1)));
    assert.deepEqual(normalise(out), expected);
    d.end();
  });

  test("a message is only released when its last byte arrives", () => {
    const body = encodeContainerMessage(msgA);
    const s = frame(1, body);
    const d = new ContainerStreamDecoder();
    assert.deepEqual(d.push(s.subarray(0, s.length - 1)), []);
    assert.equal(d.idle, false);
    const out = d.push(s.subarray(s.length - 1));
    assert.equal(out.length, 1);
    assert.equal(out[0]!.type, "ssh_debug");
  });

  test("a message split over many one-byte Docker frames", () => {
    const body = encodeContainerMessage(msgB);
    const s = Buffer.concat([...body].map((b) => frame(1, Buffer.from([b]))));
    const d = new ContainerStreamDecoder();
    assert.deepEqual(normalise(d.push(s)), normalise([msgB as unknown as ContainerMessage]));
  });

  test("several messages in one frame", () => {
    const many = Array.from({ length: 20 }, (_, i) => ({ type: "ssh_debug", i }));
    const d = new ContainerStreamDecoder();
    const out = d.push(frame(1, Buffer.concat(many.map((m) => encodeContainerMessage(m)))));
    assert.deepEqual(out.map((m) => m["i"]), many.map((m) => m.i));
  });

  test("stderr frames are ignored but counted, even when they look like messages", () => {
    const d = new ContainerStreamDecoder();
    const fake = encodeContainerMessage({ type: "result", result: {} });
    const out = d.push(Buffer.concat([frame(2, fake), frame(2, Buffer.from("abc"))]));
    assert.deepEqual(out, []);
    assert.equal(d.stderrSeen, fake.length + 3);
    d.end();
  });

  test("stderr bytes do not count toward the message size cap", () => {
    const d = new ContainerStreamDecoder(16);
    assert.deepEqual(d.push(frame(2, Buffer.alloc(1000, 0xff))), []);
    d.end();
  });

  test("a header with a bad stream byte is an error", () => {
    const d = new ContainerStreamDecoder();
    const bad = frame(1, encodeContainerMessage(msgA));
    bad[0] = 3;
    assert.throws(() => d.push(bad), ContainerStreamError);
  });

  test("a header with non-zero padding is an error", () => {
    for (const pos of [1, 2, 3]) {
      const bad = frame(1, encodeContainerMessage(msgA));
      bad[pos] = 1;
      assert.throws(() => new ContainerStreamDecoder().push(bad), ContainerStreamError, `byte ${pos}`);
    }
  });

  test("raw msgpack without Docker framing (a TTY container) is an error", () => {
    const d = new ContainerStreamDecoder();
    assert.throws(() => d.push(Buffer.from(JSON.stringify({ type: "result" }))), ContainerStreamError);
  });

  test("a message length over the cap is an error as soon as the length is read", () => {
    const d = new ContainerStreamDecoder(100);
    const len = Buffer.alloc(4);
    len.writeUInt32BE(101, 0);
    assert.throws(() => d.push(frame(1, len)), (err: unknown) => {
      assert.ok(err instanceof ContainerStreamError);
      assert.match(err.message, /101/);
      return true;
    });
  });

  test("a message of exactly the cap is accepted, one byte more is not", () => {
    const msg = encodeContainerMessage({ type: "x", pad: "p".repeat(50) });
    const bodyLen = msg.length - 4;
    assert.equal(new ContainerStreamDecoder(bodyLen).push(frame(1, msg)).length, 1);
    assert.throws(() => new ContainerStreamDecoder(bodyLen - 1).push(frame(1, msg)), ContainerStreamError);
  });

  test("the default cap is 64 MiB", () => {
    const d = new ContainerStreamDecoder();
    const len = Buffer.alloc(4);
    len.writeUInt32BE(64 * 1024 * 1024, 0);
    assert.deepEqual(d.push(frame(1, len)), []);
    len.writeUInt32BE(64 * 1024 * 1024 + 1, 0);
    assert.throws(() => new ContainerStreamDecoder().push(frame(1, len)), ContainerStreamError);
  });

  test("end() in the middle of a frame header is an error", () => {
    const d = new ContainerStreamDecoder();
    d.push(frame(1, encodeContainerMessage(msgA)).subarray(0, 5));
    assert.equal(d.idle, false);
    assert.throws(() => d.end(), /middle of a frame/);
  });

  test("end() in the middle of a frame payload is an error", () => {
    const d = new ContainerStreamDecoder();
    const s = frame(1, encodeContainerMessage(msgA));
    d.push(s.subarray(0, 12));
    assert.throws(() => d.end(), ContainerStreamError);
  });

  test("end() between frames but in the middle of a message is an error", () => {
    const d = new ContainerStreamDecoder();
    const body = encodeContainerMessage(msgA);
    d.push(frame(1, body.subarray(0, 10)));
    assert.equal(d.idle, false);
    assert.throws(() => d.end(), /middle of a message/);
  });

  test("a big message keeps none of the chunks it came in: each is copied into the message as it comes", () => {
    const big = { type: "result", result: { result: "success", stdout: "x".repeat(3 * 1024 * 1024) } };
    const stream = Buffer.concat([frame(1, encodeContainerMessage(big)), frame(1, encodeContainerMessage(msgA))]);
    const d = new ContainerStreamDecoder();
    const out: ContainerMessage[] = [];
    for (let at = 0; at < stream.length; at += 65_536) {
      const chunk = Buffer.from(stream.subarray(at, at + 65_536));
      out.push(...d.push(chunk));
      chunk.fill(0xff); // a chunk the decoder still held would now spoil the message
    }
    assert.deepEqual(normalise(out), normalise([big as unknown as ContainerMessage, msgA]));
    d.end();
  });

  test("end() in the middle of a big message is an error", () => {
    const d = new ContainerStreamDecoder();
    const body = encodeContainerMessage({ type: "result", result: { stdout: "x".repeat(2 * 1024 * 1024) } });
    d.push(frame(1, body.subarray(0, 100_000)));
    assert.equal(d.idle, false);
    assert.throws(() => d.end(), /middle of a message/);
  });

  test("end() in the middle of a length prefix is an error", () => {
    const d = new ContainerStreamDecoder();
    d.push(frame(1, Buffer.from([0, 0])));
    assert.throws(() => d.end(), ContainerStreamError);
  });

  test("end() on an empty stream is clean", () => {
    const d = new ContainerStreamDecoder();
    assert.equal(d.idle, true);
    d.end();
  });

  test("a message that is not msgpack is an error", () => {
    const body = Buffer.from([0xc1, 0xc1]);
    const len = Buffer.alloc(4);
    len.writeUInt32BE(body.length, 0);
    assert.throws(() => new ContainerStreamDecoder().push(frame(1, Buffer.concat([len, body]))), ContainerStreamError);
  });

  test("a message that is not a map, or has no string type, is an error", () => {
    for (const v of [[1, 2], "result", 5, { kind: "result" }, { type: 3 }]) {
      const body = pack(v);
      assert.throws(() => decodeContainerMessage(body), ContainerStreamError, JSON.stringify(v));
    }
  });

  // What the Python agent cannot read either (its unpack fails, or the stream is cut) ends a
  // job without a result with its no-result text; what it reads on (it skips a message that is
  // not a map or has no type; it has no caps) keeps the agent's own text.
  test("which errors the Python agent could not read either", () => {
    const cannot = (fn: () => unknown): boolean => {
      try {
        fn();
      } catch (err) {
        assert.ok(err instanceof ContainerStreamError);
        return err.pythonCannotRead;
      }
      return assert.fail("no error");
    };
    const lenOf = (body: Buffer): Buffer => Buffer.concat([Buffer.from([0, 0, 0, body.length]), body]);
    assert.equal(cannot(() => decodeContainerMessage(Buffer.from([0xc1]))), true, "not msgpack");
    assert.equal(cannot(() => decodeContainerMessage(Buffer.from([0x81, 0xa1, 0x61, 0xa3, 0xc3, 0x28, 0xff]))), true, "a str that is not UTF-8");
    assert.equal(cannot(() => decodeContainerMessage(Buffer.concat([pack({ type: "result" }), Buffer.from([1])]))), true, "bytes after its end");
    assert.equal(cannot(() => decodeContainerMessage(pack([1, 2]))), false, "not a map: skipped by Python");
    assert.equal(cannot(() => decodeContainerMessage(pack({ kind: "x" }))), false, "no type: skipped by Python");
    assert.equal(cannot(() => new ContainerStreamDecoder(3).push(frame(1, lenOf(pack({ type: "result" }))))), false, "over the cap");
    const cut = new ContainerStreamDecoder();
    cut.push(frame(1, lenOf(pack({ type: "result" })).subarray(0, 6)));
    assert.equal(cannot(() => cut.end()), true, "cut in the middle of a message");
  });

  test("encodeContainerMessage frames with a uint32 BE length and round-trips", () => {
    const m = { type: "start", input: { q1: "x", "@state": "" }, debug: false, envtypes: { docker: true }, run_as_root: false };
    const enc = encodeContainerMessage(m);
    assert.equal(enc.readUInt32BE(0), enc.length - 4);
    assert.deepEqual(unpack(enc.subarray(4)), m);
    // field order is kept (type first)
    assert.deepEqual(Object.keys(unpack(enc.subarray(4)) as object), Object.keys(m));
  });

  test("encodeContainerMessage keeps bytes as bytes", () => {
    const enc = encodeContainerMessage({ type: "start", input: { f: { filename: "a", value: Buffer.from([0, 255]) } } });
    const back = unpack(enc.subarray(4)) as { input: { f: { value: Buffer } } };
    assert.ok(Buffer.isBuffer(back.input.f.value));
    assert.deepEqual([...back.input.f.value], [0, 255]);
  });
});

describe("ByteQueue", () => {
  test("take across several chunks returns the bytes in order", () => {
    const q = new ByteQueue();
    q.push(Buffer.from([1, 2]));
    q.push(Buffer.from([3]));
    q.push(Buffer.from([4, 5, 6]));
    assert.equal(q.length, 6);
    assert.deepEqual([...q.take(4)], [1, 2, 3, 4]);
    assert.equal(q.length, 2);
    assert.deepEqual([...q.take(2)], [5, 6]);
    assert.equal(q.length, 0);
  });

  test("take within the first chunk, then the rest of it", () => {
    const q = new ByteQueue();
    q.push(Buffer.from([1, 2, 3, 4]));
    assert.deepEqual([...q.take(1)], [1]);
    assert.deepEqual([...q.take(3)], [2, 3, 4]);
    assert.equal(q.length, 0);
  });

  test("peek does not consume and spans chunks", () => {
    const q = new ByteQueue();
    q.push(Buffer.from([9]));
    q.push(Buffer.from([8, 7]));
    q.take(0);
    assert.deepEqual([...q.peek(3)], [9, 8, 7]);
    assert.deepEqual([...q.peek(2)], [9, 8]);
    assert.equal(q.length, 3);
    q.take(1);
    assert.deepEqual([...q.peek(2)], [8, 7]);
  });

  test("empty pushes are ignored and take(0) is empty", () => {
    const q = new ByteQueue();
    q.push(Buffer.alloc(0));
    assert.equal(q.length, 0);
    assert.equal(q.take(0).length, 0);
    q.push(Buffer.from([1]));
    q.push(Buffer.alloc(0));
    assert.deepEqual([...q.take(1)], [1]);
  });

  test("reading past the end throws RangeError and leaves the queue intact", () => {
    const q = new ByteQueue();
    q.push(Buffer.from([1, 2]));
    assert.throws(() => q.take(3), RangeError);
    assert.throws(() => q.peek(3), RangeError);
    assert.equal(q.length, 2);
    assert.deepEqual([...q.take(2)], [1, 2]);
  });

  test("random pushes and takes match a plain concatenation", () => {
    let seed = 7;
    const rnd = (n: number): number => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 8) % n;
    const q = new ByteQueue();
    const all: number[] = [];
    const got: number[] = [];
    let counter = 0;
    for (let i = 0; i < 3000; i++) {
      if (rnd(2) === 0) {
        const c = Buffer.from(Array.from({ length: rnd(10) }, () => counter++ & 0xff));
        all.push(...c);
        q.push(c);
      } else {
        const n = rnd(q.length + 1);
        if (n > 0 && n <= 8) assert.deepEqual([...q.peek(n)], all.slice(got.length, got.length + n));
        got.push(...q.take(n));
      }
      assert.equal(q.length, all.length - got.length);
    }
    got.push(...q.take(q.length));
    assert.deepEqual(got, all);
  });
});

describe("JsonLineSplitter", () => {
  test("values split across chunks and several in one chunk", () => {
    const s = new JsonLineSplitter();
    assert.deepEqual(s.push('{"a":'), []);
    assert.deepEqual(s.push('1}\n{"b":2}\n{"c"'), [{ a: 1 }, { b: 2 }]);
    assert.deepEqual(s.push(":3}\n"), [{ c: 3 }]);
  });

  test("blank lines and CRLF are tolerated", () => {
    const s = new JsonLineSplitter();
    assert.deepEqual(s.push("\n\r\n{\"a\":1}\r\n  \n[2]\n"), [{ a: 1 }, [2]]);
  });

  test("a line that does not parse goes to onBadLine and the next one still parses", () => {
    const s = new JsonLineSplitter();
    const bad: string[] = [];
    const out = s.push("not json\n{\"ok\":true}\n", (line) => bad.push(line));
    assert.deepEqual(out, [{ ok: true }]);
    assert.deepEqual(bad, ["not json"]);
  });

  test("a value without its newline stays pending", () => {
    const s = new JsonLineSplitter();
    assert.deepEqual(s.push(Buffer.from('{"a":1}')), []);
    assert.deepEqual(s.push(Buffer.from("\n")), [{ a: 1 }]);
  });

  test("a multi-byte UTF-8 character split across two chunks is decoded intact", () => {
    const line = Buffer.from('{"name":"é€"}\n', "utf8");
    const at = line.indexOf(0xc3) + 1; // in the middle of é
    const s = new JsonLineSplitter();
    const out = [...s.push(line.subarray(0, at)), ...s.push(line.subarray(at))];
    assert.deepEqual(out, [{ name: "é€" }]);
  });

  test("an endless line is dropped past 16 MiB", () => {
    const s = new JsonLineSplitter();
    const bad: string[] = [];
    s.push("x".repeat(16 * 1024 * 1024 + 1), (line) => bad.push(line));
    assert.equal(bad.length, 1);
    assert.deepEqual(s.push('{"a":1}\n'), [{ a: 1 }]);
  });
});

/**
 * Unit tests for the msgpack walker (checks and caps before anything is built), the decoding
 * caps of container messages, and values spliced as their bytes (inputdata into `start`, a
 * result's fields into AgentJobDone).
 */
import { test, describe } from "node:test";
import assert from "node:assert/strict";
import {
  MAX_DECODED_DEPTH, MAX_DECODED_OBJECTS, MsgpackError, MsgpackLimitError, MsgpackWalker, walkOne,
} from "../src/protocol/msgpack-walk.js";
import { Float64, pack, Packed, unpack, type Packable } from "../src/protocol/msgpack.js";
import { ContainerStreamError, decodeContainerMessage, encodeContainerMessage } from "../src/protocol/container-stream.js";
import { checkGradingResult, BadResultError } from "../src/protocol/grading-result.js";
import {
  decodeBackendMessage, encodeAgentMessage, encodeBackendMessage, inputdataBytes, inputState,
} from "../src/protocol/messages.js";

const hex = (b: Uint8Array): string => Buffer.from(b).toString("hex");
const bytes = (h: string): Buffer => Buffer.from(h.replace(/\s/g, ""), "hex");

/** A map {type, field: <raw>} with `raw` spliced as it is. */
function message(type: string, raw: Uint8Array, field = "x"): Buffer {
  return pack({ type, [field]: new Packed(raw) });
}

/** array32 header + `n` copies of `item`. */
function manyOf(n: number, item: number): Buffer {
  const b = Buffer.alloc(5 + n, item);
  b[0] = 0xdd;
  b.writeUInt32BE(n, 1);
  return b;
}

/** `levels` nested one-item arrays around 1. */
function nested(levels: number): Buffer {
  return Buffer.concat([Buffer.alloc(levels, 0x91), Buffer.from([1])]);
}

describe("msgpack walker", () => {
  test("accepts every msgpack type and finds where a value ends", () => {
    const v = new Map<Packable, Packable>([
      [1, "int key"], [-1, null], [true, [1.5, new Float64(2)]], ["s", Buffer.from([0, 255])],
      [18446744073709551615n, -9223372036854775808n], ["", {}], [[1, [2]], "array key"],
    ]);
    const b = Buffer.concat([pack(v), Buffer.from([0xc0])]);
    const w = new MsgpackWalker(b);
    assert.equal(w.skip(0, b.length), b.length - 1);
    assert.equal(w.objects, 1 + 7 * 2 + 2 + 3, "every value counts one, keys included");
    // ext: fixext 1..16, ext 8, and timestamps of 4, 8 and 12 bytes
    for (const h of ["d40105", "d5010001", "c70301aabbcc", "d6ff00000001", "d7ff0000000400000001", "c70cff3b9ac9ff0000000000000001"]) {
      walkOne(bytes(h));
    }
  });

  test("refuses what Python's msgpack would not load", () => {
    const bad: Record<string, string> = {
      "0xc1": "c1",
      "a truncated str": "a3616263".slice(0, 6),
      "a truncated array": "93 01 02",
      "invalid UTF-8 in a str": "a2c328",
      "invalid UTF-8 in a key": "81a1ff01",
      "a lone surrogate in a str": "a3eda080",
      "a timestamp of 5 bytes": "c705ff0000000000",
      "an ext of a negative type other than -1": "d4fb00",
      "a timestamp with 10^9 ns": "c70cff3b9aca000000000000000001",
      "a map as a map key": "81 80 01",
      "a map inside an array key": "81 91 80 01",
      "trailing bytes": "c0c0",
      "an array announcing more items than bytes": "dd ffffffff 01",
    };
    for (const [what, h] of Object.entries(bad)) {
      assert.throws(() => walkOne(bytes(h)), MsgpackError, what);
    }
    // a map *value* inside an array key's sibling is fine
    walkOne(bytes("82 91 01 80 a1 61 80"));
  });

  test("depth: the top value is at depth 0, nesting to 512 passes, 513 is refused", () => {
    walkOne(nested(MAX_DECODED_DEPTH));
    assert.throws(() => walkOne(nested(MAX_DECODED_DEPTH + 1)), MsgpackLimitError);
    // a million levels: refused at 513, without a deep stack
    assert.throws(() => walkOne(nested(1_000_000)), /nested deeper than 512 levels/);
  });

  test("objects: the cap stops the walk as soon as it is passed", () => {
    walkOne(manyOf(MAX_DECODED_OBJECTS - 1, 0x80));
    assert.throws(() => walkOne(manyOf(MAX_DECODED_OBJECTS, 0x80)), /more than 1000000 values/);
  });
});

describe("container message caps", () => {
  test("a known message of more than a million values is refused before it is built", () => {
    const before = process.memoryUsage().heapUsed;
    // 48 MiB of empty maps: 50 million values once decoded, gigabytes of objects
    const body = message("run_student", manyOf(48 * 1024 * 1024, 0x80));
    assert.throws(() => decodeContainerMessage(body), (err: Error) => {
      assert.ok(err instanceof ContainerStreamError);
      assert.match(err.message, /decodes to too much \(more than 1000000 values\)/);
      return true;
    });
    const grew = process.memoryUsage().heapUsed - before;
    assert.ok(grew < 64 * 1024 * 1024, `heap grew by ${grew} bytes`);
  });

  test("the cap holds whatever the order of keys, and for a result too", () => {
    const big = manyOf(MAX_DECODED_OBJECTS, 0x90);
    const late = Buffer.concat([bytes("82 a1 78"), big, bytes("a4 74797065"), pack("run_student")]);
    assert.throws(() => decodeContainerMessage(late), /decodes to too much/);
    assert.throws(() => decodeContainerMessage(message("result", big, "result")), /decodes to too much/);
  });

  test("a message nested deeper than 512 levels is refused, whatever its type", () => {
    // the field's value is at depth 1
    decodeContainerMessage(message("ssh_debug", nested(MAX_DECODED_DEPTH - 1)));
    for (const type of ["ssh_debug", "noise"]) {
      assert.throws(() => decodeContainerMessage(message(type, nested(MAX_DECODED_DEPTH))), /decodes to too much \(nested deeper/);
    }
  });

  test("a message of an unknown type is skipped without building it, however big", () => {
    const out = decodeContainerMessage(message("noise", manyOf(4 * MAX_DECODED_OBJECTS, 0x80), "data"));
    assert.deepEqual(out, { type: "noise" });
  });

  test("a str that is not UTF-8 ends the stream, in any message (Python's unpack fails on it)", () => {
    for (const type of ["result", "noise"]) {
      assert.throws(() => decodeContainerMessage(message(type, bytes("a2c328"))), /is not msgpack \(a str that is not valid UTF-8/);
    }
  });

  test("caps are parameters of the stream decoder", () => {
    const body = message("ssh_debug", manyOf(10, 0x80));
    decodeContainerMessage(body);
    assert.throws(() => decodeContainerMessage(body, { maxObjects: 10, maxDepth: 512 }), /more than 10 values/);
  });
});

describe("values spliced as their bytes", () => {
  // what Python's msgpack packs for {"two": 2.0, "big": 12345678901234567890, 1: [1.0, {"x": 3.0}], "ts": Timestamp(1)}
  const awkward = bytes(
    "84 a374776f cb4000000000000000 a3626967 cfab54a98ceb1f0ad2 01 92 cb3ff0000000000000 81 a178 cb4008000000000000"
    + " a27473 d6ff00000001",
  );

  test("pack writes a Packed value's bytes as they are", () => {
    assert.equal(hex(pack({ a: new Packed(awkward), b: 1 })), `82a161${hex(awkward)}a16201`);
  });

  test("inputdata: the backend's bytes go into start unchanged, @state is read from them", () => {
    // {"@state": "old", "@lang": "fr"} followed by the 4 entries of `awkward`, as one map
    const six = Buffer.concat([bytes("86 a6407374617465 a36f6c64 a5406c616e67 a26672"), awkward.subarray(1)]);
    const frame = encodeBackendMessage({
      type: "BackendNewJob", job_id: "j", course_id: "c", task_id: "t", task_problems: {}, inputdata: new Packed(six),
      environment_type: "docker", environment: "default", environment_parameters: {}, debug: false,
    });
    const job = decodeBackendMessage(frame);
    assert.equal(job.type, "BackendNewJob");
    if (job.type !== "BackendNewJob") return;
    assert.equal(hex(inputdataBytes(job.inputdata)), hex(six));
    assert.equal(inputState(job.inputdata), "old");
    const start = encodeContainerMessage({ type: "start", input: new Packed(inputdataBytes(job.inputdata)), debug: false });
    assert.ok(start.includes(six), "the start message holds the input's bytes");
    // plain values (the grade command, tests) are packed
    assert.equal(inputState({ "@state": "s" }), "s");
    assert.equal(hex(inputdataBytes({ a: 1 })), "81a16101");
  });

  test("inputdata that Python could not load is refused with the job id", () => {
    const frame = Buffer.concat([
      bytes("83 a6 6a6f625f6964 a2 6a31 a5 4074797065 ad 4261636b656e644e65774a6f62 a9 696e70757464617461"),
      bytes("81 a1 78 a2 c328"),
    ]);
    assert.throws(() => decodeBackendMessage(frame), (err: Error & { jobId?: string | null }) => {
      assert.match(err.message, /not msgpack: a str that is not valid UTF-8/);
      assert.equal(err.jobId, "j1");
      return true;
    });
  });

  test("a result's problems, tests, custom and state reach AgentJobDone as the container's bytes", () => {
    // `awkward` with "one" for its integer key 1: the frontend stores string keys only
    const custom = bytes(hex(awkward).replace("01" + "92cb3ff0", "a36f6e65" + "92cb3ff0"));
    const tests = bytes("82 a174 cb4000000000000000 a175 cfffffffffffffffff");
    const problems = bytes("81 a171 92 a773756363657373 a0");
    const result = pack({
      result: "success", grade: new Float64(50), problems: new Packed(problems), tests: new Packed(tests),
      custom: new Packed(custom), state: new Packed(bytes("a4c3a9c3a9")),
    });
    const r = checkGradingResult(result);
    assert.equal(r.grade, 50);
    for (const [got, want] of [[r.tests, tests], [r.problems, problems], [r.custom, custom]] as const) {
      assert.equal(hex(got.bytes), hex(want));
    }
    const frame = encodeAgentMessage({
      type: "AgentJobDone", job_id: "j", result: [r.result, r.text], grade: r.grade ?? 0, problems: r.problems,
      tests: r.tests, custom: r.custom, state: r.state, archive: null, stdout: r.stdout, stderr: r.stderr,
    });
    const want = Buffer.concat([
      bytes("8b a6 6a6f625f6964 a1 6a a6 726573756c74 92 a773756363657373 a0 a5 6772616465 cb4049000000000000"),
      bytes("a8 70726f626c656d73"), problems, bytes("a5 7465737473"), tests, bytes("a6 637573746f6d"), custom,
      bytes("a5 7374617465 a4c3a9c3a9 a7 61726368697665 c0 a6 7374646f7574 a0 a6 737464657272 a0"),
      bytes("a5 4074797065 ac 4167656e744a6f62446f6e65"),
    ]);
    assert.equal(hex(frame), hex(want));
  });

  test("the result rules still hold on bytes: a key that is not a str is refused anywhere, with its path", () => {
    const refused = (v: Packable, text: string): void => {
      assert.throws(() => checkGradingResult(pack(v)), (err: unknown) => err instanceof BadResultError && err.message === text, text);
    };
    const prefix = "The grader did not return a readable output : ";
    const stored = "; INGInious stores only string keys.";
    refused({ custom: new Map<Packable, Packable>([["a", 1], [1, "x"]]) }, `${prefix}custom has a map key that is not a string (the integer 1)${stored}`);
    refused({ custom: { a: [0, { b: new Map<Packable, Packable>([[2.5, [1]]]) }] } },
      `${prefix}custom["a"][1]["b"] has a map key that is not a string (the float 2.5)${stored}`);
    refused({ custom: { k: new Map<Packable, Packable>([[null, 1]]) } }, `${prefix}custom["k"] has a map key that is not a string (nil)${stored}`);
    refused({ custom: new Map<Packable, Packable>([[Buffer.from("ab"), 1]]) },
      `${prefix}custom has a map key that is not a string (a bin value of 2 bytes)${stored}`);
    refused({ custom: new Map<Packable, Packable>([[[1, 2], 1]]) }, `${prefix}custom has a map key that is not a string (an array)${stored}`);
    refused({ custom: new Map<Packable, Packable>([[true, 1]]) }, `${prefix}custom has a map key that is not a string (the boolean true)${stored}`);
    refused({ custom: new Map<Packable, Packable>([[2n ** 64n - 1n, 1]]) },
      `${prefix}custom has a map key that is not a string (the integer 18446744073709551615)${stored}`);
    refused({ tests: new Map<Packable, Packable>([[1, "x"]]) }, `${prefix}tests has a map key that is not a string (the integer 1)${stored}`);
    refused({ problems: { q1: ["success", new Map<Packable, Packable>([[-3, "x"]])] } },
      `${prefix}problems["q1"][1] has a map key that is not a string (the integer -3)${stored}`);
    refused(new Map<Packable, Packable>([[1, "x"]]), `${prefix}the result has a map key that is not a string (the integer 1).`);
    // before any other check, as the Python agent's strict unpack fails first
    refused({ grade: "x", custom: new Map<Packable, Packable>([[1, 1]]) }, `${prefix}custom has a map key that is not a string (the integer 1)${stored}`);
    assert.doesNotThrow(() => checkGradingResult(pack({ custom: { "any key / with spaces": { a: [{ b: 1 }] } } })));
    assert.throws(() => checkGradingResult(pack({ problems: { p: { nested: 1 } } })), (e: unknown) => (e as BadResultError).detail === "problems.p must not be a map");
    assert.throws(() => checkGradingResult(pack({ state: 1 })), (e: unknown) => (e as BadResultError).detail === "state has the wrong type");
    assert.throws(() => checkGradingResult(pack({ grade: Number.NaN })), /grade is not a finite number/);
    // a key given twice: the last one counts, as in a Python dict
    const twice = Buffer.concat([bytes("82 a6 726573756c74"), pack("failed"), bytes("a6 726573756c74"), pack("success")]);
    assert.equal(checkGradingResult(twice).result, "success");
  });

  test("the decoded view reads what the agent needs, the bytes keep the rest", () => {
    const v = unpack(awkward) as Record<string, unknown>;
    assert.equal(v["two"], 2);
    assert.equal(v["1"] !== undefined, true, "a non-string key reads as a string in the view");
    assert.deepEqual(unpack(bytes("c4 03 000102")), Buffer.from([0, 1, 2]));
  });
});

/**
 * Unit tests for the backend wire: msgpack packing/unpacking, the golden INGInious frames
 * (test/fixtures/golden, made by Python's msgpack), and the strict backend message decoder.
 */
import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import { inspect } from "node:util";
import { fileURLToPath } from "node:url";
import { Float64, pack, Packed, unpack, type Packable } from "../src/protocol/msgpack.js";
import {
  BadFrameError,
  decodeAgentFrame,
  decodeBackendMessage,
  encodeAgentMessage,
  encodeBackendMessage,
  roundGrade,
  type AgentMessage,
  type BackendMessage,
} from "../src/protocol/messages.js";

// From dist/test/ back to the source tree's test/fixtures/golden/.
const GOLDEN = fileURLToPath(new URL("../../test/fixtures/golden/", import.meta.url));

const hex = (b: Uint8Array): string => Buffer.from(b).toString("hex");

/** Rebuilds a value from the JSON twin ($bytes_b64 -> Buffer, $float -> number, $map -> Map). */
function fromJson(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(fromJson);
  if (typeof v === "object" && v !== null) {
    const o = v as Record<string, unknown>;
    const keys = Object.keys(o);
    if (keys.length === 1 && keys[0] === "$bytes_b64") return Buffer.from(o["$bytes_b64"] as string, "base64");
    if (keys.length === 1 && keys[0] === "$float") return o["$float"];
    if (keys.length === 1 && keys[0] === "$map") {
      return new Map((o["$map"] as [unknown, unknown][]).map(([k, x]) => [fromJson(k), fromJson(x)]));
    }
    const out: Record<string, unknown> = {};
    for (const k of keys) out[k] = fromJson(o[k]);
    return out;
  }
  return v;
}

function golden(name: string): { bytes: Buffer; json: Record<string, unknown> } {
  return {
    bytes: readFileSync(GOLDEN + name + ".msgpack"),
    json: JSON.parse(readFileSync(GOLDEN + name + ".json", "utf8")) as Record<string, unknown>,
  };
}

/** The typed form of a golden message: fields of the JSON twin, "@type" moved to `type`. */
function typed<T>(json: Record<string, unknown>): T {
  const { "@type": type, ...fields } = fromJson(json) as Record<string, unknown>;
  return { type, ...fields } as T;
}

const fixtureNames = readdirSync(GOLDEN).filter((f) => f.endsWith(".msgpack")).map((f) => f.slice(0, -8));
const backendFixtures = fixtureNames.filter((n) => n === "Ping" || n.startsWith("Backend"));
const agentFixtures = fixtureNames.filter((n) => !backendFixtures.includes(n));

describe("msgpack pack", () => {
  test("integers use the smallest msgpack form at every boundary", () => {
    const cases: Array<[number | bigint, string]> = [
      [0, "00"], [127, "7f"], [128, "cc80"], [255, "ccff"], [256, "cd0100"], [65535, "cdffff"],
      [65536, "ce00010000"], [4294967295, "ceffffffff"], [4294967296, "cf0000000100000000"],
      [-1, "ff"], [-32, "e0"], [-33, "d0df"], [-128, "d080"], [-129, "d1ff7f"], [-32768, "d18000"],
      [-32769, "d2ffff7fff"], [-2147483648, "d280000000"], [-2147483649, "d3ffffffff7fffffff"],
      [18446744073709551615n, "cfffffffffffffffff"], [-9223372036854775808n, "d38000000000000000"],
    ];
    for (const [v, want] of cases) assert.equal(hex(pack(v)), want, `pack(${v})`);
  });

  test("integers that do not fit in 64 bits are refused", () => {
    assert.throws(() => pack(18446744073709551616n), RangeError);
    assert.throws(() => pack(-9223372036854775809n), RangeError);
  });

  test("non-integers, -0 and Float64 are float64; whole Float64 stays float64", () => {
    assert.equal(hex(pack(1.5)), "cb3ff8000000000000");
    assert.equal(hex(pack(-0)), "cb8000000000000000");
    assert.equal(hex(pack(new Float64(100))), "cb4059000000000000");
    assert.equal(hex(pack(new Float64(0))), "cb0000000000000000");
    assert.equal(hex(pack(100)), "64");
    assert.equal(hex(pack(2 ** 53)), "cb4340000000000000", "an unsafe integer is not written as an int");
  });

  test("nil, booleans and undefined", () => {
    assert.equal(hex(pack(null)), "c0");
    assert.equal(hex(pack(undefined)), "c0");
    assert.equal(hex(pack(true)), "c3");
    assert.equal(hex(pack(false)), "c2");
  });

  test("strings switch from fixstr to str8/str16/str32 at Python's boundaries", () => {
    assert.equal(hex(pack("")), "a0");
    assert.equal(pack("a".repeat(31))[0], 0xbf);
    assert.equal(hex(pack("a".repeat(32)).subarray(0, 2)), "d920");
    assert.equal(hex(pack("a".repeat(255)).subarray(0, 2)), "d9ff");
    assert.equal(hex(pack("a".repeat(256)).subarray(0, 3)), "da0100");
    assert.equal(hex(pack("a".repeat(65536)).subarray(0, 5)), "db00010000");
    // length is in UTF-8 bytes, not UTF-16 code units
    assert.equal(hex(pack("é")), "a2c3a9");
  });

  test("bytes are bin8/bin16/bin32, never str", () => {
    assert.equal(hex(pack(new Uint8Array(0))), "c400");
    assert.equal(hex(pack(Buffer.from([1, 2]))), "c4020102");
    assert.equal(hex(pack(new Uint8Array(256)).subarray(0, 3)), "c50100");
    assert.equal(hex(pack(new Uint8Array(65536)).subarray(0, 5)), "c600010000");
  });

  test("arrays and maps: fix form up to 15 entries, then 16-bit counts", () => {
    assert.equal(pack(new Array(15).fill(0))[0], 0x9f);
    assert.equal(hex(pack(new Array(16).fill(0)).subarray(0, 3)), "dc0010");
    const obj15 = Object.fromEntries(Array.from({ length: 15 }, (_, i) => [`k${i}`, i]));
    const obj16 = Object.fromEntries(Array.from({ length: 16 }, (_, i) => [`k${i}`, i]));
    assert.equal(pack(obj15)[0], 0x8f);
    assert.equal(hex(pack(obj16).subarray(0, 3)), "de0010");
    assert.equal(hex(pack(new Array(65536).fill(0)).subarray(0, 5)), "dd00010000");
  });

  test("object keys keep insertion order and undefined fields are left out", () => {
    assert.equal(hex(pack({ b: 1, a: 2, c: undefined })), "82a16201a16102");
  });

  test("a Map may have non-string keys", () => {
    assert.equal(hex(pack(new Map<Packable, Packable>([[1, "x"], ["k", 2]]))), "8201a178a16b02");
  });

  test("a large buffer grows the writer correctly", () => {
    const big = Buffer.alloc(1_000_000, 7);
    const out = unpack(pack({ a: big, b: "end" })) as { a: Buffer; b: string };
    assert.ok(out.a.equals(big));
    assert.equal(out.b, "end");
  });

  test("values nested too deeply are refused rather than overflowing the stack", () => {
    let v: Packable = 1;
    for (let i = 0; i < 600; i++) v = [v];
    assert.throws(() => pack(v), RangeError);
  });

  test("functions and symbols cannot be packed", () => {
    assert.throws(() => pack((() => 1) as unknown as Packable), TypeError);
  });
});

describe("msgpack unpack", () => {
  test("round trip of a nested value", () => {
    const v = { s: "txt", n: -5, f: 2.25, t: true, z: null, a: [1, "two", [3]], m: { x: { y: 1 } } };
    assert.deepEqual(unpack(pack(v)), v);
  });

  test("whole float64 decodes as a plain number", () => {
    assert.equal(unpack(pack(new Float64(100))), 100);
  });

  test("bin decodes to a Buffer that does not alias the input", () => {
    const frame = pack({ b: Buffer.from([1, 2, 3]) });
    const out = unpack(frame) as { b: Buffer };
    assert.ok(Buffer.isBuffer(out.b));
    assert.deepEqual([...out.b], [1, 2, 3]);
    frame.fill(0);
    assert.deepEqual([...out.b], [1, 2, 3], "decoded bytes must be a copy");
  });

  test("integer map keys come out as strings", () => {
    const out = unpack(pack(new Map<Packable, Packable>([[1, "x"], [2, "y"]]))) as Record<string, unknown>;
    assert.deepEqual(Object.keys(out), ["1", "2"]);
    assert.equal(out["1"], "x");
  });

  test("truncated input throws", () => {
    const full = pack({ job_id: "abc", state: "s" });
    for (let n = 0; n < full.length; n++) {
      assert.throws(() => unpack(full.subarray(0, n)), `prefix of ${n} bytes`);
    }
  });

  test("trailing bytes after a value throw", () => {
    assert.throws(() => unpack(Buffer.from("80ff", "hex")));
  });

  test("a map key named __proto__ cannot change the prototype", () => {
    const frame = pack(new Map<Packable, Packable>([["__proto__", { polluted: true }]]));
    const out = unpack(frame) as Record<string, unknown>;
    assert.equal(Object.getPrototypeOf(out), Object.prototype);
    assert.equal((out as { polluted?: unknown }).polluted, undefined);
    assert.equal(({} as { polluted?: unknown }).polluted, undefined);
  });
});

describe("golden INGInious frames", () => {
  test("every fixture has a JSON twin and is classified", () => {
    assert.ok(backendFixtures.length >= 5, `backend fixtures: ${backendFixtures.join(", ")}`);
    assert.ok(agentFixtures.length >= 5, `agent fixtures: ${agentFixtures.join(", ")}`);
    for (const n of agentFixtures) {
      assert.match(n, /^(AgentHello|AgentJobStarted|AgentJobDone|AgentJobSSHDebug|Pong)(-|$)/);
    }
  });

  for (const name of backendFixtures.filter((n) => n !== "BackendNewJob-intkey")) {
    test(`${name}: decodes to the JSON twin and re-encodes to the same bytes`, () => {
      const { bytes, json } = golden(name);
      const decoded = decodeBackendMessage(bytes);
      const want = typed<BackendMessage>(json);
      if (decoded.type === "BackendNewJob" && want.type === "BackendNewJob") {
        // inputdata stays the bytes the backend sent; their decoded form is the JSON twin's
        assert.ok(decoded.inputdata instanceof Packed);
        assert.deepStrictEqual(unpack(decoded.inputdata.bytes), want.inputdata);
        assert.deepStrictEqual({ ...decoded, inputdata: null }, { ...want, inputdata: null });
      } else assert.deepStrictEqual(decoded, want);
      assert.equal(hex(encodeBackendMessage(decoded)), hex(bytes));
    });
  }

  test("BackendNewJob-intkey: decodes, the int key reads as \"1\"", () => {
    const { bytes } = golden("BackendNewJob-intkey");
    const decoded = decodeBackendMessage(bytes);
    assert.equal(decoded.type, "BackendNewJob");
    if (decoded.type !== "BackendNewJob") return;
    assert.equal(decoded.job_id, "job-4");
    const q1 = decoded.task_problems["q1"] as { type: string; answers: Record<string, unknown> };
    assert.equal(q1.type, "match");
    assert.deepEqual(Object.keys(q1.answers), ["1", "2"]);
    assert.equal(q1.answers["1"], "x");
    assert.equal(q1.answers["2"], "y");
  });

  test("BackendNewJob-upload: the uploaded file is a Buffer with the exact bytes", () => {
    const { bytes } = golden("BackendNewJob-upload");
    const decoded = decodeBackendMessage(bytes);
    assert.equal(decoded.type, "BackendNewJob");
    if (decoded.type !== "BackendNewJob") return;
    assert.ok(decoded.inputdata instanceof Packed);
    const up = (unpack(decoded.inputdata.bytes) as Record<string, unknown>)["up"] as { filename: string; value: Buffer };
    assert.equal(up.filename, "a.bin");
    assert.ok(Buffer.isBuffer(up.value));
    assert.ok(up.value.equals(Buffer.from(Array.from({ length: 100 }, () => [0, 1, 255]).flat())));
  });

  for (const name of agentFixtures) {
    test(`${name}: encodeAgentMessage gives exactly Python's bytes`, () => {
      const { bytes, json } = golden(name);
      const msg = typed<AgentMessage>(json);
      assert.equal(hex(encodeAgentMessage(msg)), hex(bytes));
      // and our loose agent-frame reader reads the Python bytes back
      assert.equal(decodeAgentFrame(bytes)["@type"], json["@type"]);
    });
  }
});

describe("agent message encoding", () => {
  const done = {
    type: "AgentJobDone" as const, job_id: "j", result: ["success", "ok"] as ["success", string], grade: 100,
    problems: {}, tests: {}, custom: {}, state: "", archive: null, stdout: null, stderr: null,
  };

  test("AgentJobDone grade is a float64 even when whole", () => {
    const raw = unpack(encodeAgentMessage(done)) as Record<string, unknown>;
    assert.equal(raw["grade"], 100);
    const frame = encodeAgentMessage(done);
    assert.ok(frame.includes(Buffer.from("a56772616465cb4059000000000000", "hex")), hex(frame));
  });

  test("AgentJobDone grade is rounded to 2 decimals", () => {
    const raw = unpack(encodeAgentMessage({ ...done, grade: 33.33333 })) as Record<string, unknown>;
    assert.equal(raw["grade"], 33.33);
    assert.equal(roundGrade(66.666), 66.67);
  });

  test("roundGrade matches Python's round(x, 2), ties to even on the exact binary value", () => {
    // values printed by CPython 3: round(x, 2)
    const python: Array<[number, number]> = [
      [0.125, 0.12], [12.125, 12.12], [12.625, 12.62], [0.375, 0.38], [2.675, 2.67], [1.005, 1], [87.5, 87.5],
      [33.335, 33.34], [-0.125, -0.12], [100, 100], [66.666, 66.67],
    ];
    for (const [x, want] of python) assert.equal(roundGrade(x), want, `round(${x}, 2)`);
  });

  test("AgentJobDone fields are in INGInious's order, @type last", () => {
    const raw = unpack(encodeAgentMessage(done)) as Record<string, unknown>;
    assert.deepEqual(Object.keys(raw), [
      "job_id", "result", "grade", "problems", "tests", "custom", "state", "archive", "stdout", "stderr", "@type",
    ]);
    assert.equal(raw["archive"], null);
    assert.equal(raw["stdout"], null);
  });

  test("Pong is a one-entry map", () => {
    assert.equal(hex(encodeAgentMessage({ type: "Pong" })), "81a54074797065a4506f6e67");
  });
});

describe("decodeBackendMessage rejects bad frames", () => {
  const goodJob: Record<string, Packable> = {
    job_id: "job-9", course_id: "c", task_id: "t", task_problems: {}, inputdata: { "@state": "" },
    environment_type: "docker", environment: "default", environment_parameters: {}, debug: false,
    "@type": "BackendNewJob",
  };

  function bad(frame: Uint8Array): BadFrameError {
    try {
      decodeBackendMessage(frame);
    } catch (err) {
      assert.ok(err instanceof BadFrameError, `expected BadFrameError, got ${String(err)}`);
      assert.equal(err.size, frame.length);
      return err;
    }
    assert.fail("frame was accepted");
  }

  test("the good job frame itself is accepted", () => {
    const m = decodeBackendMessage(pack(goodJob));
    assert.equal(m.type, "BackendNewJob");
  });

  test("random bytes", () => {
    const e = bad(Buffer.from("dd0000ffff01", "hex"));
    assert.equal(e.messageType, null);
    assert.equal(e.jobId, null);
  });

  test("many random byte strings all give BadFrameError", () => {
    let seed = 12345;
    const rnd = (): number => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 8) & 0xff;
    for (let i = 0; i < 2000; i++) {
      const frame = Buffer.from(Array.from({ length: 1 + (rnd() % 40) }, rnd));
      bad(frame);
    }
    bad(Buffer.from("c1", "hex"));
  });

  test("empty frame", () => {
    bad(Buffer.alloc(0));
  });

  test("msgpack that is not a map", () => {
    for (const v of [[1, 2], "Ping", 3, null, Buffer.from("x")] as Packable[]) {
      const e = bad(pack(v));
      assert.equal(e.messageType, null);
    }
  });

  test("no @type", () => {
    const e = bad(pack({ job_id: "j1" }));
    assert.equal(e.messageType, null);
    assert.equal(e.jobId, "j1");
  });

  test("@type that is not a string", () => {
    bad(pack({ "@type": 5 }));
  });

  test("unknown type keeps the type and job id", () => {
    const e = bad(pack({ job_id: "j2", "@type": "BackendFrobnicate" }));
    assert.equal(e.messageType, "BackendFrobnicate");
    assert.equal(e.jobId, "j2");
  });

  test("an agent message type is unknown to the agent", () => {
    const e = bad(pack({ "@type": "Pong" }));
    assert.equal(e.messageType, "Pong");
  });

  test("inherited property names are not message types", () => {
    for (const t of ["toString", "constructor", "__proto__", "hasOwnProperty"]) {
      const e = bad(pack({ "@type": t }));
      assert.match(e.message, /unknown message type/);
    }
  });

  test("missing field names it and carries the job id", () => {
    const { environment: _e, ...rest } = goodJob;
    const e = bad(pack(rest));
    assert.equal(e.messageType, "BackendNewJob");
    assert.equal(e.jobId, "job-9");
    assert.match(e.message, /environment/);
  });

  test("extra field names it and carries the job id", () => {
    const e = bad(pack({ ...goodJob, surprise: 1 }));
    assert.equal(e.messageType, "BackendNewJob");
    assert.equal(e.jobId, "job-9");
    assert.match(e.message, /surprise/);
  });

  test("extra field on Ping", () => {
    const e = bad(pack({ job_id: "x", "@type": "Ping" }));
    assert.equal(e.messageType, "Ping");
  });

  test("BackendKillJob missing state carries the job id", () => {
    const e = bad(pack({ job_id: "k", "@type": "BackendKillJob" }));
    assert.equal(e.messageType, "BackendKillJob");
    assert.equal(e.jobId, "k");
  });

  test("BackendKillJob with a non-string state", () => {
    const e = bad(pack({ job_id: "k", state: 3, "@type": "BackendKillJob" }));
    assert.equal(e.jobId, "k");
  });

  test("job_id of the wrong type: no job id to report", () => {
    for (const id of [12, null, Buffer.from("job-9"), ["job-9"]] as Packable[]) {
      const e = bad(pack({ ...goodJob, job_id: id }));
      assert.equal(e.messageType, "BackendNewJob");
      assert.equal(e.jobId, null);
    }
  });

  test("debug must be true, false or \"ssh\"; the job id is kept", () => {
    for (const d of ["yes", 1, null, "SSH"] as Packable[]) {
      const e = bad(pack({ ...goodJob, debug: d }));
      assert.equal(e.jobId, "job-9", `debug=${inspect(d)}`);
      assert.match(e.message, /debug/);
    }
    for (const d of [true, false, "ssh"] as Packable[]) {
      const m = decodeBackendMessage(pack({ ...goodJob, debug: d }));
      assert.equal(m.type === "BackendNewJob" && m.debug, d);
    }
  });

  test("inputdata, task_problems, environment_parameters must be maps; the job id is kept", () => {
    for (const field of ["inputdata", "task_problems", "environment_parameters"]) {
      for (const v of [[1], "x", null, Buffer.from("{}")] as Packable[]) {
        const e = bad(pack({ ...goodJob, [field]: v }));
        assert.equal(e.jobId, "job-9", `${field}=${inspect(v)}`);
        assert.equal(e.messageType, "BackendNewJob");
        assert.match(e.message, new RegExp(field));
      }
    }
  });

  test("course_id/task_id may be nil but not another type", () => {
    const m = decodeBackendMessage(pack({ ...goodJob, course_id: null, task_id: null }));
    assert.ok(m.type === "BackendNewJob" && m.course_id === null && m.task_id === null);
    const e = bad(pack({ ...goodJob, course_id: 4 }));
    assert.equal(e.jobId, "job-9");
  });

  test("environment_type and environment must be strings", () => {
    for (const field of ["environment_type", "environment"]) {
      const e = bad(pack({ ...goodJob, [field]: null }));
      assert.equal(e.jobId, "job-9");
    }
  });
});

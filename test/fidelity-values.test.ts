/**
 * Value fidelity both ways, against Debian's python3-msgpack and a real grading container
 * (image test-raw, task `fidelity`): awkward values packed by Python go in as inputdata and must
 * reach the container's `start` byte for byte as the Python agent would forward them, and come
 * back as a result's custom, tests, problems and state to reach the backend the same way.
 * test/peers/msgpack_corpus.py makes the corpus and says what the Python agent forwards.
 */
import { after, afterEach, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import path from "node:path";
import { REPO } from "./helpers/agent-process.js";
import { newJob } from "./helpers/backend.js";
import { startSession, type Session } from "./helpers/session.js";
import { pack, Packed } from "../src/protocol/msgpack.js";

const PEER = path.join(REPO, "test/peers/msgpack_corpus.py");
const python = (args: string[], input?: string): string =>
  execFileSync("/usr/bin/python3", [PEER, ...args], { input, encoding: "utf8", maxBuffer: 64 * 1024 * 1024 });

interface Entry {
  sent: string;
  /** What the Python agent forwards (hex); null when Python cannot load it. */
  expected: string | null;
}
type Corpus = Record<"inputdata" | "custom" | "custom_int_keys" | "tests" | "problems" | "state" | "bad_str" | "bad_custom", Entry>;

let s: Session;
let corpus: Corpus;
before(async () => {
  corpus = JSON.parse(python(["corpus"])) as Corpus;
  s = await startSession([], { images: ["inginious-agent-docker-test/test-raw:latest"] });
  s.backend.keepFrames = true;
});
afterEach(() => s.assertClean());
after(() => s?.end());

const bin = (hex: string): Buffer => Buffer.from(hex, "hex");
const job = (id: string, inputdata: Packed | Record<string, unknown>) =>
  newJob(id, { task_id: "fidelity", environment: "test-raw", inputdata });

async function doneFrame(id: string): Promise<Buffer> {
  const r = await s.backend.waitFor((m) => m["@type"] === "AgentJobDone" && m["job_id"] === id, 120_000);
  return r.frame!;
}

test("inputdata reaches the container's start exactly as the Python agent forwards it", async () => {
  const { sent, expected } = corpus.inputdata;
  assert.ok(expected !== null);
  await s.backend.send(job("fidelity-in", new Packed(bin(sent))));
  const d = await s.backend.done("fidelity-in", 120_000);
  assert.deepEqual(d["result"], ["success", expected], "the container saw other bytes than Python's");
});

test("a result's custom, tests, problems and state reach the backend exactly as the Python agent forwards them", async () => {
  const fields = ["custom", "tests", "problems", "state"] as const;
  await s.backend.send(job("fidelity-out", Object.fromEntries(fields.map((f) => [f, bin(corpus[f].sent)]))));
  const frame = await doneFrame("fidelity-out");
  const spans = JSON.parse(python(["spans"], frame.toString("hex"))) as Record<string, string>;
  assert.equal(spans["result"], pack(["success", ""]).toString("hex"));
  for (const f of fields) {
    assert.ok(corpus[f].expected !== null);
    assert.ok(spans[f] === corpus[f].expected, `${f}: the backend got other bytes than Python's`);
  }
});

test("a str that is not UTF-8 from the container: crash with the Python agent's text (it cannot load it either), ours in the log", async () => {
  for (const [id, fields] of [["bad-state", { state: corpus.bad_str }], ["bad-custom", { custom: corpus.bad_custom }]] as const) {
    const entry = Object.values(fields)[0]!;
    assert.equal(entry.expected, null);
    await s.backend.send(job(id, Object.fromEntries(Object.entries(fields).map(([k, e]) => [k, bin(e.sent)]))));
    const d = await s.backend.done(id, 120_000);
    assert.deepEqual(d["result"], ["crash", "The grader did not return a readable output : Grading container did not return any result."]);
    assert.equal(d["state"], "", "the job's previous state");
    const line = await s.agent.waitLog((l) => l.msg === "job done" && l["job"] === id, 5000);
    assert.match(String(line["detail"]), /not msgpack \(a str that is not valid UTF-8/);
  }
});

test("a custom with a key that is not a str: crash naming where (the frontend could not store it)", async () => {
  await s.backend.send(job("int-keys", { custom: bin(corpus.custom_int_keys.sent) }));
  const d = await s.backend.done("int-keys", 120_000);
  assert.deepEqual(d["result"], ["crash",
    'The grader did not return a readable output : custom["int_keys"] has a map key that is not a string (the integer 1); INGInious stores only string keys.']);
  assert.equal(d["state"], "", "the job's previous state");
  assert.deepEqual(d["custom"], {}, "nothing of it is forwarded");
});

test("a str that is not UTF-8 in inputdata: the job is answered crash (Python cannot load the frame)", async () => {
  // {"@state": "", "x": <bad str>}: the frame names its job, so the job gets an answer
  const inputdata = Buffer.concat([bin("82a6407374617465a0a178"), bin(corpus.bad_str.sent)]);
  await s.backend.send(job("bad-input", new Packed(inputdata)));
  const d = await s.backend.done("bad-input", 30_000);
  assert.equal((d["result"] as string[])[0], "crash");
  // refused on arrival, never given to a container
  assert.match((d["result"] as string[])[1]!, /could not read this job: not msgpack: a str that is not valid UTF-8/);
});

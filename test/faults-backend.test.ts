/** Hostile or heavy input from the backend: the agent answers what it can, drops the rest, and stays prompt. */
import { after, afterEach, before, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { pack } from "../src/protocol/msgpack.js";
import { newJob } from "./helpers/backend.js";
import { httpGet, sample } from "./helpers/ops.js";
import { startSession, type Session } from "./helpers/session.js";

let s: Session;
let metricsPort: number;
before(async () => {
  s = await startSession(["--concurrency", "4", "--metrics-port", "0"]);
  metricsPort = (await s.agent.waitLog((l) => l.msg === "metrics server listening"))["port"] as number;
});
afterEach(() => s.assertClean());
after(() => s?.end());

function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? parseInt(m[1]!, 10) / 1024 : NaN;
}

async function pongWithin(ms: number): Promise<number> {
  const from = s.backend.received.length;
  const t0 = performance.now();
  await s.backend.send({ type: "Ping" });
  const pong = await s.backend.waitType("Pong", ms, from);
  return pong.at - t0;
}

test("a 50 MB garbage frame is dropped, and a 50 MB job runs", async () => {
  await s.backend.sendRaw(randomBytes(50 * 1024 * 1024));
  assert.ok((await pongWithin(5000)) < 1000);
  const big = Buffer.alloc(50 * 1024 * 1024, 7);
  await s.backend.send(newJob("big-input", { task_id: "upload", inputdata: { up: { filename: "big.bin", value: big } } }));
  const done = await s.backend.done("big-input", 60_000);
  assert.match((done["result"] as string[])[1]!, /^52428800 [0-9a-f]{64}$/);
});

test("valid msgpack of the wrong shape and unknown types, in bulk, are dropped", async () => {
  const doneBefore = s.backend.count("AgentJobDone");
  for (let i = 0; i < 200; i++) {
    await s.backend.sendRaw(pack(i % 2 ? { "@type": `Nope${i}` } : { job_id: 42, "@type": "BackendNewJob" }));
  }
  assert.ok((await pongWithin(5000)) < 1000);
  assert.equal(s.backend.count("AgentJobDone"), doneBefore, "nothing to answer: no readable job id");
});

test("10,000 pings a second for 2 s: each ping read is answered once, promptly, with bounded memory", async (t) => {
  // The backend's ROUTER drops what it cannot queue for a slow reader (as INGInious's does): the
  // issue asks "dropped or answered". What the agent owes is a Pong for every Ping it read.
  const pingsRead = async (): Promise<number> =>
    sample((await httpGet(metricsPort, "/metrics")).body, "inginious_agent_ping_pong_delay_seconds_count") ?? NaN;
  const rssBefore = rssMb(s.agent.pid);
  const readBefore = await pingsRead();
  const pongsBefore = s.backend.count("Pong");
  const sent = 20_000;
  for (let second = 0; second < 2; second++) {
    const t0 = performance.now();
    for (let i = 0; i < 10_000; i++) await s.backend.send({ type: "Ping" });
    const left = 1000 - (performance.now() - t0);
    if (left > 0) await new Promise((r) => setTimeout(r, left));
  }
  // Settled when the counts stop moving; polled every 100 ms (rescanning on every message is the test's own bottleneck).
  const deadline = Date.now() + 60_000;
  let last = -1;
  for (;;) {
    await new Promise((r) => setTimeout(r, 500));
    const pongs = s.backend.count("Pong") - pongsBefore;
    const read = (await pingsRead()) - readBefore;
    if (pongs === read && pongs === last) break;
    assert.ok(Date.now() < deadline, `${pongs} pongs for ${read} pings read after 60 s`);
    last = pongs;
  }
  const answered = s.backend.count("Pong") - pongsBefore;
  t.diagnostic(`${answered} pongs for ${sent} pings sent in the flood`);
  // The regular pings of the session (one a second) are read and answered too.
  assert.ok(answered <= sent + 120, `${answered} pongs for ${sent} pings`);
  assert.ok(answered >= sent / 2, `only ${answered} of ${sent} pings answered: the agent does not keep up`);
  assert.ok((await pongWithin(5000)) < 1000, "a ping right after the flood is answered within a second");
  const rssAfter = rssMb(s.agent.pid);
  assert.ok(rssAfter - rssBefore < 100, `RSS grew by ${Math.round(rssAfter - rssBefore)} MB`);
});

test("a kill storm: 200 jobs, each killed at a random moment, get exactly 200 AgentJobDone", async () => {
  const ids = Array.from({ length: 200 }, (_, i) => `storm-${i}`);
  const kills: Promise<void>[] = [];
  for (const id of ids) {
    await s.backend.send(newJob(id, { task_id: "echo", inputdata: { n: "1" } }));
    const delay = Math.random() * 8000;
    kills.push(new Promise<void>((r) => setTimeout(r, delay)).then(() =>
      s.backend.send({ type: "BackendKillJob", job_id: id, state: "" })));
  }
  await Promise.all(kills);
  await Promise.all(ids.map((id) => s.backend.done(id, 120_000)));
  await new Promise((r) => setTimeout(r, 1000));
  for (const id of ids) assert.equal(s.backend.count("AgentJobDone", id), 1, `one AgentJobDone for ${id}`);
  const results = new Set(ids.map((id) => (s.backend.received.find((r) => r.message["@type"] === "AgentJobDone" && r.message["job_id"] === id)!.message["result"] as string[])[0]));
  assert.ok([...results].every((r) => r === "killed" || r === "success"), [...results].join(","));
  assert.ok((await pongWithin(2000)) < 500);
});

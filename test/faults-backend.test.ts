/** Hostile or heavy input from the backend: the agent answers what it can, drops the rest, and stays prompt. */
import { after, afterEach, before, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { pack } from "../src/protocol/msgpack.js";
import { newJob } from "./helpers/backend.js";
import { LABEL_AGENT, LABEL_JOB, LABEL_ROLE, agentId } from "../src/docker/labels.js";
import { docker, eventually } from "./helpers/docker.js";
import { recordEvents } from "./helpers/engine-events.js";
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

test("a kill storm: 200 jobs, each killed at a random moment, get exactly 200 AgentJobDone; killed ones never run to their end", async (t) => {
  // Every tenth grader waits 12 s before its result: its kill (within 8 s of the job) always comes
  // first, so it must end `killed`. The others end at once, and end `success` or `killed` (a kill
  // that comes as one ends may still find it running, so their exit is not checked).
  const ids = Array.from({ length: 200 }, (_, i) => `storm-${i}`);
  const slow = new Set(ids.filter((_, i) => i % 10 === 0));
  const agentLabel = `${LABEL_AGENT}=${agentId(s.tmpdir)}`;
  const deaths = await recordEvents([agentLabel, `${LABEL_ROLE}=grading`], ["die"]);
  try {
    const kills: Promise<void>[] = [];
    for (const [i, id] of ids.entries()) {
      await s.backend.send(newJob(id, { task_id: "storm", inputdata: { n: String(i), sleep: slow.has(id) ? "12" : "0" } }));
      const delay = Math.random() * 8000;
      kills.push(new Promise<void>((r) => setTimeout(r, delay)).then(() =>
        s.backend.send({ type: "BackendKillJob", job_id: id, state: "" })));
    }
    await Promise.all(kills);
    const resultOf = (id: string): string =>
      (s.backend.received.find((r) => r.message["@type"] === "AgentJobDone" && r.message["job_id"] === id)!.message["result"] as string[])[0]!;
    const ranToEnd = (id: string): boolean => deaths.ofJob(id).some((e) => e.attributes["exitCode"] === "0");
    // the slow ones first, in order: were kills ignored, the first would end on its own after 12 s
    for (const id of slow) {
      await s.backend.done(id, 60_000);
      assert.ok(!ranToEnd(id), `${id}'s grader ran to its end: its kill was not applied`);
      assert.equal(resultOf(id), "killed", `${id} was killed before its grader could end`);
    }
    await Promise.all(ids.map((id) => s.backend.done(id, 120_000)));
    await new Promise((r) => setTimeout(r, 1000));
    for (const id of ids) assert.equal(s.backend.count("AgentJobDone", id), 1, `one AgentJobDone for ${id}`);
    const results = new Set(ids.map(resultOf));
    assert.ok([...results].every((r) => r === "killed" || r === "success"), [...results].join(","));
    const killed = ids.filter((id) => resultOf(id) === "killed");
    t.diagnostic(`${killed.length} killed, ${ids.length - killed.length} success, ${deaths.events.length} grading containers died`);
    // None of their containers is left, and no slow grader ran to its end (exit 0).
    await eventually(async () => {
      const left = await docker.listContainers({ all: true, filters: { label: [agentLabel] } });
      assert.deepEqual(left.filter((c) => killed.includes(c.Labels[LABEL_JOB] ?? "")).map((c) => c.Labels[LABEL_JOB]), []);
    });
    assert.deepEqual([...slow].filter(ranToEnd), [], "killed jobs whose grader ran to its end");
    // what running to its end looks like: each job that succeeded has its grader's exit 0
    for (const id of ids.filter((i) => resultOf(i) === "success")) assert.ok(ranToEnd(id), `the exit of ${id}'s grader was seen`);
    assert.ok((await pongWithin(2000)) < 500);
  } finally {
    deaths.stop();
  }
});

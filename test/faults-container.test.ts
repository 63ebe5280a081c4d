/** Grading containers that misbehave on purpose (image test-raw runs the task's raw.py). */
import { after, afterEach, before, test } from "node:test";
import { createHash } from "node:crypto";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { newJob } from "./helpers/backend.js";
import { startSession, type Session } from "./helpers/session.js";
import { docker } from "./helpers/docker.js";
import { LABEL_JOB } from "../src/docker/labels.js";

let s: Session;
before(async () => {
  s = await startSession([], { images: ["inginious-agent-docker-test/test-raw:latest"] });
});
afterEach(() => s.assertClean());
after(() => s?.end());

type Done = Record<string, unknown>;
const result = (d: Done): string => (d["result"] as string[])[0]!;

async function raw(id: string, mode: string, limits: Record<string, unknown> = {}, task = "raw"): Promise<Done> {
  await s.backend.send(newJob(id, { task_id: task, environment: "test-raw", inputdata: { mode }, limits }));
  return s.backend.done(id, 120_000);
}

async function prompt(): Promise<void> {
  const from = s.backend.received.length;
  const t0 = performance.now();
  await s.backend.send({ type: "Ping" });
  const pong = await s.backend.waitType("Pong", 5000, from);
  assert.ok(pong.at - t0 < 1000, `pong after ${pong.at - t0} ms`);
}

test("a fork bomb is held by the pids limit; the job ends at a limit and the agent stays prompt", async () => {
  await s.backend.send(newJob("fork-bomb", { task_id: "raw", environment: "test-raw", inputdata: { mode: "fork-bomb" }, limits: { time: 30, hard_time: 5 } }));
  let pidsLimit: number | undefined;
  for (let i = 0; i < 50 && pidsLimit === undefined; i++) {
    const [c] = await docker.listContainers({ all: true, filters: { label: [`${LABEL_JOB}=fork-bomb`] } });
    if (c) pidsLimit = (await docker.getContainer(c.Id).inspect()).HostConfig.PidsLimit ?? undefined;
    else await new Promise((r) => setTimeout(r, 100));
  }
  assert.equal(pidsLimit, 1024);
  const d = await s.backend.done("fork-bomb", 60_000);
  // forks use memory too: whichever limit it meets first ends it
  assert.ok(["timeout", "overflow"].includes(result(d)), result(d));
  await prompt();
});

test("1 GB of output and no result: crash, memory bounded, agent prompt", async () => {
  const d = await raw("noise", "noise-1g", { time: 60, hard_time: 120 });
  assert.equal(result(d), "crash");
  assert.match((d["result"] as string[])[1]!, /did not return any result/);
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${s.agent.pid}/status`, "utf8"));
  assert.ok(m && parseInt(m[1]!, 10) < 600 * 1024, `peak RSS ${m?.[1]} kB`);
  await prompt();
});

test("a container that exits before reading start: crash", async () => {
  const d = await raw("early-exit", "", {}, "raw-early");
  assert.equal(result(d), "crash");
  assert.match((d["result"] as string[])[1]!, /did not return any result/);
});

test("a container that closes stdout and hangs ends at the wall-time limit", async () => {
  const d = await raw("hang", "close-stdout-and-hang", { time: 30, hard_time: 4 });
  assert.equal(result(d), "timeout");
});

test("a 4 MB archive and 3 MB of debug output come through byte for byte", async () => {
  await s.backend.send(newJob("big-archive", { task_id: "raw", environment: "test-raw", inputdata: { mode: "big-archive" }, debug: true }));
  const d = await s.backend.done("big-archive", 60_000);
  assert.equal(result(d), "success", JSON.stringify(d["result"]));
  const archive = d["archive"] as Uint8Array;
  assert.ok(archive instanceof Uint8Array && archive.length > 4 * 1024 * 1024);
  assert.equal(createHash("sha256").update(archive).digest("hex"), (d["result"] as string[])[1], "the archive is the grader's");
  const stdout = d["stdout"] as string;
  assert.equal(stdout.length, Math.floor((3 * 1024 * 1024) / 13) * 13);
  assert.ok(stdout.startsWith("line 0000000\nline 0000001\n") && stdout.endsWith(`line ${String(Math.floor((3 * 1024 * 1024) / 13) - 1).padStart(7, "0")}\n`));
});

test("a result with 100,000 problems comes through", async () => {
  const d = await raw("many-problems", "many-problems");
  assert.equal(result(d), "success");
  assert.equal(Object.keys(d["problems"] as object).length, 100_000);
});

for (const [where, target] of [["the job directory", "/task/student/big"], ["the container's own filesystem", "/tmp/big"]] as const) {
  test(`writing 5 GB in ${where} with a 100 MB disk limit: overflow, stopped early`, async () => {
    await s.backend.send(newJob(`disk-${target}`, {
      task_id: "disk", inputdata: { where: target }, limits: { time: 60, hard_time: 120, memory: 200, disk: 100 },
    }));
    const d = await s.backend.done(`disk-${target}`, 120_000);
    assert.equal(result(d), "overflow");
    const text = (d["result"] as string[])[1]!;
    const mb = Number(/\((\d+) MB/.exec(text)?.[1]);
    assert.ok(mb > 100 && mb < 5000, text);
    process.stdout.write(`# disk limit 100 MB, ${where}: stopped at ${mb} MB\n`);
  });
}

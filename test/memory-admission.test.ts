/**
 * Memory admission with the agent process and a real engine: a job whose memory is more than the
 * host's memory per slot but less than its usable memory runs (a per-slot share refused it); and
 * with jobs of a third of the usable memory each and ten slots, ten such jobs sent at once never
 * have more than three containers alive together (seen in the engine's own start and die events),
 * all of them finish, none is refused, they join the queue in the order they came and leave it in
 * that order but for jobs set aside for a warm container being made for them. Student
 * containers reserve their memory beside their job's: one that could never fit gets 254.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import os from "node:os";
import { LABEL_AGENT, agentId } from "../src/docker/labels.js";
import { newJob } from "./helpers/backend.js";
import { docker } from "./helpers/docker.js";
import { startSession, type Session } from "./helpers/session.js";

interface EngineEvent {
  Action: string;
  Actor: { ID: string; Attributes: Record<string, string> };
  timeNano: number;
}

/** The engine's start and die events of one agent's containers between two times (seconds). */
async function containerEvents(tmpdir: string, since: number, until: number): Promise<EngineEvent[]> {
  const stream = (await docker.getEvents({
    since, until, filters: { type: ["container"], event: ["start", "die"], label: [`${LABEL_AGENT}=${agentId(tmpdir)}`] },
  }));
  let text = "";
  for await (const chunk of stream) text += chunk.toString();
  return text.split("\n").filter((l) => l.trim() !== "").map((l) => JSON.parse(l) as EngineEvent);
}

/** The most containers alive at once, from start and die events in time order. */
function mostAlive(events: EngineEvent[]): number {
  let alive = 0;
  let most = 0;
  // at the same instant, a die counts before a start
  const ordered = [...events].sort((a, b) => a.timeNano - b.timeNano || (a.Action === "die" ? -1 : 1));
  for (const e of ordered) {
    alive += e.Action === "start" ? 1 : -1;
    most = Math.max(most, alive);
  }
  return most;
}

describe("a job larger than the host's memory per slot", () => {
  let s: Session;
  // every slot's share is below 512 MB; the frontend's default of 1,024 MB is well within usable memory
  const hostMb = Math.floor(os.totalmem() / 1024 / 1024);
  const concurrency = Math.floor(hostMb / 512) + 1;
  before(async () => {
    s = await startSession(["--concurrency", String(concurrency)]);
  });
  after(() => s?.end());

  test(`runs: 1,024 MB with --concurrency ${concurrency} on ${hostMb} MB`, async () => {
    assert.ok(hostMb / concurrency < 1024, "the old rule would refuse it");
    await s.backend.send(newJob("big-1", { task_id: "success", inputdata: { q1: "x" }, limits: { memory: 1024 } }));
    const done = await s.backend.done("big-1");
    assert.equal((done["result"] as string[])[0], "success", JSON.stringify(done["result"]));
    await s.assertClean();
  });
});

describe("ten jobs of a third of the usable memory, ten slots", () => {
  let s: Session;
  const USABLE_MB = 1200;
  before(async () => {
    // 1,200 MB of host memory as far as the agent knows, none of it reserved for the system
    s = await startSession(["--concurrency", "10", "--memory-reserve", "0", "-v"], {
      warm: 2, env: { INGINIOUS_AGENT_HOST_MEMORY: String(USABLE_MB) },
    });
  });
  after(() => s?.end());

  test("at most three run together; all ten finish, none refused, in arrival order", async () => {
    const warning = s.agent.logs.find((l) => l["check"] === "memory" && l.level === 40);
    assert.ok(warning !== undefined, "the start-up warning: 10 x 1,024 MB > 1,200 MB");
    assert.match(warning.msg, /--concurrency 10 x 1024 MB .* more than the 1200 MB jobs may use here/);

    const since = Math.floor(Date.now() / 1000) - 1;
    const ids = Array.from({ length: 10 }, (_, i) => `third-${i}`);
    for (const id of ids) await s.backend.send(newJob(id, { task_id: "nap", limits: { memory: USABLE_MB / 3, time: 30, hard_time: 90 } }));
    for (const id of ids) {
      const done = await s.backend.done(id, 180_000);
      assert.deepEqual(done["result"], ["success", "rested"], `${id}: ${JSON.stringify(done["result"])}`);
    }
    // Each job's task folder is looked up asynchronously, and the look-ups may answer in another
    // order: the jobs still join the queue in the order they came.
    const queued = s.agent.logs.filter((l) => l.msg === "job queued").map((l) => l["job"]);
    assert.deepEqual(queued, ids, "jobs joined the queue in the order they came");
    // First come, first served: a job leaves the queue before one that came earlier only when
    // that one was set aside for a warm container being made for it (it then ran in it, or in a
    // new one after WARM_WAIT_MS).
    const dispatched = s.agent.logs.filter((l) => l.msg === "job dispatched");
    const order = dispatched.map((l) => l["job"] as string);
    assert.deepEqual([...order].sort(), [...ids].sort(), "every job dispatched once");
    const setAside = (id: string): boolean =>
      dispatched.some((l) => l["job"] === id && l["warm"] === true) ||
      s.agent.logs.some((l) => l["job"] === id && /^no warm container ready in time/.test(l.msg));
    order.forEach((id, at) => {
      const overtaken = ids.slice(0, ids.indexOf(id)).filter((earlier) => order.indexOf(earlier) > at);
      for (const earlier of overtaken) assert.ok(setAside(earlier), `${id} left the queue before ${earlier}, which was not waiting for a warm container: ${order.join(" ")}`);
    });
    assert.ok(s.agent.logs.some((l) => l.msg === "job waits for memory"), "some jobs waited for memory");

    await s.assertClean();
    const until = Math.ceil(Date.now() / 1000) + 1;
    const events = await containerEvents(s.tmpdir, since, until);
    assert.ok(events.filter((e) => e.Action === "start").length >= 10, "the engine saw the jobs' containers start");
    const most = mostAlive(events);
    assert.ok(most <= 3, `at most three containers of 400 MB alive at once (saw ${most})`);
  });
});

describe("student containers reserve their memory beside their job's", () => {
  let s: Session;
  before(async () => {
    s = await startSession(["--concurrency", "2", "--memory-reserve", "0"], { env: { INGINIOUS_AGENT_HOST_MEMORY: "600" } });
  });
  after(() => s?.end());

  const text = (d: Record<string, unknown>): string => (d["result"] as string[])[1]!;

  test("a job of 300 MB and its student container of 300 MB fit in 600 MB", async () => {
    await s.backend.send(newJob("st-fits", { task_id: "student", limits: { memory: 300 } }));
    assert.equal(text(await s.backend.done("st-fits", 90_000)), "code=7 out=hello from the student container");
    await s.assertClean();
  });

  test("a job of 400 MB whose student container takes its 400 MB gets 254: it could never fit", async () => {
    await s.backend.send(newJob("st-never", { task_id: "student", limits: { memory: 400 } }));
    assert.equal(text(await s.backend.done("st-never", 90_000)), "code=254 out=");
    assert.ok(s.agent.logs.some((l) => l["job"] === "st-never" && /could never fit/.test(l.msg)), "the log says why");
    await s.assertClean();
  });
});

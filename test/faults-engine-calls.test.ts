/**
 * Engine calls that never answer, through a proxy in front of the real engine: the job ends as
 * `crash` naming the call, the agent stays prompt, and the job's containers are removed once the
 * engine answers again (its worker keeps trying; the task does not end before). And limits of
 * any size: a wall limit beyond Node's longest timer does not end the job at once.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { AgentProcess, TASKS, tempDir } from "./helpers/agent-process.js";
import { FakeBackend, newJob } from "./helpers/backend.js";
import { dirListing, docker, engineContainers, eventually, requireDocker } from "./helpers/docker.js";
import { EngineProxy } from "./helpers/engine-proxy.js";
import { LABEL_JOB } from "../src/docker/labels.js";

let proxy: EngineProxy;
let backend: FakeBackend;
let agent: AgentProcess;
let stopPings: () => void;
const tmp = tempDir("engine-calls");

before(async () => {
  await requireDocker();
  proxy = await new EngineProxy().start();
  backend = await new FakeBackend().start();
  agent = new AgentProcess([backend.address, "--tmpdir", tmp.path, "--tasks", TASKS, "--concurrency", "2", "--warm", "0", "--verbose"], {
    DOCKER_HOST: proxy.host, IAD_ENGINE_CALL_TIMEOUT_MS: "2000",
  });
  await backend.waitType("AgentHello", 30_000);
  stopPings = backend.pingEvery(1000);
});

after(async () => {
  stopPings?.();
  proxy?.release();
  await agent?.stop();
  backend?.close();
  try {
    await eventually(async () => assert.deepEqual(await engineContainers([tmp.path]), [], "containers left behind"), 30_000);
    assert.deepEqual(await dirListing(tmp.path), [], "job directories left behind");
  } finally {
    await proxy?.close();
    tmp.remove();
  }
});

const jobContainers = async (jobId: string): Promise<string[]> =>
  (await docker.listContainers({ all: true, filters: { label: [`${LABEL_JOB}=${jobId}`] } })).map((c) => c.Id);

async function prompt(): Promise<void> {
  const from = backend.received.length;
  await backend.send({ type: "Ping" });
  await backend.waitType("Pong", 5000, from);
}

test("a wall limit of 30 days (over Node's longest timer): the job runs to its result", async () => {
  await backend.send(newJob("month-long", { limits: { time: 30 * 86400, hard_time: 30 * 86400 } }));
  const done = await backend.done("month-long", 60_000);
  assert.equal((done["result"] as string[])[0], "success", JSON.stringify(done["result"]));
});

test("a start the engine never answers: crash naming it; the container is removed once the engine answers removals again", async () => {
  let stuck = false;
  proxy.rule = (method, url) => {
    if (method === "POST" && /\/containers\/[0-9a-f]{64}\/start/.test(url)) {
      stuck = true;
      return "hold";
    }
    // From then on the engine does not answer removals either.
    return stuck && method === "DELETE" && url.includes("/containers/") ? "hold" : "pass";
  };
  await backend.send(newJob("stuck-start"));
  const done = await backend.done("stuck-start", 60_000);
  assert.equal((done["result"] as string[])[0], "crash");
  assert.match((done["result"] as string[])[1]!, /did not answer "start" within 2 s/);
  await prompt();

  // Its worker tries again (and again) to remove the container.
  await agent.waitLogs((l) => l.job === "stuck-start" && l.msg === "engine call timed out" && l["call"] === "remove", 2, 30_000);
  assert.equal((await jobContainers("stuck-start")).length, 1, "the container waits for the engine");
  // The job's task (and with it its ports in the main thread) is not over while its container exists.
  assert.equal(agent.logs.filter((l) => l.job === "stuck-start" && l.msg === "job cleaned up").length, 0);

  proxy.release();
  await eventually(async () => assert.deepEqual(await jobContainers("stuck-start"), []), 60_000);
  await agent.waitLog((l) => l.job === "stuck-start" && l.msg === "the job's containers are removed", 30_000);
  await agent.waitLog((l) => l.job === "stuck-start" && l.msg === "job cleaned up", 30_000);

  await backend.send(newJob("after-stuck-start"));
  assert.equal(((await backend.done("after-stuck-start", 60_000))["result"] as string[])[0], "success");
});

test("a create answered too late (the container exists, the agent never learnt its id): crash naming it, the container is found and removed", async () => {
  proxy.rule = (method, url) => (method === "POST" && url.includes("/containers/create") ? "answer-never" : "pass");
  await backend.send(newJob("late-create"));
  const done = await backend.done("late-create", 60_000);
  assert.equal((done["result"] as string[])[0], "crash");
  assert.match((done["result"] as string[])[1]!, /did not answer "create" within 2 s/);
  proxy.release();
  await prompt();
  // The grace of the main thread's periodic check (60 s) is not what removes it.
  await eventually(async () => assert.deepEqual(await jobContainers("late-create"), []), 20_000);
  await agent.waitLog((l) => l.job === "late-create" && /removed a container of the job that the engine made without telling it/.test(l.msg), 30_000);
});

/** dockerd restarted in the middle of jobs, on a private engine: those jobs crash clearly, the next ones run. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { AgentProcess, TASKS, tempDir } from "./helpers/agent-process.js";
import { FakeBackend, newJob } from "./helpers/backend.js";
import { SAMPLE_IMAGE, dirListing, eventually, requireDocker } from "./helpers/docker.js";
import { PrivateDockerd } from "./helpers/private-dockerd.js";

test("dockerd restarted mid-job: the running jobs end as crash, Docker is found again, the next job succeeds", async () => {
  await requireDocker();
  const engine = new PrivateDockerd();
  const tmp = tempDir("dockerd-agent");
  const backend = await new FakeBackend().start();
  let agent: AgentProcess | null = null;
  const stopPings = backend.pingEvery(1000);
  try {
    await engine.start();
    engine.loadImage(SAMPLE_IMAGE);
    agent = new AgentProcess([backend.address, "--tmpdir", tmp.path, "--tasks", TASKS, "--concurrency", "2", "--warm", "0"], { DOCKER_HOST: engine.host });
    await backend.waitType("AgentHello");
    for (const id of ["restart-0", "restart-1"]) await backend.send(newJob(id, { task_id: "sleep", inputdata: { "@state": "s" } }));
    await eventually(async () => assert.equal((await engine.docker.listContainers()).length, 2), 30_000);

    await engine.restart();
    for (const id of ["restart-0", "restart-1"]) {
      const done = await backend.done(id, 60_000);
      assert.equal((done["result"] as string[])[0], "crash");
      assert.match((done["result"] as string[])[1]!, /lost contact with the Docker engine|did not return any result/);
      assert.equal(done["state"], "s");
    }
    await agent.waitLog((l) => l.msg === "docker event stream started" && l["resumed"] === true, 30_000);

    await backend.send(newJob("after-restart", { task_id: "failed" }));
    const done = await backend.done("after-restart", 60_000);
    assert.deepEqual(done["result"], ["failed", "Wrong answer"]);

    await eventually(async () => assert.deepEqual(await engine.docker.listContainers({ all: true }), []), 30_000);
    await eventually(async () => assert.deepEqual(await dirListing(tmp.path), []));
  } finally {
    stopPings();
    await agent?.stop();
    backend.close();
    await engine.remove();
    tmp.remove();
  }
});

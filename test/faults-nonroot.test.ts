/** An agent that is not root still removes job directories holding files a container wrote as root. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { chownSync, statSync } from "node:fs";
import { execFileSync, spawnSync } from "node:child_process";
import { AgentProcess, CLI, TASKS, tempDir } from "./helpers/agent-process.js";
import { FakeBackend, newJob } from "./helpers/backend.js";
import { dirListing, eventually, requireDocker } from "./helpers/docker.js";

test("a non-root agent removes root-owned files of a job through a container", async (t) => {
  await requireDocker(["inginious-agent-docker-test/test-raw:latest"]);
  const readable = spawnSync("setpriv", ["--reuid=1000", "--regid=1000", "--clear-groups", "--", process.execPath, "-e",
    `require("fs").accessSync(${JSON.stringify(CLI)})`]).status === 0;
  if (!readable) {
    t.skip(`uid 1000 cannot read ${CLI} (the checkout is in a private directory)`);
    return;
  }
  const dockerGid = statSync("/var/run/docker.sock").gid;
  const tmp = tempDir("nonroot");
  chownSync(tmp.path, 1000, 1000);
  const backend = await new FakeBackend().start();
  const agent = new AgentProcess(
    [backend.address, "--tmpdir", tmp.path, "--tasks", TASKS, "--warm", "0"],
    {},
    ["setpriv", "--reuid=1000", "--regid=1000", `--groups=${dockerGid}`, "--"],
  );
  const stopPings = backend.pingEvery(1000);
  try {
    await backend.waitType("AgentHello", 30_000);
    await backend.send(newJob("root-files", { task_id: "raw", environment: "test-raw", inputdata: { mode: "root-files" } }));
    const done = await backend.done("root-files", 60_000);
    assert.deepEqual(done["result"], ["success", "left root-only files"]);
    await eventually(async () => assert.deepEqual(await dirListing(tmp.path), []), 20_000);
    assert.ok(agent.logs.some((l) => /through a container/.test(l.msg)), "it said how it removed them");
  } finally {
    stopPings();
    await agent.stop();
    backend.close();
    execFileSync("rm", ["-rf", tmp.path]);
  }
});

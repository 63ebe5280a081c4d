/**
 * memory.oom.group with the real engine, which runs cgroup v1 on this project's machines: jobs
 * still grade (grading, student and warm containers), and the agent writes nothing, not even
 * into a tree laid out as cgroup v2 that INGINIOUS_AGENT_CGROUP_ROOT points at, nor tries to.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { tempDir } from "./helpers/agent-process.js";
import { treeSnapshot } from "./helpers/tree.js";
import { newJob } from "./helpers/backend.js";
import { docker } from "./helpers/docker.js";
import { startSession, type Session } from "./helpers/session.js";

let s: Session;
const tree = tempDir("cgv2-root");
let before0: Record<string, string>;

before(async () => {
  const info = (await docker.info()) as { CgroupVersion?: string };
  assert.equal(info.CgroupVersion, "1", "this test is about an engine that reports cgroup v1");
  writeFileSync(path.join(tree.path, "cgroup.controllers"), "cpuset cpu io memory pids\n");
  for (const dir of ["docker", "system.slice"]) {
    mkdirSync(path.join(tree.path, dir));
    writeFileSync(path.join(tree.path, dir, "memory.oom.group"), "0\n");
  }
  before0 = treeSnapshot(tree.path);
  s = await startSession(["-v"], { warm: 1, env: { INGINIOUS_AGENT_CGROUP_ROOT: tree.path } });
});

after(async () => {
  try {
    await s?.end();
  } finally {
    tree.remove();
  }
});

test("on cgroup v1, jobs grade and memory.oom.group is neither written nor looked for", async () => {
  const limits = { time: 20, hard_time: 60, memory: 200 };
  await s.backend.send(newJob("v1-student", { task_id: "student", limits }));
  const first = await s.backend.done("v1-student", 90_000);
  assert.deepEqual(first["result"], ["success", "code=7 out=hello from the student container"]);
  // The first job of an environment asks for a warm container; the next one takes it.
  await s.agent.waitLog((l) => l.msg === "warm grading container ready", 60_000);
  await s.backend.send(newJob("v1-warm", { task_id: "success", inputdata: { q1: "print(1)", "@state": "" }, limits }));
  const second = await s.backend.done("v1-warm", 90_000);
  assert.equal((second["result"] as string[])[0], "success");
  await s.agent.waitLog((l) => l.msg === "adopted warm grading container");
  await s.assertClean();

  assert.deepEqual(treeSnapshot(tree.path), before0, "nothing written in the cgroup v2 tree");
  const mentions = s.agent.logs.filter((l) => /oom\.group|oom-group/.test(JSON.stringify(l)));
  assert.deepEqual(mentions, [], "no attempt, no check on cgroup v1");
  assert.ok(s.agent.logs.some((l) => l.msg === "started student container"), "a student container ran");
});

/**
 * What a job's cleanup did not remove in time is removed once the pool threads are gone (agent.ts
 * removeLeftAtShutdown): a thread still at work when shutdown ended its job may make a directory,
 * a container or a volume after the main thread's cleanup. Here such leftovers are made by hand
 * while the agent runs (labelled and marked as the agent's own, as a thread would make them): a
 * stopped agent must leave none of them, and say that it removed them.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { newJob } from "./helpers/backend.js";
import { SAMPLE_IMAGE, docker } from "./helpers/docker.js";
import { startSession } from "./helpers/session.js";
import { LABEL_JOB, agentId, containerLabels } from "../src/docker/labels.js";
import { JOB_DIR_MARKER, JOB_DIR_PREFIX } from "../src/jobs/job-directory.js";

test("a stopped agent leaves nothing that its jobs' threads made after their cleanup", { timeout: 120_000 }, async () => {
  const s = await startSession([], { warm: 0 });
  let leftVolume: string | null = null;
  try {
    await s.backend.send(newJob("sweep-first"));
    const done = await s.backend.done("sweep-first", 60_000);
    assert.equal((done["result"] as string[])[0], "success");

    const agent = agentId(s.tmpdir);
    const late = path.join(s.tmpdir, `${JOB_DIR_PREFIX}sweep-late-0000`);
    mkdirSync(path.join(late, "task", "student"), { recursive: true });
    writeFileSync(path.join(late, JOB_DIR_MARKER), agent);
    const labels = containerLabels(agent, "sweep-late", "grading");
    await docker.createContainer({ Image: SAMPLE_IMAGE, Cmd: ["true"], Labels: labels, HostConfig: { NetworkMode: "none" } });
    leftVolume = `inginious-task-${JOB_DIR_PREFIX}sweep-late-0000`;
    await docker.createVolume({ Name: leftVolume, Labels: labels });
  } finally {
    try {
      // end() stops the agent, then fails on any container, job directory or volume left
      await s.end();
    } finally {
      // the test's own leftovers, should the agent have failed to remove them
      const mine = await docker.listContainers({ all: true, filters: { label: [`${LABEL_JOB}=sweep-late`] } });
      await Promise.all(mine.map((c) => docker.getContainer(c.Id).remove({ force: true }).catch(() => {})));
      if (leftVolume !== null) await docker.getVolume(leftVolume).remove().catch(() => {});
    }
  }
  const swept = s.agent.logs.filter((l) => /left by this run's jobs at shutdown$/.test(l.msg)).map((l) => [l.msg, l["count"]]);
  assert.deepEqual(swept, [
    ["removed containers left by this run's jobs at shutdown", 1],
    ["removed volumes left by this run's jobs at shutdown", 1],
    ["removed job directories left by this run's jobs at shutdown", 1],
  ]);
  assert.ok(s.agent.logs.filter((l) => /left by this run's jobs at shutdown$/.test(l.msg)).every((l) => l.level === 40), "each said as a warning");
});

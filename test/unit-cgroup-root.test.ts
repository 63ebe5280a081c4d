/**
 * INGINIOUS_AGENT_CGROUP_ROOT (src/limits/cgroup-root.ts) reaches every reader of a container's
 * cgroup v2 files, not only memory.oom.group: the CPU time and memory.events are read under it too,
 * so that an agent in a container with the host's tree mounted elsewhere reads them from the tree
 * rather than falling back to the engine (the stats stream, State.OOMKilled). On v1 the agent reads
 * /sys/fs/cgroup as before.
 */
import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { cgroupCpuFiles, cgroupCpuNs } from "../src/limits/cgroup-cpu.js";
import { CGROUP_ROOT_ENV } from "../src/limits/cgroup-root.js";
import { followMemoryEvents, oomKills } from "../src/limits/oom.js";

const ID = "c".repeat(64);

describe("the cgroup root from INGINIOUS_AGENT_CGROUP_ROOT", () => {
  let root: string;
  let was: string | undefined;
  before(() => {
    root = mkdtempSync(path.join(os.tmpdir(), "iad-cgroot-"));
    const scope = path.join(root, "system.slice", `docker-${ID}.scope`);
    mkdirSync(scope, { recursive: true });
    writeFileSync(path.join(scope, "cpu.stat"), "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n");
    writeFileSync(path.join(scope, "memory.events"), "low 0\nhigh 0\nmax 2\noom 1\noom_kill 1\n");
    was = process.env[CGROUP_ROOT_ENV];
    process.env[CGROUP_ROOT_ENV] = root;
  });
  after(() => {
    if (was === undefined) delete process.env[CGROUP_ROOT_ENV];
    else process.env[CGROUP_ROOT_ENV] = was;
    rmSync(root, { recursive: true, force: true });
  });

  test("a v2 container's CPU time is read under it", () => {
    assert.equal(cgroupCpuNs(ID, 2), 1_500_000);
    assert.ok(cgroupCpuFiles(ID, 1).every((f) => f.startsWith("/sys/fs/cgroup/")), "v1 reads /sys/fs/cgroup");
  });

  test("a v2 container's memory.events is read under it", () => {
    const follower = followMemoryEvents(ID, 2);
    follower.stop();
    assert.equal(oomKills(follower.last() ?? ""), 1);
  });
});

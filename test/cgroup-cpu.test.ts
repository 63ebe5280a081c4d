import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { cgroupCpuFiles, cgroupCpuNs, parseCgroupCpu } from "../src/limits/cgroup-cpu.js";
import { cpuUsageNs } from "../src/limits/container-watch.js";
import { docker, eventually, requireDocker, SAMPLE_IMAGE } from "./helpers/docker.js";

describe("a container's CPU time from its cgroup", () => {
  test("parses cpuacct.usage (v1) and cpu.stat (v2)", () => {
    assert.equal(parseCgroupCpu("123456789\n", 1), 123456789);
    assert.equal(parseCgroupCpu("\n", 1), null);
    assert.equal(parseCgroupCpu("garbage\n", 1), null);
    assert.equal(parseCgroupCpu("usage_usec 2500\nuser_usec 2000\nsystem_usec 500\n", 2), 2_500_000);
    assert.equal(parseCgroupCpu("user_usec 2000\n", 2), null);
    assert.ok(cgroupCpuFiles("abc", 2, "/r").includes("/r/system.slice/docker-abc.scope/cpu.stat"));
    assert.ok(cgroupCpuFiles("abc", 1, "/r").includes("/r/cpuacct/docker/abc/cpuacct.usage"));
    assert.equal(cgroupCpuNs("no-such-container", 1), null);
  });

  test("agrees with the engine's stats for a container that burnt some CPU", async () => {
    await requireDocker();
    const version = (await docker.info() as { CgroupVersion?: string }).CgroupVersion === "2" ? 2 : 1;
    const container = await docker.createContainer({
      Image: SAMPLE_IMAGE,
      Cmd: ["python3", "-c", "import time\nt=time.process_time()\nwhile time.process_time()-t<0.5: pass\ntime.sleep(60)"],
      Labels: { "org.inginious-agent-docker.test": "cgroup-cpu" },
      HostConfig: { NetworkMode: "none" },
    });
    try {
      await container.start();
      // Compare once the burn is over (the container sleeps after it): on a slow host the
      // interpreter's start alone takes seconds, and the two reads are not at the same instant.
      let last = -1;
      await eventually(async () => {
        await new Promise((r) => setTimeout(r, 500));
        const now = cgroupCpuNs(container.id, version);
        const settled = now !== null && now >= 0.5e9 && now - last < 0.02e9;
        last = now ?? -1;
        assert.ok(settled, `the container's CPU time still moves (${now} ns)`);
      }, 60_000);
      const fromFile = cgroupCpuNs(container.id, version);
      const fromEngine = cpuUsageNs(await container.stats({ stream: false }));
      assert.ok(fromFile !== null, "the cgroup file is readable from the host");
      assert.ok(fromEngine !== null);
      assert.ok(fromFile >= 0.5e9, `at least the 0.5 s burnt (${fromFile} ns)`);
      assert.ok(Math.abs(fromFile - fromEngine) < 0.1e9, `file ${fromFile} ns vs engine ${fromEngine} ns`);
    } finally {
      await container.remove({ force: true });
    }
  });
});

/**
 * Unit tests for what the agent reads from Docker: environments from image labels, environment types
 * from runtimes, container events, and CPU time from stats samples.
 */
import { test, describe } from "node:test";
import assert from "node:assert/strict";
import type { RuntimeSpec } from "../src/config.js";
import { discoverEnvironments, type ImageSummary } from "../src/environments/images.js";
import { detectRuntimes } from "../src/environments/runtimes.js";
import { parseContainerEvent } from "../src/docker/events.js";
import { cpuUsageNs } from "../src/limits/container-watch.js";

const docker: RuntimeSpec = { runtime: "runc", envtype: "docker", runAsRoot: false, shared: true, gpu: false };
const dockerSsh: RuntimeSpec = { ...docker, envtype: "docker-ssh" };
const kata: RuntimeSpec = { runtime: "kata-runtime", envtype: "kata", runAsRoot: true, shared: false, gpu: false };
const nvidia: RuntimeSpec = { runtime: "nvidia", envtype: "nvidia", runAsRoot: false, shared: true, gpu: true };

function image(id: string, created: number, labels: Record<string, string> | null): ImageSummary {
  return { Id: id, Created: created, Labels: labels };
}
const grading = (name: string, extra: Record<string, string> = {}): Record<string, string> => ({
  "org.inginious.grading.name": name, "org.inginious.grading.agent_version": "4", ...extra,
});

describe("discoverEnvironments", () => {
  test("an image becomes an environment of every runtime's envtype", () => {
    const d = discoverEnvironments([image("sha256:a", 100, grading("default"))], [docker, dockerSsh]);
    const env = { id: "sha256:a", title: "default", created: 100, ports: [], runtime: "runc", advertised: true };
    assert.deepEqual(d.environments, { docker: { default: env }, "docker-ssh": { default: env } });
    assert.deepEqual(d.problems, []);
  });

  test("every runtime's envtype is present even with no image", () => {
    assert.deepEqual(discoverEnvironments([], [docker, kata]).environments, { docker: {}, kata: {} });
  });

  test("the newest image of each name wins, whatever the listing order", () => {
    const imgs = [image("old", 100, grading("py")), image("new", 300, grading("py")), image("mid", 200, grading("py"))];
    for (const order of [imgs, [...imgs].reverse()]) {
      const d = discoverEnvironments(order, [docker]);
      assert.equal(d.environments["docker"]!["py"]!.id, "new");
      assert.equal(d.environments["docker"]!["py"]!.created, 300);
    }
  });

  test("images without the name label are skipped silently", () => {
    const d = discoverEnvironments([image("x", 1, null), image("y", 1, { other: "1" })], [docker]);
    assert.deepEqual(d.environments, { docker: {} });
    assert.deepEqual(d.problems, []);
  });

  test("a wrong or missing agent_version is ignored with a problem", () => {
    const d = discoverEnvironments(
      [
        image("v3", 500, { "org.inginious.grading.name": "py", "org.inginious.grading.agent_version": "3" }),
        image("none", 600, { "org.inginious.grading.name": "c" }),
        image("v4", 100, grading("py")),
      ],
      [docker],
    );
    assert.deepEqual(Object.keys(d.environments["docker"]!), ["py"]);
    assert.equal(d.environments["docker"]!["py"]!.id, "v4", "the newer v3 image does not hide the v4 one");
    assert.deepEqual(d.problems.map((p) => [p.image, p.name]), [["v3", "py"], ["none", "c"]]);
    assert.match(d.problems[0]!.reason, /version 3/);
  });

  test("need_root images go only to root runtimes", () => {
    const d = discoverEnvironments([image("r", 1, grading("rooty", { "org.inginious.grading.need_root": "1" }))], [docker, kata]);
    assert.deepEqual(d.environments["docker"], {});
    assert.equal(d.environments["kata"]!["rooty"]!.runtime, "kata-runtime");
  });

  test("need_gpu images go only to GPU runtimes", () => {
    const d = discoverEnvironments([image("g", 1, grading("cuda", { "org.inginious.grading.need_gpu": "true" }))], [docker, nvidia]);
    assert.deepEqual(d.environments["docker"], {});
    assert.equal(d.environments["nvidia"]!["cuda"]!.id, "g");
  });

  test("a newer root-only image does not hide an older plain one on non-root runtimes", () => {
    const d = discoverEnvironments(
      [image("plain", 1, grading("e")), image("root", 2, grading("e", { "org.inginious.grading.need_root": "" }))],
      [docker, kata],
    );
    assert.equal(d.environments["docker"]!["e"]!.id, "plain");
    assert.equal(d.environments["kata"]!["e"]!.id, "root");
  });

  test("advertise=false is announced with advertised false; anything else but \"true\" too", () => {
    const d = discoverEnvironments(
      [
        image("h", 1, grading("hidden", { "org.inginious.grading.advertise": "false" })),
        image("s", 1, grading("shown", { "org.inginious.grading.advertise": "true" })),
      ],
      [docker],
    );
    assert.equal(d.environments["docker"]!["hidden"]!.advertised, false);
    assert.equal(d.environments["docker"]!["shown"]!.advertised, true);
  });

  test("the ports label gives a list of ports, spaces and duplicates tolerated", () => {
    const d = discoverEnvironments([image("p", 1, grading("web", { "org.inginious.grading.ports": "22, 8080,22," }))], [docker]);
    assert.deepEqual(d.environments["docker"]!["web"]!.ports, [22, 8080]);
  });

  test("a bad ports label ignores the image with a problem", () => {
    for (const ports of ["22,http", "0", "65536", "-1", "22;80"]) {
      const d = discoverEnvironments(
        [image("bad", 5, grading("web", { "org.inginious.grading.ports": ports })), image("ok", 1, grading("web"))],
        [docker],
      );
      assert.equal(d.environments["docker"]!["web"]!.id, "ok", ports);
      assert.equal(d.problems.length, 1, ports);
      assert.equal(d.problems[0]!.image, "bad");
    }
  });
});

describe("detectRuntimes", () => {
  test("runc exact is preferred over io.containerd.runc.v2", () => {
    for (const avail of [["io.containerd.runc.v2", "runc"], ["runc", "io.containerd.runc.v2"]]) {
      assert.deepEqual(detectRuntimes(avail, false), [
        { runtime: "runc", envtype: "docker", runAsRoot: false, shared: true, gpu: false },
      ]);
    }
  });

  test("io.containerd.runc.v2 alone still gives docker", () => {
    assert.equal(detectRuntimes(["io.containerd.runc.v2"], false)[0]!.runtime, "io.containerd.runc.v2");
  });

  test("--ssh adds docker-ssh on the same runtime", () => {
    const rts = detectRuntimes(["runc"], true);
    assert.deepEqual(rts.map((r) => [r.envtype, r.runtime]), [["docker", "runc"], ["docker-ssh", "runc"]]);
  });

  test("runc wins over crun; crun alone gives docker", () => {
    assert.equal(detectRuntimes(["crun", "runc"], false)[0]!.runtime, "runc");
    assert.deepEqual(detectRuntimes(["crun"], false).map((r) => [r.envtype, r.runtime]), [["docker", "crun"]]);
  });

  test("nvidia gives the nvidia envtype, a GPU runtime, and nvidia-ssh with --ssh", () => {
    const rts = detectRuntimes(["runc", "nvidia"], true);
    assert.deepEqual(rts.map((r) => [r.envtype, r.runtime, r.gpu]), [
      ["docker", "runc", false], ["docker-ssh", "runc", false], ["nvidia", "nvidia", true], ["nvidia-ssh", "nvidia", true],
    ]);
  });

  test("nothing usable gives no runtimes", () => {
    assert.deepEqual(detectRuntimes([], true), []);
    assert.deepEqual(detectRuntimes(["kata-runtime", "youki"], false), []);
  });
});

describe("parseContainerEvent", () => {
  test("a die event with its exit code", () => {
    const ev = parseContainerEvent({
      status: "die", id: "abc", from: "img", Type: "container", Action: "die",
      Actor: { ID: "abc", Attributes: { exitCode: "137", image: "img" } }, scope: "local", time: 1700000000,
      timeNano: 1700000000123456000,
    });
    assert.deepEqual(ev, {
      action: "die", containerId: "abc", timeNano: 1700000000123456000n, attributes: { exitCode: "137", image: "img" },
    });
  });

  test("an oom event", () => {
    const ev = parseContainerEvent({ Type: "container", Action: "oom", Actor: { ID: "c1", Attributes: {} }, timeNano: 5 });
    assert.equal(ev?.action, "oom");
    assert.equal(ev?.containerId, "c1");
    assert.equal(ev?.timeNano, 5n);
  });

  test("old-style events (status/id/time) are understood", () => {
    const ev = parseContainerEvent({ status: "die", id: "old", time: 12 });
    assert.deepEqual(ev, { action: "die", containerId: "old", timeNano: 12_000_000_000n, attributes: {} });
  });

  test("events of other types are not container events", () => {
    assert.equal(parseContainerEvent({ Type: "network", Action: "connect", Actor: { ID: "n" } }), null);
    assert.equal(parseContainerEvent({ type: "image", Action: "pull", Actor: { ID: "i" } }), null);
  });

  test("values that are not events give null", () => {
    for (const v of [null, 3, "die", [], {}, { Action: "die" }, { Actor: { ID: "x" } }, { Action: 1, Actor: { ID: "x" } }]) {
      assert.equal(parseContainerEvent(v), null, JSON.stringify(v));
    }
  });

  test("no time at all gives 0", () => {
    assert.equal(parseContainerEvent({ Action: "die", Actor: { ID: "x" } })?.timeNano, 0n);
  });

  test("unknown fields are tolerated", () => {
    const ev = parseContainerEvent({ Type: "container", Action: "die", Actor: { ID: "x", Attributes: {} }, newField: [1] });
    assert.equal(ev?.containerId, "x");
  });
});

describe("cpuUsageNs", () => {
  test("reads cpu_stats.cpu_usage.total_usage", () => {
    assert.equal(cpuUsageNs({ read: "t", cpu_stats: { cpu_usage: { total_usage: 1_500_000_000, percpu_usage: [1] } } }), 1_500_000_000);
    assert.equal(cpuUsageNs({ cpu_stats: { cpu_usage: { total_usage: 0 } } }), 0);
  });

  test("missing or non-numeric values give null", () => {
    for (const v of [null, undefined, 3, {}, { cpu_stats: {} }, { cpu_stats: { cpu_usage: {} } }, { cpu_stats: { cpu_usage: { total_usage: "5" } } }]) {
      assert.equal(cpuUsageNs(v), null, JSON.stringify(v));
    }
  });
});

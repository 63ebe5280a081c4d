/**
 * memory.oom.group on cgroup v2, against directory trees laid out as the host's cgroup v2 tree
 * (this project's machines run cgroup v1): both drivers' layouts, cgroup v1 left alone, the
 * failure paths, and the start-up check's message. No engine: runStartChecks gets a stand-in
 * that answers `info` only.
 */
import { afterEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type Docker from "dockerode";
import {
  agentCgroupRoot, oomGroupAdvice, oomGroupFiles, oomGroupProblem, resetOomGroupWarning, setOomGroup,
} from "../src/limits/oom-group.js";
import { runStartChecks } from "../src/ops/self-checks.js";
import type { Logger } from "../src/log.js";
import { tempDir } from "./helpers/agent-process.js";
import { treeSnapshot } from "./helpers/tree.js";

const ID = "4e5ba6053b5c96fdbc06d2535d3baee806148401b798e70af65719089475219f";
const MODULE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../src/limits/oom-group.js");

interface Logged { level: string; obj: Record<string, unknown>; msg: string }

function recorder(): { log: Logger; lines: Logged[] } {
  const lines: Logged[] = [];
  const at = (level: string) => (obj: unknown, msg?: string) => {
    if (typeof obj === "string") lines.push({ level, obj: {}, msg: obj });
    else lines.push({ level, obj: obj as Record<string, unknown>, msg: msg ?? "" });
  };
  const log = { fatal: at("fatal"), error: at("error"), warn: at("warn"), info: at("info"), debug: at("debug") };
  return { log: log as unknown as Logger, lines };
}

/** A cgroup v2 tree: root files, the parent of containers' cgroups, and one container's cgroup. */
function cgroupTree(root: string, driver: "cgroupfs" | "systemd", containerId: string | null = ID): string | null {
  writeFileSync(path.join(root, "cgroup.controllers"), "cpuset cpu io memory pids\n");
  const parent = path.join(root, driver === "systemd" ? "system.slice" : "docker");
  mkdirSync(parent, { recursive: true });
  writeFileSync(path.join(parent, "memory.oom.group"), "0\n");
  if (containerId === null) return null;
  const own = path.join(parent, driver === "systemd" ? `docker-${containerId}.scope` : containerId);
  mkdirSync(own);
  writeFileSync(path.join(own, "memory.events"), "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n");
  const flag = path.join(own, "memory.oom.group");
  writeFileSync(flag, "0\n");
  return flag;
}

/**
 * Runs `expr` (using the module's exports as `m`, and `root`) as a user that is not root, as an
 * agent not allowed to write cgroups: root writes a read-only file anyway.
 */
function asUnprivileged(expr: string, root: string): { value: unknown; logs: string[] } {
  const code = `const m = await import(${JSON.stringify(MODULE)}); const root = ${JSON.stringify(root)};
    const logs = []; const log = { warn: (o, msg) => logs.push(msg), debug: (o, msg) => logs.push(msg) };
    const value = await (${expr}); console.log(JSON.stringify({ value, logs }));`;
  const node = [process.execPath, "--input-type=module", "-e", code];
  const argv = process.getuid?.() === 0 ? ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--", ...node] : node;
  const r = spawnSync(argv[0]!, argv.slice(1), { encoding: "utf8" });
  assert.equal(r.status, 0, `child failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as { value: unknown; logs: string[] };
}

/** A temp tree that another user may read (mkdtemp makes it 0700). */
function sharedTemp(): { path: string; remove(): void } {
  const t = tempDir("cgv2");
  chmodSync(t.path, 0o755);
  return t;
}

afterEach(() => resetOomGroupWarning());

describe("where the cgroup tree is", () => {
  test("/sys/fs/cgroup unless INGINIOUS_AGENT_CGROUP_ROOT names another", () => {
    assert.equal(agentCgroupRoot({}), "/sys/fs/cgroup");
    assert.equal(agentCgroupRoot({ INGINIOUS_AGENT_CGROUP_ROOT: "  " }), "/sys/fs/cgroup");
    assert.equal(agentCgroupRoot({ INGINIOUS_AGENT_CGROUP_ROOT: "/host-cgroup/" }), "/host-cgroup");
  });

  test("a container's flag under both drivers", () => {
    assert.deepEqual(oomGroupFiles("abc", "/cg"), [
      "/cg/system.slice/docker-abc.scope/memory.oom.group",
      "/cg/docker/abc/memory.oom.group",
    ]);
  });
});

describe("setting memory.oom.group in a started container's cgroup", () => {
  for (const driver of ["cgroupfs", "systemd"] as const) {
    test(`cgroup v2, ${driver} layout: set to 1, nothing else touched`, async () => {
      const t = tempDir("cgv2");
      try {
        const flag = cgroupTree(t.path, driver)!;
        const before = treeSnapshot(t.path);
        const { log, lines } = recorder();
        assert.equal(await setOomGroup(ID, { cgroupVersion: 2 }, log, t.path), true);
        assert.equal(readFileSync(flag, "utf8").trim(), "1");
        const rel = path.relative(t.path, flag);
        assert.deepEqual({ ...treeSnapshot(t.path), [rel]: before[rel] }, before, "only the container's flag changed");
        assert.deepEqual(lines.filter((l) => l.level !== "debug"), []);
      } finally {
        t.remove();
      }
    });
  }

  test("cgroup v1: nothing read, nothing written, nothing logged, even where a v2 tree is", async () => {
    const t = tempDir("cgv2");
    try {
      cgroupTree(t.path, "cgroupfs");
      cgroupTree(t.path, "systemd");
      const before = treeSnapshot(t.path);
      const { log, lines } = recorder();
      assert.equal(await setOomGroup(ID, { cgroupVersion: 1 }, log, t.path), null);
      assert.deepEqual(treeSnapshot(t.path), before);
      assert.deepEqual(lines, []);
    } finally {
      t.remove();
    }
  });

  test("no cgroup for the container: false, no file created, a warning once then debug", async () => {
    const t = tempDir("cgv2");
    try {
      cgroupTree(t.path, "cgroupfs", null);
      const before = treeSnapshot(t.path);
      const { log, lines } = recorder();
      assert.equal(await setOomGroup(ID, { cgroupVersion: 2 }, log, t.path), false);
      assert.equal(await setOomGroup(ID, { cgroupVersion: 2 }, log, t.path), false);
      assert.deepEqual(treeSnapshot(t.path), before, "a missing cgroup file is never created");
      assert.deepEqual(lines.map((l) => l.level), ["warn", "debug"]);
      assert.match(lines[0]!.msg, /memory\.oom\.group could not be set to 1 \(no cgroup for the container at .*docker\/4e5b/);
      assert.match(lines[0]!.msg, /oom-group check/);
      assert.equal(lines[0]!.obj["container"], ID);
    } finally {
      t.remove();
    }
  });

  test("a container cgroup without the flag (memory controller off): false, the file not created", async () => {
    const t = tempDir("cgv2");
    try {
      mkdirSync(path.join(t.path, "docker", ID), { recursive: true });
      const { log, lines } = recorder();
      assert.equal(await setOomGroup(ID, { cgroupVersion: 2 }, log, t.path), false);
      assert.deepEqual(treeSnapshot(t.path), { docker: "<dir>", [path.join("docker", ID)]: "<dir>" });
      assert.equal(lines[0]!.level, "warn");
    } finally {
      t.remove();
    }
  });

  test("a read-only flag (an agent that is not root): false, the file unchanged, the reason said", () => {
    const t = sharedTemp();
    try {
      const flag = cgroupTree(t.path, "cgroupfs")!;
      for (const d of [path.dirname(path.dirname(flag)), path.dirname(flag)]) chmodSync(d, 0o755);
      chmodSync(flag, 0o644);
      const got = asUnprivileged(`m.setOomGroup(${JSON.stringify(ID)}, { cgroupVersion: 2 }, log, root)`, t.path);
      assert.equal(got.value, false);
      assert.equal(readFileSync(flag, "utf8"), "0\n");
      assert.equal(got.logs.length, 1);
      assert.match(got.logs[0]!, /docker\/4e5b[0-9a-f]+\/memory\.oom\.group: permission denied: the agent is not root/);
    } finally {
      t.remove();
    }
  });

  test("a path is never built from anything but a container id", async () => {
    const { log, lines } = recorder();
    assert.equal(await setOomGroup("../../etc", { cgroupVersion: 2 }, log, "/nonexistent"), false);
    assert.match(lines[0]!.msg, /not a container id/);
  });
});

describe("the start-up check", () => {
  test("cgroup v1: no problem, whatever the tree", async () => {
    assert.equal(await oomGroupProblem("1", "cgroupfs", "/nonexistent"), null);
    assert.equal(await oomGroupProblem(undefined, undefined, "/nonexistent"), null);
  });

  test("cgroup v2 with a writable tree, both drivers; cgroupfs before its first container", async () => {
    for (const driver of ["cgroupfs", "systemd"] as const) {
      const t = tempDir("cgv2");
      try {
        cgroupTree(t.path, driver, null);
        const before = treeSnapshot(t.path);
        assert.equal(await oomGroupProblem("2", driver, t.path), null);
        assert.deepEqual(treeSnapshot(t.path), before, "the check writes nothing");
      } finally {
        t.remove();
      }
    }
    const fresh = tempDir("cgv2");
    try {
      writeFileSync(path.join(fresh.path, "cgroup.controllers"), "memory\n");
      assert.equal(await oomGroupProblem("2", "cgroupfs", fresh.path), null, "docker/ appears with the first container");
      assert.match((await oomGroupProblem("2", "systemd", fresh.path))!, /system\.slice does not exist/);
    } finally {
      fresh.remove();
    }
  });

  test("cgroup v2, the agent in a container without the host's tree", async () => {
    const t = tempDir("cgv2");
    try {
      const problem = (await oomGroupProblem("2", "cgroupfs", t.path))!;
      assert.match(problem, /is not the host's cgroup v2 tree here/);
      assert.match(problem, /runs in a container/);
    } finally {
      t.remove();
    }
  });

  test("cgroup v2, the memory controller not enabled for the containers' parent", async () => {
    const t = tempDir("cgv2");
    try {
      mkdirSync(path.join(t.path, "docker"));
      assert.match((await oomGroupProblem("2", "cgroupfs", t.path))!, /memory controller is not enabled for .*\/docker$/);
    } finally {
      t.remove();
    }
  });

  test("cgroup v2, a read-only flag (an agent that is not root)", () => {
    const t = sharedTemp();
    try {
      cgroupTree(t.path, "systemd", null);
      chmodSync(path.join(t.path, "system.slice"), 0o755);
      const problem = asUnprivileged(`m.oomGroupProblem("2", "systemd", root)`, t.path).value as string;
      assert.match(problem, /system\.slice\/memory\.oom\.group: permission denied: the agent is not root/);
    } finally {
      t.remove();
    }
  });

  test("the message says what breaks and what to do", () => {
    const m = oomGroupAdvice("/sys/fs/cgroup/docker/memory.oom.group: permission denied: the agent is not root");
    assert.match(m, /^cgroup v2: the agent cannot set memory\.oom\.group to 1/);
    assert.match(m, /permission denied/);
    assert.match(m, /Cgroup flag memory\.oom\.group is not set/);
    assert.match(m, /run the agent as root on the host/);
    assert.match(m, /-v \/sys\/fs\/cgroup:\/host-cgroup -e INGINIOUS_AGENT_CGROUP_ROOT=\/host-cgroup/);
  });

  /** runStartChecks with an engine stand-in that answers `info` only. */
  async function startChecks(info: Record<string, string>, cgroupRoot: string): Promise<{ found: Awaited<ReturnType<typeof runStartChecks>>; lines: Logged[] }> {
    const t = tempDir("cgv2-tmp");
    try {
      const { log, lines } = recorder();
      const docker = { info: () => Promise.resolve(info) } as unknown as Docker;
      const found = await runStartChecks({ tmpdir: t.path, tasks: t.path }, docker, log, { probeHostPath: false, cgroupRoot });
      return { found, lines };
    } finally {
      t.remove();
    }
  }

  test("logged at start with check oom-group: a warning on v2 when it cannot, an info line when it can, nothing on v1", async () => {
    const t = tempDir("cgv2");
    try {
      const missing = await startChecks({ CgroupVersion: "2", CgroupDriver: "cgroupfs" }, t.path);
      const warned = missing.lines.filter((l) => l.obj["check"] === "oom-group");
      assert.equal(warned.length, 1);
      assert.equal(warned[0]!.level, "warn");
      assert.match(warned[0]!.msg, /cannot set memory\.oom\.group.*not the host's cgroup v2 tree/);
      assert.deepEqual(missing.found.map((f) => f.check).sort(), ["cgroup", "oom-group"]);

      cgroupTree(t.path, "cgroupfs", null);
      const ok = await startChecks({ CgroupVersion: "2", CgroupDriver: "cgroupfs" }, t.path);
      assert.deepEqual(ok.found, [], "no warning: with the flag set an overflow kills the whole container");
      const info = ok.lines.filter((l) => l.obj["check"] === "oom-group");
      assert.deepEqual(info.map((l) => l.level), ["info"]);
      assert.match(info[0]!.msg, /sets memory\.oom\.group to 1/);

      const v1 = await startChecks({ CgroupVersion: "1", CgroupDriver: "cgroupfs" }, "/nonexistent");
      assert.deepEqual(v1.found, []);
      assert.deepEqual(v1.lines.filter((l) => l.obj["check"] !== undefined), []);
    } finally {
      t.remove();
    }
  });
});

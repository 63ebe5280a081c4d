/**
 * What depends on the host: its cgroup version and driver, and the engine's version. The main
 * suite runs this file on the project's machines (cgroup v1, dockerd 20.10); scripts/test-hosts.sh
 * runs it inside VMs of cgroup v2 hosts, with the cgroupfs driver and with systemd's, where plain
 * code is 10-30x slower: every wait here is an upper bound meant for such a host.
 *
 * Covered: every outcome (success, failed, crash, timeout by CPU and by wall time, overflow by
 * memory and by disk, killed), student containers and their limits, memory.oom.group in grading,
 * student and warm containers (with a grader that, like INGInious's images, exits on 0), /task
 * layered and copied, the start-up checks' log lines, and SIGKILL then restart.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { AgentProcess, TASKS, tempDir } from "./helpers/agent-process.js";
import { FakeBackend, newJob } from "./helpers/backend.js";
import { dirListing, docker, engineContainers, eventually, requireDocker } from "./helpers/docker.js";
import { agentVolumes, startSession, type Session } from "./helpers/session.js";
import { slow } from "./helpers/slowness.js";
import { LABEL_AGENT, LABEL_ROLE, agentId } from "../src/docker/labels.js";
import { oomGroupFiles } from "../src/limits/oom-group.js";

// Upper bounds on this project's machines; the helpers multiply them by IAD_TEST_SLOWNESS in a VM.
const WAIT_MS = 120_000;
const LONG = { timeout: slow(300_000) };
type Done = Record<string, unknown>;
const resultOf = (d: Done): [string, string] => d["result"] as [string, string];

let cgroupVersion: 1 | 2 = 1;
before(async () => {
  await requireDocker();
  const info = (await docker.info()) as { CgroupVersion?: string; CgroupDriver?: string; ServerVersion?: string };
  cgroupVersion = info.CgroupVersion === "2" ? 2 : 1;
  console.log(`host: cgroup v${cgroupVersion}, driver ${info.CgroupDriver}, engine ${info.ServerVersion}`);
});

/** What host-facts reports for the flag: 1 where cgroup v2 gives it, none on v1. */
const flag = (): string => (cgroupVersion === 2 ? "1" : "none");

async function runAll(s: Session, jobs: Record<string, Parameters<typeof newJob>[1]>): Promise<Record<string, Done>> {
  await Promise.all(Object.entries(jobs).map(([id, over]) => s.backend.send(newJob(id, over))));
  const dones = await Promise.all(Object.keys(jobs).map(async (id) => [id, await s.backend.done(id, WAIT_MS)] as const));
  for (const id of Object.keys(jobs)) assert.equal(s.backend.count("AgentJobDone", id), 1, `one result for ${id}`);
  return Object.fromEntries(dones);
}

describe("layered task folders, warm containers", () => {
  let s: Session;
  before(async () => {
    s = await startSession(["-v"], { warm: 1 });
  });
  after(() => s?.end());

  test("the start-up checks say how the host is used", LONG, async () => {
    const folders = await s.agent.waitLog((l) => l["check"] === "task-folders", WAIT_MS);
    assert.equal(folders["mode"], "layered", folders.msg);
    const warnings = s.agent.logs.filter((l) => l.level >= 40 && ["oom-group", "cgroup", "task-folders"].includes(String(l["check"])));
    assert.deepEqual(warnings.map((l) => l.msg), [], "no start-up warning about cgroups or task folders");
    const oomGroup = s.agent.logs.filter((l) => l["check"] === "oom-group");
    if (cgroupVersion === 2) assert.match(oomGroup[0]?.msg ?? "", /sets memory\.oom\.group to 1 in each container/);
    else assert.deepEqual(oomGroup, [], "nothing about memory.oom.group on cgroup v1");
  });

  test("every outcome, with jobs running side by side", LONG, async () => {
    const killed = s.backend.waitFor((m) => m["@type"] === "AgentJobStarted" && m["job_id"] === "killed", WAIT_MS)
      .then(() => new Promise((r) => setTimeout(r, 3000)))
      .then(() => s.backend.send({ type: "BackendKillJob", job_id: "killed", state: "" }));
    // Limits only the jobs about limits come near: twelve jobs at once are slow on an emulated host.
    const roomy = { time: 300, hard_time: 1200 };
    const d = await runAll(s, {
      "success": { task_id: "success", inputdata: { q1: "print(1)", "@state": "" }, limits: roomy },
      "failed": { task_id: "failed", limits: roomy },
      "crash": { task_id: "exit3", limits: roomy },
      "cpu": { task_id: "cpu", limits: { time: 2, hard_time: 3600 } },
      "wall": { task_id: "sleep", limits: { time: 3600, hard_time: 5 } },
      "memory": { task_id: "memory", limits: { ...roomy, memory: 64 } },
      "disk": { task_id: "host-disk", limits: { ...roomy, disk: 10 } },
      "killed": { task_id: "sleep", limits: { time: 3600, hard_time: 3600 } },
      "student": { task_id: "student", limits: roomy },
      "student-mem": { task_id: "student-mem", limits: roomy },
      "student-cpu": { task_id: "student-cpu", limits: roomy },
      "facts": { task_id: "host-facts", limits: roomy },
    });
    await killed;
    // Every job's result against what it must be, all reported at once.
    const expected: Record<string, [string, RegExp]> = {
      "success": ["success", /^Well done: you wrote print\(1\)$/],
      "failed": ["failed", /^Wrong answer$/],
      "crash": ["crash", /./],
      "cpu": ["timeout", /^/],
      "wall": ["timeout", /^/],
      "memory": ["overflow", /^/],
      "disk": ["overflow", /wrote too much to disk/],
      "killed": ["killed", /^$/],
      "student": ["success", /^code=7 out=hello from the student container$/],
      "student-mem": ["success", /^code=252$/],
      "student-cpu": ["success", /^code=253$/],
      "facts": ["success", new RegExp(`^oom\\.group=${flag()} student=${flag()}/0 task=overlayfs$`)],
    };
    const wrong = Object.entries(expected)
      .filter(([id, [result, text]]) => resultOf(d[id]!)[0] !== result || !text.test(resultOf(d[id]!)[1]))
      .map(([id, [result, text]]) => `${id}: got ${JSON.stringify(resultOf(d[id]!))}, wanted ${result} ${String(text)}`);
    assert.deepEqual(wrong, [], "every job's result");
    assert.equal(d["success"]!["grade"], 87.5);
    assert.ok(s.agent.logs.some((l) => l["job"] === "cpu" && /^killing container: CPU time [\d.]+ s over its limit of 2 s$/.test(l.msg)),
      "the CPU limit, read on this host, stopped the CPU job");
    // A grader done before the first read has no cgroup left to read: only jobs that run on count.
    const long = new Set(["cpu", "wall", "killed", "disk"]);
    assert.deepEqual(s.agent.logs.filter((l) => l["cpuSource"] === "stats" && long.has(String(l["job"]))).map((l) => l["job"]), [],
      "every running job's CPU time was read from its container's cgroup, none from the engine's stats stream");
    await s.assertClean();
  });

  test("a warm container gets memory.oom.group too", LONG, async () => {
    // Warm containers follow the jobs of the last two minutes (warm-pool.ts), and the outcomes above
    // take longer than that in an emulated VM: a job now makes its environment wanted again.
    await s.backend.send(newJob("warm-demand", { task_id: "success", inputdata: { q1: "print(1)", "@state": "" }, limits: { time: 300, hard_time: 1200 } }));
    assert.equal(resultOf(await s.backend.done("warm-demand", WAIT_MS))[0], "success");
    // read on the host, in the cgroup of a warm container the agent started and keeps waiting
    const warm = { label: [`${LABEL_AGENT}=${agentId(s.tmpdir)}`, `${LABEL_ROLE}=warm`], status: ["running"] };
    await eventually(async () => {
      const ids = (await docker.listContainers({ filters: warm })).map((c) => c.Id);
      assert.ok(ids.length > 0, "a warm container runs");
      const flags = ids.map((id) => oomGroupFiles(id).map((f) => { try { return readFileSync(f, "utf8").trim(); } catch { return null; } })
        .find((v) => v !== null) ?? "none");
      assert.ok(flags.every((v) => v === flag()), `memory.oom.group of the warm containers: ${flags.join(", ")}`);
    }, WAIT_MS);
    await s.assertClean();
  });
});

describe("copied task folders (--copy-task-folders)", () => {
  let s: Session;
  before(async () => {
    s = await startSession(["--copy-task-folders"], { warm: 0 });
  });
  after(() => s?.end());

  test("/task is a copy, the disk limit counts it, the flag is set", LONG, async () => {
    const folders = await s.agent.waitLog((l) => l["check"] === "task-folders", WAIT_MS);
    assert.equal(folders["mode"], "copy");
    const d = await runAll(s, {
      "copy-facts": { task_id: "host-facts", limits: { time: 300, hard_time: 1200 } },
      "copy-disk": { task_id: "host-disk", limits: { time: 300, hard_time: 1200, disk: 10 } },
    });
    const [result, text] = resultOf(d["copy-facts"]!);
    assert.equal(result, "success", text);
    assert.match(text, new RegExp(`^oom\\.group=${flag()} student=${flag()}/0 task=(?!overlayfs)`));
    assert.equal(resultOf(d["copy-disk"]!)[0], "overflow", resultOf(d["copy-disk"]!)[1]);
    assert.match(resultOf(d["copy-disk"]!)[1], /wrote too much to disk/);
    await s.assertClean();
  });
});

test("SIGKILL with jobs running, then a restart: no container, volume or job directory is left", LONG, async () => {
  const tmp = tempDir("lane-sigkill");
  const before0 = await engineContainers([tmp.path]);
  const backend = await new FakeBackend().start();
  const stopPings = backend.pingEvery(1000);
  const args = [backend.address, "--tmpdir", tmp.path, "--tasks", TASKS, "--concurrency", "2", "--warm", "0"];
  const mine = async (): Promise<string[]> =>
    (await docker.listContainers({ all: true, filters: { label: [`${LABEL_AGENT}=${agentId(tmp.path)}`] } })).map((c) => c.Id);
  let second: AgentProcess | null = null;
  try {
    const first = new AgentProcess(args);
    await backend.waitType("AgentHello", WAIT_MS);
    for (const id of ["held-0", "held-1"]) await backend.send(newJob(id, { task_id: "sleep", limits: { time: 3600, hard_time: 3600 } }));
    await eventually(async () => assert.equal((await mine()).length, 2), WAIT_MS);
    await backend.waitFor(() => backend.count("AgentJobStarted") === 2, WAIT_MS);
    first.signal("SIGKILL");
    await first.exited;
    assert.equal((await mine()).length, 2, "the killed agent could not clean up");
    const hellos = backend.count("AgentHello");
    second = new AgentProcess(args);
    await backend.waitFor(() => backend.count("AgentHello") > hellos, WAIT_MS);
    assert.deepEqual(await mine(), []);
    assert.deepEqual(await agentVolumes(tmp.path), []);
    assert.deepEqual(await dirListing(tmp.path), []);
  } finally {
    stopPings();
    await second?.stop();
    backend.close();
    for (const id of await mine()) await docker.getContainer(id).remove({ force: true, v: true }).catch(() => {});
    await eventually(async () => assert.deepEqual(await engineContainers([tmp.path]), before0), WAIT_MS).finally(() => tmp.remove());
  }
});

/**
 * Warm containers made for a heavy task (src/jobs/warm-pool.ts, workers/warm-layer.ts), on the real
 * engine: once a job of a heavy layered task ran, its environment's warm containers are made with
 * that task's layer at /task; the task's next job runs in one with no container made for it and
 * nothing copied into its job directory; a job of another task never takes one; a task that can no
 * longer be layered is not run in one (copied, in a new container); and neither a stopped nor a
 * killed agent leaves a container, volume or job directory behind.
 */
import { after, afterEach, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, readdirSync, realpathSync, renameSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import path from "node:path";
import { AgentProcess, tempDir } from "./helpers/agent-process.js";
import { FakeBackend, newJob } from "./helpers/backend.js";
import { dirListing, docker, engineContainers, eventually } from "./helpers/docker.js";
import { recordEvents } from "./helpers/engine-events.js";
import { agentVolumes, startSession, type Session } from "./helpers/session.js";
import { LABEL_AGENT, LABEL_ROLE, agentId } from "../src/docker/labels.js";
import { HEAVY_TASK_ENTRIES, WARM_PROBATION_SETTLE_MS } from "../src/jobs/warm-pool.js";
import { agentLayersDir, chosenLayersDir } from "../src/jobs/layer-place.js";

const COURSE = "warmtask";
const DIRS = 6;
const PER_DIR = 500; // 3000 files: heavy (HEAVY_TASK_ENTRIES), and a copy of them a few seconds here

// Reports what the job sees of /task; sleeps so that the test can look at its job directory meanwhile.
const RUN = `#!/bin/sh
out=$(
  printf 'fs|%s\\n' "$(awk '$2=="/task"{print $3}' /proc/mounts)"
  printf 'task|%s\\n' "$(cat /task/name.txt)"
  printf 'files|%s\\n' "$(find /task/data -type f 2>/dev/null | wc -l)"
  printf 'student|%s\\n' "$(cat /task/student/given.txt 2>/dev/null)"
  printf 'link|%s\\n' "$(test -L /task/data-link && echo link || echo not-a-link)"
)
sleep 2
feedback-result success
feedback-msg -m "$out"
`;

function buildTasks(root: string): string {
  const tasks = path.join(root, "tasks");
  for (const name of ["big", "small"]) {
    const task = path.join(tasks, COURSE, name);
    mkdirSync(path.join(task, "student"), { recursive: true });
    writeFileSync(path.join(task, "run"), RUN, { mode: 0o755 });
    writeFileSync(path.join(task, "name.txt"), name);
    writeFileSync(path.join(task, "student", "given.txt"), `given-${name}`);
  }
  for (let d = 0; d < DIRS; d++) {
    const dir = path.join(tasks, COURSE, "big", "data", `d${d}`);
    mkdirSync(dir, { recursive: true });
    for (let f = 0; f < PER_DIR; f++) writeFileSync(path.join(dir, `f${f}.txt`), `${d}/${f}`);
  }
  mkdirSync(path.join(tasks, COURSE, "$common"));
  return tasks;
}

function seen(text: string): Record<string, string> {
  return Object.fromEntries(text.trim().split("\n").map((l) => l.split("|") as [string, string]));
}

/** Running warm containers of the agent whose /task is a volume (a task's layer), with their job directory. */
async function taskWarm(tmpdir: string): Promise<Map<string, string>> {
  const listed = await docker.listContainers({
    filters: { label: [`${LABEL_AGENT}=${agentId(tmpdir)}`, `${LABEL_ROLE}=warm`], status: ["running"] },
  });
  const out = new Map<string, string>();
  for (const c of listed) {
    const mounts = c.Mounts as Array<{ Type: string; Destination: string; Source: string }>;
    const task = mounts.find((m) => m.Destination === "/task");
    const student = mounts.find((m) => m.Destination === "/task/student");
    if (task?.Type === "volume" && student !== undefined) out.set(c.Id, path.dirname(path.dirname(student.Source)));
  }
  return out;
}

/** The lower layer of a container's /task volume (the folder its overlay was made over). */
async function lowerOf(containerId: string): Promise<string> {
  const mounts = (await docker.getContainer(containerId).inspect()).Mounts as Array<{ Destination: string; Name?: string }>;
  const name = mounts.find((m) => m.Destination === "/task")?.Name ?? "";
  const options = ((await docker.getVolume(name).inspect()) as { Options?: Record<string, string> }).Options ?? {};
  return /(?:^|,)lowerdir=([^,]*)/.exec(options["o"] ?? "")?.[1] ?? "";
}

/** Waits for a task's warm container, and for its probation (see warm-pool.ts) to be over. */
async function readyTaskWarm(tmpdir: string): Promise<Map<string, string>> {
  let found = new Map<string, string>();
  await eventually(async () => {
    found = await taskWarm(tmpdir);
    assert.ok(found.size > 0, "no warm container was made for the heavy task");
  }, 120_000);
  const started = await Promise.all([...found.keys()].map(async (c) => Date.parse((await docker.getContainer(c).inspect()).State.StartedAt)));
  const settled = Math.max(...started) + WARM_PROBATION_SETTLE_MS + 1500;
  if (settled > Date.now()) await new Promise((r) => setTimeout(r, settled - Date.now()));
  return found;
}

describe("warm containers for a heavy task (--warm 2, layered task folders)", () => {
  let root: ReturnType<typeof tempDir> | null = null;
  let tasks = "";
  let s: Session;
  before(async () => {
    assert.ok(DIRS * PER_DIR >= HEAVY_TASK_ENTRIES);
    root = tempDir("warmtask");
    tasks = buildTasks(root.path);
    s = await startSession(["--tasks", tasks], { warm: 2 });
  });
  afterEach(() => s.assertClean());
  after(async () => {
    try {
      await s?.end();
    } finally {
      root?.remove();
    }
  });

  async function run(id: string, task: string): Promise<Record<string, string>> {
    await s.backend.send(newJob(id, { course_id: COURSE, task_id: task }));
    const [result, text] = (await s.backend.done(id, 120_000))["result"] as [string, string];
    assert.equal(result, "success", text);
    return seen(text);
  }

  test("the task's next job runs in a container made for it: none is created, nothing is copied", async () => {
    const first = await run("heavy-1", "big");
    assert.equal(first["fs"], "overlay", "the first job, cold, has its task layered");
    const ready = await readyTaskWarm(s.tmpdir);
    for (const dir of ready.values()) assert.deepEqual(readdirSync(path.join(dir, "task")).sort(), ["student", "systemfiles"]);
    const events = await recordEvents([`${LABEL_AGENT}=${agentId(s.tmpdir)}`], ["create"]);
    let during: string[][] = [];
    try {
      await s.backend.send(newJob("heavy-2", { course_id: COURSE, task_id: "big" }));
      // while it runs: the job directories of the task's containers hold no copy of the task
      await new Promise((r) => setTimeout(r, 1000));
      during = [...ready.values()].map((dir) => { try { return readdirSync(path.join(dir, "task")).sort(); } catch { return []; } });
      const [result, text] = (await s.backend.done("heavy-2", 120_000))["result"] as [string, string];
      assert.equal(result, "success", text);
      const second = seen(text);
      assert.equal(second["fs"], "overlay");
      assert.equal(second["task"], "big");
      assert.equal(second["files"], String(DIRS * PER_DIR));
      assert.equal(second["student"], "given-big");
      assert.deepEqual(events.ofJob("heavy-2"), [], "no container was created for the job");
    } finally {
      events.stop();
    }
    for (const listing of during) assert.ok(listing.every((n) => n === "student" || n === "systemfiles"), `copied: ${listing.join(" ")}`);
    const left = await taskWarm(s.tmpdir);
    assert.ok([...ready.keys()].some((id) => !left.has(id)), "one of the task's warm containers served the job and is gone");
  });

  test("a job of another task does not take the heavy task's container", async () => {
    const ready = await readyTaskWarm(s.tmpdir);
    const small = await run("small-1", "small");
    assert.equal(small["task"], "small", "the job sees its own task");
    assert.equal(small["student"], "given-small");
    const left = await taskWarm(s.tmpdir);
    for (const id of ready.keys()) assert.ok(left.has(id), "the heavy task's warm container is still waiting");
  });

  test("a task that can no longer be layered is not run in its warm container, and its containers go", async () => {
    await readyTaskWarm(s.tmpdir);
    const link = path.join(tasks, COURSE, "big", "data-link");
    symlinkSync("data", link); // a link to a directory inside the course: the copy expands it, so the task is copied
    try {
      const events = await recordEvents([`${LABEL_AGENT}=${agentId(s.tmpdir)}`], ["create"]);
      let third: Record<string, string>;
      try {
        third = await run("heavy-3", "big");
        assert.equal(events.ofJob("heavy-3").length, 1, "the job ran in a new container");
      } finally {
        events.stop();
      }
      assert.notEqual(third["fs"], "overlay", "the task was copied");
      assert.equal(third["link"], "not-a-link", "the copy expands the link into the folder it leads to");
      assert.ok(s.agent.logs.some((l) => /can no longer be layered/.test(l.msg) && l["job"] === "heavy-3"));
      await eventually(async () => {
        assert.equal((await taskWarm(s.tmpdir)).size, 0, "the task's warm containers are removed");
        assert.deepEqual(await agentVolumes(s.tmpdir), [], "with their layer");
        // their layer folders too, on the layers' place (a tmpfs: outside the job directories)
        const place = chosenLayersDir(null);
        if (place !== null) assert.deepEqual(await dirListing(agentLayersDir(place, agentId(s.tmpdir))), [], "and their layer folders");
      }, 60_000);
    } finally {
      rmSync(link);
    }
  });
});

describe("a heavy task whose folder is swapped (a link renamed over the old one) between two jobs", () => {
  const SWAP_COURSE = "warmswap";
  let root: ReturnType<typeof tempDir> | null = null;
  let tasks = "";
  let s: Session;
  before(async () => {
    root = tempDir("warmswap");
    tasks = path.join(root.path, "tasks");
    const course = path.join(tasks, SWAP_COURSE);
    for (const release of ["v1", "v2"]) {
      const task = path.join(course, "releases", release);
      mkdirSync(path.join(task, "student"), { recursive: true });
      writeFileSync(path.join(task, "run"), RUN, { mode: 0o755 });
      writeFileSync(path.join(task, "name.txt"), release);
      writeFileSync(path.join(task, "student", "given.txt"), `given-${release}`);
      const data = path.join(task, "data", "d0");
      mkdirSync(data, { recursive: true });
      for (let f = 0; f < HEAVY_TASK_ENTRIES + 100; f++) writeFileSync(path.join(data, `f${f}.txt`), `${release}/${f}`);
    }
    mkdirSync(path.join(course, "$common"));
    symlinkSync(path.join("releases", "v1"), path.join(course, "task"));
    s = await startSession(["--tasks", tasks], { warm: 2 });
  });
  afterEach(() => s.assertClean());
  after(async () => {
    try {
      await s?.end();
    } finally {
      root?.remove();
    }
  });

  async function run(id: string): Promise<Record<string, string>> {
    await s.backend.send(newJob(id, { course_id: SWAP_COURSE, task_id: "task" }));
    const [result, text] = (await s.backend.done(id, 120_000))["result"] as [string, string];
    assert.equal(result, "success", text);
    return seen(text);
  }

  test("the job after the swap sees the new task, in a new container; the task's next warm containers are made over it", async () => {
    const first = await run("swap-1");
    assert.equal(first["task"], "v1");
    const overV1 = await readyTaskWarm(s.tmpdir);
    // the course is updated as a deploy does it: a new link, renamed over the old one (atomic)
    const link = path.join(tasks, SWAP_COURSE, "task");
    symlinkSync(path.join("releases", "v2"), `${link}.new`);
    renameSync(`${link}.new`, link);
    const events = await recordEvents([`${LABEL_AGENT}=${agentId(s.tmpdir)}`], ["create"]);
    try {
      const second = await run("swap-2");
      assert.equal(second["task"], "v2", "the task's files are the new folder's");
      assert.equal(second["student"], "given-v2");
      assert.equal(second["files"], String(HEAVY_TASK_ENTRIES + 100));
      assert.equal(second["fs"], "overlay", "layered over the new folder");
      assert.equal(events.ofJob("swap-2").length, 1, "the job ran in a new container");
      assert.ok(s.agent.logs.some((l) => l["job"] === "swap-2" && /the task folder changed since its warm grading container was made/.test(l.msg)));
      // the task's other containers, made over v1, go; new ones are made over v2 and serve the next job
      const v2 = realpathSync(path.join(tasks, SWAP_COURSE, "releases", "v2"));
      await eventually(async () => {
        const now = [...(await taskWarm(s.tmpdir)).keys()];
        assert.ok(overV1.size > 0 && [...overV1.keys()].every((id) => !now.includes(id)), "no container made over the old folder is left");
        assert.ok(now.length > 0, "the task has warm containers again");
        assert.deepEqual(await Promise.all(now.map(lowerOf)), now.map(() => v2), "every one made over the new folder");
      }, 90_000);
      await readyTaskWarm(s.tmpdir);
      const third = await run("swap-3");
      assert.equal(third["task"], "v2");
      assert.deepEqual(events.ofJob("swap-3"), [], "the next job took a warm container made over the new folder");
    } finally {
      events.stop();
    }
  });
});

test("SIGKILL with a heavy task's warm containers ready, then a restart: no container, volume or job directory is left", async () => {
  const root = tempDir("warmtask-kill");
  const tasks = buildTasks(root.path);
  const tmp = path.join(root.path, "data");
  const before = await engineContainers([tmp]);
  const backend = await new FakeBackend().start();
  const args = [backend.address, "--tmpdir", tmp, "--tasks", tasks, "--concurrency", "4", "--warm", "2"];
  const first = new AgentProcess(args);
  const stopPings = backend.pingEvery(1000);
  let second: AgentProcess | null = null;
  let failed = false;
  try {
    await backend.waitType("AgentHello");
    await backend.send(newJob("heavy-kill", { course_id: COURSE, task_id: "big" }));
    assert.equal(((await backend.done("heavy-kill", 120_000))["result"] as string[])[0], "success");
    await readyTaskWarm(tmp);
    assert.ok((await agentVolumes(tmp)).length > 0, "the task's warm containers have their layer");
    first.signal("SIGKILL");
    await first.exited;
    const hello = backend.count("AgentHello");
    second = new AgentProcess(args);
    await backend.waitFor(() => backend.count("AgentHello") > hello, 60_000);
    assert.deepEqual(await engineContainers([tmp]), before);
    assert.deepEqual(await agentVolumes(tmp), []);
    assert.deepEqual(await dirListing(tmp), []);
    await second.stop();
    assert.deepEqual(await engineContainers([tmp]), before, "a stopped agent leaves no container");
    assert.deepEqual(await agentVolumes(tmp), [], "nor volume");
    assert.deepEqual(await dirListing(tmp), [], "nor job directory");
  } catch (err) {
    failed = true;
    throw err;
  } finally {
    stopPings();
    first.signal("SIGKILL");
    await second?.stop();
    backend.close();
    try {
      if (failed) await removeLeft(tmp); // a failure above must not leave the killed agent's containers behind
      else await eventually(async () => assert.deepEqual(await engineContainers([tmp]), before));
    } finally {
      root.remove();
    }
  }
});

/** What an agent of `tmpdir` left (its label): removed after a failed test, so that the first failure is the one reported. */
async function removeLeft(tmpdir: string): Promise<void> {
  const label = `${LABEL_AGENT}=${agentId(tmpdir)}`;
  for (const c of await docker.listContainers({ all: true, filters: { label: [label] } })) await docker.getContainer(c.Id).remove({ force: true }).catch(() => {});
  for (const v of await agentVolumes(tmpdir)) await docker.getVolume(v).remove().catch(() => {});
}

/**
 * Where jobs' writable layers live (src/jobs/layer-place.ts), on the real engine: by default on
 * /dev/shm (a tmpfs) with metacopy, out of the job directory, and gone with the job; the disk
 * limit counts what a job writes to /task there; layer folders a killed run left are removed at
 * the next start (others' kept), even when no grading image exists; an agent's folder there that
 * another user made first, or one open to others, is not used (nor its content touched); a layers'
 * place the engine cannot use (absent, or a filesystem overlayfs refuses as upper layer) falls
 * back to job directories, and the start-up line says why.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import path from "node:path";
import { AgentProcess, tempDir, type LogLine } from "./helpers/agent-process.js";
import { FakeBackend, newJob } from "./helpers/backend.js";
import { docker, eventually, requireDocker } from "./helpers/docker.js";
import { PrivateDockerd } from "./helpers/private-dockerd.js";
import { startSession } from "./helpers/session.js";
import { agentId } from "../src/docker/labels.js";
import { agentLayersDir, isTmpfs } from "../src/jobs/layer-place.js";

const COURSE = "place";

// Writes into /task, waits for the test to look, then reports /task's mount options.
const HOLD = `#!/bin/sh
echo held > /task/written.txt
while [ ! -e /task/student/go ]; do sleep 0.2; done 2>/dev/null
sleep 3
feedback-result success
feedback-msg -m "$(awk '$2=="/task"{print $4}' /proc/mounts)"
`;
// Writes 40 MB under /task, then leaves the agent a few seconds to notice.
const WRITE = `#!/bin/sh
dd if=/dev/zero of=/task/big bs=1M count=40 2>/dev/null
sleep 5
feedback-result success
feedback-msg -m "wrote 40 MB"
`;

let root: ReturnType<typeof tempDir>;
let tasks = "";
before(() => {
  root = tempDir("layers-place");
  tasks = path.join(root.path, "tasks");
  for (const [task, run] of [["hold", HOLD], ["write", WRITE]] as const) {
    mkdirSync(path.join(tasks, COURSE, task, "student"), { recursive: true });
    writeFileSync(path.join(tasks, COURSE, task, "run"), run, { mode: 0o755 });
  }
  chmodSync(root.path, 0o755);
});
after(() => root.remove());

const checkLine = (l: LogLine): boolean => l["check"] === "task-folders";

test("by default the layers are on /dev/shm with metacopy, out of the job directory, and go with the job", { skip: !isTmpfs("/dev/shm") }, async () => {
  const s = await startSession(["--tasks", tasks]);
  const own = agentLayersDir("/dev/shm", agentId(s.tmpdir));
  try {
    const check = await s.agent.waitLog(checkLine);
    assert.equal(check["way"], "layers-dir-metacopy", JSON.stringify(check));
    assert.equal(check["layersDir"], own);
    await s.backend.send(newJob("place-1", { course_id: COURSE, task_id: "hold" }));
    let layer = "";
    await eventually(() => {
      const names = readdirSync(own).filter((n) => n.startsWith("job-"));
      assert.equal(names.length, 1);
      layer = path.join(own, names[0]!);
      assert.equal(readFileSync(path.join(layer, "upper", "written.txt"), "utf8"), "held\n", "what the job wrote is in its layer on the tmpfs");
    }, 30_000);
    assert.equal(readFileSync(path.join(layer, ".inginious-agent-docker"), "utf8"), agentId(s.tmpdir), "the layer folder carries the job directory's marker");
    const jobDir = path.join(s.tmpdir, readdirSync(s.tmpdir).find((n) => n.startsWith("job-"))!);
    assert.ok(!existsSync(path.join(jobDir, "upper")) && !layer.startsWith(s.tmpdir), "no layer in the job directory");
    writeFileSync(path.join(jobDir, "task", "student", "go"), "");
    const [result, text] = (await s.backend.done("place-1", 60_000))["result"] as [string, string];
    assert.equal(result, "success", text);
    assert.match(text, /metacopy=on/);
    assert.match(text, new RegExp(`upperdir=${layer}/upper`));
    await s.assertClean();
    await eventually(() => assert.ok(!existsSync(layer), "the layer folder went with the job"));
  } finally {
    await s.end();
  }
  assert.ok(!existsSync(own), "the agent's folder on /dev/shm goes with the agent");
});

test("the disk limit counts what a job writes to /task in its layer on the tmpfs", { skip: !isTmpfs("/dev/shm") }, async () => {
  const s = await startSession(["--tasks", tasks]);
  try {
    assert.equal((await s.agent.waitLog(checkLine))["way"], "layers-dir-metacopy");
    await s.backend.send(newJob("place-disk", { course_id: COURSE, task_id: "write", limits: { time: 30, hard_time: 60, disk: 10 } }));
    const [result, text] = (await s.backend.done("place-disk", 90_000))["result"] as [string, string];
    assert.equal(result, "overflow", text);
    // the disk limit's text: an out-of-memory stop (a tmpfs is charged to memory) is overflow too
    assert.match(text, /^The job wrote too much to disk \(\d+ MB, over its limit\)\.$/);
    await s.assertClean();
  } finally {
    await s.end();
  }
});

test("layer folders a killed run left are removed at the next start; those of others stay", async () => {
  await requireDocker();
  const place = tempDir("layers-reap");
  const tmp = path.join(place.path, "data");
  const own = agentLayersDir(path.join(place.path, "shm"), agentId(tmp));
  mkdirSync(own, { recursive: true, mode: 0o700 });
  const make = (name: string, marker: string | null): string => leftoverLayer(own, name, marker);
  const leftover = make("job-left-1234", agentId(tmp));
  const foreign = make("job-other-1234", "another agent");
  const unmarked = make("job-unmarked-1234", null);
  const backend = await new FakeBackend().start();
  const agent = new AgentProcess([backend.address, "--tmpdir", tmp, "--tasks", tasks, "--task-layers-dir", path.join(place.path, "shm"), "--warm", "0"]);
  try {
    await backend.waitType("AgentHello", 30_000);
    assert.ok(!existsSync(leftover), "the leftover layer folder is removed");
    assert.ok(existsSync(foreign) && existsSync(unmarked), "folders without this agent's marker stay");
    assert.ok(agent.logs.some((l) => /removed layer folders left by an earlier run/.test(l.msg) && l["count"] === 1));
  } finally {
    await agent.stop();
    backend.close();
    place.remove();
  }
});

/** A leftover layer folder as a killed job leaves it, carrying `marker` (null: none). */
function leftoverLayer(own: string, name: string, marker: string | null): string {
  const dir = path.join(own, name);
  mkdirSync(path.join(dir, "upper", "deep"), { recursive: true });
  mkdirSync(path.join(dir, "work", "work"), { recursive: true });
  chmodSync(path.join(dir, "work", "work"), 0); // as the kernel leaves it
  if (marker !== null) writeFileSync(path.join(dir, ".inginious-agent-docker"), marker);
  return dir;
}

test("with no grading image, the start still removes the layer folders a killed run left, and leaves no folder", async () => {
  await requireDocker();
  const engine = new PrivateDockerd(); // an engine of its own, without any image
  const place = tempDir("layers-noimage");
  const tmp = path.join(place.path, "data");
  const shm = path.join(place.path, "shm");
  mkdirSync(agentLayersDir(shm, agentId(tmp)), { recursive: true, mode: 0o700 });
  const leftover = leftoverLayer(agentLayersDir(shm, agentId(tmp)), "job-left-5678", agentId(tmp));
  const backend = await new FakeBackend().start();
  let agent: AgentProcess | null = null;
  try {
    await engine.start();
    agent = new AgentProcess([backend.address, "--tmpdir", tmp, "--tasks", tasks, "--task-layers-dir", shm, "--warm", "0"], { DOCKER_HOST: engine.host });
    await backend.waitType("AgentHello", 60_000);
    const check = await agent.waitLog(checkLine);
    assert.equal(check["mode"], "copy", JSON.stringify(check));
    assert.match(String(check["reason"]), /no grading image/);
    assert.ok(!existsSync(leftover), "the leftover layer folder is removed");
    assert.deepEqual(readdirSync(shm), [], "no layer folder is left on the layers' place");
  } finally {
    await agent?.stop();
    backend.close();
    await engine.remove();
    place.remove();
  }
});

for (const kind of ["another user's (uid 65534)", "open to others (0777)"] as const) {
  test(`an agent's folder on the layers' place that is ${kind} is not used, nor what is in it touched; the start-up line says why`, async () => {
    await requireDocker();
    const place = tempDir("layers-foreign");
    const tmp = path.join(place.path, "data");
    const shm = path.join(place.path, "shm");
    const own = agentLayersDir(shm, agentId(tmp));
    mkdirSync(own, { recursive: true, mode: 0o700 });
    const planted = leftoverLayer(own, "job-planted-1234", agentId(tmp)); // the agent's marker, in a folder not the agent's
    if (kind.startsWith("another")) chownSync(own, 65534, 65534);
    else chmodSync(own, 0o777);
    const backend = await new FakeBackend().start();
    const agent = new AgentProcess([backend.address, "--tmpdir", tmp, "--tasks", tasks, "--task-layers-dir", shm, "--warm", "0"]);
    try {
      await backend.waitType("AgentHello", 30_000);
      const check = await agent.waitLog(checkLine);
      assert.equal(check["way"], "job-dir-metacopy", JSON.stringify(check));
      assert.equal(check["layersDir"], null);
      const why = kind.startsWith("another") ? /belongs to uid 65534, not to this agent's user/ : /is open to others \(mode 0777, not 0700\)/;
      assert.match((check["refused"] as string[])[0]!, new RegExp(`^layers-dir: the agent's folder ${own} ${why.source}.*; it is not used`));
      assert.ok(existsSync(path.join(planted, "upper", "deep")), "what is in that folder is not touched");
      const st = statSync(own);
      assert.deepEqual([st.uid, st.mode & 0o777], kind.startsWith("another") ? [65534, 0o700] : [process.getuid!(), 0o777], "the folder is left as it is");
    } finally {
      await agent.stop();
      backend.close();
      place.remove();
    }
  });
}

test("a layers' place that does not exist: the layers go into job directories, and the start-up line says why", async () => {
  const missing = path.join(root.path, "no-such-folder", "below");
  const s = await startSession(["--tasks", tasks, "--task-layers-dir", missing]);
  try {
    const check = await s.agent.waitLog(checkLine);
    assert.equal(check["way"], "job-dir-metacopy", JSON.stringify(check));
    assert.equal(check["layersDir"], null);
    assert.match((check["refused"] as string[])[0]!, /^layers-dir: cannot use .*no-such-folder.*no such file/);
    await s.backend.send(newJob("place-missing", { course_id: COURSE, task_id: "hold" }));
    await eventually(() => {
      const jobDir = path.join(s.tmpdir, readdirSync(s.tmpdir).find((n) => n.startsWith("job-"))!);
      assert.ok(existsSync(path.join(jobDir, "upper", "written.txt")), "the layer is in the job directory");
      writeFileSync(path.join(jobDir, "task", "student", "go"), "");
    }, 30_000);
    const [result, text] = (await s.backend.done("place-missing", 60_000))["result"] as [string, string];
    assert.equal(result, "success", text);
    await s.assertClean();
  } finally {
    await s.end();
  }
  assert.ok(!existsSync(missing));
});

test("a layers' place on a filesystem overlayfs refuses as upper layer (an overlay): job directories, and why", async () => {
  await requireDocker();
  const base = mkdtempSync(path.join(root.path, "ovl-"));
  for (const d of ["l", "u", "w"]) mkdirSync(path.join(base, d));
  const name = `iad-test-upper-${path.basename(base)}`;
  await docker.createVolume({
    Name: name, Driver: "local",
    DriverOpts: { type: "overlay", device: "overlay", o: `lowerdir=${base}/l,upperdir=${base}/u,workdir=${base}/w` },
  });
  const holder = await docker.createContainer({ Image: "inginious-agent-docker/sample", Cmd: ["sleep", "600"], HostConfig: { Binds: [`${name}:/x`], NetworkMode: "none" } });
  try {
    await holder.start();
    const place = (await docker.getVolume(name).inspect()).Mountpoint;
    assert.ok(readFileSync("/proc/mounts", "utf8").includes(` ${place} overlay `), "the place is an overlay this process sees");
    const s = await startSession(["--tasks", tasks, "--task-layers-dir", place]);
    try {
      const check = await s.agent.waitLog(checkLine);
      assert.equal(check["way"], "job-dir-metacopy", JSON.stringify(check));
      const refused = check["refused"] as string[];
      assert.match(refused[0]!, /^layers-dir-metacopy: the engine could not mount/);
      assert.match(refused[1]!, /^layers-dir: the engine could not mount/);
      assert.deepEqual(readdirSync(place), [], "the agent's folder on the refused place is removed");
    } finally {
      await s.end();
    }
  } finally {
    await holder.remove({ force: true });
    await docker.getVolume(name).remove();
    rmSync(base, { recursive: true, force: true });
  }
});

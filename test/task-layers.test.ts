/**
 * A job's /task as a writable layer over the course's task folder (src/jobs/task-layer.ts), on the
 * real engine: two jobs of one task at once (both edit, then both wait until the test has seen
 * both edits) delete, rewrite, rename and create files under /task; each sees only its own changes, /course/common stays read-only, and the course's folder is
 * byte-identical afterwards. The same job with --copy-task-folders runs on a copy. A SIGKILL of the
 * agent with layered jobs running, then a restart, leaves no container, volume, job directory or
 * layer folder (on /dev/shm by default: src/jobs/layer-place.ts).
 */
import { after, afterEach, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { chmodSync, existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, readlinkSync, writeFileSync } from "node:fs";
import path from "node:path";
import { AgentProcess, tempDir } from "./helpers/agent-process.js";
import { FakeBackend, newJob } from "./helpers/backend.js";
import { dirListing, docker, engineContainers, eventually, requireDocker } from "./helpers/docker.js";
import { agentVolumes, startSession, type Session } from "./helpers/session.js";
import { LABEL_AGENT, agentId } from "../src/docker/labels.js";
import { agentLayersDir, isTmpfs } from "../src/jobs/layer-place.js";

const COURSE = "layers";
const TASK = "edit";

// Each job edits /task under its own token (its container's host name), says so in its student
// folder, waits until the test has seen both jobs there (so both edited before either reports),
// then reports what it sees.
const RUN = `#!/bin/sh
tok=$(cat /etc/hostname)
rm /task/delete-me.txt
echo "$tok" > /task/rewrite.txt
mv /task/dir/old.txt /task/dir/new.txt
echo "$tok" >> /task/dir/new.txt
mkdir /task/made-$tok
echo "$tok" > /task/student/mine.txt
touch /course/common/written 2>/dev/null && common=writable || common=read-only
touch /task/student/edited
while [ ! -e /task/student/go ]; do sleep 0.2; done
out=$(
  printf 'fs|%s\\n' "$(awk '$2=="/task"{print $3}' /proc/mounts)"
  printf 'deleted|%s\\n' "$(test -e /task/delete-me.txt && echo no || echo yes)"
  printf 'rewrite|%s\\n' "$(cat /task/rewrite.txt)"
  printf 'renamed|%s\\n' "$(test -e /task/dir/old.txt && echo no || echo yes)"
  printf 'new|%s\\n' "$(tr '\\n' '+' < /task/dir/new.txt)"
  printf 'made|%s\\n' "$(ls -d /task/made-* | tr '\\n' ' ')"
  printf 'student|%s\\n' "$(cat /task/student/*.txt | tr '\\n' ' ')"
  printf 'common|%s\\n' "$common"
  printf 'tok|%s\\n' "$tok"
)
feedback-result success
feedback-msg -m "$out"
`;

function buildTasks(root: string): string {
  const tasks = path.join(root, "tasks");
  const task = path.join(tasks, COURSE, TASK);
  mkdirSync(path.join(task, "dir"), { recursive: true });
  mkdirSync(path.join(task, "student"));
  mkdirSync(path.join(tasks, COURSE, "$common"));
  writeFileSync(path.join(task, "run"), RUN, { mode: 0o755 });
  writeFileSync(path.join(task, "delete-me.txt"), "course");
  writeFileSync(path.join(task, "rewrite.txt"), "course");
  writeFileSync(path.join(task, "dir", "old.txt"), "course");
  writeFileSync(path.join(task, "student", "given.txt"), "given");
  writeFileSync(path.join(tasks, COURSE, "$common", "lib.sh"), "common");
  chmodSync(root, 0o755);
  return tasks;
}

/** A hash of every path, type, mode and content (or link target) under `dir`. */
function treeHash(dir: string): string {
  const h = createHash("sha256");
  const walk = (d: string): void => {
    for (const name of readdirSync(d).sort()) {
      const p = path.join(d, name);
      const st = lstatSync(p);
      h.update(`${path.relative(dir, p)}\0${st.mode}\0`);
      if (st.isDirectory()) walk(p);
      else if (st.isSymbolicLink()) h.update(readlinkSync(p));
      else h.update(readFileSync(p));
    }
  };
  walk(dir);
  return h.digest("hex");
}

function seen(text: string): Record<string, string> {
  return Object.fromEntries(text.trim().split("\n").map((l) => l.split("|") as [string, string]));
}

/** Runs two jobs of the task at once and checks what each saw; returns the file system type of /task. */
async function twoJobs(s: Session, prefix: string): Promise<string> {
  const ids = [`${prefix}-a`, `${prefix}-b`];
  for (const id of ids) await s.backend.send(newJob(id, { course_id: COURSE, task_id: TASK }));
  // both jobs have made their edits and wait, at the same time: only then may they report
  let students: string[] = [];
  await eventually(() => {
    students = readdirSync(s.tmpdir).filter((n) => n.startsWith("job-")).map((n) => path.join(s.tmpdir, n, "task", "student"));
    assert.equal(students.filter((d) => existsSync(path.join(d, "edited"))).length, 2, "both jobs edited /task and wait");
  }, 60_000);
  for (const d of students) writeFileSync(path.join(d, "go"), "");
  const out = await Promise.all(ids.map(async (id) => {
    const d = await s.backend.done(id, 60_000);
    const [result, text] = d["result"] as [string, string];
    assert.equal(result, "success", text);
    return seen(text);
  }));
  assert.notEqual(out[0]!["tok"], out[1]!["tok"]);
  for (const o of out) {
    const tok = o["tok"]!;
    assert.equal(o["deleted"], "yes");
    assert.equal(o["rewrite"], tok, "each job reads its own rewrite");
    assert.equal(o["renamed"], "yes");
    assert.equal(o["new"], `course${tok}+`, "the renamed file holds the course's bytes and this job's line only");
    assert.equal(o["made"], `/task/made-${tok} `, "each job sees only the directory it made");
    assert.equal(o["student"], `given${tok} `, "the student folder is the job's own");
    assert.equal(o["common"], "read-only");
  }
  assert.equal(out[0]!["fs"], out[1]!["fs"]);
  return out[0]!["fs"]!;
}

for (const mode of ["layered", "copied"] as const) {
  describe(`two jobs of one task at once, ${mode}`, () => {
    let root: ReturnType<typeof tempDir> | null = null;
    let tasks = "";
    let s: Session;
    before(async () => {
      root = tempDir("layers");
      tasks = buildTasks(root.path);
      s = await startSession(["--tasks", tasks, ...(mode === "copied" ? ["--copy-task-folders"] : [])]);
    });
    afterEach(() => s.assertClean());
    after(async () => {
      try {
        await s?.end();
      } finally {
        root?.remove();
      }
    });

    test("each sees only its own changes and the course's folder is unchanged", async () => {
      const hash = treeHash(tasks);
      const check = await s.agent.waitLog((l) => l["check"] === "task-folders");
      assert.equal(check["mode"], mode === "layered" ? "layered" : "copy", JSON.stringify(check));
      const fs = await twoJobs(s, mode);
      if (mode === "layered") assert.equal(fs, "overlay", "/task is the job's overlay volume");
      else assert.notEqual(fs, "overlay", "/task is the job's copy");
      assert.equal(treeHash(tasks), hash, "the course's folder is byte-identical");
    });
  });
}

test("SIGKILL with layered jobs running, then a restart: no container, volume or job directory is left", async () => {
  await requireDocker();
  const root = tempDir("layers-kill");
  const tasks = buildTasks(root.path);
  const tmp = path.join(root.path, "data");
  const before = await engineContainers([tmp]);
  const backend = await new FakeBackend().start();
  const args = [backend.address, "--tmpdir", tmp, "--tasks", tasks, "--concurrency", "4", "--warm", "0"];
  const first = new AgentProcess(args);
  const stopPings = backend.pingEvery(1000);
  let second: AgentProcess | null = null;
  const ours = async (): Promise<string[]> =>
    (await docker.listContainers({ all: true, filters: { label: [`${LABEL_AGENT}=${agentId(tmp)}`] } })).map((c) => c.Id);
  try {
    await backend.waitType("AgentHello");
    for (let i = 0; i < 2; i++) await backend.send(newJob(`layer-kill-${i}`, { course_id: COURSE, task_id: TASK }));
    await eventually(async () => assert.equal((await ours()).length, 2), 30_000);
    assert.equal((await agentVolumes(tmp)).length, 2, "each running job has its volume");
    const layers = agentLayersDir("/dev/shm", agentId(tmp));
    const layerFolders = (): string[] => (existsSync(layers) ? readdirSync(layers).filter((n) => n.startsWith("job-")) : []);
    if (isTmpfs("/dev/shm")) assert.equal(layerFolders().length, 2, "each running job has its layer folder on /dev/shm");
    first.signal("SIGKILL");
    await first.exited;
    const hello = backend.count("AgentHello");
    second = new AgentProcess(args);
    await backend.waitFor(() => backend.count("AgentHello") > hello, 30_000);
    assert.deepEqual(await ours(), []);
    assert.deepEqual(await agentVolumes(tmp), []);
    assert.deepEqual(await dirListing(tmp), []);
    assert.deepEqual(layerFolders(), [], "the layer folders the killed run left are removed");
    assert.ok(second.logs.some((l) => /removed volumes left by an earlier run/.test(l.msg) && l["count"] === 2));
  } finally {
    stopPings();
    first.signal("SIGKILL");
    await second?.stop();
    backend.close();
    try {
      await eventually(async () => assert.deepEqual(await engineContainers([tmp]), before));
    } finally {
      root.remove();
    }
  }
});

/**
 * A layered /task's kernel memory (src/limits/layer-memory.ts), on the real engine: the grading
 * image changes the owner of every entry of /task before the grader runs, and each entry copied
 * up costs about 2 KB of kernel memory charged to the container (bench/layer-kmem.ts), of which
 * the kernel reclaims about half under pressure. A task of 50,000 files under a 50 MB limit grades
 * `success`, as it does with the Python agent's copy: the allowance is added to the container's
 * limit and reserved beside the job's memory. Without it the job ends as `overflow` here (under
 * 100 MB it still passes on this machine, the reclaimable half making room: hence 50 MB).
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { tempDir } from "./helpers/agent-process.js";
import { newJob } from "./helpers/backend.js";
import { startSession, type Session } from "./helpers/session.js";

const COURSE = "manyfiles";
const DIRS = 250;
const PER_DIR = 200; // 50,000 files

// What the grader sees: /task layered, and every file already handed to it by the image's entry.
const RUN = `#!/bin/sh
fs=$(awk '$2=="/task"{print $3}' /proc/mounts)
files=$(find /task/data -type f | wc -l)
foreign=$(find /task/data ! -user "$(id -u)" | wc -l)
feedback-result success
feedback-msg -m "fs=$fs files=$files foreign=$foreign"
`;

let root: ReturnType<typeof tempDir> | null = null;
let s: Session;

before(async () => {
  root = tempDir("manyfiles");
  const task = path.join(root.path, "tasks", COURSE, "many");
  mkdirSync(path.join(task, "student"), { recursive: true });
  writeFileSync(path.join(task, "run"), RUN, { mode: 0o755 });
  for (let d = 0; d < DIRS; d++) {
    const dir = path.join(task, "data", `d${d}`);
    mkdirSync(dir, { recursive: true });
    for (let f = 0; f < PER_DIR; f++) writeFileSync(path.join(dir, `f${f}`), "x");
  }
  mkdirSync(path.join(root.path, "tasks", COURSE, "$common"));
  s = await startSession(["--tasks", path.join(root.path, "tasks"), "--concurrency", "2"]);
});

after(async () => {
  try {
    await s?.end();
  } finally {
    root?.remove();
  }
});

test("a task of 50,000 files under a 50 MB limit, every file's owner changed before the grader runs: success", { timeout: 300_000 }, async () => {
  await s.backend.send(newJob("many-files", { course_id: COURSE, task_id: "many", limits: { time: 120, hard_time: 300, memory: 50 } }));
  const done = await s.backend.done("many-files", 280_000);
  const [result, text] = done["result"] as [string, string];
  assert.equal(result, "success", text);
  // where the engine can layer task folders (this project's test machines can), the job was layered
  const layered = s.agent.logs.some((l) => l["check"] === "task-folders" && l["mode"] === "layered");
  if (layered) assert.match(text, /fs=overlay /, "the task was layered");
  assert.match(text, new RegExp(`files=${DIRS * PER_DIR} foreign=0`));
});

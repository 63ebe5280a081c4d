/** Which task folders can be the lower layer of a job's /task (src/jobs/task-layer.ts), on a real tree; no Docker. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, symlinkSync, writeFileSync } from "node:fs";
import path from "node:path";
import { tempDir } from "./helpers/agent-process.js";
import { layerRefusal, taskVolumeName, taskVolumeSpec } from "../src/jobs/task-layer.js";

function course(): { root: ReturnType<typeof tempDir>; course: string; task: string } {
  const root = tempDir("task-layer");
  const c = path.join(root.path, "course");
  const task = path.join(c, "task");
  mkdirSync(path.join(task, "deep", "er"), { recursive: true });
  mkdirSync(path.join(c, "shared"));
  writeFileSync(path.join(task, "run"), "#!/bin/sh\n");
  writeFileSync(path.join(c, "shared", "f"), "x");
  return { root, course: c, task };
}

test("links the copy keeps as links do not stop the layer", () => {
  const { root, course: c, task } = course();
  try {
    symlinkSync("run", path.join(task, "rel"));
    symlinkSync("/course/common/lib.sh", path.join(task, "deep", "dangling"));
    symlinkSync("/etc", path.join(task, "deep", "er", "host-dir"));
    symlinkSync("../shared/f", path.join(task, "file-in-course"));
    symlinkSync(".", path.join(task, "self"));
    assert.equal(layerRefusal(task, c, path.join(root.path, "job-1")), null);
  } finally {
    root.remove();
  }
});

test("a link to a directory inside the course, however deep, means the copy", () => {
  const { root, course: c, task } = course();
  try {
    symlinkSync("../../../shared", path.join(task, "deep", "er", "shared"));
    assert.match(layerRefusal(task, c, path.join(root.path, "job-1")) ?? "", /^deep\/er\/shared is a link to a directory inside the course/);
  } finally {
    root.remove();
  }
});

test("a path the mount options cannot carry means the copy", () => {
  const { root, course: c, task } = course();
  try {
    assert.match(layerRefusal(task, c, path.join(root.path, "job,1")) ?? "", /comma, colon/);
  } finally {
    root.remove();
  }
});

test("the volume: one name per job directory, the overlay's options, the job's labels", () => {
  assert.equal(taskVolumeName("/data/job-abc-123"), "inginious-task-job-abc-123");
  const spec = taskVolumeSpec("v", "/c/t", "/j/upper", "/j/work", { a: "b" });
  assert.deepEqual(spec, {
    Name: "v", Driver: "local", Labels: { a: "b" },
    DriverOpts: { type: "overlay", device: "overlay", o: "lowerdir=/c/t,upperdir=/j/upper,workdir=/j/work" },
  });
});

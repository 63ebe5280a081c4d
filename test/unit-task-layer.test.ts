/** Which task folders can be the lower layer of a job's /task (src/jobs/task-layer.ts), on a real tree; no Docker. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, symlinkSync, writeFileSync } from "node:fs";
import path from "node:path";
import { tempDir } from "./helpers/agent-process.js";
import { layerRefusal, taskVolumeName, taskVolumeSpec } from "../src/jobs/task-layer.js";
import { LAYER_BYTES_PER_ENTRY, layerAllowanceMb, newTally } from "../src/limits/layer-memory.js";

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

test("the walk counts the task's entries for its layer's allowance, and its files' pages only when data is copied up", () => {
  const { root, course: c, task } = course();
  try {
    writeFileSync(path.join(task, "deep", "big"), "x".repeat(5000)); // two pages
    symlinkSync("run", path.join(task, "rel"));
    // task, run, deep, deep/er, deep/big, rel
    const meta = newTally(false);
    assert.equal(layerRefusal(task, c, "/tmp/job", meta), null);
    assert.deepEqual({ entries: meta.entries, dataBytes: meta.dataBytes }, { entries: 6, dataBytes: 0 });
    const data = newTally(true);
    layerRefusal(task, c, "/tmp/job", data);
    assert.deepEqual({ entries: data.entries, dataBytes: data.dataBytes }, { entries: 6, dataBytes: 4096 + 8192 });
    assert.equal(layerAllowanceMb(meta), 0, "a small task's layer (under 1 MB) changes nothing");
    assert.equal(layerAllowanceMb({ entries: 50_001, withData: false, dataBytes: 0 }), Math.floor((50_001 * LAYER_BYTES_PER_ENTRY) / 1024 / 1024));
    assert.equal(layerAllowanceMb({ entries: 50_001, withData: false, dataBytes: 0 }), 122);
    assert.equal(layerAllowanceMb({ entries: 410, withData: true, dataBytes: 1024 * 1024 }), 2, "pages copied up count too");
  } finally {
    root.remove();
  }
});

import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { promises as fs } from "node:fs";
import os from "node:os";
import path from "node:path";
import { diskUsage, watchDisk } from "../src/limits/disk-usage.js";

describe("disk usage and its watch", () => {
  let root: string;
  before(async () => {
    root = await fs.mkdtemp(path.join(os.tmpdir(), "iad-disk-"));
    await fs.writeFile(path.join(root, "data"), Buffer.alloc(64 * 1024, 1));
  });
  after(() => fs.rm(root, { recursive: true, force: true }));

  test("counts the blocks written under its roots; a missing root counts nothing", async () => {
    const bytes = await diskUsage([root, path.join(root, "missing")]);
    assert.ok(bytes >= 64 * 1024, `${bytes} bytes`);
  });

  test("calls onExceeded once, with the usage, when the roots pass the limit", async () => {
    const seen: number[] = [];
    const watch = watchDisk(() => [root], 1024, (bytes) => seen.push(bytes), 5);
    try {
      while (!watch.exceeded) await new Promise((r) => setTimeout(r, 5));
      assert.equal(seen.length, 1);
      assert.ok(seen[0]! > 1024); // the walk stops once past the limit
      assert.equal(watch.peakBytes, seen[0]);
    } finally {
      watch.stop();
    }
  });

  test("a poll that throws is reported to onError and the next poll runs", async () => {
    let calls = 0;
    const errors: string[] = [];
    const roots = (): string[] => {
      calls++;
      if (calls === 1) throw new Error("no roots yet");
      return [root];
    };
    const watch = watchDisk(roots, 1024, () => {}, 5, (err) => errors.push(err.message));
    try {
      while (!watch.exceeded) await new Promise((r) => setTimeout(r, 5));
      assert.deepEqual(errors, ["no roots yet"]);
      assert.ok(calls >= 2);
    } finally {
      watch.stop();
    }
  });
});

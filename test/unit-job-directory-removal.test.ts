/**
 * A job directory is never made again by a pool thread that fills it after the main thread
 * removed it (its job ended meanwhile), and its marker goes last when it is removed: a removal that
 * fails half-way leaves a directory the reaper still knows as this agent's (docker/reaper.ts).
 */
import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import {
  JOB_DIR_MARKER, fillJobDirectory, prepareJobDirectory, removeJobDirectory, removeJobDirectorySync,
} from "../src/jobs/job-directory.js";

describe("job directories and their removal", () => {
  let root: string;
  before(() => {
    root = mkdtempSync(path.join(os.tmpdir(), "iad-jobdir-"));
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  test("filling a job directory that was removed fails, and does not make it again", () => {
    const job = path.join(root, "job-gone");
    const p = prepareJobDirectory(job, "agent-a", null, null);
    rmSync(job, { recursive: true });
    assert.throws(() => fillJobDirectory(p, null, null), (err: NodeJS.ErrnoException) => err.code === "ENOENT");
    assert.equal(existsSync(job), false, "the job directory is not made again without its marker");
  });

  // A folder that cannot be removed: an empty tmpfs mounted inside (rmdir says EBUSY). Needs root, as the suite does.
  for (const [name, remove] of [["removeJobDirectory", removeJobDirectory], ["removeJobDirectorySync", removeJobDirectorySync]] as const) {
    test(`${name}: a removal that fails half-way keeps the marker`, async () => {
      const job = path.join(root, `job-busy-${name}`);
      prepareJobDirectory(job, "agent-a", null, null);
      const busy = path.join(job, "task", "busy");
      mkdirSync(busy);
      execFileSync("mount", ["-t", "tmpfs", "-o", "size=1m", "iad-test", busy]);
      try {
        await assert.rejects(async () => remove(job));
        assert.equal(existsSync(path.join(job, JOB_DIR_MARKER)), true, "the marker is still there");
      } finally {
        execFileSync("umount", [busy]);
      }
      await remove(job);
      assert.equal(existsSync(job), false);
    });
  }
});

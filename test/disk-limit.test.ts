/**
 * `limits.disk` on the real engine, on and off: a job that writes 40 MB under a 10 MB limit ends as
 * overflow by default, and succeeds with --disable-disk-limit (INGInious's own agent's behaviour).
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { tempDir } from "./helpers/agent-process.js";
import { newJob } from "./helpers/backend.js";
import { startSession } from "./helpers/session.js";

// Writes 40 MB, then leaves the agent a few seconds to notice before it reports success.
const RUN = `#!/bin/sh
dd if=/dev/zero of=/task/big bs=1M count=40 2>/dev/null
sleep 5
feedback-result success
feedback-msg -m "wrote 40 MB"
`;

describe("the disk limit, on and off", () => {
  let root: ReturnType<typeof tempDir> | null = null;
  let tasks: string;
  before(() => {
    root = tempDir("disk-limit");
    tasks = path.join(root.path, "tasks");
    mkdirSync(path.join(tasks, "c", "write"), { recursive: true });
    writeFileSync(path.join(tasks, "c", "write", "run"), RUN, { mode: 0o755 });
    chmodSync(root.path, 0o755);
  });
  after(() => root?.remove());

  for (const [name, args, expected] of [
    ["by default, over its limit the job is stopped", [], "overflow"],
    ["with --disable-disk-limit, the limit is ignored", ["--disable-disk-limit"], "success"],
  ] as Array<[string, string[], string]>) {
    test(name, async () => {
      const s = await startSession(["--tasks", tasks, ...args]);
      try {
        await s.backend.send(newJob("disk-1", { course_id: "c", task_id: "write", limits: { time: 30, hard_time: 60, disk: 10 } }));
        const d = await s.backend.done("disk-1", 90_000);
        const [result, text] = d["result"] as [string, string];
        assert.equal(result, expected, text);
        await s.assertClean();
      } finally {
        await s.end();
      }
    });
  }
});

/** The bench keeps working: a tiny run produces every figure (their values are not asserted). */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync, existsSync } from "node:fs";
import path from "node:path";
import { REPO, tempDir } from "./helpers/agent-process.js";
import { requireDocker } from "./helpers/docker.js";

test("npm run bench -- --quick writes its table, JSON and chart", async () => {
  await requireDocker(["inginious-agent-docker/sample:latest", "inginious-agent-docker-test/test-raw:latest"]);
  const out = tempDir("bench");
  try {
    const r = spawnSync(process.execPath, [path.join(REPO, "dist/bench/run.js"), "--quick", "--out", out.path], {
      encoding: "utf8", timeout: 240_000,
    });
    assert.equal(r.status, 0, `bench exit status; stderr: ${r.stderr}\n${r.stdout.slice(-2000)}`);
    assert.match(r.stdout, /Targets/);
    const json = JSON.parse(readFileSync(path.join(out.path, "latest.json"), "utf8")) as Record<string, unknown>;
    const targets = json["targets"] as Array<{ id: string; value: unknown }>;
    assert.deepEqual(targets.map((t) => t.id).sort(), ["cpu", "latency", "loop", "pong", "rss", "throughput"]);
    for (const t of targets) assert.equal(typeof t.value, "number", `figure ${t.id}`);
    assert.ok(Array.isArray(json["levels"]) && (json["levels"] as unknown[]).length > 0);
    assert.ok(existsSync(path.join(out.path, "latest.svg")));
    assert.match(readFileSync(path.join(out.path, "latest.svg"), "utf8"), /<svg/);
  } finally {
    out.remove();
  }
});

/** The bench keeps working: a tiny run produces every figure (their values are not asserted). */
import { test } from "node:test";
import assert from "node:assert/strict";
import { rssSlopeKbPerJob } from "../bench/stats.js";
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
    const load = json["load"] as { wireFrameMs: { n: number; p50: unknown } };
    assert.equal(load.wireFrameMs.n, 5, "the wire's own time for a big frame, beside the Pong figures");
    assert.equal(typeof load.wireFrameMs.p50, "number");
    assert.equal(typeof (json["memory"] as { slopeKbPerJob: unknown }).slopeKbPerJob, "number", "RSS slope over the leak check");
    const calls = json["engineCalls"] as { agent: Record<string, number>; floor: Record<string, number> };
    for (const who of ["agent", "floor"] as const) {
      assert.ok((calls[who]["POST /containers/create"] ?? 0) > 0, `${who}: creates counted (${JSON.stringify(calls[who])})`);
      assert.ok((calls[who]["DELETE /containers/{id}"] ?? 0) > 0, `${who}: removals counted`);
    }
    const cpu = json["cpu"] as { byThread: { poolThreads: number; mainMsPerJob: unknown }; jobFolder: { prepareCpuMs: number } };
    assert.ok(cpu.byThread.poolThreads > 0, "pool threads told apart");
    assert.equal(typeof cpu.byThread.mainMsPerJob, "number");
    assert.ok(cpu.jobFolder.prepareCpuMs > 0, "a job folder's cost");
    assert.ok(existsSync(path.join(out.path, "latest.svg")));
    assert.match(readFileSync(path.join(out.path, "latest.svg"), "utf8"), /<svg/);
  } finally {
    out.remove();
  }
});

test("the RSS slope reads growth that goes on, not the first readings", () => {
  const MB = 1048576;
  // a high first reading (garbage not yet collected), then 20 KB a job
  const curve = [{ jobs: 0, rssBytes: 180 * MB }, ...Array.from({ length: 10 }, (_, i) => ({ jobs: (i + 1) * 100, rssBytes: 150 * MB + (i + 1) * 100 * 20 * 1024 }))];
  assert.equal(rssSlopeKbPerJob(curve), 20);
  assert.equal(rssSlopeKbPerJob(curve.map((p) => ({ ...p, rssBytes: 150 * MB }))), 0);
  assert.equal(rssSlopeKbPerJob(curve.slice(0, 2)), null);
});

test("bench/hostile.js answers --help, and a bad flag with status 2, without starting anything", () => {
  const hostile = path.join(REPO, "dist/bench/hostile.js");
  const help = spawnSync(process.execPath, [hostile, "--help"], { encoding: "utf8", timeout: 30_000 });
  assert.equal(help.status, 0, help.stderr);
  assert.match(help.stdout, /--amplify N/);
  const bad = spawnSync(process.execPath, [hostile, "--jobs", "0"], { encoding: "utf8", timeout: 30_000 });
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /--jobs must be an integer >= 1/);
});

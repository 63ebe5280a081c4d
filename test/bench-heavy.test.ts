/**
 * The heavy-task bench keeps working against the real engine: `heavy.js --quick` grades its task
 * through a copying and a layering agent, every job of both succeeds, the layered agent's jobs see
 * /task as an overlay and the copying agent's do not, the JSON holds every figure, and nothing is
 * left in its temp folder (TMPDIR). A layered agent made to copy (--copy-task-folders given to both)
 * ends the run with status 1 before any job, saying so. Figures' values are not asserted.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync, type SpawnSyncReturns } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { REPO, tempDir } from "./helpers/agent-process.js";
import { requireDocker } from "./helpers/docker.js";

const HEAVY = path.join(REPO, "dist/bench/heavy.js");

interface Mode {
  jobs: number;
  warmJobs: number;
  mounts: Record<string, number>;
  prepareMs: { n: number; p50: unknown; p90: unknown };
  latencyMs: { p50: unknown };
  jobsPerS: unknown;
  phasesMs: Record<string, unknown>;
}

interface Check {
  mode: string;
  gauge: number;
}

function heavy(args: string[], tmp: string): SpawnSyncReturns<string> {
  return spawnSync(process.execPath, [HEAVY, ...args], { encoding: "utf8", timeout: 280_000, env: { ...process.env, TMPDIR: tmp } });
}

test("heavy.js --quick grades the heavy task with the copy and layered, and writes every figure", async () => {
  await requireDocker();
  const out = tempDir("heavy-out");
  const tmp = tempDir("heavy-tmp");
  try {
    const r = heavy(["--quick", "--out", out.path], tmp.path);
    assert.equal(r.status, 0, `heavy.js exit status; stderr: ${r.stderr.slice(-3000)}\n${r.stdout}`);
    assert.match(r.stdout, /layered agent: layered \(task_folders_layered 1\)/);
    assert.match(r.stdout, /throughput layered \/ copy: [\d.]+/);
    const json = JSON.parse(readFileSync(path.join(out.path, "heavy-latest.json"), "utf8")) as Record<string, unknown>;
    const task = json["task"] as { files: number; bytes: number };
    assert.deepEqual([task.files, task.bytes], [2000, 10 * 1024 * 1024]);
    const layering = json["layering"] as { copy: Check; layered: Check; layeredJobs: number; wrongMounts: string[] };
    assert.deepEqual([layering.copy.mode, layering.copy.gauge], ["copy", 0]);
    assert.deepEqual([layering.layered.mode, layering.layered.gauge], ["layered", 1]);
    assert.equal(layering.layeredJobs, 4);
    assert.deepEqual(layering.wrongMounts, []);
    for (const name of ["copy", "layered"]) {
      const m = json[name] as Mode;
      assert.equal(m.jobs, 4, `${name}: every job graded (each checked: success, all files seen)`);
      assert.equal(m.prepareMs.n, 4, `${name}: the agent's prepare phase of each job`);
      for (const [k, v] of Object.entries({ p50: m.prepareMs.p50, p90: m.prepareMs.p90, latency: m.latencyMs.p50, jobsPerS: m.jobsPerS, run: m.phasesMs["run"] })) {
        assert.equal(typeof v, "number", `${name}: ${k}`);
      }
    }
    assert.deepEqual((json["layered"] as Mode).mounts, { overlay: 4 });
    assert.equal((json["copy"] as Mode).mounts["overlay"], undefined);
    assert.equal(typeof json["throughputRatio"], "number");
    assert.deepEqual((json["targets"] as Array<{ id: string }>).map((t) => t.id), ["preparationP50Layered", "throughputRatio"]);
    assert.deepEqual(readdirSync(tmp.path), [], "the task folder and the agents' folders are gone");
  } finally {
    out.remove();
    tmp.remove();
  }
});

test("heavy.js fails loudly when the layered agent copies", async () => {
  await requireDocker();
  const out = tempDir("heavy-out");
  const tmp = tempDir("heavy-tmp");
  try {
    const r = heavy(["--quick", "--files", "10", "--mb", "1", "--out", out.path, "--agent-args=--copy-task-folders"], tmp.path);
    assert.equal(r.status, 1, `heavy.js exit status; stderr: ${r.stderr.slice(-3000)}`);
    assert.match(r.stderr, /the layered agent's task folders are not layered: copy/);
    assert.deepEqual(readdirSync(out.path), [], "no figures written for a run that did not layer");
    assert.deepEqual(readdirSync(tmp.path), []);
  } finally {
    out.remove();
    tmp.remove();
  }
});

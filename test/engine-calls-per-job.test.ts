/**
 * What a job asks the engine, seen through a proxy in front of it: a job in a warm container
 * with a disk limit inspects its container once (the adoption's inspect also gives the writable
 * layer the disk watch needs), and a job over its CPU limit is stopped from its cgroup's figures,
 * with no stats stream asked of the engine (where the cgroup can be read, as here). On the cold
 * path, once a pool thread has found an inspect's writable layer in the engine's layer store, it
 * reads the next containers' there: a job writing past its disk limit in its container's own
 * filesystem is stopped without an inspect while it runs.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { LABEL_AGENT, LABEL_JOB, LABEL_ROLE, agentId } from "../src/docker/labels.js";
import { WARM_PROBATION_SETTLE_MS } from "../src/jobs/warm-pool.js";
import { cgroupCpuNs } from "../src/limits/cgroup-cpu.js";
import { newJob } from "./helpers/backend.js";
import { docker } from "./helpers/docker.js";
import { EngineProxy } from "./helpers/engine-proxy.js";
import { startSession, type Session } from "./helpers/session.js";

/** The engine's inspects of one container among the requests seen. */
const inspectsOf = (seen: string[], id: string): string[] =>
  seen.filter((r) => r.startsWith("GET ") && r.split("?")[0]!.endsWith(`/containers/${id}/json`));

/** The id of the container created for a job, from the engine's own list. */
async function containerOf(jobId: string): Promise<string> {
  const [c] = await docker.listContainers({ all: true, filters: { label: [`${LABEL_JOB}=${jobId}`] } });
  if (c === undefined) throw new Error(`no container for ${jobId}`);
  return c.Id;
}

let proxy: EngineProxy;
let s: Session;
let sEnded = false;
const requests: string[] = [];

before(async () => {
  proxy = await new EngineProxy().start();
  proxy.rule = (method, url) => {
    requests.push(`${method} ${url}`);
    return "pass";
  };
  s = await startSession([], { warm: 1, env: { DOCKER_HOST: proxy.host } });
  // warm containers are made for the environments jobs have used
  await s.backend.send(newJob("prime"));
  await s.backend.done("prime", 60_000);
});

after(async () => {
  if (!sEnded) await s?.end();
  await proxy?.close();
});

/** A running warm container of the agent, once one is ready and past its probation. */
async function readyWarm(): Promise<string> {
  const filters = { label: [`${LABEL_AGENT}=${agentId(s.tmpdir)}`, `${LABEL_ROLE}=warm`], status: ["running"] };
  for (const deadline = Date.now() + 30_000; Date.now() < deadline;) {
    const [c] = await docker.listContainers({ all: true, filters });
    if (c !== undefined) {
      const started = Date.parse((await docker.getContainer(c.Id).inspect()).State.StartedAt);
      const settled = started + WARM_PROBATION_SETTLE_MS + 1500;
      if (settled > Date.now()) await new Promise((r) => setTimeout(r, settled - Date.now()));
      return c.Id;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error("no warm container became ready");
}

const result = (d: Record<string, unknown>): string => (d["result"] as string[])[0]!;

test("a job in a warm container with a disk limit inspects its container once", { timeout: 120_000 }, async () => {
  const warm = await readyWarm();
  const from = requests.length;
  await s.backend.send(newJob("disk-warm", { limits: { disk: 1024 } }));
  assert.equal(result(await s.backend.done("disk-warm", 60_000)), "success");
  assert.ok(requests.some((r) => r.includes(`/containers/${warm}/attach`)), "the job took the warm container");
  const inspects = inspectsOf(requests.slice(from), warm);
  assert.equal(inspects.length, 1, `inspects of the job's container: ${inspects.join(", ")}`);
});

test("a job over its CPU limit is stopped from its cgroup, without the engine's stats", { timeout: 120_000 }, async (t) => {
  const warm = await readyWarm();
  const version = (await docker.info() as { CgroupVersion?: string }).CgroupVersion === "2" ? 2 : 1;
  if (cgroupCpuNs(warm, version) === null) return t.skip("the containers' cgroups cannot be read here");
  const from = requests.length;
  await s.backend.send(newJob("cpu-cgroup", { task_id: "cpu", limits: { time: 2, hard_time: 3600 } }));
  const d = await s.backend.done("cpu-cgroup", 90_000);
  assert.equal(result(d), "timeout");
  const why = await s.agent.waitLog((l) => l["job"] === "cpu-cgroup" && /^killing container: /.test(l.msg), 5000);
  assert.match(why.msg, /^killing container: CPU time [\d.]+ s over its limit of 2 s$/);
  const stats = requests.slice(from).filter((r) => /\/containers\/[0-9a-f]+\/stats/.test(r));
  assert.deepEqual(stats, [], "stats asked of the engine");
});

test("cold jobs: a pool thread finds the writable layer in the layer store after its first inspect", { timeout: 180_000 }, async () => {
  const seen: string[] = [];
  const own = await new EngineProxy().start();
  own.rule = (method, url) => {
    seen.push(`${method} ${url}`);
    return "pass";
  };
  // The warm session ends first: its warm containers come and go, and the cold session's own
  // check for containers left behind counts every container of the engine.
  sEnded = true;
  await s.end();
  const cold = await startSession(["--pool-threads", "1"], { env: { DOCKER_HOST: own.host } });
  try {
    await cold.backend.send(newJob("cold-1", { limits: { disk: 1024 } }));
    assert.equal(result(await cold.backend.done("cold-1", 60_000)), "success");
    // Written in the container's own filesystem: only its writable layer sees it.
    await cold.backend.send(newJob("cold-2", {
      task_id: "disk", inputdata: { where: "/tmp/fill" }, limits: { time: 60, hard_time: 120, memory: 200, disk: 50 },
    }));
    const id = await eventuallyId("cold-2");
    assert.equal(result(await cold.backend.done("cold-2", 90_000)), "overflow");
    // the inspect after its exit (was it OOM-killed?) is not the disk watch's
    const killed = seen.findIndex((r) => r.startsWith("POST ") && r.includes(`/containers/${id}/kill`));
    assert.ok(killed >= 0, "the container was killed");
    assert.deepEqual(inspectsOf(seen.slice(0, killed), id), [], "inspects while it ran");
  } finally {
    await cold.end();
    await own.close();
  }
});

/** The container of a job, once the engine lists it. */
async function eventuallyId(jobId: string): Promise<string> {
  for (const deadline = Date.now() + 30_000; ; await new Promise((r) => setTimeout(r, 100))) {
    try {
      return await containerOf(jobId);
    } catch (err) {
      if (Date.now() > deadline) throw err;
    }
  }
}

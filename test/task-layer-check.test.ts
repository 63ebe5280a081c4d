/**
 * The start-up layer check (src/docker/layer-check.ts) on the real engine: two agents starting at
 * once on one engine each check through a folder and a volume of their own; an engine whose lower
 * layer is not the folder where the agent wrote its marker (the folder replaced between the
 * marker's write and the mount; or, for an agent in a mount namespace of its own, another folder at
 * the same path for the engine) makes the agent copy task folders, and the start-up line says why.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, existsSync, mkdirSync, readdirSync, realpathSync, renameSync, writeFileSync } from "node:fs";
import path from "node:path";
import type Docker from "dockerode";
import { pino } from "pino";
import { AgentProcess, tempDir, type LogLine } from "./helpers/agent-process.js";
import { FakeBackend, newJob } from "./helpers/backend.js";
import { docker, engineContainers, eventually, requireDocker } from "./helpers/docker.js";
import { EngineProxy } from "./helpers/engine-proxy.js";
import { LABEL_AGENT, agentId } from "../src/docker/labels.js";
import { checkLowerName, chooseTaskFolders } from "../src/docker/layer-check.js";
import { agentLayersDir, isTmpfs, makeAgentLayersDir } from "../src/jobs/layer-place.js";

const IMAGE = "inginious-agent-docker/sample";
const checkLine = (l: LogLine): boolean => l["check"] === "task-folders";

/** A tasks folder with one task whose grader reports the content of /task/view.txt. */
function tasksFolder(root: string, name: string, view: string): string {
  const tasks = path.join(root, name);
  mkdirSync(path.join(tasks, "course", "view", "student"), { recursive: true });
  writeFileSync(path.join(tasks, "course", "view", "run"), '#!/bin/sh\nfeedback-result success\nfeedback-msg -m "$(cat /task/view.txt)"\n', { mode: 0o755 });
  writeFileSync(path.join(tasks, "course", "view", "view.txt"), view);
  return tasks;
}

async function agentVolumeNames(agent: string): Promise<string[]> {
  return ((await docker.listVolumes({ filters: { label: [`${LABEL_AGENT}=${agent}`] } })).Volumes ?? []).map((v) => v.Name);
}

test("two agents starting at once on one engine each check through their own folder and volume", { skip: !isTmpfs("/dev/shm") }, async () => {
  await requireDocker([IMAGE]);
  const root = tempDir("layer-check-two");
  chmodSync(root.path, 0o755);
  const tasks = tasksFolder(root.path, "tasks", "course's");
  const proxy = await new EngineProxy().start();
  const created: Array<{ Name: string; Labels: Record<string, string>; DriverOpts: { o: string } }> = [];
  proxy.tap = (method, url, body) => {
    if (method === "POST" && url.includes("/volumes/create")) created.push(JSON.parse(body.toString()) as (typeof created)[number]);
  };
  const tmps = ["a", "b"].map((n) => path.join(root.path, `data-${n}`));
  const before = await engineContainers(tmps);
  const backends = await Promise.all(tmps.map(() => new FakeBackend().start()));
  const agents = tmps.map((tmp, i) => new AgentProcess([backends[i]!.address, "--tmpdir", tmp, "--tasks", tasks, "--warm", "0"], { DOCKER_HOST: proxy.host }));
  try {
    await Promise.all(backends.map((b) => b.waitType("AgentHello", 60_000)));
    for (const [i, tmp] of tmps.entries()) {
      const id = agentId(tmp);
      const check = await agents[i]!.waitLog(checkLine);
      assert.equal(check["way"], "layers-dir-metacopy", JSON.stringify(check));
      const mine = created.filter((v) => v.Labels[LABEL_AGENT] === id);
      assert.ok(mine.length >= 1, `agent ${i} asked for its check's volume`);
      for (const v of mine) {
        assert.equal(v.Name, `inginious-task-job-layer-check-${id}`, "the volume is named by the agent id");
        assert.match(v.DriverOpts.o, new RegExp(`^lowerdir=${realpathSync(tasks)}/${checkLowerName(id)},`), "its lower layer is the agent's marker folder");
        assert.match(v.DriverOpts.o, new RegExp(`upperdir=${agentLayersDir("/dev/shm", id)}/job-layer-check-${id}/upper,`), "its layer is in the agent's own check folder");
      }
    }
    assert.notEqual(created.find((v) => v.Labels[LABEL_AGENT] === agentId(tmps[0]!))!.Name, created.find((v) => v.Labels[LABEL_AGENT] === agentId(tmps[1]!))!.Name);
    assert.deepEqual(readdirSync(tasks), ["course"], "the check's marker folders are gone from the courses' folder");
  } finally {
    await Promise.all(agents.map((a) => a.stop()));
    for (const b of backends) b.close();
    await proxy.close();
    try {
      await eventually(async () => assert.deepEqual(await engineContainers(tmps), before, "containers left behind"));
      for (const tmp of tmps) assert.deepEqual(await agentVolumeNames(agentId(tmp)), [], "volumes left behind");
      for (const tmp of tmps) assert.ok(!existsSync(agentLayersDir("/dev/shm", agentId(tmp))), "layer folders left behind");
    } finally {
      root.remove();
    }
  }
});

/** The engine, with the check's lower folder replaced by another (another marker) just before each volume is made. */
function swappingEngine(): Docker {
  return new Proxy(docker, {
    get(target, prop, receiver) {
      if (prop === "createVolume") {
        return async (opts: { DriverOpts: { o: string } }) => {
          const lower = /lowerdir=([^,]+)/.exec(opts.DriverOpts.o)![1]!;
          renameSync(lower, `${lower}-${readdirSync(path.dirname(lower)).length}-moved`);
          mkdirSync(lower, { mode: 0o700 });
          writeFileSync(path.join(lower, "marker"), "not the agent's marker");
          return target.createVolume(opts);
        };
      }
      const v = Reflect.get(target, prop, receiver) as unknown;
      return typeof v === "function" ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}

test("the courses' folder replaced between the marker's write and the mount: every layered way is refused, task folders are copied", async () => {
  await requireDocker([IMAGE]);
  const root = tempDir("layer-check-swap");
  const tasks = tasksFolder(root.path, "tasks", "course's");
  const tmpdir = path.join(root.path, "data");
  mkdirSync(tmpdir);
  const agent = `test-${path.basename(root.path)}`;
  const shm = path.join(root.path, "shm");
  mkdirSync(shm);
  const log = pino({ level: "silent" });
  try {
    const layers = { dir: makeAgentLayersDir(shm, agent) };
    const chosen = await chooseTaskFolders(swappingEngine(), { tmpdir, coursesDir: tasks, layers, image: IMAGE, agent }, log);
    assert.equal(chosen.mode, "copy", JSON.stringify(chosen));
    assert.deepEqual(chosen.refused.map((r) => r.split(":")[0]), ["layers-dir-metacopy", "layers-dir", "job-dir-metacopy", "job-dir", "the engine cannot layer task folders here"]);
    for (const r of chosen.refused.slice(0, 4)) {
      assert.match(r, /the marker read through the engine's overlay is not the one the agent wrote in .*: the engine sees another folder at that path/);
    }
    assert.deepEqual(await agentVolumeNames(agent), [], "no volume left");
    assert.deepEqual(readdirSync(layers.dir), [], "no check folder left");
    assert.deepEqual(readdirSync(tmpdir), [], "no check folder left in the job directories' place");
    assert.ok(!existsSync(path.join(tasks, checkLowerName(agent))), "the marker folder is removed");
  } finally {
    root.remove();
  }
});

test("an agent whose tasks folder is another folder for the engine (a mount of its own): task folders are copied from the agent's, and the start-up line says why", async () => {
  await requireDocker([IMAGE]);
  const root = tempDir("layer-check-view");
  chmodSync(root.path, 0o755);
  const tasks = tasksFolder(root.path, "tasks", "the engine's view"); // what the engine sees at that path
  const agentView = tasksFolder(root.path, "agent-view", "the agent's view"); // mounted over it for the agent alone
  const tmp = path.join(root.path, "data");
  // as a stale copy of the courses could hold: a marker folder the agent cannot see from its mount
  mkdirSync(path.join(tasks, checkLowerName(agentId(tmp))));
  writeFileSync(path.join(tasks, checkLowerName(agentId(tmp)), "marker"), "an old marker");
  const before = await engineContainers([tmp]);
  const backend = await new FakeBackend().start();
  const ownMount = ["unshare", "--mount", "--propagation", "private", "sh", "-c", 'mount --bind "$1" "$2" && shift 2 && exec "$@"', "sh", agentView, tasks];
  const agent = new AgentProcess([backend.address, "--tmpdir", tmp, "--tasks", tasks, "--warm", "0"], {}, ownMount);
  const stopPings = backend.pingEvery(1000);
  try {
    await backend.waitType("AgentHello", 60_000);
    const check = await agent.waitLog(checkLine);
    assert.equal(check["mode"], "copy", JSON.stringify(check));
    const refused = check["refused"] as string[];
    assert.equal(refused.length, isTmpfs("/dev/shm") ? 5 : 3, JSON.stringify(refused));
    for (const r of refused.slice(0, -1)) assert.match(r, /the marker read through the engine's overlay is not the one the agent wrote/);
    await backend.send(newJob("view-1", { course_id: "course", task_id: "view" }));
    const [result, text] = (await backend.done("view-1", 60_000))["result"] as [string, string];
    assert.equal(result, "success", text);
    assert.equal(text.trim(), "the agent's view", "the job's /task is the agent's task folder");
  } finally {
    stopPings();
    await agent.stop();
    backend.close();
    try {
      await eventually(async () => assert.deepEqual(await engineContainers([tmp]), before, "containers left behind"));
      assert.deepEqual(await agentVolumeNames(agentId(tmp)), [], "volumes left behind");
      assert.deepEqual(readdirSync(agentView), ["course"], "the agent's marker folder is removed");
    } finally {
      root.remove();
    }
  }
});

test("a tasks folder the agent cannot write in (read-only for it): task folders are copied, and the start-up line says why", async () => {
  await requireDocker([IMAGE]);
  const root = tempDir("layer-check-ro");
  chmodSync(root.path, 0o755);
  const tasks = tasksFolder(root.path, "tasks", "the course's");
  const tmp = path.join(root.path, "data");
  const backend = await new FakeBackend().start();
  const readOnly = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
    'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && shift && exec "$@"', "sh", tasks];
  const agent = new AgentProcess([backend.address, "--tmpdir", tmp, "--tasks", tasks, "--warm", "0"], {}, readOnly);
  try {
    await backend.waitType("AgentHello", 60_000);
    const check = await agent.waitLog(checkLine);
    assert.equal(check["mode"], "copy", JSON.stringify(check));
    assert.deepEqual(check["refused"], [
      `cannot write the check's marker in the courses' folder ${tasks}, which proves the engine sees that folder: ` +
        `EROFS: read-only file system, mkdir '${realpathSync(tasks)}/${checkLowerName(agentId(tmp))}'`,
    ]);
    assert.deepEqual(await agentVolumeNames(agentId(tmp)), [], "the engine was asked for no volume");
  } finally {
    await agent.stop();
    backend.close();
    root.remove();
  }
});

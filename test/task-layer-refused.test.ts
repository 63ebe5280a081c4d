/**
 * A job whose layer the engine refuses (workers/task-folder.ts) is copied instead, on the real
 * engine and in the worker's own code: the engine cannot mount the volume when the grading
 * container starts (its work directory vanished), or refuses to create it. The job's grading
 * container runs on a copy, the log says why, and the cleanup leaves no volume, container, job
 * directory or layer folder.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import type * as Comlink from "comlink";
import type Docker from "dockerode";
import { pino } from "pino";
import { tempDir } from "./helpers/agent-process.js";
import { docker, requireDocker } from "./helpers/docker.js";
import { LABEL_AGENT, LABEL_JOB, containerLabels } from "../src/docker/labels.js";
import type { JobTask, MainApi } from "../src/jobs/job-task.js";
import { cleanup } from "../workers/cleanup.js";
import { createAndStart } from "../workers/grading-container.js";
import { createJobContext } from "../workers/job-context.js";

const IMAGE = "inginious-agent-docker/sample";

type Fault = "none" | "mount" | "create";

/** The engine, with one fault: the layer's work directory removed before the first container's creation, or a refused volume. */
function faulty(fault: Fault): Docker {
  let workdir = "";
  let once = true;
  return new Proxy(docker, {
    get(target, prop, receiver) {
      if (prop === "createVolume") {
        return async (opts: { DriverOpts: { o: string } }) => {
          workdir = /workdir=([^,]+)/.exec(opts.DriverOpts.o)![1]!;
          if (fault === "create") throw new Error("(HTTP code 500) the engine refused the volume");
          return target.createVolume(opts);
        };
      }
      if (prop === "createContainer") {
        return async (opts: Docker.ContainerCreateOptions) => {
          if (fault === "mount" && once && workdir !== "") rmSync(workdir, { recursive: true });
          once = false;
          return target.createContainer(opts);
        };
      }
      const v = Reflect.get(target, prop, receiver) as unknown;
      return typeof v === "function" ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}

async function runOne(fault: Fault): Promise<void> {
  await requireDocker([IMAGE]);
  const root = tempDir("layer-refused");
  const course = path.join(root.path, "course");
  const taskDir = path.join(course, "task");
  mkdirSync(path.join(taskDir, "student"), { recursive: true });
  writeFileSync(path.join(taskDir, "given.txt"), "given");
  const layers = path.join(root.path, "layers");
  mkdirSync(layers, { mode: 0o700 });
  const jobId = `refused-${fault}`;
  const labels = containerLabels(`test-${path.basename(root.path)}`, jobId, "grading");
  const task: JobTask = {
    jobId, jobDir: path.join(root.path, "job-x"), taskDir, courseDir: course, image: IMAGE, runtime: "runc", envtype: "docker",
    environment: "default", time: 30, hardTime: 60, memoryMb: 200, diskMb: null, network: false, ports: {}, inputdata: new Uint8Array(),
    debug: false, runCmd: null, envtypes: ["docker"], runAsRoot: false, labels, studentLabels: labels, studentEnvironments: {},
    envtypeHasSsh: false, warm: null, jobDirMarker: "test", nofile: { soft: 1024, hard: 1024 }, pidsLimit: 256, cgroupVersion: 1,
    maxMessageBytes: 1 << 20, sshAllowed: false, studentContainers: 1, layeredTasks: true, taskLayersDir: layers, layerMetacopy: true,
    logLevel: "silent", logDestination: 2,
  };
  const lines: Array<Record<string, unknown>> = [];
  const log = pino({ level: "debug" }, { write: (l: string) => void lines.push(JSON.parse(l) as Record<string, unknown>) });
  const created: string[] = [];
  const removed: string[] = [];
  const api = {
    containerCreated: (_j: string, id: string) => (created.push(id), Promise.resolve(true)),
    containerRemoved: (_j: string, id: string) => (removed.push(id), Promise.resolve()),
    taskWeight: () => Promise.resolve(),
    reserveMemory: () => Promise.resolve(true),
    releaseMemory: () => Promise.resolve(),
  } as unknown as Comlink.Remote<MainApi>;
  const ctx = createJobContext(task, faulty(fault), api, log);
  try {
    const started = await createAndStart(ctx);
    assert.ok("container" in started, `the job started: ${JSON.stringify(started)}`);
    const mounts = (await started.container.inspect()).Mounts;
    const taskMount = mounts.find((m) => m.Destination === "/task")!;
    const refused = lines.find((l) => l["msg"] === "copying the task folder: the engine refused its layer");
    if (fault === "none") {
      assert.equal(taskMount.Type, "volume", "the control job is layered");
      assert.equal(refused, undefined);
    } else {
      assert.equal(taskMount.Type, "bind", "/task is the job's copy");
      assert.ok(existsSync(path.join(task.jobDir, "task", "given.txt")), "the task was copied");
      assert.match(String(refused?.["reason"]), fault === "mount" ? /mount/ : /refused the volume/);
      assert.deepEqual(removed, created.slice(0, created.length - 1), "the first container was removed and the main thread told");
    }
  } finally {
    await cleanup(ctx);
    const ours = { label: [`${LABEL_AGENT}=${labels[LABEL_AGENT]!}`, `${LABEL_JOB}=${jobId}`] };
    const { Volumes } = await docker.listVolumes({ filters: ours });
    const left = await docker.listContainers({ all: true, filters: ours });
    const layerFolders = readdirSync(layers);
    const jobDirLeft = existsSync(task.jobDir);
    root.remove();
    assert.deepEqual(left, [], "no container left");
    assert.deepEqual(Volumes ?? [], [], "no volume left");
    assert.deepEqual(layerFolders, [], "no layer folder left");
    assert.equal(jobDirLeft, false, "no job directory left");
  }
}

for (const fault of ["none", "mount", "create"] as const) {
  const what = { none: "no fault (control): the job is layered", mount: "the engine cannot mount the layer when the grading container is made", create: "the engine refuses the layer's volume" }[fault];
  test(`${what}${fault === "none" ? "" : ": the job is copied, the log says why, nothing is left"}`, () => runOne(fault));
}

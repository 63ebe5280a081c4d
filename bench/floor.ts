/**
 * The Docker floor: the agent's trivial job done straight through dockerode, with nothing
 * else — prepare a job directory (a copy of the task), create the container with the same
 * essential settings (stdin open, memory limit, network none, no log driver, the same binds), attach,
 * start, send `start`, read until the stream ends, wait, remove, delete the directory.
 */
import { promises as fs } from "node:fs";
import path from "node:path";
import type Docker from "dockerode";
import { ContainerStreamDecoder, encodeContainerMessage } from "../src/protocol/container-stream.js";
import { unpack } from "../src/protocol/msgpack.js";
import { now } from "./stats.js";

export const BENCH_LABEL = "org.inginious-agent-docker.bench";

export interface FloorJob {
  ok: boolean;
  error: string | null;
  startAt: number;
  endAt: number;
  phases: { prepare: number; create: number; start: number; run: number; remove: number };
}

export interface FloorOptions {
  docker: Docker;
  imageId: string;
  taskDir: string;
  workDir: string;
  memoryMb: number;
  runId: string;
}

let counter = 0;
let stopping = false;
const inFlight = new Set<Promise<FloorJob>>();

/** Stops starting floor jobs; resolves when those running have removed their containers. */
export async function stopFloor(): Promise<void> {
  stopping = true;
  await Promise.allSettled([...inFlight]);
}

async function mkdirOpen(p: string): Promise<void> {
  await fs.mkdir(p, { recursive: true });
  await fs.chmod(p, 0o777);
}

/** The container the agent would create for the trivial job: the same image, limits, stream and binds. */
function containerSpec(
  o: FloorOptions, dirs: { task: string; sockets: string; common: string; commonStudent: string },
): Docker.ContainerCreateOptions {
  const bytes = o.memoryMb * 1024 * 1024;
  return {
    Image: o.imageId,
    OpenStdin: true,
    StdinOnce: false,
    AttachStdin: true,
    AttachStdout: true,
    AttachStderr: false,
    Tty: false,
    Env: ["DEBUGGER=False"],
    Labels: { [BENCH_LABEL]: o.runId },
    HostConfig: {
      Memory: bytes,
      MemorySwap: bytes,
      NetworkMode: "none",
      LogConfig: { Type: "none", Config: {} },
      Binds: [
        `${dirs.task}:/task`,
        `${dirs.sockets}:/sockets`,
        `${dirs.common}:/course/common:ro`,
        `${dirs.commonStudent}:/course/common/student:ro`,
      ],
    },
  };
}

export async function floorJob(o: FloorOptions): Promise<FloorJob> {
  const startAt = now();
  let t = startAt;
  const phases = { prepare: 0, create: 0, start: 0, run: 0, remove: 0 };
  const lap = (k: keyof typeof phases): void => {
    const n = now();
    phases[k] = Math.round((n - t) * 10) / 10;
    t = n;
  };
  const root = path.join(o.workDir, `job-${++counter}`);
  const task = path.join(root, "task");
  const sockets = path.join(root, "sockets");
  const common = path.join(root, "course", "common");
  const commonStudent = path.join(common, "student");
  let container: Docker.Container | null = null;
  let error: string | null = null;
  try {
    await mkdirOpen(root);
    await fs.cp(o.taskDir, task, { recursive: true });
    await mkdirOpen(task);
    await mkdirOpen(path.join(task, "student"));
    await mkdirOpen(sockets);
    await fs.mkdir(commonStudent, { recursive: true });
    lap("prepare");
    container = await o.docker.createContainer(containerSpec(o, { task, sockets, common, commonStudent }));
    lap("create");
    const stream = (await container.attach({
      stream: true, stdin: true, stdout: true, stderr: false, hijack: true,
    }));
    stream.on("error", () => {});
    await container.start();
    lap("start");
    const exited = container.wait();
    stream.write(encodeContainerMessage({
      type: "start",
      input: { "@state": "", "@lang": "en" },
      debug: false,
      envtypes: { docker: true },
      run_as_root: false,
    }));
    const decoder = new ContainerStreamDecoder();
    let result: unknown = undefined;
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      // the decoder hands a result on as its msgpack bytes, unbuilt (the job's own check decodes them)
      for (const msg of decoder.push(chunk)) if (msg.type === "result") result = unpack(msg["result"] as Uint8Array);
    }
    await exited;
    (stream as unknown as { destroy(): void }).destroy();
    lap("run");
    const kind = (result as { result?: unknown } | undefined)?.result;
    if (kind !== "success") error = `container result: ${JSON.stringify(result)}`;
  } catch (err) {
    error = (err as Error).message;
  } finally {
    if (container !== null) {
      try {
        await container.remove({ force: true, v: true });
      } catch (err) {
        error ??= `remove: ${(err as Error).message}`;
      }
    }
    await fs.rm(root, { recursive: true, force: true });
    lap("remove");
  }
  return { ok: error === null, error, startAt, endAt: now(), phases };
}

/** Runs `n` floor jobs, `c` at a time. */
export async function floorBatch(o: FloorOptions, n: number, c: number): Promise<FloorJob[]> {
  const out: FloorJob[] = [];
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(c, n) }, async () => {
    while (next < n && !stopping) {
      next++;
      const p = floorJob(o);
      inFlight.add(p);
      try {
        out.push(await p);
      } finally {
        inFlight.delete(p);
      }
    }
  }));
  if (stopping) throw new Error("stopped");
  return out;
}

/**
 * The piscina entry: one job's container lifecycle, off the main thread.
 * Prepares the job directory, creates and attaches the grading container, sends `start`,
 * reads and checks its messages, runs the student containers it asks for, enforces CPU
 * and wall time, collects and checks the result and archive, and removes everything it made.
 * The main thread is told of each container through comlink, so that it can kill and
 * remove them even if this thread dies.
 */
import { createHash } from "node:crypto";
import { promises as fs } from "node:fs";
import os from "node:os";
import path from "node:path";
import type { Duplex } from "node:stream";
import { MessageChannel, parentPort } from "node:worker_threads";
import * as Comlink from "comlink";
import nodeEndpoint from "comlink/dist/esm/node-adapter.mjs";
import Docker from "dockerode";
import { move, transferableSymbol, valueSymbol } from "piscina";
import { createLogger, type Logger } from "../src/log.js";
import { connectDocker } from "../src/docker/engine.js";
import { instrumentDocker, relayDockerError } from "../src/ops/docker-errors.js";
import { decodeArchive } from "../src/protocol/archive.js";
import {
  ContainerStreamDecoder,
  ContainerStreamError,
  encodeContainerMessage,
  type ContainerMessage,
} from "../src/protocol/container-stream.js";
import { checkGradingResult } from "../src/protocol/grading-result.js";
import { encodeAgentMessage } from "../src/protocol/messages.js";
import { resultDone } from "../src/jobs/outcome.js";
import { OWN_BUFFER_BYTES, Packed, type Packable } from "../src/protocol/msgpack.js";
import { watchLimits, type LimitWatch } from "../src/limits/container-watch.js";
import { memoryEventsPaths, ranOutOfMemory } from "../src/limits/oom.js";
import { diskUsage, watchDisk, type DiskWatch } from "../src/limits/disk-usage.js";
import {
  fillJobDirectory, jobPaths, prepareJobDirectory, removeJobDirectory, removeJobDirectorySync, type JobPaths,
} from "../src/jobs/job-directory.js";
import { cgroupCpuNs } from "../src/limits/cgroup-cpu.js";
import { cpuUsageNs, statsDelayMs } from "../src/limits/container-watch.js";
import {
  MAIN_API_PORT,
  type CheckedResult, type GradingOutcome, type JobTask, type MainApi, type PhaseTimings,
  type WarmCreated, type WarmTask, type WorkerOutcome,
} from "../src/jobs/job-task.js";

const docker = connectDocker();

/** This thread's channel to the main thread, for every job it runs (see MAIN_API_PORT). */
const mainApi: Comlink.Remote<MainApi> = (() => {
  const channel = new MessageChannel();
  parentPort!.postMessage({ [MAIN_API_PORT]: channel.port1 }, [channel.port1]);
  const api = Comlink.wrap<MainApi>(nodeEndpoint(channel.port2 as never));
  channel.port2.unref(); // piscina ends the thread; this channel must not hold it
  return api;
})();

/**
 * Pool threads run at a lower priority (nice 10) than the main thread, which must answer the
 * backend's pings within milliseconds whatever the load: on Linux a nice value is per thread,
 * and with all the CPUs busy decoding big results the main thread otherwise waited its turn
 * behind them (Pong p99 of hundreds of ms). Raising one's own nice value needs no privilege.
 */
export const POOL_THREAD_NICE = 10;
try {
  if (os.getPriority(0) < POOL_THREAD_NICE) os.setPriority(0, POOL_THREAD_NICE);
} catch {
  /* not allowed here: run at the main thread's priority */
}
/** Containers get no CPU quota: each may use every CPU of the host. */
const HOST_CPUS = os.cpus().length;
// Engine errors of this thread are counted by the main thread's metrics.
instrumentDocker(docker, relayDockerError);
let logger: Logger | null = null;

function getLogger(level: string, destination: number): Logger {
  logger ??= createLogger({ verbose: false, level, destination });
  return logger;
}

/** Two SELinux MCS categories drawn from a seed, so that jobs cannot read each other's files. */
export function selinuxLevel(seed: string): string {
  const h = createHash("sha256").update(seed).digest();
  const c1 = h.readUInt16BE(0) % 1024;
  let c2 = h.readUInt16BE(2) % 1024;
  if (c2 === c1) c2 = (c1 + 1) % 1024;
  return `label=level:s0:c${Math.min(c1, c2)},c${Math.max(c1, c2)}`;
}

type ContainerSettings = Pick<JobTask, "cgroupVersion" | "runtime" | "nofile" | "pidsLimit">;

function hostConfigCommon(task: ContainerSettings, memoryMb: number, seed: string): Docker.HostConfig {
  const bytes = memoryMb * 1024 * 1024;
  return {
    Memory: bytes,
    MemorySwap: bytes,
    ...(task.cgroupVersion === 1 ? { MemorySwappiness: 0, OomKillDisable: true } : {}),
    Runtime: task.runtime,
    Ulimits: [{ Name: "nofile", Soft: task.nofile.soft, Hard: task.nofile.hard }],
    SecurityOpt: [selinuxLevel(seed)],
    PidsLimit: task.pidsLimit,
    // The agent reads what it needs through the attach stream and removes the container right
    // after: a copy of every byte in the engine's log driver (json-file: escaped JSON on disk)
    // would only cost the engine CPU and disk, tens of megabytes for a big result.
    LogConfig: { Type: "none", Config: {} },
  };
}

function portBindings(ports: Record<number, number>): {
  exposed: Record<string, object>;
  bindings: Record<string, Array<{ HostPort: string }>>;
} {
  const exposed: Record<string, object> = {};
  const bindings: Record<string, Array<{ HostPort: string }>> = {};
  for (const [internal, external] of Object.entries(ports)) {
    exposed[`${internal}/tcp`] = {};
    bindings[`${internal}/tcp`] = [{ HostPort: String(external) }];
  }
  return { exposed, bindings };
}

/** Bounded wait: resolves with the promise's value, or `fallback` after `ms`. */
function within<T>(p: Promise<T>, ms: number, fallback: T): Promise<T> {
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve(fallback), ms);
    p.then(
      (v) => (clearTimeout(t), resolve(v)),
      () => (clearTimeout(t), resolve(fallback)),
    );
  });
}

/** The grading container of a job (or a warm one, waiting for its job). */
function gradingContainerSpec(
  t: ContainerSettings & Pick<JobTask, "image" | "labels">,
  p: JobPaths,
  memoryMb: number,
  ports: Record<number, number>,
  network: boolean,
): Docker.ContainerCreateOptions {
  const { exposed, bindings } = portBindings(ports);
  const useNetwork = network || Object.keys(ports).length > 0;
  return {
    Image: t.image,
    OpenStdin: true,
    StdinOnce: false,
    AttachStdin: true,
    AttachStdout: true,
    AttachStderr: false,
    Tty: false,
    Env: ["DEBUGGER=False"],
    Labels: t.labels,
    ExposedPorts: exposed,
    HostConfig: {
      ...hostConfigCommon(t, memoryMb, p.root),
      NetworkMode: useNetwork ? "bridge" : "none",
      PortBindings: bindings,
      ExtraHosts: ["host.docker.internal:host-gateway"],
      Binds: [
        `${p.task}:/task:Z`,
        `${p.sockets}:/sockets:Z`,
        `${p.courseCommon}:/course/common:ro,Z`,
        `${p.courseCommonStudent}:/course/common/student:ro,Z`,
      ],
    },
  };
}

/**
 * Whether an exited container may have been OOM-killed, so that an inspect is worth it. On
 * cgroup v1 the OOM killer is off in our containers: the agent kills on the engine's `oom` event
 * (the main thread counts that), so only a killed container (137, or no status) can be one.
 */
function mayBeOomKilled(cgroupVersion: 1 | 2, exitCode: number): boolean {
  return cgroupVersion !== 1 || exitCode === 137 || exitCode < 0;
}

/** CPU time a container has used so far, asked from the engine (one stats sample, without waiting for a second one). */
async function engineCpuNs(container: Docker.Container): Promise<number> {
  try {
    const stats = await container.stats({ stream: false, "one-shot": true } as never);
    return cpuUsageNs(stats) ?? 0;
  } catch {
    return 0;
  }
}

interface StudentRun {
  id: string | null;
  ports: number[];
  /** internal port 22 -> external */
  sshPort: number | null;
  done: Promise<void>;
}

class JobRun {
  private readonly log: Logger;
  private readonly api = mainApi;
  private paths: JobPaths | null = null;
  private grading: Docker.Container | null = null;
  private stdin: NodeJS.WritableStream | null = null;
  private readonly students = new Map<string, StudentRun>(); // socket_id -> run
  private fatal: string | null = null;
  private sshSent = false;
  /** Set once the grading container has exited: no student container may start after it. */
  private parentGone = false;
  /** Directories the disk limit counts: the job directory and each container's writable layer. */
  private readonly diskRoots: string[] = [];
  private disk: DiskWatch | null = null;

  constructor(private readonly task: JobTask) {
    this.log = getLogger(task.logLevel, task.logDestination).child({ job: task.jobId });
  }

  private readonly timings: PhaseTimings = {};
  private phaseStart = performance.now();

  /** Ends the current phase under `name` and starts the next one. */
  private phase(name: keyof PhaseTimings): void {
    const now = performance.now();
    this.timings[name] = Math.round((now - this.phaseStart) * 10) / 10;
    this.phaseStart = now;
  }

  async run(): Promise<WorkerOutcome> {
    let outcome: GradingOutcome | null = null;
    let reported = false;
    try {
      outcome = { ...(await this.runGrading()), timings: { ...this.timings } };
      // The result goes out now; removing the containers and the directory follows.
      reported = await this.report(outcome);
    } finally {
      this.phaseStart = performance.now();
      await this.cleanup();
      this.phase("cleanup");
    }
    return reported ? { kind: "reported", timings: this.timings } : { ...outcome!, timings: this.timings };
  }

  /** Hands the outcome to the main thread (a big frame by transfer); false if that failed. */
  private async report(outcome: GradingOutcome): Promise<boolean> {
    try {
      const frame = outcome.kind === "encoded-result" ? ownedFrame(outcome.frame) : null;
      await this.api.jobOutcome(this.task.jobId, frame === null ? outcome : Comlink.transfer(outcome, [frame]));
      return true;
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, "could not report the outcome early: it goes with the end of the task");
      return false;
    }
  }

  private crash(text: string): GradingOutcome {
    return { kind: "crash", text, timeout: false, oomKilled: false };
  }

  private async runGrading(): Promise<GradingOutcome> {
    const t = this.task;
    let container: Docker.Container;
    let stream: NodeJS.ReadWriteStream;
    let cpuBaselineNs = 0;
    if (t.warm !== null) {
      const adopted = await this.adoptWarm(t.warm);
      if ("text" in adopted) return this.crash(adopted.text);
      ({ container, stream } = adopted);
      // What the container used before this job (its entry program's start) is not the job's;
      // a dead warm container was replaced by a cold one, which counts from zero.
      if (container.id === t.warm.containerId) {
        cpuBaselineNs = t.warm.cpuBaselineNs ?? cgroupCpuNs(container.id, t.cgroupVersion) ?? 0;
      }
    } else {
      const created = await this.createAndStart();
      if ("text" in created) return this.crash(created.text);
      ({ container, stream } = created);
    }
    const log = this.log.child({ container: container.id });
    const watch = watchLimits(container, {
      cpuSeconds: t.time, wallSeconds: t.hardTime, cpuBaselineNs, statsDelayMs: statsDelayMs(t.time, HOST_CPUS),
    }, log);
    const memoryEvents = this.followMemoryEvents(container.id);
    if (t.diskMb !== null) await this.watchDiskLimit(container, t.diskMb, log);
    let engineLost: string | null = null;
    const exited = container.wait().then(
      (r: { StatusCode?: number }) => r?.StatusCode ?? -1,
      (err: Error) => {
        engineLost = err.message;
        return -1;
      },
    );
    const start: Record<string, Packable> = {
      type: "start",
      input: new Packed(t.inputdata),
      debug: t.debug,
      envtypes: Object.fromEntries(t.envtypes.map((e) => [e, true])),
    };
    if (t.runCmd !== null) start["run_cmd"] = t.runCmd;
    start["run_as_root"] = t.runAsRoot;
    stream.on("error", () => {});
    stream.write(encodeContainerMessage(start as { type: string } & Record<string, Packable>));

    const decoder = new ContainerStreamDecoder(t.maxMessageBytes);
    let lastChunkAt = performance.now();
    let rawResult: unknown = undefined;
    let streamError: string | null = null;
    const reading = (async () => {
      try {
        for await (const chunk of stream as AsyncIterable<Buffer>) {
          lastChunkAt = performance.now();
          for (const msg of decoder.push(chunk)) {
            if (msg.type === "result") rawResult = msg["result"];
            else this.onMessage(msg, log);
          }
          if (this.fatal !== null) break;
        }
        if (this.fatal === null) decoder.end();
      } catch (err) {
        // The engine may drop the connection abruptly when the container exits (seen when
        // attached after start): at a message boundary, that is just the end of the stream.
        const transportEnd = !(err instanceof ContainerStreamError) && decoder.idle;
        if (this.fatal === null && !transportEnd) streamError = (err as Error).message;
      }
    })();

    // The stream ends when the container exits; a container that closed its stdout keeps the
    // job alive until it exits or hits a limit, and then the stream gets 2 s to drain.
    await Promise.race([reading, exited]);
    if (streamError !== null || this.fatal !== null) await this.killQuietly(container);
    const exitCode = await exited;
    this.phase("run");
    // After the exit, the rest of the output may still be on its way (a big result, a busy engine):
    // keep reading while bytes keep coming, and stop after 2 s without any.
    let readingDone = false;
    void reading.then(() => (readingDone = true));
    lastChunkAt = Math.max(lastChunkAt, performance.now());
    while (!readingDone && performance.now() - lastChunkAt < 2000) await within(reading, 200, undefined);
    (stream as unknown as { destroy(): void }).destroy();
    watch.stop();
    this.disk?.stop();
    // The parent is gone: its student containers go with it.
    this.parentGone = true;
    await Promise.all([...this.students.values()].map(async (run) => {
      if (run.id !== null) await this.killQuietly(docker.getContainer(run.id));
      await run.done;
    }));

    memoryEvents.stop();
    const oomKilled = mayBeOomKilled(t.cgroupVersion, exitCode) ? await this.inspectOomKilled(container, memoryEvents.last()) : false;
    const timeout = watch.exceeded !== null;
    log.debug({ exitCode, timeout, cpu: watch.cpuSeconds }, "grading container ended");

    if (this.disk?.exceeded) {
      return { kind: "crash", text: "disk limit", timeout, oomKilled, diskExceededBytes: this.disk.peakBytes };
    }
    if (engineLost !== null && rawResult === undefined) {
      log.warn({ err: engineLost }, "lost the Docker engine while the job ran");
      return {
        kind: "crash",
        text: `The agent lost contact with the Docker engine while the job ran (${engineLost}). Please retry.`,
        timeout, oomKilled,
      };
    }
    if (this.fatal !== null) return { kind: "crash", text: this.fatal, timeout, oomKilled };
    if (streamError !== null) {
      return { kind: "crash", text: `The grader's output could not be read: ${streamError}.`, timeout, oomKilled };
    }
    if (rawResult === undefined) {
      return { kind: "no-result", text: "The grader did not return any result.", timeout, oomKilled };
    }
    try {
      // Encoded here, so that the main thread only forwards the bytes (results can weigh tens of MB).
      const done = resultDone(t.jobId, this.checkResult(rawResult));
      return {
        kind: "encoded-result", result: done.result[0], grade: done.grade, frame: encodeAgentMessage(done), timeout, oomKilled,
      };
    } catch (err) {
      return { kind: "crash", text: (err as Error).message, timeout, oomKilled };
    } finally {
      this.phase("collect");
    }
  }

  /** The cold path: a fresh job directory, then create, attach and start the grading container. */
  private async createAndStart(): Promise<{ container: Docker.Container; stream: NodeJS.ReadWriteStream } | { text: string }> {
    const t = this.task;
    try {
      this.paths = prepareJobDirectory(t.jobDir, t.jobDirMarker, t.taskDir, t.courseDir);
      this.phase("prepare");
    } catch (err) {
      this.log.error({ err: (err as Error).message, dir: t.jobDir }, "failed to prepare job directory");
      return { text: "The agent could not prepare the job's directory. Please contact your course administrator." };
    }
    let container: Docker.Container;
    try {
      this.log.debug("creating grading container");
      container = await docker.createContainer(gradingContainerSpec(t, this.paths, t.memoryMb, t.ports, t.network));
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, "failed to create grading container");
      return { text: `The agent could not create the grading container: ${(err as Error).message}` };
    }
    this.grading = container;
    this.phase("create");
    const log = this.log.child({ container: container.id });
    log.debug("created grading container");
    if (!(await this.api.containerCreated(t.jobId, container.id, "grading"))) {
      return { text: "The job was killed before its container started." };
    }
    try {
      const stream = (await container.attach({
        stream: true, stdin: true, stdout: true, stderr: false, hijack: true,
      })) as NodeJS.ReadWriteStream;
      this.stdin = stream;
      await container.start();
      this.phase("start");
      log.debug("started grading container");
      return { container, stream };
    } catch (err) {
      log.warn({ err: (err as Error).message }, "failed to start grading container");
      return { text: `The agent could not start the grading container: ${(err as Error).message}` };
    }
  }

  /**
   * The warm path: the container is running and waiting for `start`, its directory bound. Fill the
   * directory in place (a bind mount pins the directory it was given), set the job's memory unless
   * the container already has it, attach. The engine calls go out together, the directory is
   * filled while they are answered.
   */
  private async adoptWarm(warm: NonNullable<JobTask["warm"]>): Promise<{ container: Docker.Container; stream: NodeJS.ReadWriteStream } | { text: string }> {
    const t = this.task;
    const container = docker.getContainer(warm.containerId);
    const log = this.log.child({ container: warm.containerId });
    const bytes = t.memoryMb * 1024 * 1024;
    const settle = <T>(p: Promise<T>): Promise<T | Error> => p.catch((err: unknown) => (err instanceof Error ? err : new Error(String(err))));
    const engine = Promise.all([
      container.inspect().then((i) => i.State?.Running === true, () => false),
      settle(container.attach({ stream: true, stdin: true, stdout: true, stderr: false, hijack: true }) as Promise<Duplex>),
      warm.memoryMb === t.memoryMb ? null : settle(container.update({ Memory: bytes, MemorySwap: bytes })),
    ]);
    this.grading = container;
    this.paths = jobPaths(t.jobDir);
    const owned = await this.api.containerCreated(t.jobId, warm.containerId, "grading");
    let failure: Error | null = null;
    if (owned) {
      try {
        fillJobDirectory(this.paths, t.taskDir, t.courseDir);
      } catch (err) {
        failure = err as Error;
      }
    }
    const [running, attached, updated] = await engine;
    const stream = attached instanceof Error ? null : attached;
    if (!owned) {
      stream?.destroy();
      return { text: "The job was killed before its container started." };
    }
    if (!running) {
      // It died waiting (an image whose command needs /task before `start`, say): go cold.
      stream?.destroy();
      log.info("the warm grading container is not running: using a new one");
      await container.remove({ force: true }).catch(() => {});
      await this.api.containerRemoved(t.jobId, warm.containerId);
      this.grading = null;
      await removeJobDirectory(t.jobDir).catch(() => {});
      return this.createAndStart();
    }
    failure ??= attached instanceof Error ? attached : updated instanceof Error ? updated : null;
    if (failure !== null || stream === null) {
      stream?.destroy();
      const message = failure?.message ?? "no stream";
      log.warn({ err: message }, "failed to adopt a warm grading container");
      return { text: `The agent could not prepare the grading container: ${message}. Please retry.` };
    }
    this.stdin = stream;
    this.phase("prepare");
    log.debug({ memoryUpdated: updated !== null }, "adopted warm grading container");
    return { container, stream };
  }

  private checkResult(raw: unknown): CheckedResult {
    const r = checkGradingResult(raw);
    const archive = r.archive === null ? null : decodeArchive(r.archive);
    return { ...r, archive };
  }

  /** After exit: OOMKilled from inspect, and on cgroup v2 the last memory.events read while it ran. */
  private async inspectOomKilled(container: Docker.Container, memoryEvents: string | null = null): Promise<boolean> {
    let state = null;
    try {
      state = (await container.inspect()).State ?? null;
    } catch {
      /* gone */
    }
    return ranOutOfMemory({ oomEvent: false, state, memoryEvents });
  }

  /** Writable layer of a container on overlay2, when this process can see it. */
  private async upperDir(container: Docker.Container): Promise<string | null> {
    try {
      const info = await container.inspect();
      const dir = (info.GraphDriver?.Data as Record<string, string> | undefined)?.["UpperDir"];
      return typeof dir === "string" ? dir : null;
    } catch {
      return null;
    }
  }

  /** Starts counting what the job writes; the task's own files (already there) are not counted. */
  private async watchDiskLimit(container: Docker.Container, diskMb: number, log: Logger): Promise<void> {
    const upper = await this.upperDir(container);
    if (upper === null) log.warn("cannot see the container's writable layer: only the job directory counts for the disk limit");
    this.diskRoots.push(this.task.jobDir);
    if (upper !== null) this.diskRoots.push(upper);
    const baseline = await diskUsage([this.task.jobDir]);
    this.disk = watchDisk(() => this.diskRoots, baseline + diskMb * 1024 * 1024, (bytes) => {
      log.info({ bytes, limitMb: diskMb }, "job over its disk limit: killing its containers");
      this.failJob("disk limit", log);
      for (const run of this.students.values()) if (run.id !== null) void this.killQuietly(docker.getContainer(run.id));
    });
  }

  /** On cgroup v2, keeps the container cgroup's memory.events text (it vanishes at exit). */
  private followMemoryEvents(containerId: string): { last(): string | null; stop(): void } {
    let last: string | null = null;
    if (this.task.cgroupVersion !== 2) return { last: () => null, stop: () => {} };
    const paths = memoryEventsPaths(containerId);
    const read = (): void => {
      for (const p of paths) {
        fs.readFile(p, "utf8").then((text) => (last = text), () => {});
      }
    };
    const timer = setInterval(read, 1000);
    timer.unref();
    return { last: () => last, stop: () => (read(), clearInterval(timer)) };
  }

  private async killQuietly(container: Docker.Container): Promise<void> {
    try {
      await container.kill();
    } catch {
      /* already stopped or gone */
    }
  }

  private writeToGrading(message: { type: string } & Record<string, Packable>): void {
    if (this.stdin === null) return;
    try {
      this.stdin.write(encodeContainerMessage(message));
    } catch (err) {
      this.log.debug({ err: (err as Error).message }, "grading container's stdin is closed");
    }
  }

  private failJob(text: string, log: Logger): void {
    if (this.fatal !== null) return;
    this.fatal = text;
    log.warn({ reason: text }, "ending job");
    if (this.grading) void this.killQuietly(this.grading);
  }

  private onMessage(msg: ContainerMessage, log: Logger): void {
    switch (msg.type) {
      case "run_student":
        this.onRunStudent(msg, log);
        return;
      case "ssh_debug": {
        const port = this.task.ports[22];
        if (port === undefined) {
          log.warn("ssh_debug from a job that has no SSH port: ignored");
          return;
        }
        this.sendSsh(port, msg["ssh_user"], msg["ssh_key"], log);
        return;
      }
      case "ssh_student": {
        const wanted = msg["container_id"];
        const run = [...this.students.values()].find((s) => s.id !== null && s.id === wanted);
        if (!run || run.sshPort === null) {
          this.failJob("Trying to connect with ssh to a non-children student container!", log);
          return;
        }
        this.sendSsh(run.sshPort, msg["ssh_user"], msg["ssh_key"], log);
        return;
      }
      default:
        log.debug({ type: msg.type }, "ignoring unknown message from grading container");
    }
  }

  private sendSsh(port: number, user: unknown, key: unknown, log: Logger): void {
    if (typeof user !== "string" || typeof key !== "string") {
      log.warn("ssh message without a user and key: ignored");
      return;
    }
    if (this.sshSent) {
      log.warn("a second SSH debug message for one job: ignored");
      return;
    }
    this.sshSent = true;
    void this.api.sshDebug(this.task.jobId, port, user, key);
  }

  private onRunStudent(msg: ContainerMessage, log: Logger): void {
    const t = this.task;
    const socketId = msg["socket_id"];
    if (typeof socketId !== "string" || socketId.includes("/") || socketId === "" || socketId.includes("\0")) {
      this.failJob("The grader asked for a student container with an invalid socket id.", log);
      return;
    }
    if (this.students.has(socketId)) {
      log.warn({ socket: socketId }, "run_student for a socket id already in use: ignored");
      return;
    }
    const ssh = Boolean(msg["ssh"]);
    if (ssh && !(t.network && t.envtypeHasSsh && t.sshAllowed)) {
      this.failJob(
        "ssh for student requires to allow ssh and internet access in the task environment configuration tab!",
        log,
      );
      return;
    }
    const num = (v: unknown): number => (typeof v === "number" && Number.isFinite(v) && v > 0 ? v : 0);
    const limit = (asked: unknown, parent: number): number => Math.min(num(asked) || parent, parent);
    const run: StudentRun = { id: null, ports: [], sshPort: null, done: Promise.resolve() };
    this.students.set(socketId, run);
    run.done = this.runStudent(run, socketId, {
      environment: typeof msg["environment"] === "string" && msg["environment"] !== "" ? msg["environment"] : t.environment,
      memoryMb: limit(msg["memory_limit"], t.memoryMb),
      time: limit(msg["time_limit"], t.time),
      hardTime: limit(msg["hard_time_limit"], t.hardTime),
      shareNetwork: Boolean(msg["share_network"]),
      ssh,
      runAsRoot: Boolean(msg["run_as_root"]),
    }, log).catch((err: Error) => log.error({ err: err.message, socket: socketId }, "student container handling failed"));
  }

  private async runStudent(
    run: StudentRun,
    socketId: string,
    req: { environment: string; memoryMb: number; time: number; hardTime: number; shareNetwork: boolean; ssh: boolean; runAsRoot: boolean },
    parentLog: Logger,
  ): Promise<void> {
    const t = this.task;
    const p = this.paths!;
    const log = parentLog.child({ socket: socketId });
    const retval = (value: number): void =>
      this.writeToGrading({ type: "run_student_retval", socket_id: socketId, retval: value });
    const env = t.studentEnvironments[req.environment];
    if (env === undefined) {
      log.warn({ environment: req.environment }, "student container asked for an unknown environment");
      return retval(254);
    }
    if (req.runAsRoot) {
      log.warn("student containers cannot run as root");
      return retval(254);
    }
    let ports: Record<number, number> = {};
    if (req.ssh) {
      const got = await this.api.allocatePorts(t.jobId, 1);
      if (got === null || got.length === 0) {
        log.warn("no free port for a student SSH container");
        return retval(254);
      }
      run.ports = got;
      run.sshPort = got[0]!;
      ports = { 22: got[0]! };
    }
    const { exposed, bindings } = portBindings(ports);
    const networkMode = req.ssh ? "bridge" : req.shareNetwork && this.grading ? `container:${this.grading.id}` : "none";
    let container: Docker.Container;
    try {
      await Promise.all([p.studentScripts, p.systemfiles].map((d) => fs.mkdir(d, { recursive: true, mode: 0o777 })));
      container = await docker.createContainer({
        Image: env.image,
        Cmd: ["_run_student_intern"],
        OpenStdin: true,
        StdinOnce: false,
        Tty: false,
        Labels: t.studentLabels,
        ExposedPorts: exposed,
        HostConfig: {
          ...hostConfigCommon({ ...t, runtime: env.runtime }, req.memoryMb, p.root),
          NetworkMode: networkMode,
          PortBindings: bindings,
          Binds: [
            `${p.student}:/task/student:Z`,
            `${p.studentScripts}:/task/student/scripts:Z`,
            `${path.join(p.sockets, `${socketId}.sock`)}:/__parent.sock:Z`,
            `${p.systemfiles}:/task/systemfiles:ro,Z`,
            `${p.courseCommonStudent}:/course/common/student:ro,Z`,
          ],
        },
      });
    } catch (err) {
      log.warn({ err: (err as Error).message }, "failed to create student container");
      this.releaseStudentPorts(run);
      return retval(254);
    }
    run.id = container.id;
    const clog = log.child({ container: container.id });
    if (!(await this.api.containerCreated(t.jobId, container.id, "student")) || this.parentGone) {
      await this.removeStudent(container, run);
      return retval(254);
    }
    if (this.disk !== null) {
      const upper = await this.upperDir(container);
      if (upper !== null) this.diskRoots.push(upper);
    }
    this.writeToGrading({ type: "run_student_started", socket_id: socketId, container_id: container.id });
    let watch: LimitWatch | null = null;
    let code = -1;
    try {
      await container.start();
      clog.debug("started student container");
      watch = watchLimits(container, {
        cpuSeconds: req.time, wallSeconds: req.hardTime, statsDelayMs: statsDelayMs(req.time, HOST_CPUS),
      }, clog);
      const r = (await container.wait()) as { StatusCode?: number };
      code = r?.StatusCode ?? -1;
    } catch (err) {
      clog.warn({ err: (err as Error).message }, "student container failed");
      watch?.stop();
      await this.removeStudent(container, run);
      return retval(254);
    }
    watch.stop();
    const oom = (await this.api.wasOutOfMemory(container.id))
      || (mayBeOomKilled(this.task.cgroupVersion, code) && (await this.inspectOomKilled(container)));
    const value = watch.exceeded !== null ? 253 : oom ? 252 : code;
    clog.debug({ retval: value }, "student container ended");
    retval(value);
    await this.removeStudent(container, run);
  }

  private releaseStudentPorts(run: StudentRun): void {
    if (run.ports.length > 0) void this.api.releasePorts(this.task.jobId, run.ports);
    run.ports = [];
  }

  private async removeStudent(container: Docker.Container, run: StudentRun): Promise<void> {
    try {
      await container.remove({ force: true, v: true });
    } catch {
      /* gone already */
    }
    void this.api.containerRemoved(this.task.jobId, container.id);
    this.releaseStudentPorts(run);
  }

  private async cleanup(): Promise<void> {
    const removals: Promise<unknown>[] = [];
    for (const run of this.students.values()) {
      if (run.id !== null) removals.push(this.removeStudent(docker.getContainer(run.id), run));
      else this.releaseStudentPorts(run);
    }
    await Promise.all(removals);
    if (this.grading !== null) {
      try {
        await this.grading.remove({ force: true, v: true });
        this.log.debug({ container: this.grading.id }, "removed grading container");
      } catch (err) {
        const status = (err as { statusCode?: number }).statusCode;
        if (status !== 404 && status !== 409) {
          this.log.warn({ container: this.grading.id, err: (err as Error).message }, "failed to remove grading container");
        }
      }
      await this.api.containerRemoved(this.task.jobId, this.grading.id);
    }
    try {
      removeJobDirectorySync(this.task.jobDir);
    } catch (err) {
      await this.removeAsRoot(err as Error);
    }
  }

  /**
   * A job directory holding files a container wrote as another user cannot be removed by an
   * agent that is not root: a short container of the job's own image removes them as root.
   */
  private async removeAsRoot(first: Error): Promise<void> {
    const dir = this.task.jobDir;
    if (!/permission denied/.test(first.message)) {
      this.log.error({ err: first.message }, "failed to remove job directory");
      return;
    }
    this.log.info({ dir }, "removing the job directory's files through a container (they belong to another user)");
    let helper: Docker.Container | null = null;
    try {
      helper = await docker.createContainer({
        Image: this.task.image,
        Cmd: ["rm", "-rf", "/job/task", "/job/sockets", "/job/course"],
        User: "0",
        Labels: this.task.labels,
        HostConfig: { Binds: [`${dir}:/job:Z`], NetworkMode: "none", Runtime: this.task.runtime },
      });
      await helper.start();
      await helper.wait();
      await removeJobDirectory(dir);
    } catch (err) {
      this.log.error({ dir, err: (err as Error).message }, `failed to remove job directory: ${first.message}`);
    } finally {
      if (helper) await helper.remove({ force: true }).catch(() => {});
    }
  }
}

/** piscina calls this (name "createWarm") to make a warm container: directory, create, start. */
export async function createWarm(task: WarmTask): Promise<WarmCreated> {
  const log = getLogger(task.logLevel, task.logDestination);
  const paths = await prepareJobDirectory(task.jobDir, task.jobDirMarker, null, null);
  let container: Docker.Container | null = null;
  try {
    container = await docker.createContainer(gradingContainerSpec(task, paths, task.memoryMb, {}, false));
    await container.start();
    if (task.settleMs > 0) {
      // its environment is on probation: it must still be running after a moment
      await new Promise((r) => setTimeout(r, task.settleMs));
      const state = (await container.inspect()).State;
      if (state?.Running !== true) {
        const detail = `exited with status ${state?.ExitCode ?? "?"} ${task.settleMs} ms after its start, before any job`;
        await container.remove({ force: true }).catch(() => {});
        await removeJobDirectory(task.jobDir).catch(() => {});
        return { kind: "exited", detail };
      }
    }
    // Where its cgroup is visible, what it used before its job is read when a job takes it.
    if (cgroupCpuNs(container.id, task.cgroupVersion) !== null) {
      log.debug({ container: container.id }, "warm grading container ready");
      return { kind: "ready", containerId: container.id, cpuBaselineNs: null };
    }
    // Else: let the container side reach its read of `start`, then ask the engine what it used.
    if (task.settleMs < 300) await new Promise((r) => setTimeout(r, 300 - task.settleMs));
    const cpuBaselineNs = await engineCpuNs(container);
    log.debug({ container: container.id }, "warm grading container ready");
    return { kind: "ready", containerId: container.id, cpuBaselineNs };
  } catch (err) {
    if (container) await container.remove({ force: true }).catch(() => {});
    await removeJobDirectory(task.jobDir).catch(() => {});
    throw err;
  }
}

/**
 * The ArrayBuffer of a big result's frame, when it may be transferred to the main thread:
 * copying tens of MB there (and faulting in the pages) held its event loop for up to a second.
 * Only a frame with an ArrayBuffer of its own (pack gives one from OWN_BUFFER_BYTES on)
 * qualifies: a small one may share node's buffer pool with other live buffers.
 */
function ownedFrame(frame: Uint8Array): ArrayBuffer | null {
  if (frame.byteLength < OWN_BUFFER_BYTES || frame.byteOffset !== 0) return null;
  return frame.buffer as ArrayBuffer;
}

/** piscina calls this for every job. */
export default async function runJob(task: JobTask): Promise<WorkerOutcome> {
  const outcome = await new JobRun(task).run();
  const frame = outcome.kind === "encoded-result" ? ownedFrame(outcome.frame) : null;
  if (frame === null) return outcome;
  return move({ [transferableSymbol]: [frame], [valueSymbol]: outcome }) as unknown as WorkerOutcome;
}

/**
 * One agent of bench/heavy.ts: the real process with its fake backend, its temp directory, its
 * metrics endpoint (`--metrics-port 0`) and its containers' and volumes' label. It sends heavy
 * jobs and checks each answer; it says which way its start-up check chose for task folders (its
 * `check: "task-folders"` log line, and the `task_folders_layered` gauge); it waits until its
 * slots are free again (`jobs_running` counts a job until its cleanup has ended: the removal of a
 * copied task is part of what the copy costs); and it stops, removing whatever it left.
 */
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import path from "node:path";
import type Docker from "dockerode";
import { FakeBackend, newJob } from "../test/helpers/backend.js";
import { LABEL_AGENT, agentId } from "../src/docker/labels.js";
import { AgentProc } from "./agent-proc.js";
import { parseHeavyText, HEAVY_COURSE, HEAVY_TASK } from "./heavy-task.js";
import { sleep } from "./stats.js";

export type Mode = "copy" | "layered";

/** One heavy job as the bench saw it. */
export interface HeavyJob {
  id: string;
  sentAt: number;
  doneAt: number;
  /** The file system type of the job's /task mount, as its grader read it. */
  mount: string | null;
}

/** The start-up check's choice, from the agent's log and its gauge. */
export interface Layering {
  /** `mode` of the `check: "task-folders"` log line: "layered" or "copy" (null: no such line). */
  mode: string | null;
  /** Why the check refused to layer, when it did. */
  reason: string | null;
  /** The `task_folders_layered` gauge: 1 layered, 0 copy (null: not read). */
  gauge: number | null;
}

const PREFIX = "inginious_agent_";

/** Prometheus text into `name{labels}` → value. */
function parseMetrics(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    const m = /^([a-zA-Z_:][\w:]*(?:\{[^}]*\})?)\s+(\S+)$/.exec(line);
    if (m) out.set(m[1]!, Number(m[2]));
  }
  return out;
}

export class HeavyAgent {
  readonly dir: string;
  readonly tmpdir: string;
  backend: FakeBackend | null = null;
  agent: AgentProc | null = null;
  private metricsUrl = "";
  private stopPings = (): void => {};
  private seq = 0;

  constructor(readonly mode: Mode, root: string) {
    this.dir = mkdtempSync(path.join(root, `agent-${mode}-`));
    this.tmpdir = path.join(this.dir, "agent");
    mkdirSync(this.tmpdir);
  }

  async start(cli: string, tasksDir: string, concurrency: number, extra: string[]): Promise<this> {
    this.backend = await new FakeBackend().start();
    const args = [
      this.backend.address, "--tmpdir", this.tmpdir, "--tasks", tasksDir, "--concurrency", String(concurrency),
      "--metrics-port", "0", ...(this.mode === "copy" ? ["--copy-task-folders"] : []), ...extra,
    ];
    this.agent = new AgentProc(cli, args, this.dir);
    this.stopPings = this.backend.pingEvery(1000);
    await Promise.race([
      this.backend.waitType("AgentHello", 120_000),
      this.agent.exited.then(async (code) => {
        throw new Error(`the ${this.mode} agent exited (${code}) before its hello:\n${await this.agent!.tail()}`);
      }),
    ]);
    const listening = (await this.agent.readLog()).find((l) => l.msg === "metrics server listening");
    if (listening === undefined) throw new Error(`the ${this.mode} agent logged no metrics address`);
    this.metricsUrl = `http://${String(listening["host"])}:${Number(listening["port"])}/metrics`;
    return this;
  }

  async metrics(): Promise<Map<string, number>> {
    const res = await fetch(this.metricsUrl);
    if (!res.ok) throw new Error(`${this.metricsUrl}: HTTP ${res.status}`);
    return parseMetrics(await res.text());
  }

  async layering(): Promise<Layering> {
    const line = (await this.agent!.readLog()).find((l) => l["check"] === "task-folders");
    const gauge = (await this.metrics()).get(`${PREFIX}task_folders_layered`);
    return {
      mode: typeof line?.["mode"] === "string" ? line["mode"] : null,
      reason: typeof line?.["reason"] === "string" ? line["reason"] : null,
      gauge: gauge ?? null,
    };
  }

  /** Seconds the agent has spent in its jobs' cleanups, and how many ended (the phase histogram). */
  async cleanups(): Promise<{ seconds: number; count: number }> {
    const m = await this.metrics();
    return {
      seconds: m.get(`${PREFIX}job_phase_seconds_sum{phase="cleanup"}`) ?? 0,
      count: m.get(`${PREFIX}job_phase_seconds_count{phase="cleanup"}`) ?? 0,
    };
  }

  /** Sends one heavy job and checks its answer: `success`, and every file seen under /task/data. */
  async job(tag: string, files: number, timeoutMs: number): Promise<HeavyJob> {
    const backend = this.backend!;
    const id = `${this.mode}-${tag}-${++this.seq}`;
    const sentAt = performance.now();
    await backend.send(newJob(id, {
      course_id: HEAVY_COURSE, task_id: HEAVY_TASK, inputdata: { "@state": "", "@lang": "en" },
      limits: { time: 120, hard_time: 600, memory: 400 },
    }));
    const done = await backend.done(id, timeoutMs);
    const doneAt = performance.now();
    const [result, text] = done["result"] as [string, string];
    const seen = parseHeavyText(text ?? "");
    if (result !== "success" || seen.files !== files) {
      throw new Error(`${this.mode} job ${id} ended ${JSON.stringify([result, text])} (expected success with files=${files})`);
    }
    return { id, sentAt, doneAt, mount: seen.mount };
  }

  /** Waits until no job holds a slot or waits for one (cleanups ended). */
  async settle(timeoutMs: number): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const m = await this.metrics();
      if (m.get(`${PREFIX}jobs_running`) === 0 && m.get(`${PREFIX}jobs_queued`) === 0) return;
      if (performance.now() > deadline) throw new Error(`the ${this.mode} agent still had jobs running after ${timeoutMs} ms`);
      await sleep(50);
    }
  }

  /** Stops the agent, removes its containers and volumes and its temp directory; returns what was left. */
  async stop(docker: Docker): Promise<number> {
    this.stopPings();
    if (this.agent?.alive) await this.agent.stop();
    this.backend?.close();
    const filters = { label: [`${LABEL_AGENT}=${agentId(this.tmpdir)}`] };
    const left = await docker.listContainers({ all: true, filters });
    for (const c of left) await docker.getContainer(c.Id).remove({ force: true }).catch(() => {});
    const volumes = (await docker.listVolumes({ filters })).Volumes ?? [];
    for (const v of volumes) await docker.getVolume(v.Name).remove({ force: true }).catch(() => {});
    rmSync(this.dir, { recursive: true, force: true });
    return left.length + volumes.length;
  }
}

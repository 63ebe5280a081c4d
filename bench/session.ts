/**
 * One bench run's surroundings: its id and clock, a temp directory (the agent's tmpdir, the
 * floor's job directories, the agent's log and stats file), the watch on foreign containers,
 * the backend's wire and the agent process started with its hello checked, and the cleanup that
 * runs once whatever happens (Ctrl-C and SIGTERM included): SIGTERM to the agent, the wire
 * closed, the agent's log saved on request, containers left with the run's labels removed and
 * reported, the temp directory deleted. `start` hands the phases their context, a BenchRun.
 */
import { copyFileSync, mkdirSync, mkdtempSync, promises as fs, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import type Docker from "dockerode";
import { agentId, LABEL_AGENT } from "../src/docker/labels.js";
import { AgentProc } from "./agent-proc.js";
import { AgentJobs, TRIVIAL_LIMITS } from "./agent-jobs.js";
import { findDaemons, type Daemons } from "./cpu.js";
import { removeContainers, watchForeignContainers, type Engine, type ForeignContainers } from "./engine.js";
import { BENCH_LABEL, stopFloor, type FloorOptions } from "./floor.js";
import { log } from "./log.js";
import { CLI, COURSE, TASKS, type Options } from "./options.js";
import { procStatus, type ProcStatus } from "./proc.js";
import { now, sleep } from "./stats.js";
import { Wire } from "./wire-client.js";

/** What every phase works with: the agent running and answering, the wire, the floor's settings. */
export interface BenchRun {
  opts: Options;
  docker: Docker;
  /** Anything that goes wrong without stopping the run; ends in the JSON's `problems`. */
  problems: string[];
  wire: Wire;
  agent: AgentProc;
  jobs: AgentJobs;
  daemons: Daemons;
  foreign: ForeignContainers;
  floor: FloorOptions;
  /** When the run started (stats.now() clock). */
  started: number;
  /** 2 x cores: the concurrency of the CPU figures and of the big load. */
  twoX: number;
  /** The agent's --concurrency: the highest level, and at least 2 x cores. */
  maxC: number;
  /** The agent's RSS and threads 1.5 s after its hello. */
  idleStatus: ProcStatus | null;
  /** The run's temp directory (deleted at the end). */
  tmp: string;
  /** Starts a second agent for a phase of its own (see Session.spareAgent). */
  spareAgent(name: string, env: Record<string, string>): Promise<SpareAgent>;
}

/** A second agent, with its own wire, for a phase that must not disturb the first. */
export interface SpareAgent {
  agent: AgentProc;
  jobs: AgentJobs;
  /** SIGTERM, the wire closed, the containers it left removed. */
  stop(): Promise<void>;
}

/** When the run started: before the preflight, so that its duration counts it. */
export interface Clock {
  /** stats.now() clock */
  started: number;
  startedAt: string;
}

export const startClock = (): Clock => ({ started: now(), startedAt: new Date().toISOString() });

export class Session {
  readonly started: number;
  readonly startedAt: string;
  readonly runId: string;
  readonly cores = os.availableParallelism();
  readonly problems: string[] = [];
  /** Set by Ctrl-C or SIGTERM: batches of agent jobs stop. */
  stopping = false;
  wire: Wire | null = null;
  agent: AgentProc | null = null;
  /** The agent's command line after dist/src/cli.js. */
  agentArgs: string[] = [];
  readonly foreign: ForeignContainers;
  private readonly tmp = mkdtempSync(path.join(os.tmpdir(), "iad-bench-"));
  private readonly agentTmp = path.join(this.tmp, "agent");
  private readonly floorTmp = path.join(this.tmp, "floor");
  private readonly myAgentId: string;
  private cleaning: Promise<void> | null = null;

  constructor(readonly opts: Options, readonly engine: Engine, clock: Clock) {
    this.started = clock.started;
    this.startedAt = clock.startedAt;
    this.runId = clock.startedAt.replace(/[:.]/g, "-");
    mkdirSync(this.agentTmp);
    mkdirSync(this.floorTmp);
    const myAgentId = (this.myAgentId = agentId(this.agentTmp));
    this.foreign = watchForeignContainers(engine.docker, (l) => l[BENCH_LABEL] !== undefined || l[LABEL_AGENT] === myAgentId);
    // the agent must not outlive the bench, whatever happens
    const onSignal = (sig: NodeJS.Signals): void => this.onSignal(sig);
    process.once("SIGINT", onSignal);
    process.once("SIGTERM", onSignal);
    process.once("exit", () => {
      if (this.agent?.alive) this.agent.child.kill("SIGTERM");
      rmSync(this.tmp, { recursive: true, force: true });
    });
  }

  /** Starts the backend's wire and the agent, and waits for the agent's hello. */
  async start(): Promise<BenchRun> {
    const { opts, problems } = this;
    const daemons = findDaemons(problems);
    const wire = (this.wire = new Wire());
    const twoX = 2 * this.cores;
    const maxC = this.maxC;
    const args = (this.agentArgs = this.argsFor(await wire.address, this.agentTmp));
    log(`starting the agent: node ${process.env["BENCH_AGENT_NODE_ARGS"] ?? ""} dist/src/cli.js ${args.join(" ")}`);
    const agent = (this.agent = new AgentProc(CLI, args, this.tmp));
    await this.hello(wire, agent);
    await sleep(1500);
    const idleStatus = procStatus(agent.pid);
    const floor: FloorOptions = {
      docker: this.engine.docker, imageId: this.engine.sampleId, taskDir: path.join(TASKS, COURSE, "trivial"),
      workDir: this.floorTmp, memoryMb: TRIVIAL_LIMITS.memory, runId: this.runId,
    };
    const jobs = new AgentJobs(wire, agent, () => this.stopping);
    return {
      opts, docker: this.engine.docker, problems, wire, agent, jobs, daemons, foreign: this.foreign, floor,
      started: this.started, twoX, maxC, idleStatus, tmp: this.tmp, spareAgent: (name, env) => this.spareAgent(name, env),
    };
  }

  /** The agent's --concurrency: the highest level, and at least 2 x cores. */
  private get maxC(): number {
    return Math.max(...this.opts.levels, 2 * this.cores);
  }

  /** The agent's command line after dist/src/cli.js. */
  private argsFor(address: string, tmpdir: string): string[] {
    return [
      address, "--tmpdir", tmpdir, "--tasks", TASKS, "--concurrency", String(this.maxC),
      "--pool-threads", String(this.opts.poolThreads), "--debug-host", "127.0.0.1", "--friendly-name", "bench",
      ...this.opts.agentArgs,
    ];
  }

  /**
   * A second agent, the same command line with `env` added, on a wire of its own and in a
   * directory `name` of the run's temp directory; `stop` ends it and removes what it left.
   */
  private async spareAgent(name: string, env: Record<string, string>): Promise<SpareAgent> {
    const dir = path.join(this.tmp, name);
    const tmpdir = path.join(dir, "agent");
    mkdirSync(tmpdir, { recursive: true });
    const wire = new Wire();
    const agent = new AgentProc(CLI, this.argsFor(await wire.address, tmpdir), dir, env);
    const stop = async (): Promise<void> => {
      wire.pings(false);
      if (agent.alive) await agent.stop();
      await wire.close();
      const left = await removeContainers(this.engine.docker, `${LABEL_AGENT}=${agentId(tmpdir)}`);
      if (left > 0) this.problems.push(`${left} container(s) of the ${name} agent were left behind and removed by the bench`);
    };
    try {
      await this.hello(wire, agent);
    } catch (err) {
      await stop();
      throw err;
    }
    return { agent, jobs: new AgentJobs(wire, agent, () => this.stopping), stop };
  }

  /** The agent's hello within 60 s, offering both environments the bench uses. */
  private async hello(wire: Wire, a: AgentProc): Promise<void> {
    const hello = await Promise.race([
      wire.hello,
      a.exited.then(async (code) => {
        throw new Error(`the agent exited with status ${code} before saying hello:\n${await a.tail()}`);
      }),
      sleep(60_000).then(async () => {
        throw new Error(`no AgentHello within 60 s:\n${await a.tail()}`);
      }),
    ]);
    for (const [t, n] of [["docker", "default"], ["docker", "test-raw"]] as const) {
      if (!(hello.environments[t] ?? []).includes(n)) throw new Error(`the agent does not offer ${t}/${n}: ${JSON.stringify(hello.environments)}`);
    }
    log(`agent ${a.pid} said hello (${hello.slots} slots)`);
  }

  /** Stops everything the run started; runs once, however often it is called. */
  cleanup(): Promise<void> {
    return (this.cleaning ??= this.cleanupOnce());
  }

  private async cleanupOnce(): Promise<void> {
    const { wire, agent, opts, problems } = this;
    if (wire) wire.pings(false);
    if (agent?.alive) {
      log("stopping the agent (SIGTERM)");
      const code = await agent.stop();
      if (code !== 0) problems.push(`the agent exited with status ${code} after SIGTERM`);
    }
    if (wire) await wire.close();
    this.foreign.stop();
    if (opts.saveAgentLog && agent) {
      try {
        mkdirSync(opts.out, { recursive: true });
        copyFileSync(agent.logFile, path.join(opts.out, `${this.runId}.agent.log`));
      } catch (err) {
        problems.push(`could not save the agent's log: ${(err as Error).message}`);
      }
    }
    const docker = this.engine.docker;
    const left = (await removeContainers(docker, `${BENCH_LABEL}=${this.runId}`)) + (await removeContainers(docker, `${LABEL_AGENT}=${this.myAgentId}`));
    if (left > 0) problems.push(`${left} container(s) were left behind and removed by the bench`);
    try {
      const leftDirs = (await fs.readdir(this.agentTmp)).filter((d) => d.startsWith("job-"));
      if (leftDirs.length > 0) problems.push(`${leftDirs.length} job directorie(s) left in the agent's tmpdir`);
    } catch {
      /* gone */
    }
    rmSync(this.tmp, { recursive: true, force: true });
  }

  private onSignal(sig: NodeJS.Signals): void {
    log(`${sig}: cleaning up`);
    this.stopping = true;
    void (async () => {
      // floor jobs under way remove their own containers; then the rest goes
      await Promise.race([stopFloor(), sleep(20_000)]);
      await this.cleanup();
      await removeContainers(this.engine.docker, `${BENCH_LABEL}=${this.runId}`);
    })().finally(() => process.exit(130));
  }
}

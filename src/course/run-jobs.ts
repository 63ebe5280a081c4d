/**
 * The local mode's one contact with the grading agent: starts a `GradingAgent` with no backend
 * (jobs go through its own dispatch, pool and workers against the local engine), hands it
 * `BackendNewJob` messages and gives back each job's `AgentJobDone`. `grade` and `test` use only
 * this module to reach the agent. Ctrl-C (or SIGTERM) shuts the agent down: every open job ends
 * as `crash` and `interrupted` is set.
 */
import { AgentStartError, GradingAgent } from "../agent.js";
import { DEFAULT_DEBUG_PORTS, DEFAULT_PIDS_LIMIT, parsePortRange, type AgentConfig } from "../config.js";
import type { Logger } from "../log.js";
import { decodeJobDone, type AgentJobDone, type BackendNewJob, type Environments } from "../protocol/messages.js";

export interface LocalAgentOptions {
  /** The folder holding the courses. */
  tasks: string;
  tmpdir: string;
  /** Jobs run at once. */
  concurrency: number;
  verbose: boolean;
  /** Offer the `-ssh` environment types too. */
  ssh: boolean;
}

/** The agent could not start: no engine, or no way to use it. */
export class LocalAgentStartError extends Error {}

export interface LocalAgent {
  /** The environments the agent found, by type then name (as its hello to a backend says). */
  readonly environments: Environments;
  /** Runs one job; resolves with its result (a `crash` when the agent shuts down first). */
  run(job: BackendNewJob): Promise<AgentJobDone>;
  /** True once Ctrl-C or SIGTERM ended the run. */
  readonly interrupted: boolean;
  /** Ends open jobs, removes their containers, stops the pool. */
  close(): Promise<void>;
}

function configFor(o: LocalAgentOptions): AgentConfig {
  return {
    backend: "local",
    friendlyName: "local",
    debugHost: null,
    debugPorts: parsePortRange(DEFAULT_DEBUG_PORTS),
    tmpdir: o.tmpdir,
    tasks: o.tasks,
    concurrency: o.concurrency,
    verbose: o.verbose,
    debugmode: false,
    autorestart: false,
    ssh: o.ssh,
    runtimes: null,
    poolThreads: o.concurrency,
    pidsLimit: DEFAULT_PIDS_LIMIT,
    // one-off jobs: a warm container would only be made after they need it
    warm: 0,
    logDestination: 2,
  };
}

export async function startLocalAgent(o: LocalAgentOptions, log: Logger): Promise<LocalAgent> {
  let agent: GradingAgent;
  try {
    agent = await GradingAgent.start(configFor(o), log);
  } catch (err) {
    throw new LocalAgentStartError(err instanceof AgentStartError ? err.message : (err as Error).message);
  }
  const waiting = new Map<string, (done: AgentJobDone) => void>();
  agent.outbox.attach((m) => {
    const done = m.type === "EncodedJobDone" ? decodeJobDone(m.frame) : m.type === "AgentJobDone" ? m : null;
    if (done === null) return;
    const resolve = waiting.get(done.job_id);
    waiting.delete(done.job_id);
    resolve?.(done);
  });
  let interrupted = false;
  const onSignal = (): void => {
    interrupted = true;
    void agent.shutdown("Interrupted.");
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  return {
    environments: agent.hello().available_environments,
    get interrupted() {
      return interrupted;
    },
    run(job) {
      return new Promise<AgentJobDone>((resolve) => {
        waiting.set(job.job_id, resolve);
        agent.onNewJob(job);
      });
    },
    async close() {
      await agent.shutdown();
      process.off("SIGINT", onSignal);
      process.off("SIGTERM", onSignal);
    },
  };
}

/** One agent process + one fake backend + one tmpdir, and the proof that a test left nothing behind. */
import assert from "node:assert/strict";
import { AgentProcess, TASKS, tempDir } from "./agent-process.js";
import { FakeBackend } from "./backend.js";
import { dirListing, docker, engineContainers, eventually, requireDocker } from "./docker.js";
import { LABEL_AGENT, LABEL_ROLE, agentId } from "../../src/docker/labels.js";
import { JOB_DIR_PREFIX } from "../../src/jobs/job-directory.js";

export interface Session {
  backend: FakeBackend;
  agent: AgentProcess;
  tmpdir: string;
  stopPings: () => void;
  /** Checks that the containers are those of before the session and the tmpdir holds no job directory. */
  assertClean(): Promise<void>;
  /** Stops the agent and backend, checks that no container or directory is left, removes the tmpdir. */
  end(): Promise<void>;
}

/** The engine's volumes labelled with the agent of `tmpdir` (layered /task volumes). */
export async function agentVolumes(tmpdir: string): Promise<string[]> {
  const { Volumes } = await docker.listVolumes({ filters: { label: [`${LABEL_AGENT}=${agentId(tmpdir)}`] } });
  return (Volumes ?? []).map((v) => v.Name);
}

/**
 * Starts an agent (warm containers off unless `warm` is given) against a fake backend.
 * Between tests, idle warm containers and their directories are the pool, not leaks; after
 * the agent stops, nothing at all may be left.
 */
export async function startSession(
  extraArgs: string[] = [],
  opts: { ping?: boolean; images?: string[]; warm?: number; env?: NodeJS.ProcessEnv } = {},
): Promise<Session> {
  await requireDocker(opts.images);
  const tmp = tempDir("agent");
  const before = await engineContainers([tmp.path]);
  const backend = await new FakeBackend().start();
  // The backend comes first: --runtime takes every word after it, as in INGInious.
  const agent = new AgentProcess([
    backend.address, "--tmpdir", tmp.path, "--tasks", TASKS, "--concurrency", "4", "--debug-host", "127.0.0.1",
    "--warm", String(opts.warm ?? 0), ...extraArgs,
  ], opts.env ?? {});
  await backend.waitType("AgentHello", 30_000);
  const stopPings = opts.ping === false ? () => {} : backend.pingEvery(1000);
  return {
    backend,
    agent,
    tmpdir: tmp.path,
    stopPings,
    async assertClean() {
      const warmIds = async (): Promise<string[]> =>
        (await docker.listContainers({ all: true, filters: { label: [`${LABEL_AGENT}=${agentId(tmp.path)}`, `${LABEL_ROLE}=warm`] } }))
          .map((c) => c.Id);
      await eventually(async () => {
        const warm = new Set(await warmIds());
        assert.deepEqual((await engineContainers([tmp.path])).filter((id) => !warm.has(id)), before, "containers left behind");
        assert.deepEqual((await dirListing(tmp.path)).filter((d) => !d.startsWith("job-warm-")), [], "job directories left behind");
        const dirs = await dirListing(tmp.path);
        assert.ok(dirs.length <= warm.size, `a warm directory without its container: ${dirs.join(", ")} for ${warm.size} warm containers`);
        // a heavy task's warm containers hold its layer (warm-pool.ts): the pool's, not leaks
        const volumes = (await agentVolumes(tmp.path)).filter((v) => !v.startsWith(`inginious-task-${JOB_DIR_PREFIX}warm-`));
        assert.deepEqual(volumes, [], "volumes left behind");
      }, 60_000); // a job's cleanup removes a copied task of thousands of files: seconds when the machine is busy
    },
    async end() {
      stopPings();
      await agent.stop();
      backend.close();
      try {
        await eventually(async () => assert.deepEqual(await engineContainers([tmp.path]), before, "containers left behind"));
        assert.deepEqual(await dirListing(tmp.path), [], "job directories left behind");
        assert.deepEqual(await agentVolumes(tmp.path), [], "volumes left behind");
      } finally {
        tmp.remove();
      }
    },
  };
}

/**
 * The Docker engine and the checkout around a run: the preflight (the engine answers, its
 * version and cgroup version, the two images are there, the agent is built), a count of the
 * containers others create on the engine meanwhile (they share the CPU: a noise indicator),
 * the removal by label of whatever a run left behind, and the commit the agent was built from.
 */
import { execFileSync } from "node:child_process";
import { promises as fs } from "node:fs";
import Docker from "dockerode";
import { JsonLineSplitter } from "../src/protocol/json-lines.js";
import { CLI, RAW_IMAGE, REPO, SAMPLE_IMAGE } from "./options.js";
import { now } from "./stats.js";

export interface Engine {
  docker: Docker;
  dockerVersion: string;
  cgroupVersion: string;
  /** The id of the trivial job's image, which the floor creates its containers from. */
  sampleId: string;
}

/** The engine and what the run needs, or null after saying on stderr what is missing. */
export async function preflight(): Promise<Engine | null> {
  const docker = new Docker();
  let engine: Engine;
  try {
    await docker.ping();
    const dockerVersion = (await docker.version()).Version;
    const cgroupVersion = String(((await docker.info()) as { CgroupVersion?: string }).CgroupVersion ?? "?");
    const sampleId = (await docker.getImage(SAMPLE_IMAGE).inspect()).Id;
    await docker.getImage(RAW_IMAGE).inspect();
    engine = { docker, dockerVersion, cgroupVersion, sampleId };
  } catch (err) {
    process.stderr.write(`bench: Docker and the images ${SAMPLE_IMAGE} and ${RAW_IMAGE} are needed ` +
      `(scripts/ensure-docker.sh, images/build.sh): ${(err as Error).message}\n`);
    return null;
  }
  try {
    await fs.access(CLI);
  } catch {
    process.stderr.write(`bench: ${CLI} is missing: build first (npm run build)\n`);
    return null;
  }
  return engine;
}

/** Removes every container carrying `label` (key=value); returns how many it removed. */
export async function removeContainers(docker: Docker, label: string): Promise<number> {
  let n = 0;
  try {
    const list = await docker.listContainers({ all: true, filters: { label: [label] } });
    for (const c of list) {
      try {
        await docker.getContainer(c.Id).remove({ force: true, v: true });
        n++;
      } catch {
        /* gone */
      }
    }
  } catch {
    /* engine unreachable: nothing more to do */
  }
  return n;
}

export interface ForeignContainers {
  /** Containers others created between t0 and t1 (the whole run by default). */
  count(t0?: number, t1?: number): number;
  stop(): void;
}

/** Counts containers created by others while the bench runs (they share the engine and the CPU). */
export function watchForeignContainers(docker: Docker, mine: (labels: Record<string, string>) => boolean): ForeignContainers {
  const seen: number[] = [];
  let stream: NodeJS.ReadableStream | null = null;
  let stopped = false;
  docker.getEvents({ filters: { type: ["container"], event: ["create"] } }).then((s) => {
    stream = s;
    if (stopped) return void (s as unknown as { destroy(): void }).destroy();
    const lines = new JsonLineSplitter();
    s.on("data", (chunk: Buffer) => {
      for (const e of lines.push(chunk) as Array<{ Actor?: { Attributes?: Record<string, string> } }>) {
        if (!mine(e?.Actor?.Attributes ?? {})) seen.push(now());
      }
    });
    s.on("error", () => {});
  }, () => {});
  return {
    count: (t0 = 0, t1 = Infinity) => seen.filter((t) => t >= t0 && t <= t1).length,
    stop: () => {
      stopped = true;
      if (stream) (stream as unknown as { destroy(): void }).destroy();
    },
  };
}

/** The checkout the agent was built from, and how many files in src/ and workers/ differ from it. */
export function gitState(): { gitCommit: string | null; gitChangedFiles: number | null } {
  try {
    const commit = execFileSync("git", ["-C", REPO, "rev-parse", "HEAD"], { encoding: "utf8" }).trim();
    const changed = execFileSync("git", ["-C", REPO, "status", "--porcelain", "--", "src", "workers"], { encoding: "utf8" })
      .split("\n").filter((l) => l.trim() !== "").length;
    return { gitCommit: commit, gitChangedFiles: changed };
  } catch {
    return { gitCommit: null, gitChangedFiles: null };
  }
}

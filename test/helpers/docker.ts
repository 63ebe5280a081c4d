/** Docker for tests: required (a test that needs it fails without it), and snapshots to prove nothing leaked. */
import { promises as fs } from "node:fs";
import Docker from "dockerode";
import { LABEL_AGENT, agentId } from "../../src/docker/labels.js";
import { slow } from "./slowness.js";

export const docker = new Docker();
export const SAMPLE_IMAGE = "inginious-agent-docker/sample:latest";

/** Throws with a clear message when the engine or the test images are missing. */
export async function requireDocker(images: string[] = [SAMPLE_IMAGE]): Promise<void> {
  try {
    await docker.ping();
  } catch (err) {
    throw new Error(`Docker is required for this test and does not answer (${(err as Error).message}); run scripts/ensure-docker.sh`);
  }
  for (const image of images) {
    try {
      await docker.getImage(image).inspect();
    } catch {
      throw new Error(`test image ${image} is missing; run images/build.sh`);
    }
  }
}

export async function containerIds(): Promise<string[]> {
  return (await docker.listContainers({ all: true })).map((c) => c.Id).sort();
}

/**
 * The containers a leak check compares. By default (CI) every container of the engine. On an
 * engine shared with other work (IAD_TEST_SHARED_ENGINE=1) only those of the agents whose
 * --tmpdir is given.
 */
export async function engineContainers(tmpdirs: string[]): Promise<string[]> {
  if (process.env["IAD_TEST_SHARED_ENGINE"] !== "1") return containerIds();
  const ids: string[] = [];
  for (const dir of tmpdirs) {
    const list = await docker.listContainers({ all: true, filters: { label: [`${LABEL_AGENT}=${agentId(dir)}`] } });
    ids.push(...list.map((c) => c.Id));
  }
  return ids.sort();
}

export async function dirListing(dir: string): Promise<string[]> {
  try {
    return (await fs.readdir(dir)).sort();
  } catch {
    return [];
  }
}

/** Polls until `check` passes or the time is up (containers are removed asynchronously). */
export async function eventually(check: () => Promise<void> | void, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + slow(timeoutMs);
  for (;;) {
    try {
      await check();
      return;
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

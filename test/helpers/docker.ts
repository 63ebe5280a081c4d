/** Docker for tests: required (a test that needs it fails without it), and snapshots to prove nothing leaked. */
import { promises as fs } from "node:fs";
import Docker from "dockerode";

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

export async function dirListing(dir: string): Promise<string[]> {
  try {
    return (await fs.readdir(dir)).sort();
  } catch {
    return [];
  }
}

/** Polls until `check` passes or the time is up (containers are removed asynchronously). */
export async function eventually(check: () => Promise<void> | void, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
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

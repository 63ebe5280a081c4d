/**
 * The start-up check that decides how job directories get their task (src/jobs/task-layer.ts),
 * trying each way best first (src/jobs/layer-place.ts): the writable layers on the layers' place
 * (/dev/shm or --task-layers-dir) with metacopy, then without, then in job directories with
 * metacopy, then without, else copying as INGInious's agent does. Each try asks the engine for a
 * tiny overlay volume whose lower layer is a folder the agent makes in the courses' folder (the
 * filesystem the real ones will layer) holding a marker of random content; a short container of a
 * grading image reads the marker through the overlay and writes it back into the volume. The copy
 * it wrote must appear in the writable layer the agent sees, carry the marker the agent wrote, and
 * not reach the courses' folder: so the engine resolved both the courses' folder and the layer's
 * place to the agent's own folders (an engine that sees other paths, as for an agent in a container
 * whose tasks folder is mounted elsewhere on the host, fails it). Anything else (no overlay support,
 * a filesystem that refuses it as a layer or the options, a rootless engine) moves on to the next
 * way. The check's folders and volume are named by the agent id, so that agents sharing an engine
 * never meet in them, and carry the agent's labels and marker, so a run killed during the check
 * leaves nothing the next one keeps.
 */
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, promises as fs, readFileSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import type Docker from "dockerode";
import type { Logger } from "../log.js";
import { JOB_DIR_MARKER, JOB_DIR_PREFIX } from "../jobs/job-directory.js";
import type { TaskFolderMode } from "../jobs/layer-place.js";
import { taskVolumeName, unsafePathRefusal, taskVolumeSpec } from "../jobs/task-layer.js";
import { withDeadline } from "./deadline.js";
import { removeQuietly, removeVolumeQuietly } from "./engine.js";
import { containerLabels } from "./labels.js";

const PROBE = ".inginious-layer-probe";
const MARKER = "marker";
/** Exit status of the probe container when the lower layer the engine mounted has no marker. */
const NO_MARKER = 3;
const CHECK_MS = 60_000;

/** The way chosen, and why each better one was not. */
export interface TaskFolders {
  mode: TaskFolderMode;
  /** The agent's folder on the layers' place, where jobs' layer folders go; null: in job directories, or copied. */
  layersDir: string | null;
  metacopy: boolean;
  /** Why each better way was refused, best first. */
  refused: string[];
}

export interface LayerCheckSetup {
  tmpdir: string;
  coursesDir: string;
  /** The agent's folder on the layers' place (layer-place.ts makeAgentLayersDir), why it was refused, or null: no such place. */
  layers: { dir: string } | { refused: string } | null;
  /** A grading image to probe with, or null. */
  image: string | null;
  agent: string;
}

/** The check's lower layer: the agent's folder in the courses' folder, and the marker written there. */
interface CheckLower {
  dir: string;
  marker: string;
}

/** The name of the check's folder in the courses' folder. */
export function checkLowerName(agent: string): string {
  return `.inginious-layer-check-${agent}`;
}

function writeCheckLower(coursesDir: string, agent: string): CheckLower {
  const dir = path.join(realpathSync(coursesDir), checkLowerName(agent));
  rmSync(dir, { recursive: true, force: true }); // a killed check's
  mkdirSync(dir, { mode: 0o700 });
  const marker = randomBytes(16).toString("hex");
  writeFileSync(path.join(dir, MARKER), marker, { flag: "wx", mode: 0o600 });
  return { dir, marker };
}

/** Tries each way in turn; the first that works is used. */
export async function chooseTaskFolders(docker: Docker, s: LayerCheckSetup, log: Logger): Promise<TaskFolders> {
  const refused: string[] = [];
  if (s.layers !== null && "refused" in s.layers) refused.push(`layers-dir: ${s.layers.refused}`);
  const copy = (why: string): TaskFolders => ({ mode: "copy", layersDir: null, metacopy: false, refused: [...refused, why] });
  if (s.image === null) return copy("no grading image to try it with");
  if (!existsSync(s.coursesDir)) return copy(`the courses' folder ${s.coursesDir} does not exist`);
  let lower: CheckLower;
  try {
    lower = writeCheckLower(s.coursesDir, s.agent);
  } catch (err) {
    return copy(`cannot write the check's marker in the courses' folder ${s.coursesDir}, which proves the engine sees that folder: ${(err as Error).message}`);
  }
  try {
    const places: { base: string; own: boolean }[] = [];
    if (s.layers !== null && "dir" in s.layers) places.push({ base: s.layers.dir, own: true });
    places.push({ base: s.tmpdir, own: false });
    for (const { base, own } of places) {
      for (const metacopy of [true, false]) {
        const mode = `${own ? "layers-dir" : "job-dir"}${metacopy ? "-metacopy" : ""}` as TaskFolderMode;
        const why = await probe(docker, s, base, metacopy, lower, log);
        if (why === null) return { mode, layersDir: own ? base : null, metacopy, refused };
        refused.push(`${mode}: ${why}`);
      }
    }
    return copy("the engine cannot layer task folders here");
  } finally {
    await fs.rm(lower.dir, { recursive: true, force: true }).catch((err: Error) => log.warn({ dir: lower.dir, err: err.message }, "cannot remove the layer check's folder"));
  }
}

/** Null when a layer over `lower` with its writable part under `base` works and is the agent's; else why not. */
async function probe(docker: Docker, s: LayerCheckSetup, base: string, metacopy: boolean, lower: CheckLower, log: Logger): Promise<string | null> {
  const image = s.image!;
  const dir = path.resolve(base, `${JOB_DIR_PREFIX}layer-check-${s.agent}`);
  const refused = unsafePathRefusal(lower.dir, dir);
  if (refused !== null) return refused;
  const labels = containerLabels(s.agent, "layer-check", "grading");
  if (!(await removeLayerFolder(docker, image, dir, labels, log))) return `cannot remove ${dir} left by an earlier check`;
  const volume = taskVolumeName(dir);
  const upper = path.join(dir, "upper");
  try {
    mkdirSync(dir, { mode: 0o700 });
    writeFileSync(path.join(dir, JOB_DIR_MARKER), s.agent);
    mkdirSync(upper);
    mkdirSync(path.join(dir, "work"));
  } catch (err) {
    await fs.rm(dir, { recursive: true, force: true }).catch(() => {});
    return `cannot make ${dir}: ${(err as Error).message}`;
  }
  let container: Docker.Container | null = null;
  try {
    const spec = taskVolumeSpec(volume, lower.dir, upper, path.join(dir, "work"), labels, metacopy);
    await withDeadline("volume create", CHECK_MS, () => docker.createVolume(spec));
    container = await docker.createContainer({
      Image: image, Cmd: ["sh", "-c", `m=$(cat /layer/${MARKER}) || exit ${NO_MARKER}; printf %s "$m" > /layer/${PROBE}`], Labels: labels, User: "0",
      HostConfig: { Binds: [`${volume}:/layer`], NetworkMode: "none", LogConfig: { Type: "none", Config: {} } },
    });
    await withDeadline("start", CHECK_MS, () => container!.start());
    const { StatusCode } = (await withDeadline("wait", CHECK_MS, () => container!.wait())) as { StatusCode: number };
    if (StatusCode === NO_MARKER) return `the engine's overlay shows no marker: the engine does not see the agent's folder ${lower.dir} at that path`;
    if (StatusCode !== 0) return `the probe container exited with ${StatusCode}`;
    if (!existsSync(path.join(upper, PROBE))) return "the engine's overlay wrote somewhere the agent does not see";
    if (existsSync(path.join(lower.dir, PROBE))) return "the probe's write reached the courses' folder";
    if (readFileSync(path.join(upper, PROBE), "utf8") !== lower.marker) {
      return `the marker read through the engine's overlay is not the one the agent wrote in ${lower.dir}: the engine sees another folder at that path`;
    }
    return null;
  } catch (err) {
    return `the engine could not mount an overlay volume: ${(err as Error).message}`;
  } finally {
    if (container !== null) await removeQuietly(docker, container.id, log);
    await removeVolumeQuietly(docker, volume, log);
    if (!(await removeLayerFolder(docker, image, dir, labels, log))) log.warn({ dir }, "cannot remove the layer check's directory");
  }
}

/**
 * Removes a layer folder (or a job directory holding one); an agent that is not root cannot
 * remove the overlay's `work/work` (the kernel makes it root's, mode 000) nor what a container
 * wrote as root: a short root container of a grading image (when there is one) removes them
 * first. True when the folder is gone.
 */
export async function removeLayerFolder(docker: Docker, image: string | null, dir: string, labels: Record<string, string>, log: Logger): Promise<boolean> {
  try {
    await fs.rm(dir, { recursive: true, force: true });
    return true;
  } catch (err) {
    if (image === null) {
      log.debug({ dir, err: (err as Error).message }, "cannot remove a layer folder, and no grading image to remove root's files with");
      return false;
    }
  }
  let helper: Docker.Container | null = null;
  try {
    helper = await docker.createContainer({
      Image: image, Cmd: ["rm", "-rf", "/d/upper", "/d/work"], Labels: labels, User: "0",
      HostConfig: { Binds: [`${dir}:/d`], NetworkMode: "none", LogConfig: { Type: "none", Config: {} } },
    });
    await withDeadline("start", CHECK_MS, () => helper!.start());
    await withDeadline("wait", CHECK_MS, () => helper!.wait());
    await fs.rm(dir, { recursive: true, force: true });
    return true;
  } catch (err) {
    log.debug({ dir, err: (err as Error).message }, "cannot remove a layer folder");
    return false;
  } finally {
    if (helper !== null) await removeQuietly(docker, helper.id, log);
  }
}

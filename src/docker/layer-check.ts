/**
 * The start-up check that decides how job directories get their task (src/jobs/task-layer.ts),
 * trying each way best first (src/jobs/layer-place.ts): the writable layers on the layers' place
 * (/dev/shm or --task-layers-dir) with metacopy, then without, then in job directories with
 * metacopy, then without, else copying as INGInious's agent does. Each try asks the engine for a
 * tiny overlay volume over the courses' folder (the filesystem the real ones will layer), a short
 * container of a grading image writes a file into it, and the file must appear in the writable
 * layer the agent sees and not in the courses' folder. Anything else (no overlay support, a
 * filesystem that refuses it as a layer or the options, an engine that sees other paths, a
 * rootless engine) moves on to the next way. The volume, container and directory carry the
 * agent's labels and marker, so a run killed during the check leaves nothing the next one keeps.
 */
import { existsSync, mkdirSync, promises as fs, realpathSync, writeFileSync } from "node:fs";
import path from "node:path";
import type Docker from "dockerode";
import type { Logger } from "../log.js";
import { JOB_DIR_MARKER, JOB_DIR_PREFIX } from "../jobs/job-directory.js";
import { makeAgentLayersDir, type TaskFolderMode } from "../jobs/layer-place.js";
import { taskVolumeName, unsafePathRefusal, taskVolumeSpec } from "../jobs/task-layer.js";
import { withDeadline } from "./deadline.js";
import { removeQuietly, removeVolumeQuietly } from "./engine.js";
import { containerLabels } from "./labels.js";

const PROBE = ".inginious-layer-probe";
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
  /** The layers' place (layer-place.ts chosenLayersDir), or null: job directories only. */
  layersPlace: string | null;
  /** A grading image to probe with, or null. */
  image: string | null;
  agent: string;
}

/** Tries each way in turn; the first that works is used. */
export async function chooseTaskFolders(docker: Docker, s: LayerCheckSetup, log: Logger): Promise<TaskFolders> {
  const refused: string[] = [];
  const copy = (why: string): TaskFolders => ({ mode: "copy", layersDir: null, metacopy: false, refused: [...refused, why] });
  if (s.image === null) return copy("no grading image to try it with");
  if (!existsSync(s.coursesDir)) return copy(`the courses' folder ${s.coursesDir} does not exist`);
  const places: { base: string; own: boolean }[] = [];
  if (s.layersPlace !== null) {
    try {
      places.push({ base: makeAgentLayersDir(s.layersPlace, s.agent), own: true });
    } catch (err) {
      refused.push(`layers-dir: ${(err as Error).message}`);
    }
  }
  places.push({ base: s.tmpdir, own: false });
  for (const { base, own } of places) {
    for (const metacopy of [true, false]) {
      const mode = `${own ? "layers-dir" : "job-dir"}${metacopy ? "-metacopy" : ""}` as TaskFolderMode;
      const why = await probe(docker, s, base, metacopy, log);
      if (why === null) return { mode, layersDir: own ? base : null, metacopy, refused };
      refused.push(`${mode}: ${why}`);
    }
  }
  return copy("the engine cannot layer task folders here");
}

/** Null when a layer with its writable part under `base` works; else why not. */
async function probe(docker: Docker, s: LayerCheckSetup, base: string, metacopy: boolean, log: Logger): Promise<string | null> {
  const image = s.image!;
  const dir = path.resolve(base, `${JOB_DIR_PREFIX}layer-check`);
  const refused = unsafePathRefusal(realpathSync(s.coursesDir), dir);
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
    const spec = taskVolumeSpec(volume, realpathSync(s.coursesDir), upper, path.join(dir, "work"), labels, metacopy);
    await withDeadline("volume create", CHECK_MS, () => docker.createVolume(spec));
    container = await docker.createContainer({
      Image: image, Cmd: ["sh", "-c", `echo ok > /layer/${PROBE}`], Labels: labels, User: "0",
      HostConfig: { Binds: [`${volume}:/layer`], NetworkMode: "none", LogConfig: { Type: "none", Config: {} } },
    });
    await withDeadline("start", CHECK_MS, () => container!.start());
    const { StatusCode } = (await withDeadline("wait", CHECK_MS, () => container!.wait())) as { StatusCode: number };
    if (StatusCode !== 0) return `the probe container exited with ${StatusCode}`;
    if (!existsSync(path.join(upper, PROBE))) return "the engine's overlay wrote somewhere the agent does not see";
    if (existsSync(path.join(s.coursesDir, PROBE))) return "the probe's write reached the courses' folder";
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
 * wrote as root: a short root container of a grading image removes them first. True when the
 * folder is gone.
 */
export async function removeLayerFolder(docker: Docker, image: string, dir: string, labels: Record<string, string>, log: Logger): Promise<boolean> {
  try {
    await fs.rm(dir, { recursive: true, force: true });
    return true;
  } catch {
    /* files of root's: below */
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

/**
 * The start-up check that decides how job directories get their task (src/jobs/task-layer.ts):
 * the engine is asked for a tiny overlay volume over the courses' folder (the filesystem the real
 * ones will layer), a short container of a grading image writes a file into it, and the file must
 * appear in the writable layer the agent sees and not in the courses' folder. Anything else (no
 * overlay support, a filesystem that refuses it, an engine that sees other paths, a rootless
 * engine) means copying, as INGInious's agent does. The volume, container and directory carry the
 * agent's labels and marker, so a run killed during the check leaves nothing the next one keeps.
 */
import { existsSync, mkdirSync, promises as fs, realpathSync, writeFileSync } from "node:fs";
import path from "node:path";
import type Docker from "dockerode";
import type { Logger } from "../log.js";
import { JOB_DIR_MARKER, JOB_DIR_PREFIX } from "../jobs/job-directory.js";
import { taskVolumeName, unsafePathRefusal, taskVolumeSpec } from "../jobs/task-layer.js";
import { withDeadline } from "./deadline.js";
import { removeQuietly, removeVolumeQuietly } from "./engine.js";
import { containerLabels } from "./labels.js";

const PROBE = ".inginious-layer-probe";
const CHECK_MS = 60_000;

/** Null when layered task folders work here; else why not. */
export async function layerCheck(docker: Docker, tmpdir: string, coursesDir: string, image: string | null, agent: string, log: Logger): Promise<string | null> {
  if (image === null) return "no grading image to try it with";
  if (!existsSync(coursesDir)) return `the courses' folder ${coursesDir} does not exist`;
  const dir = path.resolve(tmpdir, `${JOB_DIR_PREFIX}layer-check`);
  const refused = unsafePathRefusal(realpathSync(coursesDir), dir);
  if (refused !== null) return refused;
  const labels = containerLabels(agent, "layer-check", "grading");
  if (!(await removeCheckDir(docker, image, dir, labels, log))) return `cannot remove ${dir} left by an earlier check`;
  mkdirSync(dir, { mode: 0o700 });
  writeFileSync(path.join(dir, JOB_DIR_MARKER), agent);
  const volume = taskVolumeName(dir);
  const upper = path.join(dir, "upper");
  let container: Docker.Container | null = null;
  try {
    mkdirSync(upper);
    mkdirSync(path.join(dir, "work"));
    await withDeadline("volume create", CHECK_MS, () => docker.createVolume(taskVolumeSpec(volume, realpathSync(coursesDir), upper, path.join(dir, "work"), labels)));
    container = await docker.createContainer({
      Image: image, Cmd: ["sh", "-c", `echo ok > /layer/${PROBE}`], Labels: labels, User: "0",
      HostConfig: { Binds: [`${volume}:/layer`], NetworkMode: "none", LogConfig: { Type: "none", Config: {} } },
    });
    await withDeadline("start", CHECK_MS, () => container!.start());
    const { StatusCode } = (await withDeadline("wait", CHECK_MS, () => container!.wait())) as { StatusCode: number };
    if (StatusCode !== 0) return `the probe container exited with ${StatusCode}`;
    if (!existsSync(path.join(upper, PROBE))) return "the engine's overlay wrote somewhere the agent does not see";
    if (existsSync(path.join(coursesDir, PROBE))) return "the probe's write reached the courses' folder";
    return null;
  } catch (err) {
    return `the engine could not mount an overlay volume: ${(err as Error).message}`;
  } finally {
    if (container !== null) await removeQuietly(docker, container.id, log);
    await removeVolumeQuietly(docker, volume, log);
    if (!(await removeCheckDir(docker, image, dir, labels, log))) log.warn({ dir }, "cannot remove the layer check's directory");
  }
}

/**
 * Removes the check's directory; an agent that is not root cannot remove the overlay's
 * `work/work` (the kernel makes it root's, mode 000) nor what the probe wrote: a short root
 * container of the probe's image removes them first. True when the directory is gone.
 */
async function removeCheckDir(docker: Docker, image: string, dir: string, labels: Record<string, string>, log: Logger): Promise<boolean> {
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
    log.debug({ dir, err: (err as Error).message }, "cannot remove the layer check's directory");
    return false;
  } finally {
    if (helper !== null) await removeQuietly(docker, helper.id, log);
  }
}

/** The periodic check's part for volumes (see reconcile.ts): this agent's that no container uses and no job or warm container owns go. */
import type Docker from "dockerode";
import type { Logger } from "../log.js";
import { removeVolumeQuietly } from "./engine.js";
import { LABEL_AGENT } from "./labels.js";
import { findOrphanVolumes } from "./reconcile.js";

/** `owned`: read after the list, so that a volume made meanwhile (not in the list) is never taken for an orphan. */
export async function removeOrphanVolumes(docker: Docker, agent: string, owned: () => ReadonlySet<string>, log: Logger): Promise<void> {
  let dangling: string[];
  try {
    const { Volumes } = await docker.listVolumes({ filters: { label: [`${LABEL_AGENT}=${agent}`], dangling: ["true"] } });
    dangling = (Volumes ?? []).map((v) => v.Name);
  } catch (err) {
    log.warn({ err: (err as Error).message }, "failed to list volumes for reconciliation");
    return;
  }
  for (const name of findOrphanVolumes(dangling, owned())) {
    log.warn({ volume: name }, "removing a volume no running job owns");
    await removeVolumeQuietly(docker, name, log);
  }
}

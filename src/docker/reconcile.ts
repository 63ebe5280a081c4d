/**
 * The periodic check that the engine and the agent agree: containers labelled as this agent's
 * that no running job owns (a worker died, an event was lost) are removed, and so are its layered
 * /task volumes that no container uses and no job or warm container owns (a volume the engine kept
 * because its container outlived its job's cleanup).
 */
export interface ListedContainer {
  Id: string;
  /** Unix seconds. */
  Created: number;
}

/** Containers to remove: not owned by a running job, and old enough not to be one being recorded. */
export function findOrphans(
  listed: readonly ListedContainer[],
  owned: ReadonlySet<string>,
  nowSeconds: number,
  graceSeconds = 60,
): string[] {
  return listed.filter((c) => !owned.has(c.Id) && nowSeconds - c.Created > graceSeconds).map((c) => c.Id);
}

/**
 * Volumes to remove: this agent's, used by no container (the engine's `dangling`), and not owned by
 * a job or a warm container, whose worker may have made the volume and not yet its container.
 */
export function findOrphanVolumes(danglingNames: readonly string[], owned: ReadonlySet<string>): string[] {
  return danglingNames.filter((name) => !owned.has(name));
}

/**
 * The periodic check that the engine and the agent agree: containers labelled as this agent's
 * that no running job owns (a worker died, an event was lost) are removed.
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

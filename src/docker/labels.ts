/** Labels on every container the agent creates, so that it can find (and only find) its own. */
import { createHash } from "node:crypto";
import os from "node:os";
import path from "node:path";

export const LABEL_AGENT = "org.inginious-agent-docker.agent";
export const LABEL_JOB = "org.inginious-agent-docker.job";
export const LABEL_ROLE = "org.inginious-agent-docker.role";

export type ContainerRole = "grading" | "student" | "warm";

/** Stable id of one agent installation: the host name and the absolute --tmpdir. */
export function agentId(tmpdir: string, hostname = os.hostname()): string {
  return createHash("sha256").update(`${hostname}\0${path.resolve(tmpdir)}`).digest("hex").slice(0, 16);
}

export function containerLabels(agent: string, jobId: string, role: ContainerRole): Record<string, string> {
  return { [LABEL_AGENT]: agent, [LABEL_JOB]: jobId, [LABEL_ROLE]: role };
}

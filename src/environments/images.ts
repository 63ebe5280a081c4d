/** Grading environments from the labels of local Docker images (protocol.md section 3). */
import type { RuntimeSpec } from "../config.js";
import type { Environments } from "../protocol/messages.js";

export const AGENT_VERSION = "4";
export const LABEL_NAME = "org.inginious.grading.name";
const LABEL_VERSION = "org.inginious.grading.agent_version";
const LABEL_PORTS = "org.inginious.grading.ports";
const LABEL_NEED_ROOT = "org.inginious.grading.need_root";
const LABEL_NEED_GPU = "org.inginious.grading.need_gpu";
const LABEL_ADVERTISE = "org.inginious.grading.advertise";

export interface ImageSummary {
  Id: string;
  Created: number;
  Labels: Record<string, string> | null;
}

export interface EnvironmentProblem {
  image: string;
  name: string | null;
  reason: string;
}

export interface Discovery {
  environments: Environments;
  problems: EnvironmentProblem[];
}

function parsePorts(text: string): number[] {
  const ports = text.split(",").map((p) => p.trim()).filter((p) => p !== "").map((p) => {
    if (!/^\d+$/.test(p) || +p < 1 || +p > 65535) throw new Error(`bad port ${JSON.stringify(p)} in ${LABEL_PORTS}`);
    return parseInt(p, 10);
  });
  return [...new Set(ports)];
}

/** For each runtime's envtype, the newest image of each name that fits it. */
export function discoverEnvironments(images: readonly ImageSummary[], runtimes: readonly RuntimeSpec[]): Discovery {
  const environments: Environments = {};
  const problems: EnvironmentProblem[] = [];
  for (const rt of runtimes) environments[rt.envtype] = {};
  for (const image of images) {
    const labels = image.Labels ?? {};
    const name = labels[LABEL_NAME];
    if (name === undefined) continue;
    if (labels[LABEL_VERSION] !== AGENT_VERSION) {
      problems.push({
        image: image.Id, name,
        reason: `made for agent version ${labels[LABEL_VERSION] ?? "(none)"}, this agent speaks version ${AGENT_VERSION}: ignored`,
      });
      continue;
    }
    let ports: number[];
    try {
      ports = labels[LABEL_PORTS] !== undefined ? parsePorts(labels[LABEL_PORTS]) : [];
    } catch (err) {
      problems.push({ image: image.Id, name, reason: `${(err as Error).message}: ignored` });
      continue;
    }
    for (const rt of runtimes) {
      if (labels[LABEL_NEED_ROOT] !== undefined && !rt.runAsRoot) continue;
      if (labels[LABEL_NEED_GPU] !== undefined && !rt.gpu) continue;
      const byName = environments[rt.envtype]!;
      const current = byName[name];
      if (current !== undefined && current.created >= image.Created) continue;
      byName[name] = {
        id: image.Id,
        title: name,
        created: image.Created,
        ports,
        runtime: rt.runtime,
        advertised: (labels[LABEL_ADVERTISE] ?? "true") === "true",
      };
    }
  }
  return { environments, problems };
}

/**
 * Records the engine's container events live, from the moment `recordEvents` resolves until
 * `stop()`: the engine keeps only its last few hundred events, too few to ask for them afterwards
 * on an engine shared with other work.
 */
import { parseContainerEvent, type ContainerEvent } from "../../src/docker/events.js";
import { LABEL_JOB } from "../../src/docker/labels.js";
import { JsonLineSplitter } from "../../src/protocol/json-lines.js";
import { docker } from "./docker.js";

export interface EventRecorder {
  readonly events: ContainerEvent[];
  /** Events of one job's containers (by the job label the agent puts on them). */
  ofJob(jobId: string): ContainerEvent[];
  stop(): void;
}

/** `labels` as the engine filters them (`key=value`, all must match); `actions` such as die, kill, destroy. */
export async function recordEvents(labels: string[], actions: string[]): Promise<EventRecorder> {
  const stream = (await docker.getEvents({
    filters: { type: ["container"], event: actions, label: labels },
  })) as unknown as NodeJS.ReadableStream & { destroy(): void };
  const events: ContainerEvent[] = [];
  const lines = new JsonLineSplitter();
  stream.on("data", (chunk: Buffer) => {
    for (const value of lines.push(chunk)) {
      const ev = parseContainerEvent(value);
      if (ev !== null) events.push(ev);
    }
  });
  stream.on("error", () => {});
  return {
    events,
    ofJob: (jobId) => events.filter((e) => e.attributes[LABEL_JOB] === jobId),
    stop: () => stream.destroy(),
  };
}

/**
 * `inginious-agent-docker grade`: runs jobs through the agent's own dispatch and workers
 * against the local engine, without a backend, and prints their results.
 */
import { promises as fs } from "node:fs";
import path from "node:path";
import { AgentStartError, GradingAgent } from "./agent.js";
import { parsePortRange, DEFAULT_DEBUG_PORTS, DEFAULT_PIDS_LIMIT, type AgentConfig } from "./config.js";
import { createLogger } from "./log.js";
import { decodeJobDone, roundGrade, type AgentJobDone, type BackendNewJob } from "./protocol/messages.js";

export interface GradeOptions {
  tasks: string;
  inputs: string[];
  env: string;
  envtype: string;
  time: number;
  hardTime: number | null;
  memory: number;
  network: boolean;
  debug: boolean;
  tmpdir: string;
  concurrency: number;
  json: boolean;
  verbose: boolean;
}

/** Reads an input file: a JSON map; `{"$file": PATH}` values become uploaded files. */
export async function readInput(file: string): Promise<Record<string, unknown>> {
  const value: unknown = JSON.parse(await fs.readFile(file, "utf8"));
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new Error(`${file}: the input must be a JSON object`);
  }
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    const ref = (v as { $file?: unknown } | null)?.$file;
    if (typeof ref === "string") {
      const p = path.resolve(path.dirname(file), ref);
      out[k] = { filename: path.basename(p), value: await fs.readFile(p) };
    } else out[k] = v;
  }
  return out;
}

function printable(done: AgentJobDone, source: string): Record<string, unknown> {
  return {
    input: source,
    result: done.result[0],
    text: done.result[1],
    grade: roundGrade(done.grade),
    problems: done.problems,
    tests: done.tests,
    custom: done.custom,
    state: done.state,
    archive: done.archive === null ? null : { bytes: done.archive.length, base64: Buffer.from(done.archive).toString("base64") },
    stdout: done.stdout,
    stderr: done.stderr,
  };
}

function summary(done: AgentJobDone, source: string): string {
  const [result, text] = done.result;
  const lines = [`${source}: ${result} (grade ${roundGrade(done.grade)})`];
  if (text) lines.push(...text.trim().split("\n").map((l) => `    ${l}`));
  for (const [pid, p] of Object.entries(done.problems)) lines.push(`    problem ${pid}: ${JSON.stringify(p)}`);
  return lines.join("\n");
}

/** COURSE/TASK and its folder checked, or the exit code after saying what is wrong. */
async function resolveTask(taskRef: string, tasks: string): Promise<{ courseId: string | null; taskId: string | null } | number> {
  if (taskRef === "-") return { courseId: null, taskId: null };
  const m = /^([^/]+)\/([^/]+)$/.exec(taskRef);
  if (!m) {
    process.stderr.write(`error: expected COURSE/TASK (or - for a task-less job), got ${JSON.stringify(taskRef)}\n`);
    return 2;
  }
  const [courseId, taskId] = [m[1]!, m[2]!];
  const dir = path.join(tasks, courseId, taskId);
  if (!(await fs.stat(dir).then((s) => s.isDirectory(), () => false))) {
    process.stderr.write(`error: no task folder ${dir} (is --tasks right?)\n`);
    return 1;
  }
  return { courseId, taskId };
}

/** The agent's settings for one `grade` run of `jobs` jobs: no backend, no SSH, no warm containers. */
function gradeConfig(o: GradeOptions, jobs: number): AgentConfig {
  return {
    backend: "local",
    friendlyName: "grade",
    debugHost: null,
    debugPorts: parsePortRange(DEFAULT_DEBUG_PORTS),
    tmpdir: o.tmpdir,
    tasks: o.tasks,
    concurrency: o.concurrency,
    verbose: o.verbose,
    debugmode: false,
    autorestart: false,
    ssh: false,
    runtimes: null,
    poolThreads: Math.min(o.concurrency, jobs),
    pidsLimit: DEFAULT_PIDS_LIMIT,
    // one-off jobs: a warm container would only be made after they need it
    warm: 0,
    logDestination: 2,
  };
}

function gradeJob(jobId: string, task: { courseId: string | null; taskId: string | null }, inputdata: Record<string, unknown>, o: GradeOptions): BackendNewJob {
  return {
    type: "BackendNewJob",
    job_id: jobId,
    course_id: task.courseId,
    task_id: task.taskId,
    task_problems: {},
    inputdata,
    environment_type: o.envtype,
    environment: o.env,
    environment_parameters: {
      limits: { time: o.time, hard_time: o.hardTime ?? o.time * 3, memory: o.memory },
      network_grading: o.network,
      run_cmd: null,
    },
    debug: o.debug,
  };
}

export async function runGrade(taskRef: string, o: GradeOptions): Promise<number> {
  const log = createLogger({ verbose: o.verbose, quiet: true, destination: 2 });
  const task = await resolveTask(taskRef, o.tasks);
  if (typeof task === "number") return task;
  const sources = o.inputs.length > 0 ? o.inputs : ["(empty input)"];
  let inputs: Record<string, unknown>[];
  try {
    inputs = o.inputs.length > 0 ? await Promise.all(o.inputs.map(readInput)) : [{}];
  } catch (err) {
    process.stderr.write(`error: ${(err as Error).message}\n`);
    return 1;
  }
  let agent: GradingAgent;
  try {
    agent = await GradingAgent.start(gradeConfig(o, inputs.length), log);
  } catch (err) {
    process.stderr.write(`error: ${err instanceof AgentStartError ? err.message : (err as Error).message}\n`);
    return 1;
  }
  const env = agent.hello().available_environments[o.envtype]?.[o.env];
  if (env === undefined) {
    process.stderr.write(
      `error: no grading image for environment ${o.envtype}/${o.env} (build one: images/build.sh --sample-only)\n`,
    );
    await agent.shutdown();
    return 1;
  }
  const results = new Map<string, AgentJobDone>();
  const allDone = new Promise<void>((resolve) => {
    agent.send = (m) => {
      if (m.type === "EncodedJobDone") results.set(m.job_id, decodeJobDone(m.frame));
      else if (m.type === "AgentJobDone") results.set(m.job_id, m);
      else return;
      if (results.size === inputs.length) resolve();
    };
  });
  const onSignal = (): void => {
    agent.shutdown("Interrupted.").catch((err: unknown) => log.error({ err: (err as Error).message }, "failed to stop after a signal"));
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  inputs.forEach((inputdata, i) => agent.onNewJob(gradeJob(`grade-${process.pid}-${i}`, task, inputdata, o)));
  await allDone;
  await agent.shutdown();
  process.off("SIGINT", onSignal);
  process.off("SIGTERM", onSignal);
  inputs.forEach((_, i) => {
    const done = results.get(`grade-${process.pid}-${i}`)!;
    const source = sources[i]!;
    process.stdout.write(o.json ? `${JSON.stringify(printable(done, source))}\n` : `${summary(done, source)}\n`);
  });
  return 0;
}

/**
 * `inginious-agent-docker grade`: runs jobs through the agent's own dispatch and workers
 * against the local engine, without a backend, and prints their results. A job for COURSE/TASK
 * is the one the frontend would send from the task's `task.yaml`; flags given override it.
 */
import { promises as fs } from "node:fs";
import path from "node:path";
import { resultFields } from "./course/compare.js";
import { startLocalAgent, type LocalAgent } from "./course/run-jobs.js";
import { jobFromTask, tasklessJob, type JobOverrides } from "./course/task-job.js";
import { NotAContainerTaskError, readTask } from "./course/task-yaml.js";
import { isValidId } from "./jobs/ids.js";
import { createLogger } from "./log.js";
import { roundGrade, type AgentJobDone, type BackendNewJob } from "./protocol/messages.js";

export interface GradeOptions extends JobOverrides {
  tasks: string;
  inputs: string[];
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
    ...resultFields(done),
    archive: done.archive === null ? null : { bytes: done.archive.length, base64: Buffer.from(done.archive).toString("base64") },
  };
}

function summary(done: AgentJobDone, source: string): string {
  const [result, text] = done.result;
  const lines = [`${source}: ${result} (grade ${roundGrade(done.grade)})`];
  if (text) lines.push(...text.trim().split("\n").map((l) => `    ${l}`));
  for (const [pid, p] of Object.entries(done.problems)) lines.push(`    problem ${pid}: ${JSON.stringify(p)}`);
  return lines.join("\n");
}

/** The jobs for the inputs: from the task's task.yaml (flags given override it), or task-less. */
async function buildJobs(taskRef: string, inputs: Record<string, unknown>[], o: GradeOptions): Promise<BackendNewJob[]> {
  const jobId = (i: number): string => `grade-${process.pid}-${i}`;
  if (taskRef === "-") return inputs.map((input, i) => tasklessJob(jobId(i), input, o, o.debug));
  const [courseId, taskId] = taskRef.split("/") as [string, string];
  const task = await readTask(o.tasks, courseId, taskId);
  return inputs.map((input, i) => jobFromTask(task, { jobId: jobId(i), courseId, taskId }, input, o, o.debug));
}

export async function runGrade(taskRef: string, o: GradeOptions): Promise<number> {
  const log = createLogger({ verbose: o.verbose, quiet: true, destination: 2 });
  const fail = (message: string, code = 1): number => {
    process.stderr.write(`error: ${message}\n`);
    return code;
  };
  if (taskRef !== "-") {
    const m = /^([^/]+)\/([^/]+)$/.exec(taskRef);
    if (!m) return fail(`expected COURSE/TASK (or - for a task-less job), got ${JSON.stringify(taskRef)}`, 2);
    if (!isValidId(m[1]!) || !isValidId(m[2]!)) {
      return fail(
        `${JSON.stringify(taskRef)} is not a valid COURSE/TASK: ids are letters, digits, '-', '.' and '_' (not . or .. alone)`, 2,
      );
    }
    const dir = path.join(o.tasks, m[1]!, m[2]!);
    if (!(await fs.stat(dir).then((s) => s.isDirectory(), () => false))) return fail(`no task folder ${dir} (is --tasks right?)`);
  }
  const sources = o.inputs.length > 0 ? o.inputs : ["(empty input)"];
  let jobs: BackendNewJob[];
  try {
    const inputs = o.inputs.length > 0 ? await Promise.all(o.inputs.map(readInput)) : [{}];
    jobs = await buildJobs(taskRef, inputs, o);
  } catch (err) {
    return fail(err instanceof NotAContainerTaskError ? `cannot grade this task: ${err.message}` : (err as Error).message);
  }
  const ssh = jobs.some((j) => j.environment_type.endsWith("-ssh"));
  let agent: LocalAgent;
  try {
    agent = await startLocalAgent({ tasks: o.tasks, tmpdir: o.tmpdir, concurrency: o.concurrency, verbose: o.verbose, ssh }, log);
  } catch (err) {
    return fail((err as Error).message);
  }
  const { environment_type: envtype, environment: env } = jobs[0]!;
  if (agent.environments[envtype]?.[env] === undefined) {
    await agent.close();
    return fail(`no grading image for environment ${envtype}/${env} (build one: images/build.sh --sample-only)`);
  }
  const results = await Promise.all(jobs.map((job) => agent.run(job)));
  await agent.close();
  results.forEach((done, i) => {
    const source = sources[i]!;
    process.stdout.write(o.json ? `${JSON.stringify(printable(done, source))}\n` : `${summary(done, source)}\n`);
  });
  return 0;
}

/**
 * `inginious-agent-docker test COURSE_DIR [TASK...]`: replays a course's recorded submissions
 * (each task's `test/*.test`) as jobs through the agent's own dispatch and workers against the
 * local engine, several at once, and compares each result with its recording (or, with
 * `--record`, writes it). Reports as it goes, optionally writes JUnit XML, and returns the exit
 * status: 0 all matched, 1 a mismatch or an unusable file, 2 a usage error, 3 jobs not run.
 */
import { promises as fs } from "node:fs";
import os from "node:os";
import path from "node:path";
import type { Logger } from "../log.js";
import type { AgentJobDone } from "../protocol/messages.js";
import { countCases, exitStatus, EXIT_USAGE, INTERRUPTED, type CaseReport } from "./case-report.js";
import { compareResult } from "./compare.js";
import { junitXml } from "./junit.js";
import { recordResult } from "./record.js";
import { jsonReporter, terminalReporter, type Reporter } from "./report.js";
import { startLocalAgent, type LocalAgent } from "./run-jobs.js";
import { jobFromTask } from "./task-job.js";
import { NotAContainerTaskError, readTask, type ContainerTask } from "./task-yaml.js";
import { CourseUsageError, findTasks, readTestFile, type CourseTask, type TestFile } from "./test-files.js";

export interface TestOptions {
  concurrency: number;
  junit: string | null;
  record: boolean;
  /** Where job directories go; null: a temporary folder, removed at the end. */
  tmpdir: string | null;
  verbose: boolean;
  /** One JSON line per case (else a progress bar and lines for what did not pass). */
  json: boolean;
}

/** A test file ready to run: its task read, its input inline. */
interface Runnable {
  task: ContainerTask;
  taskId: string;
  test: TestFile & { input: { kind: "inline" } };
}

interface Plan {
  runnable: Runnable[];
  /** Cases settled before any job: unusable files, nothing to replay. */
  settled: CaseReport[];
}

function caseReport(file: string, courseId: string, taskId: string, fields: Partial<CaseReport>): CaseReport {
  return { file, courseId, taskId, status: "pass", mismatches: [], message: "", result: null, grade: null, seconds: 0, ...fields };
}

/** Reads the tasks and their test files into what can run and what is settled already. */
async function plan(courseId: string, tasksDir: string, tasks: CourseTask[]): Promise<Plan> {
  const out: Plan = { runnable: [], settled: [] };
  for (const t of tasks) {
    const settle = (file: string, status: CaseReport["status"], message: string): void =>
      void out.settled.push(caseReport(file, courseId, t.taskId, { status, message }));
    if (t.ignored) {
      t.testFiles.forEach((f) => settle(f, "skipped", "the task is set aside by its .testignore file"));
      continue;
    }
    if (t.testFiles.length === 0) continue;
    let task: ContainerTask;
    try {
      task = await readTask(tasksDir, courseId, t.taskId);
    } catch (err) {
      const status = err instanceof NotAContainerTaskError ? "skipped" : "error";
      t.testFiles.forEach((f) => settle(f, status, (err as Error).message));
      continue;
    }
    for (const file of t.testFiles) {
      try {
        const test = await readTestFile(file);
        if (test.input.kind === "inline") out.runnable.push({ task, taskId: t.taskId, test: test as Runnable["test"] });
        else settle(file, "skipped", `its input is a database id (${test.input.id}), as in exports since INGInious keeps submissions in its database: put the submission's input inline to replay it`);
      } catch (err) {
        settle(file, "error", (err as Error).message);
      }
    }
  }
  return out;
}

/** Runs one case: the job, then the comparison or the recording. */
async function runCase(agent: LocalAgent, r: Runnable, courseId: string, jobId: string, record: boolean): Promise<CaseReport> {
  const report = (fields: Partial<CaseReport>): CaseReport => caseReport(r.test.file, courseId, r.taskId, fields);
  const job = jobFromTask(r.task, { jobId, courseId, taskId: r.taskId }, r.test.input.inputdata);
  if (agent.environments[job.environment_type]?.[job.environment] === undefined) {
    return report({ status: "unrun", message: `no grading image for environment ${job.environment_type}/${job.environment}` });
  }
  if (agent.interrupted) return report({ status: "unrun", message: "interrupted" });
  const started = performance.now();
  const done: AgentJobDone = await agent.run(job);
  const seconds = Math.round(performance.now() - started) / 1000;
  if (agent.interrupted) return report({ status: "unrun", message: "interrupted", seconds });
  const ran = { result: done.result[0], grade: done.grade, seconds };
  if (record) {
    try {
      const changed = await recordResult(r.test.file, { courseId, taskId: r.taskId }, done);
      return report({ ...ran, status: "recorded", message: changed ? "written" : "" });
    } catch (err) {
      return report({ ...ran, status: "error", message: `cannot record: ${(err as Error).message}` });
    }
  }
  const mismatches = compareResult(r.test.expected, done);
  return report({ ...ran, status: mismatches.length === 0 ? "pass" : "fail", mismatches });
}

/** Runs the cases, `concurrency` at a time, reporting each as it ends. */
async function runAll(agent: LocalAgent, runnable: Runnable[], courseId: string, o: TestOptions, reporter: Reporter): Promise<CaseReport[]> {
  const out: CaseReport[] = [];
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < runnable.length) {
      const i = next++;
      const c = await runCase(agent, runnable[i]!, courseId, `test-${process.pid}-${i}`, o.record);
      out.push(c);
      reporter.onCase(c);
    }
  };
  await Promise.all(Array.from({ length: Math.min(o.concurrency, runnable.length) }, lane));
  return out;
}

/** Starts the agent and runs the cases; when it cannot start, every case is reported as not run. */
async function runWithAgent(courseDir: string, runnable: Runnable[], courseId: string, o: TestOptions, log: Logger, reporter: Reporter): Promise<{ cases: CaseReport[]; interrupted: boolean }> {
  const tmpdir = o.tmpdir ?? (await fs.mkdtemp(path.join(os.tmpdir(), "inginious-agent-test-")));
  try {
    const ssh = runnable.some((r) => r.task.environmentType.endsWith("-ssh"));
    const agentOptions = { tasks: path.dirname(path.resolve(courseDir)), tmpdir, concurrency: o.concurrency, verbose: o.verbose, ssh };
    let agent: LocalAgent;
    try {
      agent = await startLocalAgent(agentOptions, log);
    } catch (err) {
      process.stderr.write(`error: the jobs cannot run: ${(err as Error).message}\n`);
      const cases = runnable.map((r) => caseReport(r.test.file, courseId, r.taskId, { status: "unrun", message: (err as Error).message }));
      cases.forEach((c) => reporter.onCase(c));
      return { cases, interrupted: false };
    }
    try {
      return { cases: await runAll(agent, runnable, courseId, o, reporter), interrupted: agent.interrupted };
    } finally {
      await agent.close();
    }
  } finally {
    if (o.tmpdir === null) await fs.rm(tmpdir, { recursive: true, force: true });
  }
}

export async function runTest(courseDir: string, taskIds: string[], o: TestOptions, log: Logger): Promise<number> {
  const started = performance.now();
  const courseId = path.basename(path.resolve(courseDir));
  let tasks: CourseTask[];
  try {
    tasks = await findTasks(courseDir, taskIds);
  } catch (err) {
    if (!(err instanceof CourseUsageError)) throw err;
    process.stderr.write(`error: ${err.message}\n`);
    return EXIT_USAGE;
  }
  const { runnable, settled } = await plan(courseId, path.dirname(path.resolve(courseDir)), tasks);
  const reporter = o.json ? jsonReporter(process.stdout) : terminalReporter(process.stdout);
  reporter.start(runnable.length + settled.length);
  settled.forEach((c) => reporter.onCase(c));
  const ran = runnable.length === 0 ? { cases: [], interrupted: false } : await runWithAgent(courseDir, runnable, courseId, o, log, reporter);
  const order = new Map([...runnable.map((r) => r.test.file), ...settled.map((c) => c.file)].sort().map((f, i) => [f, i]));
  const cases = [...settled, ...ran.cases].sort((a, b) => order.get(a.file)! - order.get(b.file)!);
  if (o.junit !== null) await fs.writeFile(o.junit, junitXml(courseId, cases));
  const exit = ran.interrupted ? INTERRUPTED : exitStatus(countCases(cases));
  reporter.finish(cases, Math.round(performance.now() - started) / 1000, exit);
  if (cases.length === 0) process.stderr.write(`warning: no test files in ${courseDir} (each task's test/*.test)\n`);
  return exit;
}

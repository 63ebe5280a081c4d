/**
 * A course's recorded submissions: the tasks of a course folder (sub-folders with a `task.yaml`;
 * a `.testignore` file sets a task aside, as in `inginious-test-task`), the `*.test` files in each
 * task's `test/` folder, and what one such file holds. These are the files INGInious's own tools
 * read (a `submission.test` from the frontend's submission export, or written by hand): the
 * `input` of the submission and the recorded `result`, `grade`, `problems`, `tests`, `custom`,
 * `state`, `stdout`, `stderr` and `text`. Exports made since INGInious keeps submissions in
 * mongoengine documents hold a database id instead of the input: such a file cannot be replayed.
 */
import { promises as fs } from "node:fs";
import path from "node:path";
import { parseYamlMapping, YamlFileError } from "./yaml11.js";

/** The recorded fields a test file may hold, in the order they are compared and written. */
export const RECORDED_FIELDS = ["result", "text", "grade", "problems", "tests", "custom", "state", "stdout", "stderr"] as const;
export type RecordedField = (typeof RECORDED_FIELDS)[number];

export interface CourseTask {
  taskId: string;
  dir: string;
  /** The `*.test` files of its `test/` folder, sorted by name. */
  testFiles: string[];
  /** A `.testignore` file sets the task aside. */
  ignored: boolean;
}

export type TestInput =
  | { kind: "inline"; inputdata: Record<string, unknown> }
  | { kind: "database-id"; id: string };

export interface TestFile {
  file: string;
  input: TestInput;
  /** The recorded fields that are compared: present in the file and not null. */
  expected: Partial<Record<RecordedField, unknown>>;
}

/** A usage error: a course folder or a task named on the command line that is not there. */
export class CourseUsageError extends Error {}

const isDir = (p: string): Promise<boolean> => fs.stat(p).then((s) => s.isDirectory(), () => false);
const isFile = (p: string): Promise<boolean> => fs.stat(p).then((s) => s.isFile(), () => false);

async function testFilesOf(taskDir: string): Promise<string[]> {
  const testDir = path.join(taskDir, "test");
  if (!(await isDir(testDir))) return [];
  const names = (await fs.readdir(testDir)).filter((n) => n.endsWith(".test") && !n.startsWith(".")).sort();
  const files: string[] = [];
  for (const name of names) if (await isFile(path.join(testDir, name))) files.push(path.join(testDir, name));
  return files;
}

/** The course's tasks, or only those named (each must be a task folder). */
export async function findTasks(courseDir: string, only: readonly string[]): Promise<CourseTask[]> {
  if (!(await isDir(courseDir))) throw new CourseUsageError(`no course folder ${courseDir}`);
  const entries = (await fs.readdir(courseDir)).sort();
  const taskIds: string[] = [];
  for (const name of entries) {
    if (name.startsWith(".") || name.startsWith("$")) continue;
    if (await isFile(path.join(courseDir, name, "task.yaml"))) taskIds.push(name);
  }
  for (const name of only) {
    if (!taskIds.includes(name)) throw new CourseUsageError(`no task ${name} in ${courseDir} (a task is a folder with a task.yaml)`);
  }
  const chosen = only.length > 0 ? [...new Set(only)] : taskIds;
  return Promise.all(
    chosen.map(async (taskId) => {
      const dir = path.join(courseDir, taskId);
      return { taskId, dir, testFiles: await testFilesOf(dir), ignored: await isFile(path.join(dir, ".testignore")) };
    }),
  );
}

const isMapping = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array) && !(v instanceof Date);

function readInput(content: Record<string, unknown>, file: string): TestInput {
  if (!("input" in content)) throw new YamlFileError(file, "input", "missing: the submission's input is needed to replay it");
  const input = content["input"];
  if (isMapping(input)) return { kind: "inline", inputdata: input };
  if (typeof input === "string" || typeof input === "number") return { kind: "database-id", id: String(input) };
  throw new YamlFileError(file, "input", "expected a mapping of problem ids to answers");
}

/** Reads one test file. */
export async function readTestFile(file: string): Promise<TestFile> {
  const content = parseYamlMapping(await fs.readFile(file, "utf8"), file);
  const input = readInput(content, file);
  const expected: TestFile["expected"] = {};
  for (const field of RECORDED_FIELDS) {
    const value = content[field];
    if (value !== undefined && value !== null) expected[field] = value;
  }
  if ("problems" in expected && !isMapping(expected.problems)) {
    throw new YamlFileError(file, "problems", "expected a mapping of problem ids to [result, feedback]");
  }
  return { file, input, expected };
}

/**
 * Reading a task's task.yaml as INGInious's frontend does (defaults, migrations of old task files,
 * YAML 1.1, errors naming the file and the field), and the job built from it. No Docker.
 */
import { describe, test, after } from "node:test";
import assert from "node:assert/strict";
import { promises as fs } from "node:fs";
import os from "node:os";
import path from "node:path";
import { jobFromTask } from "../src/course/task-job.js";
import { NotAContainerTaskError, readTask, taskFromContent, type ContainerTask } from "../src/course/task-yaml.js";
import { parseYaml, parseYamlMapping, YamlFileError } from "../src/course/yaml11.js";

const FILE = "course/task/task.yaml";
const PROBLEMS = "problems:\n  code: {type: code, language: python}\n";
const read = (yaml: string): ContainerTask => taskFromContent(parseYamlMapping(yaml, FILE), FILE);

/** Asserts that reading fails with a message naming the file and the field. */
function rejects(yaml: string, field: string, detail?: RegExp, kind: typeof YamlFileError = YamlFileError): void {
  assert.throws(() => read(yaml), (err: unknown) => {
    assert.ok(err instanceof kind, `expected a ${kind.name}, got ${String(err)}`);
    assert.ok(err.message.startsWith(`${FILE}: ${field}: `), `"${err.message}" should start with "${FILE}: ${field}: "`);
    if (detail) assert.match(err.message, detail);
    return true;
  });
}

describe("task.yaml: the frontend's defaults", () => {
  test("no environment_id, no parameters: environment default, limits time 20, memory and disk 1,024, no run_cmd", () => {
    const t = read(`environment_type: docker\n${PROBLEMS}`);
    assert.equal(t.environmentType, "docker");
    assert.equal(t.environmentId, "default");
    assert.deepEqual(t.environmentParameters, { run_cmd: null, network_grading: false, limits: { time: 20, memory: 1024, disk: 1024 } });
    assert.deepEqual(t.problems, { code: { type: "code", language: "python" } });
  });

  test("limits with only a time: hard_time is 3 x time, memory and disk their defaults", () => {
    const t = read(`environment_type: docker\nenvironment_parameters:\n  limits: {time: 7}\n${PROBLEMS}`);
    assert.deepEqual(t.environmentParameters.limits, { time: 7, hard_time: 21, memory: 1024, disk: 1024 });
  });

  test("limits as Python's int() reads them: text, floats truncated, an empty hard_time", () => {
    const t = read(`environment_type: docker\nenvironment_parameters:\n  limits: {time: "12", hard_time: "", memory: 99.9, disk: 1_000}\n  run_cmd: ""\n${PROBLEMS}`);
    assert.deepEqual(t.environmentParameters.limits, { time: 12, hard_time: 36, memory: 99, disk: 1000 });
    assert.equal(t.environmentParameters.run_cmd, null);
    const u = read(`environment_type: docker\nenvironment_parameters:\n  limits: {time: 1, hard_time: 45}\n  run_cmd: ./grade.sh\n${PROBLEMS}`);
    assert.equal(u.environmentParameters.limits.hard_time, 45);
    assert.equal(u.environmentParameters.run_cmd, "./grade.sh");
  });
});

describe("task.yaml: migrations of old task files", () => {
  test("a 0.6 file (environment, limits, run_cmd at the top) becomes environment_type docker", () => {
    const t = read(`environment: cpp\nlimits: {time: 3, memory: 64}\nrun_cmd: make check\nnetwork_grading: true\n${PROBLEMS}`);
    assert.equal(t.environmentType, "docker");
    assert.equal(t.environmentId, "cpp");
    assert.deepEqual(t.environmentParameters, {
      run_cmd: "make check", network_grading: true, limits: { time: 3, hard_time: 9, memory: 64, disk: 1024 },
    });
  });

  test("ssh_allowed gives the -ssh environment type, and is not sent to the agent", () => {
    const t = read(`environment_type: docker\nenvironment_parameters:\n  ssh_allowed: on\n  limits: {time: 5}\n${PROBLEMS}`);
    assert.equal(t.environmentType, "docker-ssh");
    assert.equal("ssh_allowed" in t.environmentParameters, false);
    assert.equal(read(`environment_type: nvidia\nenvironment_parameters: {ssh_allowed: yes}\n${PROBLEMS}`).environmentType, "nvidia-ssh");
  });

  test("a 0.6 file whose environment is mcq, and an mcq environment_type, are refused as not graded in a container", () => {
    rejects(`environment: mcq\n${PROBLEMS}`, "environment_type", /MCQ agent/, NotAContainerTaskError);
    rejects(`environment_type: mcq\nenvironment_id: mcq\n${PROBLEMS}`, "environment_type", /not in a container/, NotAContainerTaskError);
  });
});

describe("task.yaml: YAML 1.1, as PyYAML's SafeLoader", () => {
  test("yes/no/on/off are booleans", () => {
    const t = read(`environment_type: docker\nenvironment_parameters:\n  network_grading: yes\n${PROBLEMS}`);
    assert.equal(t.environmentParameters.network_grading, true);
    assert.deepEqual(parseYaml("a: no\nb: off\nc: Yes\nd: 'yes'\n", FILE), { a: false, b: false, c: true, d: "yes" });
  });

  test("as PyYAML, not as the YAML 1.1 draft: y and n are text, and so is 1e3 (floats need a dot)", () => {
    assert.deepEqual(parseYaml("y: n\nx: Y\ne: 1e3\nf: 1.5e+3\ng: 2.5\n", FILE), { y: "n", x: "Y", e: "1e3", f: 1500, g: 2.5 });
  });

  test("!!binary gives bytes; 010 is octal; a repeated key keeps its last value; << merges", () => {
    const v = parseYaml("f: !!binary aGVsbG8=\no: 010\nk: 1\nk: 2\nbase: &b {x: 1}\nm:\n  <<: *b\n  y: 2\n", FILE) as Record<string, unknown>;
    assert.ok(v["f"] instanceof Uint8Array);
    assert.equal(Buffer.from(v["f"]).toString(), "hello");
    assert.equal(v["o"], 8);
    assert.equal(v["k"], 2);
    assert.deepEqual(v["m"], { x: 1, y: 2 });
  });
});

describe("task.yaml: malformed files name the file and the field", () => {
  test("a limit that is not a positive whole number", () => {
    rejects(`environment_type: docker\nenvironment_parameters:\n  limits: {time: abc}\n${PROBLEMS}`, "environment_parameters.limits.time", /"abc"/);
    rejects(`environment_type: docker\nenvironment_parameters:\n  limits: {time: 2, memory: 0}\n${PROBLEMS}`, "environment_parameters.limits.memory");
    rejects(`environment_type: docker\nenvironment_parameters:\n  limits: {hard_time: null}\n${PROBLEMS}`, "environment_parameters.limits.hard_time");
    rejects(`environment_type: docker\nenvironment_parameters:\n  limits: [1, 2]\n${PROBLEMS}`, "environment_parameters.limits");
  });

  test("missing or malformed problems, environment type, parameters", () => {
    rejects("environment_type: docker\n", "problems", /missing/);
    rejects("environment_type: docker\nproblems: [a, b]\n", "problems");
    rejects("environment_type: docker\nproblems:\n  q1: {header: no type}\n", "problems.q1.type");
    rejects(PROBLEMS, "environment_type", /missing/);
    rejects(`environment_type: kvm\n${PROBLEMS}`, "environment_type", /unknown type "kvm"/);
    rejects(`environment_type: docker\nenvironment_id: [a]\n${PROBLEMS}`, "environment_id");
    rejects(`environment_type: docker\nenvironment_parameters: 12\n${PROBLEMS}`, "environment_parameters");
    rejects(`environment_type: docker\nenvironment_parameters: {run_cmd: [make]}\n${PROBLEMS}`, "environment_parameters.run_cmd");
  });

  test("a YAML syntax error names the file and the line; a list at the top is refused", () => {
    assert.throws(() => parseYamlMapping("environment_type: docker\nproblems: {a: [1,\n", FILE), /^Error: course\/task\/task\.yaml: not valid YAML \(line \d+, column \d+\)/);
    assert.throws(() => parseYamlMapping("- a\n- b\n", FILE), /course\/task\/task\.yaml: expected a mapping/);
  });

  test("readTask reads COURSE/TASK/task.yaml and names a missing file", async () => {
    const root = await fs.mkdtemp(path.join(os.tmpdir(), "iad-task-yaml-"));
    after(() => fs.rm(root, { recursive: true, force: true }));
    await fs.mkdir(path.join(root, "c.1", "t.2"), { recursive: true });
    await fs.writeFile(path.join(root, "c.1", "t.2", "task.yaml"), `environment_type: docker\n${PROBLEMS}`);
    assert.equal((await readTask(root, "c.1", "t.2")).environmentId, "default");
    await assert.rejects(readTask(root, "c.1", "nope"), (err: Error) => err.message.startsWith(path.join(root, "c.1", "nope", "task.yaml")));
  });
});

describe("the job built from a task", () => {
  const task = read(`environment_type: docker\nenvironment_id: py\nenvironment_parameters:\n  limits: {time: 4, hard_time: 5, memory: 64}\n${PROBLEMS}`);
  const ids = { jobId: "j1", courseId: "c", taskId: "t" };

  test("without overrides it carries the task's environment, parameters and problems", () => {
    const job = jobFromTask(task, ids, { code: "x" });
    assert.equal(job.environment_type, "docker");
    assert.equal(job.environment, "py");
    assert.deepEqual(job.environment_parameters, { run_cmd: null, network_grading: false, limits: { time: 4, hard_time: 5, memory: 64, disk: 1024 } });
    assert.deepEqual(job.task_problems, task.problems);
    assert.deepEqual([job.course_id, job.task_id, job.inputdata], ["c", "t", { code: "x" }]);
  });

  test("a given time without a hard time gives 3 x time; other overrides replace only their field", () => {
    const job = jobFromTask(task, ids, {}, { time: 2, memory: 300, env: "other", network: true });
    assert.deepEqual(job.environment_parameters["limits"], { time: 2, hard_time: 6, memory: 300, disk: 1024 });
    assert.equal(job.environment_parameters["network_grading"], true);
    assert.equal(job.environment, "other");
    assert.deepEqual(jobFromTask(task, ids, {}, { hardTime: 50 }).environment_parameters["limits"], { time: 4, hard_time: 50, memory: 64, disk: 1024 });
  });
});

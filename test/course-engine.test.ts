/**
 * `grade` and `test` against the real engine with the sample image: `grade` takes the task's own
 * limits from task.yaml; `test` passes on the example course as committed, reports a changed task
 * as a mismatch (exit 1, JUnit counts), reports an export without input and does not run it,
 * exits 3 when a job has no image and 2 on a usage error, and `--record` makes a changed course
 * pass again. Works on copies in temporary folders.
 */
import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { promises as fs } from "node:fs";
import path from "node:path";
import { REPO, runCli, tempDir } from "./helpers/agent-process.js";

const DEMO = path.join(REPO, "examples/tasks/demo");

interface CaseLine {
  type: string;
  file: string;
  status: string;
  result: string | null;
  mismatches: Array<{ field: string }>;
}

function caseLines(stdout: string): CaseLine[] {
  return stdout.trim().split("\n").map((l) => JSON.parse(l) as CaseLine).filter((l) => l.type === "case");
}

/** Counts of a JUnit file, read by Python's XML parser. */
function junitCounts(file: string): Record<string, string> {
  const script = "import json, sys, xml.etree.ElementTree as ET; r = ET.parse(sys.argv[1]).getroot(); " +
    "print(json.dumps(dict(r.attrib, testcases=str(len(r.findall('testsuite/testcase'))))))";
  return JSON.parse(execFileSync("python3", ["-c", script, file]).toString()) as Record<string, string>;
}

describe("grade reads task.yaml", () => {
  const tmp = tempDir("course-grade");
  after(() => tmp.remove());

  // 3 s of CPU time: the engine's stats, sampled about every second, see the task's 1 s crossed
  // while the loop still runs, however busy the machine; far under the command line's old 30 s.
  test("without flags the task's 1 s time limit stops a 3 s loop; an explicit --time overrides it", async () => {
    const input = path.join(tmp.path, "three-seconds.json");
    const code = "import time\nt = time.process_time()\nwhile time.process_time() - t < 3:\n    pass\nfor i in (1, 2, 3):\n    print(i)\n";
    await fs.writeFile(input, JSON.stringify({ code }));
    const args = ["grade", "demo/loop", "--tasks", path.join(REPO, "examples/tasks"), "--tmpdir", path.join(tmp.path, "jobs"), "--input", input];
    const plain = await runCli(args);
    assert.equal(plain.code, 0, plain.stderr);
    assert.equal((JSON.parse(plain.stdout) as { result: string }).result, "timeout", plain.stdout);
    const longer = await runCli([...args, "--time", "10", "--hard-time", "300"]);
    assert.equal(longer.code, 0, longer.stderr);
    assert.equal((JSON.parse(longer.stdout) as { result: string }).result, "success", longer.stdout);
  });

  test("a malformed task.yaml is an error naming the file and the field; an mcq task is refused", async () => {
    const tasks = path.join(tmp.path, "tasks");
    await fs.mkdir(path.join(tasks, "c", "bad"), { recursive: true });
    await fs.writeFile(path.join(tasks, "c", "bad", "task.yaml"), "environment_type: docker\nenvironment_parameters:\n  limits: {time: soon}\nproblems: {}\n");
    await fs.mkdir(path.join(tasks, "c", "quiz"), { recursive: true });
    await fs.writeFile(path.join(tasks, "c", "quiz", "task.yaml"), "environment_type: mcq\nenvironment_id: mcq\nproblems: {}\n");
    const bad = await runCli(["grade", "c/bad", "--tasks", tasks, "--tmpdir", path.join(tmp.path, "jobs")]);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, new RegExp(`error: ${path.join(tasks, "c", "bad", "task.yaml")}: environment_parameters\\.limits\\.time: `));
    const quiz = await runCli(["grade", "c/quiz", "--tasks", tasks, "--tmpdir", path.join(tmp.path, "jobs")]);
    assert.equal(quiz.code, 1);
    assert.match(quiz.stderr, /cannot grade this task: .*environment_type: mcq/);
  });
});

describe("test on the example course and on a changed copy", () => {
  const tmp = tempDir("course-test");
  const copy = path.join(tmp.path, "demo");
  const junit = path.join(tmp.path, "junit.xml");
  before(() => fs.cp(DEMO, copy, { recursive: true }));
  after(() => tmp.remove());
  const run = (...args: string[]): ReturnType<typeof runCli> => runCli(["test", "--concurrency", "2", ...args], 300_000);

  test("the example course passes as committed", async () => {
    const r = await run(DEMO);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const cases = caseLines(r.stdout);
    assert.equal(cases.length, 7);
    assert.deepEqual(cases.filter((c) => c.status !== "pass"), []);
  });

  test("with one task changed: that task's files differ (exit 1), an export without input is skipped, the JUnit file counts them", async () => {
    const run_ = path.join(copy, "hello", "run");
    await fs.writeFile(run_, (await fs.readFile(run_, "utf8")).replace("Correct: your program printed the greeting.", "Correct!"));
    await fs.writeFile(path.join(copy, "hello", "test", "exported.test"), "courseid: demo\ntaskid: hello\ninput: 65a1b2c3d4e5f60718293a4b\nresult: success\n");
    const r = await run(copy, "--junit", junit);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    const cases = caseLines(r.stdout);
    const notPassing = cases.filter((c) => c.status !== "pass").map((c) => [path.relative(copy, c.file), c.status, c.mismatches.map((m) => m.field)]);
    assert.deepEqual(notPassing.sort(), [["hello/test/correct.test", "fail", ["text"]], ["hello/test/exported.test", "skipped", []]]);
    assert.deepEqual(junitCounts(junit), { name: "demo", tests: "8", failures: "1", errors: "0", skipped: "1", time: junitCounts(junit)["time"]!, testcases: "8" });
  });

  test("--record on the changed copy rewrites only what changed, then test passes", async () => {
    const before = await fs.readFile(path.join(copy, "hello", "test", "correct.test"), "utf8");
    const rec = await run(copy, "--record");
    assert.equal(rec.code, 0, rec.stdout + rec.stderr);
    const after_ = await fs.readFile(path.join(copy, "hello", "test", "correct.test"), "utf8");
    assert.equal(after_, before.replace('text: "Correct: your program printed the greeting."', "text: Correct!"));
    const again = await run(copy);
    assert.equal(again.code, 0, again.stdout + again.stderr);
    assert.equal(caseLines(again.stdout).filter((c) => c.status === "pass").length, 7);
  });

  test("a task whose environment has no image: exit 3, the case not run; a missing course folder: exit 2", async () => {
    const ghost = path.join(copy, "ghost");
    await fs.cp(path.join(copy, "loop"), ghost, { recursive: true });
    await fs.writeFile(path.join(ghost, "task.yaml"), "environment_type: docker\nenvironment_id: no-such-image\nproblems: {code: {type: code}}\n");
    const r = await run(copy, "ghost", "--junit", junit);
    assert.equal(r.code, 3, r.stdout + r.stderr);
    assert.deepEqual(caseLines(r.stdout).map((c) => c.status), ["unrun", "unrun"]);
    assert.equal(junitCounts(junit)["errors"], "2");
    const missing = await run(path.join(tmp.path, "nowhere"));
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /no course folder/);
  });
});

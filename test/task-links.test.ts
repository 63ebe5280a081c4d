/**
 * Task folders as INGInious lets people write them, graded on the real engine: ids with dots,
 * symbolic links in the task and in `$common` (relative, absolute and dangling on the host, to a
 * host file, to a directory inside the course), read inside a real grading container with
 * readlink and cat; a task whose student folder is a link ends as crash with a readable text.
 * Through the daemon (cold and warm containers) and through `grade`.
 */
import { WARM_PROBATION_SETTLE_MS } from "../src/jobs/warm-pool.js";
import { after, afterEach, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import path from "node:path";
import { runCli, tempDir } from "./helpers/agent-process.js";
import { newJob } from "./helpers/backend.js";
import { LABEL_AGENT, LABEL_ROLE, agentId } from "../src/docker/labels.js";
import { docker, eventually, requireDocker } from "./helpers/docker.js";
import { startSession, type Session } from "./helpers/session.js";

const COURSE = "LSINF1252.2024";
const TASK = "links.v1";

// What the task prints: for each path, what readlink says (- for no link) and what cat reads.
const RUN = `#!/bin/sh
show() { printf '%s|%s|%s\\n' "$1" "$(readlink "$1" || echo -)" "$(cat "$1" 2>&1 | head -c 200)"; }
out=$(
  show /task/rel
  show /task/lib.sh
  show /task/hostname
  show /task/shared
  show /task/shared/data.txt
  show /course/common/share/data.txt
  show /course/common/host
  printf 'own-hostname|%s\\n' "$(cat /etc/hostname)"
)
feedback-result success
feedback-msg -m "$out"
`;

/** A tasks folder with COURSE/TASK full of links, and COURSE/bad-student whose student/ is a link. */
function buildTasks(root: string): string {
  const tasks = path.join(root, "tasks");
  const course = path.join(tasks, COURSE);
  const task = path.join(course, TASK);
  mkdirSync(task, { recursive: true });
  mkdirSync(path.join(course, "$common", "student"), { recursive: true });
  mkdirSync(path.join(course, "shared"));
  mkdirSync(path.join(course, "bad-student"));
  writeFileSync(path.join(task, "run"), RUN, { mode: 0o755 });
  writeFileSync(path.join(task, "data.txt"), "task-data");
  // `grade` builds the job from task.yaml, as the frontend does
  writeFileSync(path.join(task, "task.yaml"),
    "environment_type: docker\nenvironment_id: default\nenvironment_parameters:\n  limits: {time: 30, memory: 100}\n"
    + "problems:\n  q1:\n    type: code\n    language: sh\n");
  writeFileSync(path.join(course, "shared", "data.txt"), "shared-data");
  writeFileSync(path.join(course, "$common", "lib.sh"), "common-lib");
  writeFileSync(path.join(course, "bad-student", "run"), RUN, { mode: 0o755 });
  symlinkSync("data.txt", path.join(task, "rel"));
  symlinkSync("/course/common/lib.sh", path.join(task, "lib.sh"));
  symlinkSync("/etc/hostname", path.join(task, "hostname"));
  symlinkSync("../shared", path.join(task, "shared"));
  symlinkSync("../shared", path.join(course, "$common", "share"));
  symlinkSync("/etc/hostname", path.join(course, "$common", "host"));
  symlinkSync("../shared", path.join(course, "bad-student", "student"));
  // mkdtemp made root 0700: the grading user reads only the job's copy, but keep the tree plain.
  chmodSync(root, 0o755);
  return tasks;
}

/** The lines the task printed, by path. */
function seen(text: string): Record<string, { link: string; content: string }> {
  const out: Record<string, { link: string; content: string }> = {};
  for (const line of text.trim().split("\n")) {
    const [p, link, content] = line.split("|") as [string, string, string?];
    out[p] = { link, content: content ?? link };
  }
  return out;
}

function checkSeen(text: string): void {
  const s = seen(text);
  const hostHostname = readFileSync("/etc/hostname", "utf8").trim();
  assert.deepEqual(s["/task/rel"], { link: "data.txt", content: "task-data" }, text);
  assert.deepEqual(s["/task/lib.sh"], { link: "/course/common/lib.sh", content: "common-lib" }, "an absolute link dangling on the host works inside");
  assert.equal(s["/task/hostname"]!.link, "/etc/hostname", "a link to a host file stays a link");
  assert.equal(s["/task/hostname"]!.content, s["own-hostname"]!.link, "it reads the container's own file");
  assert.notEqual(s["/task/hostname"]!.content, hostHostname, "the host's file was copied into the job");
  assert.equal(s["/task/shared"]!.link, "-", "a link to a directory inside the course is copied as that directory");
  assert.deepEqual(s["/task/shared/data.txt"], { link: "-", content: "shared-data" });
  assert.deepEqual(s["/course/common/share/data.txt"], { link: "-", content: "shared-data" });
  assert.equal(s["/course/common/host"]!.link, "/etc/hostname");
}

/** Running warm containers of the session's agent. */
async function warmIds(s: Session): Promise<Set<string>> {
  const list = await docker.listContainers({
    filters: { label: [`${LABEL_AGENT}=${agentId(s.tmpdir)}`, `${LABEL_ROLE}=warm`], status: ["running"] },
  });
  return new Set(list.map((c) => c.Id));
}

/**
 * Runs one job; with warm containers on, waits for one to be ready first and checks that the job
 * took it (its folder was filled in place rather than made fresh).
 */
async function runJob(s: Session, warm: number, id: string, taskId: string): Promise<[string, string]> {
  let ready = new Set<string>();
  for (const deadline = Date.now() + 30_000; warm > 0 && ready.size === 0 && Date.now() < deadline;) {
    ready = await warmIds(s);
    if (ready.size === 0) await new Promise((r) => setTimeout(r, 200));
  }
  if (warm > 0) {
    assert.ok(ready.size > 0, "no warm container became ready");
    // a warm container of an environment that has not served a job yet is on probation: it is
    // handed out once it has kept running for WARM_PROBATION_SETTLE_MS (see warm-pool.ts)
    const started = await Promise.all([...ready].map(async (c) => Date.parse((await docker.getContainer(c).inspect()).State.StartedAt)));
    const settled = Math.min(...started) + WARM_PROBATION_SETTLE_MS + 1500;
    if (settled > Date.now()) await new Promise((r) => setTimeout(r, settled - Date.now()));
  }
  await s.backend.send(newJob(id, { course_id: COURSE, task_id: taskId }));
  const d = await s.backend.done(id, 60_000);
  if (warm > 0) {
    // the job's container goes once its result is sent
    await eventually(async () => {
      const after = await warmIds(s);
      assert.ok([...ready].some((c) => !after.has(c)), "the job did not run in a warm container");
    });
  }
  return d["result"] as [string, string];
}

for (const warm of [0, 2]) {
  describe(`links and dotted ids through the daemon (--warm ${warm})`, () => {
    let root: ReturnType<typeof tempDir> | null = null;
    let s: Session;
    before(async () => {
      root = tempDir("links");
      s = await startSession(["--tasks", buildTasks(root.path)], { warm });
    });
    afterEach(() => s.assertClean());
    after(async () => {
      try {
        await s?.end();
      } finally {
        root?.remove();
      }
    });

    // Twice: with --warm 2 the second job runs in a container started ahead (its folder filled in place).
    for (const n of [1, 2]) {
      test(`links come through as links, read inside the container (job ${n})`, async () => {
        const [result, text] = await runJob(s, n === 1 ? 0 : warm, `links-${warm}-${n}`, TASK);
        assert.equal(result, "success", text);
        checkSeen(text);
        if (warm === 0) {
          // the layered /task cannot show `shared` as the copy does: this task is copied, and the log says why
          const why = s.agent.logs.find((l) => l.msg === "copying the task folder: it cannot be layered");
          assert.match(String(why?.["reason"]), /^shared is a link to a directory inside the course/);
        }
      });
    }

    test("a task whose student folder is a link ends as crash and says why", async () => {
      const [result, text] = await runJob(s, warm, `bad-student-${warm}`, "bad-student");
      assert.equal(result, "crash");
      assert.match(text, /^The task folder cannot be used: task\/student is a symbolic link; .*make it a plain folder/);
    });
  });
}

describe("links and dotted ids through grade", () => {
  test("grade COURSE/TASK with dots grades the task and sees the links", async () => {
    await requireDocker();
    const root = tempDir("links-grade");
    try {
      const tasks = buildTasks(root.path);
      const tmp = path.join(root.path, "data");
      const { code, stdout, stderr } = await runCli(["grade", "--tasks", tasks, "--tmpdir", tmp, "--json", `${COURSE}/${TASK}`]);
      assert.equal(code, 0, stderr);
      const out = JSON.parse(stdout.trim()) as { result: string; text: string };
      assert.equal(out.result, "success", out.text);
      checkSeen(out.text);
    } finally {
      root.remove();
    }
  });
});

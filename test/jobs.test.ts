/**
 * Grading jobs end to end through the agent process, a real engine and the sample image:
 * every outcome, exactly one AgentJobDone each, nothing left behind after each test; all of it
 * with cold containers and again with warm ones.
 */
import { after, afterEach, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { gunzipSync } from "node:zlib";
import Docker from "dockerode";
import { LABEL_AGENT, LABEL_JOB, LABEL_ROLE, agentId } from "../src/docker/labels.js";
import { newJob } from "./helpers/backend.js";
import { startSession, type Session } from "./helpers/session.js";

// Every outcome, in both modes: containers created for each job, and warm containers started ahead.
for (const warm of [0, 2]) {
describe(warm === 0 ? "cold start (--warm 0)" : "warm containers (--warm 2)", () => {
  let s: Session;
  before(async () => {
    s = await startSession([], { warm, images: ["inginious-agent-docker-test/test-raw:latest"] });
  });
  afterEach(() => s.assertClean());
  after(() => s?.end());

  type Done = Record<string, unknown>;
  const result = (d: Done): string => (d["result"] as string[])[0]!;
  const text = (d: Done): string => (d["result"] as string[])[1]!;

  async function run(jobId: string, over: Parameters<typeof newJob>[1] = {}, timeoutMs = 60_000): Promise<Done> {
    await s.backend.send(newJob(jobId, over));
    const done = await s.backend.done(jobId, timeoutMs);
    assert.equal(s.backend.count("AgentJobStarted", jobId), 1, "one AgentJobStarted");
    return done;
  }

  describe("outcomes", () => {
    test("success with grade, problems, tests, custom, state, archive and debug output", async () => {
      const d = await run("ok-1", { task_id: "success", inputdata: { q1: "print(1)", "@state": "s0" }, debug: true });
      assert.deepEqual(d["result"], ["success", "Well done: you wrote print(1)"]);
      assert.equal(d["grade"], 87.5);
      assert.deepEqual(d["problems"], { q1: ["success", "q1 is right"] });
      assert.deepEqual(d["tests"], { t1: "passed" });
      assert.deepEqual(d["custom"], { c1: 42 });
      assert.equal(d["state"], "next-state");
      assert.equal(d["stdout"], "to stdout\n");
      assert.equal(d["stderr"], "to stderr\n");
      const tar = gunzipSync(d["archive"] as Buffer);
      assert.ok(tar.includes(Buffer.from("kept\n")), "the archive holds the file the task wrote in /archive");
    });

    test("failed, with the default grade of 0", async () => {
      const d = await run("failed-1", { task_id: "failed" });
      assert.deepEqual(d["result"], ["failed", "Wrong answer"]);
      assert.equal(d["grade"], 0);
      assert.equal(d["archive"], null);
    });

    test("CPU time over the limit is a timeout", { timeout: 120_000 }, async () => {
      // The wall limit is an hour: only the CPU-time limit can end this job within the test.
      const d = await run("cpu-1", { task_id: "cpu", inputdata: { "@state": "keep-me" }, limits: { time: 2, hard_time: 3600 } }, 90_000);
      assert.equal(result(d), "timeout");
      assert.equal(d["state"], "keep-me");
      const why = await s.agent.waitLog((l) => l["job"] === "cpu-1" && /^killing container: /.test(l.msg), 5000);
      assert.match(why.msg, /^killing container: CPU time [\d.]+ s over its limit of 2 s$/);
    });

    test("wall time over the limit is a timeout", async () => {
      const started = Date.now();
      const d = await run("sleep-1", { task_id: "sleep", limits: { time: 20, hard_time: 3 } });
      assert.equal(result(d), "timeout");
      assert.ok(Date.now() - started < 15_000, "ended soon after the wall limit");
    });

    test("memory over the limit is an overflow", async () => {
      const d = await run("mem-1", { task_id: "memory", limits: { time: 20, hard_time: 40, memory: 64 } });
      assert.equal(result(d), "overflow");
    });

    test("a job killed while it runs ends as killed with its previous state", async () => {
      await s.backend.send(newJob("kill-1", { task_id: "sleep", inputdata: { "@state": "before-kill" } }));
      await s.backend.waitFor((m) => m["@type"] === "AgentJobStarted" && m["job_id"] === "kill-1");
      await new Promise((r) => setTimeout(r, 1500));
      await s.backend.send({ type: "BackendKillJob", job_id: "kill-1", state: "ignored" });
      await s.backend.send({ type: "BackendKillJob", job_id: "kill-1", state: "ignored" });
      const d = await s.backend.done("kill-1", 20_000);
      assert.equal(result(d), "killed");
      assert.equal(d["state"], "before-kill");
      await s.backend.send({ type: "BackendKillJob", job_id: "kill-1", state: "late" });
      await new Promise((r) => setTimeout(r, 500));
      assert.equal(s.backend.count("AgentJobDone", "kill-1"), 1, "a kill after the result sends nothing more");
    });

    test("a task-less job runs its run_cmd", async () => {
      const d = await run("taskless-1", {
        course_id: null, task_id: null,
        environment_parameters: {
          limits: { time: 10, hard_time: 30, memory: 100 }, network_grading: false,
          // INGInious splits run_cmd on spaces: no shell
          run_cmd: "feedback-result success",
        },
      });
      assert.equal(result(d), "success");
      assert.equal(d["grade"], 100);
    });

    test("the course's $common folders are mounted", async () => {
      const d = await run("common-1", { task_id: "common" });
      assert.deepEqual(d["result"], ["success", "from-common from-common-student"]);
    });

    test("an uploaded file's bytes reach the task intact", async () => {
      const bytes = Buffer.alloc(3 * 1024 * 1024);
      for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 7919) & 0xff;
      const sha = createHash("sha256").update(bytes).digest("hex");
      const d = await run("upload-1", { task_id: "upload", inputdata: { up: { filename: "a.bin", value: bytes } } });
      assert.deepEqual(d["result"], ["success", `${bytes.length} ${sha}`]);
    });
  });

  describe("crashes with a readable text", () => {
    const cases: Array<[string, Parameters<typeof newJob>[1], RegExp]> = [
      ["an unknown environment", { environment: "no-such-env" }, /environment is not available/],
      ["a missing task", { task_id: "no_such_task" }, /Task unavailable on agent/],
      ["an id that escapes the tasks folder", { course_id: "..", task_id: "etc" }, /invalid course or task/],
      ["unreadable parameters", { environment_parameters: { limits: { time: "soon" } } }, /unable to parse the parameters/],
      ["too much memory", { limits: { memory: 10_000_000 } }, /Not enough memory on agent \(available: \d+MB\)/],
      ["no /task/run", { task_id: "norun" }, /\/task\/run/],
      ["a task that fails without feedback", { task_id: "exit3" }, /.+/],
    ];
    for (const [name, over, pattern] of cases) {
      test(name, async () => {
        const id = `crash-${name.replace(/\W+/g, "-")}`;
        const d = await run(id, { ...over, inputdata: { "@state": "st-crash" } });
        assert.equal(result(d), "crash", JSON.stringify(d["result"]));
        assert.match(text(d), pattern);
        assert.equal(d["state"], "st-crash");
        assert.equal(d["grade"], 0);
      });
    }
  });

  describe("many jobs", () => {
    test("20 jobs at concurrency 4 each get their own answer, once", async () => {
      const ids = Array.from({ length: 20 }, (_, i) => `many-${i}`);
      await Promise.all(ids.map((id, i) => s.backend.send(newJob(id, { task_id: "echo", inputdata: { n: String(i) } }))));
      const dones = await Promise.all(ids.map((id) => s.backend.done(id, 120_000)));
      dones.forEach((d, i) => {
        assert.deepEqual(d["result"], ["success", `n=${i}`]);
        assert.equal(d["grade"], i);
      });
      for (const id of ids) assert.equal(s.backend.count("AgentJobDone", id), 1);
    });
  });

  describe("a grading container that misbehaves", () => {
    const raw = (mode: string) => ({ task_id: "raw", environment: "test-raw", inputdata: { mode, "@state": "st-raw" } });
    // The Python agent's texts, word for word, where it ends the job the same way (what exactly
    // was wrong is then in the `job done` log line's detail); the agent's own elsewhere.
    const python = "The grader did not return a readable output : ";
    const cases: Array<[string, RegExp, RegExp | null]> = [
      ["wrong-types", /^The grader did not return a readable output : Feedback file is badly formatted\.$/, /^grade has the wrong type$/],
      ["unknown-key", /^The grader did not return a readable output : 'colour'$/, /^unknown key "colour"$/],
      ["bad-problem-id", /^The grader did not return a readable output : Feedback file is badly formatted\.$/, /Bad Id!/],
      ["corrupt-archive", /corrupt archive/, null],
      ["garbage", /could not be read.*(frame|message)/, null],
      ["huge-length", /4294967295 bytes, over the agent's limit/, null],
      ["not-a-map", /not a map/, null],
      ["no-result", /^The grader did not return a readable output : Grading container did not return any result\.$/, null],
    ];
    for (const [mode, pattern, detail] of cases) {
      test(`${mode}: crash with a readable text`, async () => {
        const d = await run(`raw-${mode}`, raw(mode), 30_000);
        assert.equal(result(d), "crash", JSON.stringify(d["result"]));
        assert.match(text(d), pattern);
        assert.equal(d["state"], "st-raw");
        const line = await s.agent.waitLog((l) => l.msg === "job done" && l["job"] === `raw-${mode}`, 5000);
        if (detail === null) assert.equal(line["detail"], undefined);
        else {
          assert.ok(text(d).startsWith(python));
          assert.match(String(line["detail"]), detail, "what was wrong, for the log");
        }
      });
    }

    test("a message split into single bytes and an unknown message type are fine", async () => {
      const d = await run("raw-split", raw("split-and-extra"));
      assert.deepEqual(d["result"], ["success", "split ok"]);
      assert.equal(d["grade"], 50);
    });
  });

  if (warm > 0) {
    describe("the pool", () => {
      const docker = new Docker();
      const warmIds = async (): Promise<Set<string>> => new Set((await docker.listContainers({
        filters: { label: [`${LABEL_AGENT}=${agentId(s.tmpdir)}`, `${LABEL_ROLE}=warm`], status: ["running"] },
      })).map((c) => c.Id));

      test("a job runs in a container started before it arrived; none is made for it", async () => {
        await run("pool-demand", { task_id: "success", inputdata: { q1: "x" } });
        let ready = await warmIds();
        for (const deadline = Date.now() + 30_000; ready.size === 0 && Date.now() < deadline;) {
          await new Promise((r) => setTimeout(r, 200));
          ready = await warmIds();
        }
        assert.ok(ready.size > 0, "a warm container was made for the environment that just served a job");
        const since = Math.floor(Date.now() / 1000) - 1;
        const d = await run("pool-1", { task_id: "success", inputdata: { q1: "print(1)" } });
        assert.deepEqual(d["result"], ["success", "Well done: you wrote print(1)"]);
        const until = Math.ceil(Date.now() / 1000) + 1;
        const events = await new Promise<string>((resolve, reject) => {
          docker.getEvents({ since, until, filters: { type: ["container"], event: ["create"], label: [`${LABEL_JOB}=pool-1`] } }, (err, stream) => {
            if (err) return reject(err instanceof Error ? err : new Error(String(err)));
            if (!stream) return reject(new Error("no event stream"));
            let text = "";
            stream.on("data", (c: Buffer) => (text += c.toString()));
            stream.on("end", () => resolve(text));
            stream.on("error", reject);
          });
        });
        assert.equal(events.trim(), "", "no container was created for the job");
        const after = await warmIds();
        assert.ok([...ready].some((id) => !after.has(id)), "one of the warm containers served the job and is gone");
      });

      test("CPU and wall time count from `start`: what a warm container spent before its job is not the job's", async () => {
        // this image's entry spends 2 s of CPU before its container side reads `start`
        const fresh = await startSession([], { warm: 2, images: ["inginious-agent-docker-test/test-slow-start:latest"] });
        try {
          const job = (id: string, limits: { time: number; hard_time: number }) =>
            newJob(id, { task_id: "success", environment: "test-slow-start", inputdata: { q1: "print(1)" }, limits });
          // cold, the 2 s are the job's: over a 1 s limit
          await fresh.backend.send(job("slow-cold", { time: 1, hard_time: 30 }));
          assert.equal(((await fresh.backend.done("slow-cold", 60_000))["result"] as string[])[0], "timeout");
          // the demand it made gets the environment warm containers; let them spend their 2 s
          const warmIds = async (): Promise<number> => (await docker.listContainers({
            filters: { label: [`${LABEL_AGENT}=${agentId(fresh.tmpdir)}`, `${LABEL_ROLE}=warm`], status: ["running"] },
          })).length;
          for (const deadline = Date.now() + 30_000; (await warmIds()) === 0 && Date.now() < deadline;) {
            await new Promise((r) => setTimeout(r, 200));
          }
          assert.ok((await warmIds()) > 0, "warm containers were made");
          await new Promise((r) => setTimeout(r, 4000));
          // warm, with limits below what the container spent and lived before the job: success
          await fresh.backend.send(job("slow-warm", { time: 1, hard_time: 2 }));
          assert.deepEqual((await fresh.backend.done("slow-warm", 60_000))["result"], ["success", "Well done: you wrote print(1)"]);
        } finally {
          await fresh.end();
        }
      });

      test("an image whose command needs /task before `start`: every job still gets its result, and it stays cold", async () => {
        const fresh = await startSession([], { warm: 2, images: ["inginious-agent-docker-test/test-raw:latest"] });
        try {
          const job = { task_id: "raw", environment: "test-raw", inputdata: { mode: "split-and-extra" } };
          // back to back, then two at once: each may meet a warm container being made
          for (let i = 0; i < 4; i++) {
            await fresh.backend.send(newJob(`raw-warm-${i}`, job));
            const d = await fresh.backend.done(`raw-warm-${i}`, 60_000);
            assert.deepEqual(d["result"], ["success", "split ok"], `raw-warm-${i}`);
          }
          await Promise.all([4, 5].map((i) => fresh.backend.send(newJob(`raw-warm-${i}`, job))));
          for (const i of [4, 5]) assert.deepEqual((await fresh.backend.done(`raw-warm-${i}`, 60_000))["result"], ["success", "split ok"]);
          await fresh.agent.waitLog((l) => l.msg === "a warm grading container exited before any job" && l["environmentKeptCold"] === true, 30_000);
        } finally {
          await fresh.end();
        }
      });
    });
  }
});
}

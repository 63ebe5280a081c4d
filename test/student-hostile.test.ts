/**
 * Hostile graders and student containers, against the real engine: a grader that replaces a
 * folder or socket a student container binds by a link to the host, once and as a 30 s race; a
 * grader that empties and refills /task/student; the per-job limit of student containers at
 * once; a socket id asked for twice. After each attack a canary folder of the host is unchanged,
 * no student container listed it and no connection reached the canary socket.
 */
import { after, afterEach, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { randomBytes } from "node:crypto";
import net from "node:net";
import path from "node:path";
import { newJob } from "./helpers/backend.js";
import { tempDir } from "./helpers/agent-process.js";
import { SAMPLE_IMAGE } from "./helpers/docker.js";
import { startSession, type Session } from "./helpers/session.js";

type Done = Record<string, unknown>;
const result = (d: Done): string[] => d["result"] as string[];

/** A host folder a student container must never see, and a host socket it must never reach. */
interface Canary {
  dir: string;
  secret: string;
  socket: string;
  connections: number;
  /** Names, contents, modes and times of the folder: equal before and after, or it was touched. */
  snapshot(): string;
  close(): void;
}

async function makeCanary(): Promise<Canary> {
  const root = tempDir("canary");
  chmodSync(root.path, 0o755);
  const dir = path.join(root.path, "folder");
  const secret = `secret-${randomBytes(6).toString("hex")}`;
  mkdirSync(dir);
  chmodSync(dir, 0o777); // were it bound, a student container could write into it
  writeFileSync(path.join(dir, secret), "host data");
  const socket = path.join(root.path, "host.sock");
  const canary: Canary = {
    dir, secret, socket, connections: 0,
    snapshot() {
      const st = statSync(dir);
      const files = readdirSync(dir).sort().map((f) => `${f}=${readFileSync(path.join(dir, f), "utf8")}`);
      return JSON.stringify({ files, mode: st.mode, mtime: st.mtimeMs, ctime: st.ctimeMs });
    },
    close() {
      server.close();
      root.remove();
    },
  };
  const server = net.createServer((c) => {
    canary.connections++;
    c.destroy();
  });
  await new Promise<void>((resolve) => server.listen(socket, resolve));
  chmodSync(socket, 0o777);
  return canary;
}

function attackSuite(name: string, warm: number): void {
  describe(name, () => {
    let s: Session;
    let canary: Canary;
    let before0: string;
    before(async () => {
      s = await startSession(["--student-containers", "2"], { warm, images: [SAMPLE_IMAGE, "inginious-agent-docker-test/test-raw:latest"] });
      canary = await makeCanary();
      before0 = canary.snapshot();
    });
    afterEach(async () => {
      assert.equal(canary.snapshot(), before0, "the canary folder was touched");
      assert.equal(canary.connections, 0, "a student container reached the canary socket");
      await s.assertClean();
    });
    after(async () => {
      await s?.end();
      canary?.close();
    });

    const run = async (id: string, task: string, inputdata: Record<string, unknown>, limits = {}): Promise<Done> => {
      await s.backend.send(newJob(id, { task_id: task, inputdata: { "@state": "", "@lang": "en", ...inputdata }, limits: { time: 30, hard_time: 90, memory: 200, ...limits } }));
      return s.backend.done(id, 240_000);
    };

    for (const attack of ["student", "systemfiles", "scripts"]) {
      test(`a link in place of /task/${attack === "scripts" ? "student/scripts" : attack}: the student container never gets the host folder`, async () => {
        const d = await run(`link-${attack}-${warm}`, "student-link", { canary: canary.dir, attack });
        assert.equal(result(d)[0], "success", result(d)[1]);
        const text = result(d)[1]!;
        assert.ok(!text.includes(canary.secret), `the student container listed the host folder: ${text}`);
        // task/student and task/systemfiles are mount points the grader cannot replace; scripts/ it can,
        // but it is no bind source: its link resolves inside the student container
        // (the student container's write fails on its read-only /task/systemfiles, or through a link to nothing)
        const expected = { student: /^swapped=no code=0 /, systemfiles: /^swapped=no code=1 .*Read-only file system/, scripts: /^swapped=yes code=1 / };
        assert.match(text, expected[attack as keyof typeof expected]);
      });
    }

    test("a grader that empties and refills /task/student still runs its student containers", async (t) => {
      const d = await run(`refill-${warm}`, "student-refill", {});
      if (result(d)[0] !== "success") t.diagnostic(JSON.stringify(s.agent.logs.filter((l) => l.job === `refill-${warm}`)));
      assert.deepEqual(result(d), ["success", "emptied=0 removed=1 code=0 out=staged scripts "]);
    });

    if (warm > 0) return;

    test("a socket path that is a link to a host socket: 254, a warning naming the job, nothing bound", async () => {
      const d = await run("socket-link", "student-socket-link", { canary_socket: canary.socket });
      assert.equal(canary.connections, 0, "a student container reached the canary socket");
      assert.deepEqual(result(d), ["success", "retval=254"]);
      const warned = s.agent.logs.filter((l) => l.job === "socket-link" && /refused a student container/.test(l.msg));
      assert.equal(warned.length, 1);
      assert.match(String(warned[0]!["reason"]), /hostile\.sock is a symbolic link/);
    });

    test("the race: links swapped in a tight loop while student containers are asked for, for 30 s", async (t) => {
      const d = await run("race", "student-race", { canary: canary.dir, canary_socket: canary.socket, secret: canary.secret, seconds: "30" }, { time: 200, hard_time: 300 });
      assert.equal(result(d)[0], "success", result(d)[1]);
      t.diagnostic(`${result(d)[1]!}; connections to the canary socket: ${canary.connections}`);
      assert.equal(canary.connections, 0, "a student container reached the canary socket");
      assert.equal(canary.snapshot(), before0, "the canary folder was touched");
      const stats = JSON.parse(result(d)[1]!) as Record<string, number>;
      assert.equal(stats["leaks"], 0, `student containers saw the host folder: ${result(d)[1]}`);
      assert.ok(stats["folder_runs"]! >= 5, `too few runs to tell: ${result(d)[1]}`);
      assert.equal(stats["folder_ok"], stats["folder_runs"], `a student container over the job's own folders failed: ${result(d)[1]}`);
      assert.ok(stats["socket_runs"]! >= 5, `too few runs to tell: ${result(d)[1]}`);
      assert.equal(stats["socket_other"], 0, result(d)[1]);
      assert.equal(stats["socket_real"]! + stats["socket_refused"]!, stats["socket_runs"]);
    });

    test("at most --student-containers of a job's student containers at once; the others wait and run", async () => {
      const d = await run("many", "student-many", {});
      assert.equal(result(d)[0], "success", result(d)[1]);
      const m = /^peak=(\d+) runs=5 codes=(.*)$/.exec(result(d)[1]!);
      assert.ok(m, result(d)[1]);
      assert.ok(Number(m[1]) <= 2, `more than 2 at once: ${result(d)[1]}`);
      assert.equal(m[2]!.trim(), "0 0 0 0 0");
    });

    test("a socket id asked for again, while its container runs and after: 254 at once", async () => {
      await s.backend.send(newJob("reuse", {
        task_id: "raw", environment: "test-raw", inputdata: { mode: "reuse-socket" }, limits: { time: 20, hard_time: 40 },
      }));
      const d = await s.backend.done("reuse", 90_000);
      assert.deepEqual(result(d), ["success", "started again:254 first:0 after:254"]);
    });
  });
}

attackSuite("hostile graders and student containers", 0);
attackSuite("hostile graders in warm grading containers", 1);

/** Student containers and SSH debug, for real: exit codes, limits, networks, ports. */
import { after, afterEach, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import { newJob } from "./helpers/backend.js";
import { startSession, type Session } from "./helpers/session.js";
import { freePort } from "./helpers/free-port.js";

type Done = Record<string, unknown>;
const text = (d: Done): string => (d["result"] as string[])[1]!;

function banner(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, "127.0.0.1");
    let data = "";
    sock.setTimeout(5000, () => (sock.destroy(), reject(new Error("no banner within 5 s"))));
    sock.on("data", (c) => {
      data += c.toString();
      if (data.includes("\n")) {
        sock.destroy();
        resolve(data.trim());
      }
    });
    sock.on("error", reject);
  });
}

describe("student containers", () => {
  let s: Session;
  before(async () => {
    s = await startSession();
  });
  afterEach(() => s.assertClean());
  after(() => s?.end());

  const run = async (id: string, task: string): Promise<Done> => {
    await s.backend.send(newJob(id, { task_id: task, limits: { time: 20, hard_time: 60, memory: 200 } }));
    return s.backend.done(id, 90_000);
  };

  test("a student container runs and its exit code and output come back", async () => {
    const d = await run("st-1", "student");
    assert.deepEqual(d["result"], ["success", "code=7 out=hello from the student container"]);
  });

  test("a student busy loop is stopped by its CPU limit: 253", async () => {
    assert.equal(text(await run("st-cpu", "student-cpu")), "code=253");
  });

  test("a student allocation past its memory limit: 252", async () => {
    assert.equal(text(await run("st-mem", "student-mem")), "code=252");
  });

  test("an unknown environment: 254", async () => {
    assert.equal(text(await run("st-env", "student-env")), "code=254");
  });

  test("run_as_root: 254", async () => {
    assert.equal(text(await run("st-root", "student-root")), "code=254");
  });

  test("share_network puts the student container in the parent's network namespace", async () => {
    assert.equal(text(await run("st-share", "student-share")), "shared=parent alone=unreachable");
  });

  test("the parent ending first removes its student containers", async () => {
    const d = await run("st-orphan", "student-orphan");
    assert.equal((d["result"] as string[])[0], "success");
    // afterEach checks that no container is left
  });

  test("ssh in a student container without network grading and --ssh ends the job as crash", async () => {
    const d = await run("st-ssh", "student-ssh");
    assert.equal((d["result"] as string[])[0], "crash");
    assert.match(text(d), /ssh for student requires to allow ssh and internet access/);
  });
});

describe("SSH debug with a range of one port", () => {
  let s: Session;
  let port: number;
  before(async () => {
    port = await freePort();
    s = await startSession(["--debug-ports", `${port}-${port}`]);
  });
  afterEach(() => s.assertClean());
  after(() => s?.end());

  test("ssh_debug yields one AgentJobSSHDebug whose port reaches the container; a second job finds no port", async () => {
    await s.backend.send(newJob("ssh-1", { task_id: "ssh", debug: "ssh", inputdata: { hold: "6" } }));
    const info = (await s.backend.waitFor((m) => m["@type"] === "AgentJobSSHDebug" && m["job_id"] === "ssh-1", 30_000)).message;
    assert.equal(info["host"], "127.0.0.1");
    assert.equal(info["port"], port);
    assert.equal(typeof info["user"], "string");
    assert.ok((info["password"] as string).length > 0);
    assert.equal(await banner(port), "SSH-2.0-inginious-agent-docker-test");

    await s.backend.send(newJob("ssh-2", { task_id: "ssh", debug: "ssh", inputdata: { hold: "0" } }));
    const second = await s.backend.done("ssh-2", 10_000);
    assert.deepEqual(second["result"], ["crash", "No ports are available right now. Please retry later."]);

    const first = await s.backend.done("ssh-1", 60_000);
    assert.equal((first["result"] as string[])[0], "success");
    assert.equal(s.backend.count("AgentJobSSHDebug", "ssh-1"), 1);
  });

  test("the port is free again after the job", async () => {
    await s.backend.send(newJob("ssh-3", { task_id: "ssh", debug: "ssh", inputdata: { hold: "0" } }));
    await s.backend.waitFor((m) => m["@type"] === "AgentJobSSHDebug" && m["job_id"] === "ssh-3", 30_000);
    const d = await s.backend.done("ssh-3", 60_000);
    assert.equal((d["result"] as string[])[0], "success");
  });
});

/**
 * Unit tests for admission: what a BackendNewJob becomes given a snapshot of the agent, a plan or
 * a refusal with the text the student sees. No Docker, no files, no ports.
 */
import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { admit, previousStateOf, type Admission, type AdmissionPlan, type AdmissionSnapshot } from "../src/jobs/admission.js";
import { warmKey } from "../src/jobs/warm-containers.js";
import type { RuntimeSpec } from "../src/config.js";
import type { BackendNewJob, EnvironmentInfo } from "../src/protocol/messages.js";

const runc: RuntimeSpec = { runtime: "runc", envtype: "docker", runAsRoot: false, shared: true, gpu: false };
const runcSsh: RuntimeSpec = { runtime: "runc", envtype: "docker-ssh", runAsRoot: false, shared: true, gpu: false };
const env = (id: string, ports: number[] = []): EnvironmentInfo => ({ id, title: id, created: 1, ports, runtime: "runc", advertised: true });

function snapshot(over: Partial<AdmissionSnapshot> = {}): AdmissionSnapshot {
  return {
    environments: {
      docker: { default: env("sha256:default"), web: env("sha256:web", [80]) },
      "docker-ssh": { default: env("sha256:default") },
    },
    runtimes: new Map([["docker", runc], ["docker-ssh", runcSsh]]),
    usableMemoryMb: 1000,
    debugHost: "192.0.2.1",
    tasksRoot: "/srv/tasks",
    agentId: "agent1",
    diskLimit: true,
    ...over,
  };
}

function newJob(over: Partial<BackendNewJob> = {}): BackendNewJob {
  return {
    type: "BackendNewJob",
    job_id: "j1",
    course_id: "course",
    task_id: "task",
    task_problems: {},
    inputdata: { q: "a" },
    environment_type: "docker",
    environment: "default",
    environment_parameters: { limits: { time: 10, hard_time: 30, memory: 100 }, network_grading: false, run_cmd: null },
    debug: false,
    ...over,
  };
}

function plan(a: Admission): AdmissionPlan {
  if (a.kind !== "plan") assert.fail(`refused: ${a.reason}`);
  return a;
}

function refusal(a: Admission): { text: string; reason: string; previousState: string } {
  if (a.kind !== "refusal") assert.fail("admitted");
  return { text: a.text, reason: a.reason, previousState: a.previousState };
}

describe("admit", () => {
  test("a plain job: its task, its folders, no ports, and the warm containers that could run it", () => {
    const p = plan(admit(newJob(), snapshot()));
    assert.equal(p.task.jobId, "j1");
    assert.equal(p.task.taskDir, "/srv/tasks/course/task");
    assert.equal(p.task.courseDir, "/srv/tasks/course");
    assert.equal(p.task.image, "sha256:default");
    assert.equal(p.task.runtime, "runc");
    assert.deepEqual([p.task.time, p.task.hardTime, p.task.memoryMb, p.task.diskMb], [10, 30, 100, null]);
    assert.deepEqual(p.task.envtypes, ["docker", "docker-ssh"]);
    assert.equal(p.task.runAsRoot, false);
    assert.deepEqual(Object.values(p.task.labels), ["agent1", "j1", "grading"]);
    assert.deepEqual(Object.values(p.task.studentLabels), ["agent1", "j1", "student"]);
    assert.deepEqual(p.task.studentEnvironments, {
      default: { image: "sha256:default", runtime: "runc" }, web: { image: "sha256:web", runtime: "runc" },
    });
    assert.equal(p.task.envtypeHasSsh, false);
    // the agent's fixed settings reach pool threads once (workerData), not in every job's task
    for (const key of ["jobDirMarker", "pidsLimit", "cgroupVersion", "nofile", "maxMessageBytes", "sshAllowed", "logLevel", "logDestination"]) {
      assert.equal(key in p.task, false, key);
    }
    assert.equal(p.task.warm, null);
    assert.deepEqual(p.wantedPorts, []);
    assert.equal(p.warmKey, warmKey("docker", "default", "sha256:default", "runc"));
    assert.equal(p.previousState, "");
  });

  test("the previous state comes from @state when it is a string", () => {
    assert.equal(plan(admit(newJob({ inputdata: { "@state": "s1" } }), snapshot())).previousState, "s1");
    assert.equal(previousStateOf(newJob({ inputdata: { "@state": 3 } })), "");
    const r = refusal(admit(newJob({ inputdata: { "@state": "s2" }, environment: "nope" }), snapshot()));
    assert.equal(r.previousState, "s2", "a refusal keeps the state too");
  });

  test("a taskless job has no folders", () => {
    const p = plan(admit(newJob({ course_id: null, task_id: null }), snapshot()));
    assert.equal(p.task.taskDir, null);
    assert.equal(p.task.courseDir, null);
  });

  test("an unknown environment or envtype is refused", () => {
    for (const over of [
      { environment: "nope" }, { environment_type: "kata" },
      { environment_type: "constructor", environment: "name" }, { environment: "toString" }, { environment_type: "__proto__" },
    ]) {
      const r = refusal(admit(newJob(over), snapshot()));
      assert.equal(r.text, "This environment is not available in this agent. Please contact your course administrator.");
      assert.match(r.reason, /^unknown environment /);
    }
  });

  test("parameters that do not parse are refused", () => {
    const r = refusal(admit(newJob({ environment_parameters: { limits: { time: "abc" } } }), snapshot()));
    assert.equal(r.text, "The agent is unable to parse the parameters");
    assert.match(r.reason, /limits\.time/);
  });

  test("course and task ids that could leave the tasks folder, or only one of the two, are refused", () => {
    const bad: Array<Partial<BackendNewJob>> = [
      { course_id: "..", task_id: "task" }, { course_id: "course", task_id: "../x" }, { task_id: "a/b" },
      { course_id: "", task_id: "task" }, { course_id: null }, { task_id: null }, { course_id: "c d" },
      { course_id: "." }, { task_id: "." }, { task_id: "a\\b" },
    ];
    for (const over of bad) {
      const r = refusal(admit(newJob(over), snapshot()));
      assert.equal(r.text, "This job names an invalid course or task. Please contact your course administrator.", JSON.stringify(over));
      assert.equal(r.reason, "invalid course or task id");
    }
    assert.equal(plan(admit(newJob({ course_id: "A-b_9", task_id: "t_1-X" }), snapshot())).task.taskDir, "/srv/tasks/A-b_9/t_1-X");
    // dots are part of INGInious's id rule (id_checker): a course of a given year, say
    assert.equal(plan(admit(newJob({ course_id: "LSINF1252.2024", task_id: "ex.1" }), snapshot())).task.taskDir,
      "/srv/tasks/LSINF1252.2024/ex.1");
  });

  test("memory: refused only when it could never fit, even alone (INGInious's text, with the usable memory); at least 20 MB", () => {
    const withMemory = (memory: number): Admission =>
      admit(newJob({ environment_parameters: { limits: { time: 10, memory } } }), snapshot({ usableMemoryMb: 500 }));
    assert.equal(plan(withMemory(500)).task.memoryMb, 500);
    assert.equal(plan(withMemory(5)).task.memoryMb, 20);
    const r = refusal(withMemory(501));
    assert.equal(r.text, "Not enough memory on agent (available: 500MB). Please contact your course administrator.");
    assert.equal(r.reason, "asks for 501MB");
  });

  test("memory: the frontend's default of 1,024 MB is admitted on a host whose memory per slot is smaller", () => {
    // 8 GB, 4 cores, --concurrency 8 (the default): 1,000 MB per slot, which refused it before
    const job = newJob({ environment_parameters: { limits: { time: 10, memory: 1024 } } });
    assert.equal(plan(admit(job, snapshot({ usableMemoryMb: 8000 - 800 }))).task.memoryMb, 1024);
  });

  test("SSH debug without a debug host is refused", () => {
    const r = refusal(admit(newJob({ debug: "ssh" }), snapshot({ debugHost: null })));
    assert.equal(r.text, "SSH debug is not available on this agent. Please contact your course administrator.");
    assert.equal(r.reason, "no debug host");
  });

  test("SSH debug wants port 22 once, gets the debug limits, and no warm container", () => {
    const p = plan(admit(newJob({ debug: "ssh" }), snapshot()));
    assert.deepEqual(p.wantedPorts, [22]);
    assert.deepEqual([p.task.time, p.task.hardTime], [1800, 1800]);
    assert.equal(p.warmKey, null);
    assert.equal(p.task.debug, "ssh");
    const envWith22 = snapshot({ environments: { docker: { default: env("sha256:default", [22, 80]) } } });
    assert.deepEqual(plan(admit(newJob({ debug: "ssh" }), envWith22)).wantedPorts, [22, 80]);
  });

  test("an environment's own ports are wanted without SSH debug, even with no debug host", () => {
    const p = plan(admit(newJob({ environment: "web" }), snapshot({ debugHost: null })));
    assert.deepEqual(p.wantedPorts, [80]);
    assert.deepEqual([p.task.time, p.task.hardTime], [1800, 1800]);
    assert.equal(p.warmKey, null);
  });

  test("a job with network runs in no warm container", () => {
    const p = plan(admit(newJob({ environment_parameters: { network_grading: true } }), snapshot()));
    assert.equal(p.task.network, true);
    assert.equal(p.warmKey, null);
  });

  test("an ssh envtype is marked, and student environments come from the job's envtype only", () => {
    const p = plan(admit(newJob({ environment_type: "docker-ssh" }), snapshot()));
    assert.equal(p.task.envtypeHasSsh, true);
    assert.deepEqual(Object.keys(p.task.studentEnvironments), ["default"]);
  });

  // The Python agent's order. A job of a task: the environment (agent/__init__.py), then the
  // task folder, then the parameters, the memory and the ports (docker_agent/__init__.py); the
  // refusals after the task folder wait for its look-up (dispatch), which may refuse first.
  test("a job of a task: environment, ids, then (after its task folder) parameters, memory, debug host", () => {
    const all: Partial<BackendNewJob> = {
      environment_parameters: { limits: { memory: 5000 } }, course_id: "..", environment: "nope", debug: "ssh",
    };
    const snap = snapshot({ debugHost: null });
    const r = (over: Partial<BackendNewJob>): Admission & { kind: "refusal" } => {
      const a = admit(newJob({ ...all, ...over }), snap);
      if (a.kind !== "refusal") assert.fail("admitted");
      return a;
    };
    assert.deepEqual([r({ environment_parameters: { limits: [] } }).reason, r({}).afterTaskFolder], ["unknown environment docker/nope", null]);
    assert.deepEqual([r({ environment: "default" }).reason, r({ environment: "default" }).afterTaskFolder], ["invalid course or task id", null]);
    const later = [
      [{ environment: "default", course_id: "c", environment_parameters: { limits: [] } }, "limits is not a map"],
      [{ environment: "default", course_id: "c" }, "asks for 5000MB"],
      [{ environment: "default", course_id: "c", environment_parameters: {} }, "no debug host"],
    ] as const;
    for (const [over, reason] of later) {
      assert.deepEqual([r(over).reason, r(over).afterTaskFolder], [reason, "/srv/tasks/c/task"]);
    }
  });

  test("a task-less job: parameters, memory, then the environment with the Python agent's other text, debug host", () => {
    const all: Partial<BackendNewJob> = {
      course_id: null, task_id: null, environment_parameters: { limits: { memory: 5000 } }, environment: "nope", debug: "ssh",
    };
    const snap = snapshot({ debugHost: null });
    const r = (over: Partial<BackendNewJob>): Admission & { kind: "refusal" } => {
      const a = admit(newJob({ ...all, ...over }), snap);
      if (a.kind !== "refusal") assert.fail("admitted");
      assert.equal(a.afterTaskFolder, null, "no task folder to look up");
      return a;
    };
    assert.equal(r({ environment_parameters: { limits: [] } }).reason, "limits is not a map");
    assert.equal(r({}).reason, "asks for 5000MB");
    const unknown = r({ environment_parameters: {} });
    assert.deepEqual([unknown.reason, unknown.text], ["unknown environment docker/nope", "Unknown container. Please contact your course administrator."]);
    assert.equal(r({ environment_parameters: {}, environment: "default" }).reason, "no debug host");
  });
});

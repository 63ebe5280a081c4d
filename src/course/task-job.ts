/**
 * The `BackendNewJob` the frontend would send for a task and a submission's input (its problems,
 * environment and parameters from `task.yaml`), with the few fields a person may override on the
 * command line (environment, limits, network). A task-less job (no course, no task) carries only
 * what the command line gives, as the frontend's own task-less jobs carry no parameters.
 */
import type { BackendNewJob } from "../protocol/messages.js";
import type { ContainerTask } from "./task-yaml.js";

/** Flags given explicitly; an absent one leaves the task's value. */
export interface JobOverrides {
  envtype?: string;
  env?: string;
  time?: number;
  hardTime?: number;
  memory?: number;
  network?: boolean;
}

/** The values a task-less job takes when no flag is given. */
export const TASKLESS_DEFAULTS = { envtype: "docker", env: "default", time: 30, memory: 200, network: false } as const;

export interface JobIds {
  jobId: string;
  courseId: string;
  taskId: string;
}

/** The task's environment parameters with the overrides applied (a given --time without --hard-time gives 3 x time). */
function parametersWith(task: ContainerTask, o: JobOverrides): Record<string, unknown> {
  const params = task.environmentParameters;
  const limits: Record<string, unknown> = { ...params.limits };
  if (o.time !== undefined) {
    limits["time"] = o.time;
    limits["hard_time"] = o.hardTime ?? 3 * o.time;
  } else if (o.hardTime !== undefined) {
    limits["hard_time"] = o.hardTime;
  }
  if (o.memory !== undefined) limits["memory"] = o.memory;
  return {
    ...params,
    limits,
    network_grading: o.network ?? params.network_grading,
  };
}

/** The job for one input of a task, as the frontend builds it. */
export function jobFromTask(
  task: ContainerTask,
  ids: JobIds,
  inputdata: Record<string, unknown>,
  o: JobOverrides = {},
  debug: boolean = false,
): BackendNewJob {
  return {
    type: "BackendNewJob",
    job_id: ids.jobId,
    course_id: ids.courseId,
    task_id: ids.taskId,
    task_problems: task.problems,
    inputdata,
    environment_type: o.envtype ?? task.environmentType,
    environment: o.env ?? task.environmentId,
    environment_parameters: parametersWith(task, o),
    debug,
  };
}

/** A task-less job: only the command line's values, or their defaults. */
export function tasklessJob(jobId: string, inputdata: Record<string, unknown>, o: JobOverrides, debug: boolean): BackendNewJob {
  const time = o.time ?? TASKLESS_DEFAULTS.time;
  return {
    type: "BackendNewJob",
    job_id: jobId,
    course_id: null,
    task_id: null,
    task_problems: {},
    inputdata,
    environment_type: o.envtype ?? TASKLESS_DEFAULTS.envtype,
    environment: o.env ?? TASKLESS_DEFAULTS.env,
    environment_parameters: {
      limits: { time, hard_time: o.hardTime ?? 3 * time, memory: o.memory ?? TASKLESS_DEFAULTS.memory },
      network_grading: o.network ?? TASKLESS_DEFAULTS.network,
      run_cmd: null,
    },
    debug,
  };
}

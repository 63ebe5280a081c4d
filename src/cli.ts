#!/usr/bin/env node
/**
 * The command line: the options of INGInious's inginious-agent-docker, plus `grade` to run
 * jobs against the local engine without a backend and `test` to replay a course's recorded
 * submissions.
 */
import { Command, CommanderError, InvalidArgumentError, Option } from "commander";
import {
  ConfigValueError, DEFAULT_DEBUG_PORTS, DEFAULT_METRICS_HOST, DEFAULT_PIDS_LIMIT, DEFAULT_POOL_IDLE_SECONDS, DEFAULT_STUDENT_CONTAINERS, DEFAULT_WARM, parseNonNegativeInt, defaultConcurrency, groupRuntimeArgs,
  parseBackendAddress, parseEnvBoolean, parseListenPort, parsePortRange, parsePositiveInt, parseRuntime, type AgentConfig,
} from "./config.js";
import { runAgent } from "./run-agent.js";
import { createLogger } from "./log.js";

/** Wraps a pure parser for commander, whose parsers are called as (value, previous). */
function valueParser<T>(parse: (value: string) => T): (value: string) => T {
  return (value: string) => {
    try {
      return parse(value);
    } catch (err) {
      if (err instanceof ConfigValueError) throw new InvalidArgumentError(err.message);
      throw err;
    }
  };
}

export const ENV_PREFIX = "INGINIOUS_AGENT_";
const BACKEND_ENV = `${ENV_PREFIX}BACKEND`;
const RUNTIME_ENV = `${ENV_PREFIX}RUNTIME`;

/** An option also read from INGINIOUS_AGENT_<LONG_NAME> (e.g. --pool-threads: INGINIOUS_AGENT_POOL_THREADS). */
function envOption(flags: string, description: string): Option {
  const option = new Option(flags, description);
  return option.env(ENV_PREFIX + option.long!.replace(/^--/, "").replace(/-/g, "_").toUpperCase());
}

const FS_HELP = `Filesystem providers for the tasks folder:
  local   the tasks are in a local folder (default)
          --fs-location PATH   the folder containing the courses (default ./tasks)
`;

const positive = valueParser((v) => parsePositiveInt(v));

/** `grade`: jobs for one task (from its task.yaml) or task-less, on the local engine. */
function addGradeCommand(program: Command): void {
  program
    .command("grade")
    .description("grade submissions of one task on the local Docker engine, with no backend, and print the results")
    .argument("<task>", "COURSE/TASK (its task.yaml gives the environment and limits), or - for a task-less job")
    .option("--tasks <dir>", "the directory containing the courses", "./tasks")
    .option("--input <file...>", "JSON file with the submission's input (one job per file; {\"$file\": PATH} gives an uploaded file)")
    .option("--env <name>", "environment (grading image name) instead of the task's (task-less: default)")
    .option("--envtype <type>", "environment type instead of the task's (task-less: docker)")
    .option("--time <s>", "CPU time limit in seconds instead of the task's (task-less: 30)", positive)
    .option("--hard-time <s>", "wall time limit in seconds (with --time: 3 x --time)", positive)
    .option("--memory <mb>", "memory limit in MB instead of the task's (task-less: 200)", positive)
    .option("--network", "give the grading container network access")
    .option("--no-network", "no network access, whatever the task says")
    .option("--debug", "ask the grading container for its stdout and stderr", false)
    .option("--tmpdir <dir>", "directory for job directories", "./agent_data")
    .option("--concurrency <n>", "jobs run at once", positive, defaultConcurrency())
    .option("--json", "print JSON even on a terminal", false)
    .option("-v, --verbose", "log at debug level (logs go to stderr)", false)
    .action(async (task: string, opts: Record<string, unknown>, cmd: Command) => {
      // Only flags given on the command line override the task's own values.
      const given = <T>(key: string): T | undefined => (cmd.getOptionValueSource(key) === "cli" ? (opts[key] as T) : undefined);
      const { runGrade } = await import("./grade.js"); // the daemon never loads it
      process.exitCode = await runGrade(task, {
        tasks: opts["tasks"] as string,
        inputs: (opts["input"] as string[] | undefined) ?? [],
        env: given<string>("env"),
        envtype: given<string>("envtype"),
        time: given<number>("time"),
        hardTime: given<number>("hardTime"),
        memory: given<number>("memory"),
        network: given<boolean>("network"),
        debug: Boolean(opts["debug"]),
        tmpdir: opts["tmpdir"] as string,
        concurrency: opts["concurrency"] as number,
        json: Boolean(opts["json"]) || !process.stdout.isTTY,
        verbose: Boolean(opts["verbose"]),
      });
      // Idle keep-alive sockets to the engine must not hold the command open.
      setTimeout(() => process.exit(), 100).unref();
    });
}

/** `test`: a course's recorded submissions replayed and compared. */
function addTestCommand(program: Command): void {
  program
    .command("test")
    .description("replay a course's recorded submissions (each task's test/*.test) on the local Docker engine and compare the results")
    .argument("<course_dir>", "the course folder (its name is the course id; its tasks are its sub-folders)")
    .argument("[tasks...]", "only these tasks (default: every task with a test/ folder)")
    .option("--concurrency <n>", "jobs run at once", positive, Math.max(1, Math.min(4, defaultConcurrency() / 2)))
    .option("--junit <file>", "also write the results as JUnit XML (one testcase per .test file)")
    .option("--record", "write the current results into the .test files instead of comparing (review the diff in git)", false)
    .option("--tmpdir <dir>", "directory for job directories (default: a temporary folder, removed at the end)")
    .option("--json", "one JSON line per test file, even on a terminal", false)
    .option("-v, --verbose", "log at debug level (logs go to stderr)", false)
    .action(async (courseDir: string, tasks: string[], opts: Record<string, unknown>) => {
      const verbose = Boolean(opts["verbose"]);
      const { runTest } = await import("./course/test-command.js");
      process.exitCode = await runTest(courseDir, tasks, {
        concurrency: opts["concurrency"] as number,
        junit: (opts["junit"] as string | undefined) ?? null,
        record: Boolean(opts["record"]),
        tmpdir: (opts["tmpdir"] as string | undefined) ?? null,
        verbose,
        json: Boolean(opts["json"]) || !process.stdout.isTTY,
      }, createLogger({ verbose, quiet: true, destination: 2 }));
      setTimeout(() => process.exit(), 100).unref();
    });
}

export function buildProgram(argv: readonly string[]): Command {
  const program = new Command("inginious-agent-docker");
  program
    .description("Start a Docker grading agent for INGInious: it connects to the backend and grades its jobs in containers.")
    .usage("[options] [command] <backend>")
    .argument("[backend]", `address of the backend: protocol://host:port, e.g. tcp://127.0.0.1:2001 (env: ${BACKEND_ENV})`, valueParser(parseBackendAddress))
    .addOption(envOption("--friendly-name <name>", "friendly name to help identify the agent").default(""))
    .addOption(envOption("--debug-host <host>", "the agent's hostname or IP for SSH debug (default: the address of the default-route interface)"))
    .addOption(envOption("--debug-ports <range>", "range of ports for job remote debugging").argParser(valueParser(parsePortRange)).default(parsePortRange(DEFAULT_DEBUG_PORTS), DEFAULT_DEBUG_PORTS))
    .addOption(envOption("--tmpdir <dir>", "directory where the agent keeps job directories").default("./agent_data"))
    .addOption(envOption("--tasks <dir>", "the directory containing the courses (default ./tasks)").conflicts("fs"))
    .addOption(envOption("--fs <provider>", "filesystem provider for the tasks").choices(["local"]).conflicts("tasks"))
    .addOption(envOption("--fs-location <dir>", "with --fs local: the directory containing the courses"))
    .option("--fs-help", "list the filesystem providers and their options, then exit")
    .addOption(envOption("--concurrency <n>", "maximal number of jobs run at once (default: two times the number of cores)").argParser(valueParser((v) => parsePositiveInt(v))).default(defaultConcurrency()))
    .addOption(envOption("-v, --verbose", "log at debug level").default(false))
    .addOption(envOption("--debugmode", "enable debug mode (for developers: also logs every message on the link)").default(false))
    .addOption(envOption("--disable-autorestart", "exit instead of reconnecting when the backend goes silent").default(false))
    .addOption(envOption("--disable-disk-limit", "ignore the disk limit of jobs (limits.disk, 1024 MB unless the task says otherwise), as INGInious's own agent does; by default a job that writes more ends as overflow").default(false))
    .addOption(envOption("--copy-task-folders", "copy each job's task folder into its job directory, as INGInious's own agent does, even where the engine can give /task as a writable layer over the course's folder").default(false))
    .addOption(envOption("--task-layers-dir <dir>", "folder on which each job's writable layer of /task is made (a filesystem overlayfs accepts as upper layer; default: /dev/shm when it is a tmpfs, else the job directory)"))
    .addOption(envOption("--ssh", "allow this agent to handle tasks that use SSH features").default(false))
    .addOption(envOption("--runtime <words...>", "add a runtime: NAME ENVTYPE [root] [shared] (repeatable); without it, runtimes are detected (in the variable: groups separated by commas)"))
    .addOption(envOption("--pool-threads <n>", "worker threads running container lifecycles (default: two times the number of cores)").argParser(valueParser((v) => parsePositiveInt(v))).default(defaultConcurrency()))
    .addOption(envOption("--pool-idle <seconds>", "seconds a pool thread without work waits before it ends (the next job starts one again)").argParser(valueParser((v) => parsePositiveInt(v))).default(DEFAULT_POOL_IDLE_SECONDS))
    .addOption(envOption("--pids-limit <n>", "maximal number of processes in one container").argParser(valueParser((v) => parsePositiveInt(v))).default(DEFAULT_PIDS_LIMIT))
    .addOption(envOption("--warm <n>", "warm grading containers kept per recently used environment, started ahead of jobs (0: off)").argParser(valueParser((v) => parseNonNegativeInt(v))).default(DEFAULT_WARM))
    .addOption(envOption("--student-containers <n>", "student containers one job may run at once (run_student beyond waits for one to end)").argParser(valueParser((v) => parsePositiveInt(v))).default(DEFAULT_STUDENT_CONTAINERS))
    .addOption(envOption("--memory-reserve <mb>", "memory (MB) of the host kept for the system and the agent: jobs' memory limits are reserved from the rest (default: a tenth of the host's memory, 256 to 2048)").argParser(valueParser((v) => parseNonNegativeInt(v))))
    .addOption(envOption("--metrics-port <port>", "serve Prometheus /metrics and /healthz over HTTP on this port (off by default; 0: any free port, logged)").argParser(valueParser(parseListenPort)))
    .addOption(envOption("--metrics-host <address>", "address the metrics server listens on").default(DEFAULT_METRICS_HOST))
    .enablePositionalOptions()
    .showHelpAfterError(false)
    .action(async (backendArg: string | undefined, opts: Record<string, unknown>) => {
      if (opts["fsHelp"]) {
        process.stdout.write(FS_HELP);
        return;
      }
      process.exitCode = await runAgent(daemonConfig(program, argv, backendArg, opts));
    });

  addGradeCommand(program);
  addTestCommand(program);
  program.exitOverride();
  for (const cmd of program.commands) cmd.exitOverride();
  return program;
}

/** The daemon's configuration from its parsed options and their environment variables; exits 2 on a bad value. */
function daemonConfig(program: Command, argv: readonly string[], backendArg: string | undefined, opts: Record<string, unknown>): AgentConfig {
  const fail = (message: string): never => program.error(message, { exitCode: 2 });
  let backend = backendArg;
  if (backend === undefined) {
    const fromEnv = process.env[BACKEND_ENV];
    if (fromEnv === undefined || fromEnv === "") fail(`error: missing required argument 'backend' (give it, or set ${BACKEND_ENV})`);
    try {
      backend = parseBackendAddress(fromEnv!);
    } catch (err) {
      fail(`error: environment variable ${BACKEND_ENV}: ${(err as Error).message}`);
    }
  }
  readEnvBooleans(program, opts, fail);
  const runtimes = runtimesFrom(program, argv, opts, fail);
  const tasks = (opts["tasks"] as string | undefined) ?? (opts["fsLocation"] as string | undefined) ?? "./tasks";
  const config: AgentConfig = {
    backend: backend!,
    friendlyName: opts["friendlyName"] as string,
    debugHost: (opts["debugHost"] as string | undefined) ?? null,
    debugPorts: opts["debugPorts"] as AgentConfig["debugPorts"],
    tmpdir: opts["tmpdir"] as string,
    tasks,
    concurrency: opts["concurrency"] as number,
    verbose: Boolean(opts["verbose"]) || Boolean(opts["debugmode"]),
    debugmode: Boolean(opts["debugmode"]),
    autorestart: !opts["disableAutorestart"],
    diskLimit: !opts["disableDiskLimit"],
    copyTaskFolders: Boolean(opts["copyTaskFolders"]),
    taskLayersDir: (opts["taskLayersDir"] as string | undefined) ?? null,
    ssh: Boolean(opts["ssh"]),
    runtimes,
    poolThreads: opts["poolThreads"] as number,
    poolIdleSeconds: opts["poolIdle"] as number,
    pidsLimit: opts["pidsLimit"] as number,
    warm: opts["warm"] as number,
    studentContainers: opts["studentContainers"] as number,
    memoryReserveMb: (opts["memoryReserve"] as number | undefined) ?? null,
    metricsPort: (opts["metricsPort"] as number | undefined) ?? null,
    metricsHost: opts["metricsHost"] as string,
  };
  return config;
}

/** commander sets a flag from its variable whatever the value: the value is read here. */
function readEnvBooleans(program: Command, opts: Record<string, unknown>, fail: (message: string) => never): void {
  for (const option of program.options) {
    const key = option.attributeName();
    if (option.envVar === undefined || !option.isBoolean() || program.getOptionValueSource(key) !== "env") continue;
    try {
      opts[key] = parseEnvBoolean(process.env[option.envVar] ?? "");
    } catch (err) {
      fail(`error: environment variable ${option.envVar} (${option.long}): ${(err as Error).message}`);
    }
  }
}

/** The runtimes named by --runtime (or its variable), or null to detect them. */
function runtimesFrom(
  program: Command, argv: readonly string[], opts: Record<string, unknown>, fail: (message: string) => never,
): AgentConfig["runtimes"] {
  if (program.getOptionValueSource("runtime") === "env") {
    try {
      const runtimes = (process.env[RUNTIME_ENV] ?? "").split(",").map((g) => g.trim()).filter((g) => g !== "")
        .map((g) => parseRuntime(g.split(/\s+/)));
      return runtimes.length === 0 ? null : runtimes;
    } catch (err) {
      return fail(`error: environment variable ${RUNTIME_ENV} (--runtime): ${(err as Error).message}`);
    }
  }
  if (opts["runtime"] === undefined) return null;
  try {
    return groupRuntimeArgs(argv).map(parseRuntime);
  } catch (err) {
    return fail(`error: option '--runtime <words...>': ${(err as Error).message}`);
  }
}

export async function main(argv: readonly string[]): Promise<void> {
  if (argv.includes("--fs-help")) {
    process.stdout.write(FS_HELP);
    return;
  }
  const program = buildProgram(argv);
  try {
    await program.parseAsync(argv, { from: "user" });
  } catch (err) {
    if (err instanceof CommanderError) {
      const ok = ["commander.helpDisplayed", "commander.help", "commander.version"].includes(err.code);
      process.exitCode = ok ? 0 : 2;
      return;
    }
    throw err;
  }
}

await main(process.argv.slice(2));

#!/usr/bin/env node
/**
 * The command line: the options of INGInious's inginious-agent-docker, plus `grade` to run
 * jobs against the local engine without a backend.
 */
import { Command, CommanderError, InvalidArgumentError, Option } from "commander";
import {
  ConfigValueError, DEFAULT_DEBUG_PORTS, DEFAULT_METRICS_HOST, DEFAULT_PIDS_LIMIT, DEFAULT_STUDENT_CONTAINERS, DEFAULT_WARM, parseNonNegativeInt, defaultConcurrency, groupRuntimeArgs,
  parseBackendAddress, parseEnvBoolean, parseListenPort, parsePortRange, parsePositiveInt, parseRuntime, type AgentConfig,
} from "./config.js";
import { runAgent } from "./run-agent.js";
import { runGrade } from "./grade.js";

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
    .addOption(envOption("--ssh", "allow this agent to handle tasks that use SSH features").default(false))
    .addOption(envOption("--runtime <words...>", "add a runtime: NAME ENVTYPE [root] [shared] (repeatable); without it, runtimes are detected (in the variable: groups separated by commas)"))
    .addOption(envOption("--pool-threads <n>", "worker threads running container lifecycles (default: two times the number of cores)").argParser(valueParser((v) => parsePositiveInt(v))).default(defaultConcurrency()))
    .addOption(envOption("--pids-limit <n>", "maximal number of processes in one container").argParser(valueParser((v) => parsePositiveInt(v))).default(DEFAULT_PIDS_LIMIT))
    .addOption(envOption("--student-containers <n>", "student containers one job may run at once (run_student beyond waits for one to end)").argParser(valueParser((v) => parsePositiveInt(v))).default(DEFAULT_STUDENT_CONTAINERS))
    .addOption(envOption("--warm <n>", "warm grading containers kept per recently used environment, started ahead of jobs (0: off)").argParser(valueParser((v) => parseNonNegativeInt(v))).default(DEFAULT_WARM))
    .addOption(envOption("--metrics-port <port>", "serve Prometheus /metrics and /healthz over HTTP on this port (off by default; 0: any free port, logged)").argParser(valueParser(parseListenPort)))
    .addOption(envOption("--metrics-host <address>", "address the metrics server listens on").default(DEFAULT_METRICS_HOST))
    .enablePositionalOptions()
    .showHelpAfterError(false)
    .action(async (backendArg: string | undefined, opts: Record<string, unknown>) => {
      if (opts["fsHelp"]) {
        process.stdout.write(FS_HELP);
        return;
      }
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
      // commander sets a flag from its variable whatever the value: read the value here.
      for (const option of program.options) {
        const key = option.attributeName();
        if (option.envVar === undefined || !option.isBoolean() || program.getOptionValueSource(key) !== "env") continue;
        try {
          opts[key] = parseEnvBoolean(process.env[option.envVar] ?? "");
        } catch (err) {
          fail(`error: environment variable ${option.envVar} (${option.long}): ${(err as Error).message}`);
        }
      }
      let runtimes = null;
      if (program.getOptionValueSource("runtime") === "env") {
        try {
          runtimes = (process.env[RUNTIME_ENV] ?? "").split(",").map((g) => g.trim()).filter((g) => g !== "")
            .map((g) => parseRuntime(g.split(/\s+/)));
          if (runtimes.length === 0) runtimes = null;
        } catch (err) {
          fail(`error: environment variable ${RUNTIME_ENV} (--runtime): ${(err as Error).message}`);
        }
      } else if (opts["runtime"] !== undefined) {
        try {
          runtimes = groupRuntimeArgs(argv).map(parseRuntime);
        } catch (err) {
          program.error(`error: option '--runtime <words...>': ${(err as Error).message}`, { exitCode: 2 });
        }
      }
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
        ssh: Boolean(opts["ssh"]),
        runtimes,
        poolThreads: opts["poolThreads"] as number,
        pidsLimit: opts["pidsLimit"] as number,
        studentContainers: opts["studentContainers"] as number,
        warm: opts["warm"] as number,
        metricsPort: (opts["metricsPort"] as number | undefined) ?? null,
        metricsHost: opts["metricsHost"] as string,
      };
      process.exitCode = await runAgent(config);
    });

  program
    .command("grade")
    .description("grade submissions of one task on the local Docker engine, with no backend, and print the results")
    .argument("<task>", "COURSE/TASK, or - for a task-less job")
    .option("--tasks <dir>", "the directory containing the courses", "./tasks")
    .option("--input <file...>", "JSON file with the submission's input (one job per file; {\"$file\": PATH} gives an uploaded file)")
    .option("--env <name>", "environment (grading image name)", "default")
    .option("--envtype <type>", "environment type", "docker")
    .option("--time <s>", "CPU time limit in seconds", valueParser((v) => parsePositiveInt(v)), 30)
    .option("--hard-time <s>", "wall time limit in seconds (default 3 x --time)", valueParser((v) => parsePositiveInt(v)))
    .option("--memory <mb>", "memory limit in MB", valueParser((v) => parsePositiveInt(v)), 200)
    .option("--network", "give the grading container network access", false)
    .option("--debug", "ask the grading container for its stdout and stderr", false)
    .option("--tmpdir <dir>", "directory for job directories", "./agent_data")
    .option("--concurrency <n>", "jobs run at once", valueParser((v) => parsePositiveInt(v)), defaultConcurrency())
    .option("--json", "print JSON even on a terminal", false)
    .option("-v, --verbose", "log at debug level (logs go to stderr)", false)
    .action(async (task: string, opts: Record<string, unknown>) => {
      process.exitCode = await runGrade(task, {
        tasks: opts["tasks"] as string,
        inputs: (opts["input"] as string[] | undefined) ?? [],
        env: opts["env"] as string,
        envtype: opts["envtype"] as string,
        time: opts["time"] as number,
        hardTime: (opts["hardTime"] as number | undefined) ?? null,
        memory: opts["memory"] as number,
        network: Boolean(opts["network"]),
        debug: Boolean(opts["debug"]),
        tmpdir: opts["tmpdir"] as string,
        concurrency: opts["concurrency"] as number,
        json: Boolean(opts["json"]) || !process.stdout.isTTY,
        verbose: Boolean(opts["verbose"]),
      });
      // Idle keep-alive sockets to the engine must not hold the command open.
      setTimeout(() => process.exit(), 100).unref();
    });

  program.exitOverride();
  for (const cmd of program.commands) cmd.exitOverride();
  return program;
}

export async function main(argv: readonly string[]): Promise<void> {
  if (argv.includes("--fs-help")) {
    process.stdout.write(FS_HELP);
    return;
  }
  const program = buildProgram(argv);
  try {
    await program.parseAsync(argv as string[], { from: "user" });
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

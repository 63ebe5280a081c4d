// The lint of the whole project (`npm run lint`): typescript-eslint's type-checked rules for every
// TypeScript file, floating and misused promises as errors (a dropped promise in this agent is a job
// that never ends or an error nobody logs), and, for the shipped code and the bench (src/, workers/,
// bench/; tests and fixtures aside), the size and shape rules: files of at most 400 lines and
// functions of at most 80 (blank lines and comments not counted), no import circle (type-only
// imports included), and imports that run one way, from the command line and the daemon down to
// protocol and config.
import js from "@eslint/js";
import { defineConfig } from "eslint/config";
import { createTypeScriptImportResolver } from "eslint-import-resolver-typescript";
import importX from "eslint-plugin-import-x";
import tseslint from "typescript-eslint";
import noTypeCircle from "./scripts/lint/no-type-circle.js";

const root = import.meta.dirname;

// The layers, top to bottom. A module may import from its own layer and from the layers below it.
// src/course/ is the local mode's `grade` and `test`: commands that start an agent of their own.
const commandLine = ["src/cli.ts", "src/run-agent.ts", "src/grade.ts", "src/course"];
// The daemon's core and what talks to the outside: the backend link and the operator's endpoints.
const daemon = ["src/agent.ts", "src/link", "src/ops/ops.ts", "src/ops/metrics.ts"];
// The building blocks the core assembles and the pool threads use: every other module of src/
// but the bottom layer (globs, so that a new module is a building block until listed above).
const blocks = [
  "src/!(cli|run-agent|grade|agent|config).ts",
  "src/!(link|ops|protocol|course)/**",
  "src/ops/!(ops|metrics).ts",
];
// The bottom: pure codecs and checks, and the settings.
const foundation = ["src/protocol", "src/config.ts"];

const layerZones = [
  {
    target: foundation,
    from: "src",
    except: ["./protocol", "./config.ts"],
    message: "protocol/ and config.ts are the bottom layer: they import only each other.",
  },
  {
    target: foundation,
    from: ["workers", "bench", "test"],
    message: "protocol/ and config.ts are the bottom layer: they import only each other.",
  },
  {
    target: blocks,
    from: [...commandLine, ...daemon],
    message: "The building blocks never import the core that assembles them nor the command line.",
  },
  {
    target: "workers",
    from: [...commandLine, ...daemon],
    message: "A pool thread runs one job: it never imports the main thread's core, link or command line.",
  },
  {
    target: daemon,
    from: commandLine,
    message: "The command line is the top: nothing below it imports it.",
  },
  {
    target: "src",
    from: "workers",
    message: "The main thread loads workers/ by path (piscina); the types both sides share live in src/.",
  },
  {
    target: ["src", "workers"],
    from: ["bench", "test"],
    message: "The agent never imports its bench or its tests.",
  },
];

export default defineConfig(
  { ignores: ["dist/", "node_modules/", "images/", "deploy/", "examples/"] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: root },
    },
    rules: {
      "@typescript-eslint/no-floating-promises": [
        "error",
        {
          // node:test's test(), describe() and it() return promises that the runner itself awaits
          // and reports: awaiting them in a test file would only serialise what it already orders.
          allowForKnownSafeCalls: [
            { from: "package", package: "node:test", name: ["test", "describe", "it", "suite"] },
          ],
        },
      ],
      "@typescript-eslint/no-misused-promises": "error",
      // `const { field: _f, ...rest } = v` is how a field is left out of a copy.
      "@typescript-eslint/no-unused-vars": ["error", { ignoreRestSiblings: true }],
    },
  },
  {
    files: ["src/**/*.ts", "workers/**/*.ts", "bench/**/*.ts"],
    plugins: { "import-x": importX, local: { rules: { "no-type-circle": noTypeCircle } } },
    settings: {
      // Which files import-x parses (to follow their imports) and with which parser.
      "import-x/extensions": [".ts", ".js"],
      "import-x/parsers": { "@typescript-eslint/parser": [".ts"] },
      "import-x/resolver-next": [createTypeScriptImportResolver({ project: `${root}/tsconfig.json` })],
    },
    rules: {
      "max-lines": ["error", { max: 400, skipBlankLines: true, skipComments: true }],
      "max-lines-per-function": ["error", { max: 80, skipBlankLines: true, skipComments: true }],
      // import-x/no-cycle follows value imports only; the local rule adds the circles an
      // `import type` closes.
      "import-x/no-cycle": ["error", { ignoreExternal: true }],
      "local/no-type-circle": "error",
      "import-x/no-restricted-paths": ["error", { basePath: root, zones: layerZones }],
    },
  },
  {
    // This file itself: plain JavaScript outside the TypeScript project.
    files: ["**/*.js"],
    ...tseslint.configs.disableTypeChecked,
  },
);

// An ESLint rule for the import circles that import-x/no-cycle does not see: those closed by an
// `import type`. Such a circle costs nothing at run time, but it is the same knot in the design (two
// modules that each need the other), and it is how a shared type defined in the wrong module shows
// itself. The graph is read from the TypeScript program typescript-eslint already built, with
// TypeScript's own module resolution, so NodeNext's `.js` specifiers lead to the `.ts` sources.
// Only relative imports and re-exports are followed; a dynamic import() is not an edge.
import path from "node:path";
import ts from "typescript";

/** file -> its relative imports: { to, spec, typeOnly }. Files do not change during one lint run. */
const edgeCache = new Map();

function isTypeOnly(statement) {
  if (ts.isExportDeclaration(statement)) return statement.isTypeOnly;
  const clause = statement.importClause;
  if (clause === undefined) return false; // import "./x.js": run for its effects
  if (clause.isTypeOnly) return true;
  if (clause.name !== undefined) return false;
  const bindings = clause.namedBindings;
  return bindings !== undefined && ts.isNamedImports(bindings) && bindings.elements.length > 0
    && bindings.elements.every((e) => e.isTypeOnly);
}

function edgesOf(program, file) {
  const cached = edgeCache.get(file);
  if (cached !== undefined) return cached;
  const edges = [];
  const source = program.getSourceFile(file);
  for (const statement of source?.statements ?? []) {
    if (!ts.isImportDeclaration(statement) && !ts.isExportDeclaration(statement)) continue;
    const specifier = statement.moduleSpecifier;
    if (specifier === undefined || !ts.isStringLiteral(specifier) || !specifier.text.startsWith(".")) continue;
    const resolved = ts.resolveModuleName(specifier.text, file, program.getCompilerOptions(), ts.sys,
      undefined, undefined, source.impliedNodeFormat).resolvedModule;
    if (resolved === undefined || resolved.isExternalLibraryImport || resolved.resolvedFileName.endsWith(".d.ts")) continue;
    edges.push({ to: path.resolve(resolved.resolvedFileName), spec: specifier.text, typeOnly: isTypeOnly(statement) });
  }
  edgeCache.set(file, edges);
  return edges;
}

/** The shortest way from `first` back to `start` that takes at least one type-only import, or null. */
function circleThroughType(program, start, first) {
  const key = (file, typed) => `${typed ? "t" : "v"}:${file}`;
  const from = new Map([[key(first.to, first.typeOnly), null]]);
  const queue = [[first.to, first.typeOnly]];
  while (queue.length > 0) {
    const [file, typed] = queue.shift();
    if (file === start) {
      if (!typed) continue;
      const files = [];
      for (let k = key(file, typed); k !== null; k = from.get(k)) files.unshift(k.slice(2));
      return [start, ...files];
    }
    for (const edge of edgesOf(program, file)) {
      const next = key(edge.to, typed || edge.typeOnly);
      if (from.has(next)) continue;
      from.set(next, key(file, typed));
      queue.push([edge.to, typed || edge.typeOnly]);
    }
  }
  return null;
}

export default {
  meta: {
    type: "problem",
    docs: { description: "Forbid import circles closed by a type-only import." },
    schema: [],
    messages: {
      circle: "Import circle through a type-only import: {{files}}. Move what both sides need to a module of its own.",
    },
  },
  create(context) {
    const program = context.sourceCode.parserServices?.program;
    if (program === undefined || program === null) return {};
    const start = path.resolve(context.physicalFilename);
    const root = context.cwd;
    return {
      "ImportDeclaration, ExportNamedDeclaration, ExportAllDeclaration"(node) {
        if (node.source === null || node.source === undefined) return;
        const edge = edgesOf(program, start).find((e) => e.spec === node.source.value);
        if (edge === undefined) return;
        const circle = circleThroughType(program, start, edge);
        if (circle === null) return;
        const files = circle.map((f) => path.relative(root, f)).join(" -> ");
        context.report({ node: node.source, messageId: "circle", data: { files } });
      },
    };
  },
};

/**
 * YAML as INGInious reads and writes its task and test files: YAML 1.1 as PyYAML's SafeLoader
 * understands it (`yes`/`no`/`on`/`off` booleans, `!!binary` bytes, `<<` merge keys, octal `010`,
 * a repeated key keeping its last value). Reading reports the file and the line of a syntax error;
 * writing keeps a file's comments and key order, and uses literal blocks for multi-line text.
 */
import { Document, isMap, parseDocument, type DocumentOptions, type ParseOptions, type ScalarTag, type SchemaOptions, type Tags } from "yaml";

/**
 * Where the library's YAML 1.1 schema reads more than PyYAML's resolver: it takes `y`/`n` as
 * booleans and `1e3` as a number; PyYAML reads both as text (its floats need a dot, and a sign
 * in the exponent).
 */
const PYYAML_TESTS: Array<{ tag: string; matches: (t: ScalarTag) => boolean; test: RegExp }> = [
  { tag: "tag:yaml.org,2002:bool", matches: (t) => t.identify?.(true) === true, test: /^(?:yes|Yes|YES|true|True|TRUE|on|On|ON)$/ },
  { tag: "tag:yaml.org,2002:bool", matches: (t) => t.identify?.(false) === true, test: /^(?:no|No|NO|false|False|FALSE|off|Off|OFF)$/ },
  { tag: "tag:yaml.org,2002:float", matches: (t) => t.format === "EXP", test: /^(?:[-+]?[0-9][0-9_]*\.[0-9_]*|\.[0-9][0-9_]*)[eE][-+][0-9]+$/ },
];

function pyyamlTags(tags: Tags): Tags {
  return tags.map((t) => {
    if (typeof t !== "object" || !("test" in t) || t.test === undefined) return t;
    const scalar = t;
    const rule = PYYAML_TESTS.find((r) => scalar.tag === r.tag && r.matches(scalar));
    return rule === undefined ? t : { ...scalar, test: rule.test };
  });
}

const OPTIONS: ParseOptions & DocumentOptions & SchemaOptions = { version: "1.1", merge: true, uniqueKeys: false, customTags: pyyamlTags };

/** A file that is not valid YAML, or whose content does not have the expected shape. */
export class YamlFileError extends Error {
  constructor(readonly file: string, readonly field: string | null, detail: string) {
    super(`${file}: ${field === null ? "" : `${field}: `}${detail}`);
  }
}

/** Parses a YAML 1.1 document, keeping it as a Document (for rewriting with comments kept). */
export function parseYamlDocument(text: string, file: string): Document {
  const doc = parseDocument(text, OPTIONS);
  const err = doc.errors[0];
  if (err !== undefined) {
    const where = err.linePos === undefined ? "" : ` (line ${err.linePos[0].line}, column ${err.linePos[0].col})`;
    throw new YamlFileError(file, null, `not valid YAML${where}: ${err.message.split("\n")[0]}`);
  }
  return doc;
}

/** Parses a YAML 1.1 document into plain values: maps as objects, `!!binary` as Buffers. */
export function parseYaml(text: string, file: string): unknown {
  return parseYamlDocument(text, file).toJS({ maxAliasCount: 1000 });
}

/** Parses a document whose top level must be a mapping. */
export function parseYamlMapping(text: string, file: string): Record<string, unknown> {
  const doc = parseYamlDocument(text, file);
  if (!isMap(doc.contents)) throw new YamlFileError(file, null, "expected a mapping of fields at the top level");
  return doc.toJS({ maxAliasCount: 1000 }) as Record<string, unknown>;
}

/** A new YAML 1.1 document holding a value (Buffers become `!!binary`). */
export function newYamlDocument(value: unknown): Document {
  return new Document(value, OPTIONS);
}

/** The text of a document: no folding of long lines, so that text round-trips as it was. */
export function yamlText(doc: Document): string {
  return doc.toString({ lineWidth: 0, blockQuote: "literal" });
}

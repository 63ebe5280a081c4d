/**
 * The Python agent's texts (inginious/agent/docker_agent/__init__.py and inginious/agent/__init__.py),
 * word for word, for the crashes where this agent ends a job the same way: users and admins search
 * for them. Where this agent has more to say, that goes to its log (the `detail` of the `job done`
 * line), not into the text. Texts of cases the Python agent has no text for are the agent's own,
 * where they arise.
 */

/** The prefix of every crash whose cause is the grader's output ("readable output : " with its space). */
export const UNREADABLE_OUTPUT = "The grader did not return a readable output : ";

/** No result came (the Python agent also says this when it could not decode the container's output). */
export const NO_RESULT = `${UNREADABLE_OUTPUT}Grading container did not return any result.`;

/** A result whose keys have the wrong type, or whose problem or test ids are not ids. */
export const BADLY_FORMATTED = `${UNREADABLE_OUTPUT}Feedback file is badly formatted.`;

export const CANNOT_MAKE_TEMP_DIRECTORY = "Cannot make container temp directory.";
export const CANNOT_CREATE_CONTAINER = "Cannot create container.";
export const CANNOT_START_CONTAINER = "Cannot start container";
export const UNKNOWN_CONTAINER = "Unknown container. Please contact your course administrator.";
/** What the Python agent says for any other exception while it sets a job up (a copy that failed, say). */
export const UNKNOWN_AGENT_ERROR = "An unknown error occurred in the agent. Please contact your course administrator.";
export const FOREIGN_STUDENT_SSH = "Trying to connect with ssh to a non-children student container !";

/** Python's repr() of a str: what its KeyError says for a key the result may not have. */
export function pythonRepr(s: string): string {
  const quote = s.includes("'") && !s.includes('"') ? '"' : "'";
  let out = quote;
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    if (ch === quote || ch === "\\") out += `\\${ch}`;
    else if (ch === "\t") out += "\\t";
    else if (ch === "\n") out += "\\n";
    else if (ch === "\r") out += "\\r";
    else if (c === 0x20 || !NOT_PRINTABLE.test(ch)) out += ch;
    else if (c < 0x100) out += `\\x${hex(c, 2)}`;
    else if (c < 0x10000) out += `\\u${hex(c, 4)}`;
    else out += `\\U${hex(c, 8)}`;
  }
  return out + quote;
}

/** What Python's str.isprintable() refuses: control, format, surrogate, private, unassigned, separators. */
const NOT_PRINTABLE = /^[\p{Cc}\p{Cf}\p{Cs}\p{Co}\p{Cn}\p{Zl}\p{Zp}\p{Zs}]$/u;

function hex(n: number, digits: number): string {
  return n.toString(16).padStart(digits, "0");
}

/** The text for a result key the Python agent does not know (its KeyError, in repr). */
export function unknownKeyText(key: string): string {
  return UNREADABLE_OUTPUT + pythonRepr(key);
}

/**
 * The text for a result that is not a map, by the Python type msgpack gives it (`use_list=False`):
 * the AttributeError of its `.items()`.
 */
export function notAMapText(pythonType: "int" | "float" | "bool" | "str" | "bytes" | "tuple" | "ExtType" | "Timestamp"): string {
  return `${UNREADABLE_OUTPUT}'${pythonType}' object has no attribute 'items'`;
}

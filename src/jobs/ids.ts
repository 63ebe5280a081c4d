/**
 * Course and task ids as INGInious accepts them (`id_checker` in inginious/common/base.py:
 * letters, digits, `-`, `.` and `_`, case-insensitive), so that a course such as
 * `LSINF1252.2024` grades here as it does with the Python agent. Ids become folder names under
 * --tasks, so two of INGInious's ids are refused for path safety: `.` and `..` alone (they
 * name the tasks folder itself or its parent). The character set already leaves out `/`, `\`
 * and everything outside ASCII. Two things Python's rule lets through are refused too: a final
 * newline (`re.match(...$)` matches before it) and the few non-ASCII letters that Unicode case
 * folding maps onto ASCII ones (the Kelvin sign, the long s).
 */

const INGINIOUS_ID = /^[a-z0-9\-._]+$/i;

/** Whether `id` may name a course or task folder. */
export function isValidId(id: string): boolean {
  return INGINIOUS_ID.test(id) && id !== "." && id !== "..";
}

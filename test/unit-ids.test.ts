/** Unit tests for the course and task id rule: INGInious's own, less what would escape the tasks folder. */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { isValidId } from "../src/jobs/ids.js";

describe("isValidId", () => {
  test("accepts what INGInious's id_checker accepts, dots included", () => {
    for (const id of ["LSINF1252.2024", "lsinf1252", "task_1", "a-b", "v1.2.3", "...", ".hidden", "x.", "A", "0"]) {
      assert.equal(isValidId(id), true, id);
    }
  });

  test("refuses . and .. alone, path separators, the empty id, and anything outside the character set", () => {
    for (const id of [".", "..", "a/b", "a\\b", "/", "../etc", "", "é", "tâche", "a b", "a*", "a\n", "a\0b", "ａ", "\u212A", "\u017F"]) {
      assert.equal(isValidId(id), false, JSON.stringify(id));
    }
  });
});

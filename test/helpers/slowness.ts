/**
 * How much slower than this project's machines the tests run: IAD_TEST_SLOWNESS (default 1).
 * The host lane sets it for its VMs, where plain code is 10-30x slower; every wait of the test
 * helpers is multiplied by it. A wait is an upper bound, so a larger one changes no assertion.
 */
export const SLOWNESS = Math.max(1, Number(process.env["IAD_TEST_SLOWNESS"] ?? "1") || 1);

/** `ms` scaled for the machine the tests run on. */
export const slow = (ms: number): number => ms * SLOWNESS;

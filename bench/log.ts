/**
 * The bench's progress lines on stderr, `[bench HH:MM:SS] ...`, so that stdout carries only the
 * final table and a run can be followed (or grepped) while it goes.
 */
export const log = (msg: string): void => void process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);

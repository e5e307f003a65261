/**
 * What every Chorus command does with its command line and its exit code,
 * so that scripts can rely on one convention:
 *   0  done as asked
 *   1  the condition the command checks failed (servers that disagree, a
 *      chaos or simulator run that found a fault, a broken invariant)
 *   2  usage or environment error (bad arguments, no such server, a file
 *      that cannot be read, a server that cannot be reached)
 */
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const exitCode = { ok: 0, checkFailed: 1, usage: 2 } as const;

/** The repository the commands run from: the defaults are found there, whatever the working directory. */
const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** The cluster configuration: CHORUS_CONFIG, else the repository's clusterconfig. */
export const defaultConfigFile = process.env.CHORUS_CONFIG || join(repoRoot, 'clusterconfig');
/** Where the daemons keep their files: CHORUS_DATA_ROOT, else the repository's data/. */
export const defaultDataRoot = process.env.CHORUS_DATA_ROOT || join(repoRoot, 'data');
/** How --help shows those defaults. */
export const configDefaultText = 'CHORUS_CONFIG, else clusterconfig in the repository';
export const dataRootDefaultText = 'CHORUS_DATA_ROOT, else data/ in the repository';

/**
 * A yargs `.fail` handler: bad arguments are one line saying what is wrong
 * and one pointing at --help, then exit 2 (yargs would print the whole help
 * first, burying the line that matters). An exception from a command's own
 * code goes to `onError`.
 */
export function usageFailure(command: string, onError: (err: Error) => void = (err) => exitWith(command, err.message, exitCode.usage)) {
  return (message: string | undefined | null, err: Error | undefined): void => {
    if (err && !message) return onError(err);
    const reason = (message ?? err?.message ?? 'invalid arguments').replace(/\s*\n\s*/g, ' ');
    exitWith(command, `${reason}\nSee '${command} --help'.`, exitCode.usage);
  };
}

/** Print `command: message` on standard error and exit with `code`. */
export function exitWith(command: string, message: string, code: number): never {
  process.stderr.write(`${command}: ${message}\n`);
  process.exit(code);
}

/** yargs `.check` for positive integers: server numbers, counts. */
export function positiveInteger(name: string, value: unknown): void {
  if (value !== undefined && (typeof value !== 'number' || !Number.isInteger(value) || value < 1)) {
    throw new Error(`${name} must be a positive integer, got ${String(value)}`);
  }
}

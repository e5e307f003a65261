/**
 * What every Chorus command does with its command line and its exit code,
 * so that scripts can rely on one convention:
 *   0  done as asked
 *   1  the condition the command checks failed (servers that disagree, a
 *      chaos or simulator run that found a fault, a broken invariant)
 *   2  usage or environment error (bad arguments, no such server, a file
 *      that cannot be read, a server that cannot be reached)
 */
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const exitCode = { ok: 0, checkFailed: 1, usage: 2 } as const;

/** The repository the commands run from: the defaults are found there, whatever the working directory. */
const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Where the daemons keep their files: CHORUS_DATA_ROOT, else the repository's data/. */
export const defaultDataRoot = process.env.CHORUS_DATA_ROOT || join(repoRoot, 'data');

/** The configuration `tools/cluster start --servers <n>` or `--netns` writes into the data root, for a cluster unlike the repository's. */
export function generatedConfigFile(dataRoot: string): string {
  return join(dataRoot, 'clusterconfig');
}

/** The cluster configuration of a data root: CHORUS_CONFIG, else the one generated in it, else the repository's clusterconfig. */
export function configFileFor(dataRoot: string): string {
  if (process.env.CHORUS_CONFIG) return process.env.CHORUS_CONFIG;
  const generated = generatedConfigFile(dataRoot);
  return existsSync(generated) ? generated : join(repoRoot, 'clusterconfig');
}

/** The cluster configuration of the default data root. */
export const defaultConfigFile = configFileFor(defaultDataRoot);
/** How --help shows those defaults. */
export const configDefaultText = 'CHORUS_CONFIG, else <data-root>/clusterconfig if tools/cluster start wrote one, else clusterconfig in the repository';

/** yargs middleware for commands with --data-root: a --config left out is the data root's (configFileFor). */
export function configOfDataRoot(args: { config?: string; 'data-root'?: string }): void {
  args.config ??= configFileFor(args['data-root'] ?? defaultDataRoot);
}
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

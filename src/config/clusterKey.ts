/**
 * The cluster key: the secret every daemon signs its datagrams with and the
 * tools present to a daemon's control endpoint. A text file holding 32 or
 * more random bytes in hex, readable by its owner only (like an ssh key).
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { ChorusError } from '../errors.js';

export const clusterKeyFileName = 'cluster.key';
const keyBytes = 32;

/** Read and check a key file. */
export function loadClusterKey(file: string): Buffer {
  let text: string;
  let mode: number;
  try {
    mode = statSync(file).mode;
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const missing = (err as NodeJS.ErrnoException).code === 'ENOENT';
    throw new ChorusError(
      'KEY_INVALID',
      missing
        ? `${file}: no cluster key; create one with tools/cluster keygen (make run does), or run with --insecure`
        : `${file}: cannot read the cluster key: ${(err as Error).message}`,
    );
  }
  if ((mode & 0o077) !== 0) {
    throw new ChorusError('KEY_INVALID', `${file}: the cluster key is readable by others (mode ${(mode & 0o777).toString(8)}); run chmod 600 ${file}`);
  }
  const hex = text.trim();
  if (!/^[0-9a-fA-F]+$/.test(hex) || hex.length % 2 !== 0 || hex.length < keyBytes * 2) {
    throw new ChorusError('KEY_INVALID', `${file}: a cluster key is at least ${keyBytes * 2} hex digits on one line`);
  }
  return Buffer.from(hex, 'hex');
}

/** Create a key file (mode 0600) unless one exists; true if it was created. */
export function ensureClusterKey(file: string): boolean {
  if (existsSync(file)) return false;
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, `${randomBytes(keyBytes).toString('hex')}\n`, { mode: 0o600, flag: 'wx' });
  chmodSync(file, 0o600);
  return true;
}

/**
 * Injected faults survive a relaunch: each daemon keeps its current fault
 * settings in `faults.json` in its data directory until `heal` clears them.
 */
import { existsSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ChorusError } from '../errors.js';
import { noFaultSettings, type FaultSettings } from './faults.js';

export const faultsFileName = 'faults.json';

export function faultsPath(dataDir: string): string {
  return join(dataDir, faultsFileName);
}

/** Check fault settings from outside (a control call, a file); throws a message naming what is wrong. */
export function parseFaultSettings(value: unknown, serverCount: number): FaultSettings {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error('fault settings must be an object');
  const v = value as Record<string, unknown>;
  const server = (x: unknown, what: string): number => {
    const id = typeof x === 'string' ? Number(x) : x;
    if (!Number.isInteger(id) || (id as number) < 1 || (id as number) > serverCount) throw new Error(`${what}: ${JSON.stringify(x)} is not a server 1-${serverCount}`);
    return id as number;
  };
  const lossMap = (x: unknown, what: string): Record<string, number> => {
    if (x === undefined) return {};
    if (typeof x !== 'object' || x === null || Array.isArray(x)) throw new Error(`${what} must be an object of server: probability`);
    const out: Record<string, number> = {};
    for (const [k, p] of Object.entries(x)) {
      server(k, what);
      if (typeof p !== 'number' || !(p >= 0 && p <= 1)) throw new Error(`${what}[${k}] must be a probability from 0 to 1`);
      if (p > 0) out[k] = p;
    }
    return out;
  };
  const blocked = v.blocked === undefined ? [] : v.blocked;
  if (!Array.isArray(blocked)) throw new Error('blocked must be a list of servers');
  return {
    blocked: [...new Set(blocked.map((b) => server(b, 'blocked')))].sort((a, b) => a - b),
    lossTo: lossMap(v.lossTo, 'lossTo'),
    lossFrom: lossMap(v.lossFrom, 'lossFrom'),
  };
}

export function isHealthy(settings: FaultSettings): boolean {
  return settings.blocked.length === 0 && Object.keys(settings.lossTo).length === 0 && Object.keys(settings.lossFrom).length === 0;
}

export function loadFaults(dataDir: string, serverCount: number): FaultSettings {
  const file = faultsPath(dataDir);
  if (!existsSync(file)) return noFaultSettings;
  try {
    return parseFaultSettings(JSON.parse(readFileSync(file, 'utf8')), serverCount);
  } catch (err) {
    throw new ChorusError('LOG_CORRUPT', `${file}:1: invalid fault settings: ${(err as Error).message} (delete the file or run tools/cluster heal)`);
  }
}

/** Write (or, when healthy, remove) the faults file atomically. */
export function saveFaults(dataDir: string, settings: FaultSettings): void {
  const file = faultsPath(dataDir);
  if (isHealthy(settings)) {
    rmSync(file, { force: true });
    return;
  }
  writeFileSync(`${file}.tmp`, `${JSON.stringify(settings)}\n`);
  renameSync(`${file}.tmp`, file);
}

/**
 * clusterconfig: line i (ignoring comments and blank lines) is server i.
 * Each server line reads `<host> <udp-port> <client-port>`.
 */
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { ChorusError } from '../errors.js';

export const minServers = 3;
export const maxServers = 9;

export interface ServerAddress {
  /** 1-based: server i is the i-th server line of the file. */
  readonly id: number;
  readonly host: string;
  readonly udpPort: number;
  readonly clientPort: number;
}

export interface ClusterConfig {
  readonly file: string;
  readonly servers: readonly ServerAddress[];
}

const hostnamePattern = /^[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}))*$/;

export function loadClusterConfig(file: string): ClusterConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ChorusError('CONFIG_UNREADABLE', `${file}: cannot read cluster configuration: ${(err as Error).message}`);
  }
  return parseClusterConfig(text, file);
}

export function parseClusterConfig(text: string, file: string): ClusterConfig {
  const servers: ServerAddress[] = [];
  const portOwners = new Map<string, number>();
  let lastServerLine = 0;
  const lines = text.split('\n');
  lines.forEach((raw, index) => {
    const lineNo = index + 1;
    const line = raw.replace(/#.*$/, '').trim();
    if (line === '') return;
    const fail = (why: string): never => {
      throw new ChorusError('CONFIG_INVALID', `${file}:${lineNo}: ${why}`);
    };
    const fields = line.split(/\s+/);
    if (fields.length !== 3) fail(`expected "<host> <udp-port> <client-port>", got ${JSON.stringify(raw.trim())}`);
    const [host, udpText, clientText] = fields;
    if (isIP(host) === 0 && !hostnamePattern.test(host)) fail(`invalid host ${JSON.stringify(host)}`);
    const udpPort = parsePort(udpText, 'UDP port', fail);
    const clientPort = parsePort(clientText, 'client port', fail);
    if (udpPort === clientPort) fail(`UDP port and client port are both ${udpPort}`);
    const id = servers.length + 1;
    for (const port of [udpPort, clientPort]) {
      const key = `${host}:${port}`;
      const owner = portOwners.get(key);
      if (owner !== undefined) fail(`duplicate address ${key} (already used by server ${owner})`);
      portOwners.set(key, id);
    }
    servers.push({ id, host, udpPort, clientPort });
    lastServerLine = lineNo;
    if (servers.length > maxServers) fail(`too many servers: at most ${maxServers} are supported`);
  });
  if (servers.length < minServers) {
    throw new ChorusError(
      'CONFIG_INVALID',
      `${file}:${Math.max(lastServerLine, 1)}: too few servers: ${servers.length} listed, at least ${minServers} needed`,
    );
  }
  return { file, servers };
}

function parsePort(text: string, what: string, fail: (why: string) => never): number {
  if (!/^\d+$/.test(text)) fail(`${what} ${JSON.stringify(text)} is not a number`);
  const port = Number(text);
  if (port < 1 || port > 65535) fail(`${what} ${port} is out of range 1-65535`);
  return port;
}

export function serverById(config: ClusterConfig, id: number): ServerAddress {
  const server = config.servers.find((s) => s.id === id);
  if (!server) {
    throw new ChorusError('INVALID_ARGUMENT', `server ${id} is not in ${config.file} (servers 1-${config.servers.length})`);
  }
  return server;
}

/** Whether every server is on this machine's loopback, where datagrams may be large. */
export function allOnLoopback(config: ClusterConfig): boolean {
  return config.servers.every((s) => s.host === 'localhost' || s.host.startsWith('127.') || s.host === '::1');
}

/** The text of a clusterconfig listing these servers in order (what tools/cluster start --servers or --netns writes). */
export function formatClusterConfig(servers: readonly Omit<ServerAddress, 'id'>[], comment: string): string {
  return [`# ${comment}`, '# <host> <udp-port> <client-port>; line i is server i', ...servers.map((s) => `${s.host} ${s.udpPort} ${s.clientPort}`)].join('\n') + '\n';
}

/** n servers on this machine's loopback: UDP ports 7101.., client ports 7201.. (the repository's clusterconfig for n = 5). */
export function loopbackServers(n: number): Omit<ServerAddress, 'id'>[] {
  return Array.from({ length: n }, (_, i) => ({ host: '127.0.0.1', udpPort: 7101 + i, clientPort: 7201 + i }));
}

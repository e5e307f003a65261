/**
 * The control endpoint: status and fault injection for tools/cluster.
 * JSON-RPC 2.0 over WebSocket on 127.0.0.1 only, on a port the kernel
 * picks; the port is written to `control.json` in the data directory, where
 * the tools find it. A connection must come from this machine and present a
 * token derived from the cluster key (controlToken), or the upgrade is
 * refused with 401 or 403 and a reason.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { rmSync, writeFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { join } from 'node:path';
import { WebSocketServer, type AddressInfo } from 'ws';
import type { EngineCounters } from '../broadcast/engine.js';
import { RpcErrors } from '../rpc/protocol.js';
import { MethodTable, RpcError } from '../rpc/jsonRpc.js';
import type { FaultSettings } from '../transport/faults.js';
import { parseFaultSettings, saveFaults } from '../transport/faultsFile.js';
import type { Daemon, DaemonStatus } from './daemon.js';
import type { Timings } from './timings.js';

export const controlFileName = 'control.json';

/** The HTTP header carrying the control token. */
export const controlTokenHeader = 'x-chorus-control-token';

/** What a tool presents to prove it holds the cluster key (the key itself never leaves the files). */
export function controlToken(clusterKey: Buffer): string {
  return createHmac('sha256', clusterKey).update('chorus control endpoint').digest('hex');
}

function isLoopback(address: string | undefined): boolean {
  return address !== undefined && (address.startsWith('127.') || address === '::1' || address.startsWith('::ffff:127.'));
}

/** Why a control connection is refused, or undefined to accept it. Off loopback (--control-host), only the token counts. */
function refusal(request: IncomingMessage, expected: Buffer, loopbackOnly: boolean): { code: number; why: string } | undefined {
  if (loopbackOnly && !isLoopback(request.socket.remoteAddress)) return { code: 403, why: 'the control endpoint serves this machine only' };
  const token = Buffer.from(String(request.headers[controlTokenHeader] ?? ''), 'utf8');
  if (token.length !== expected.length || !timingSafeEqual(token, expected)) {
    return { code: 401, why: 'the control token does not match this cluster key' };
  }
  return undefined;
}

/** What the chat server adds to a daemon's status. */
export interface ServerExtras {
  /** Open client connections. */
  readonly sessions: number;
  /** Messages the shown chat state applied again because a late message landed before them. */
  readonly reappliedMessages: number;
  /** Client requests answered with an error (bad parameters, a chat rule, a limit): counted, not logged. */
  readonly refusedRequests: number;
}

export type ServerStatus = DaemonStatus & ServerExtras & { faults: FaultSettings };

/** A cheap subset of the status, for tools that poll often (tools/bench). */
export interface Progress {
  stableTs: number;
  stableEverywhereTs: number;
  clock: number;
  seqVector: readonly number[];
  unstable: number;
  retained: number;
  /** Empty unless asked for with `digest: true` (it hashes the tentative suffix). */
  digest: string;
  rssBytes: number;
  /** CPU time (user and system) the daemon process has used since it started. */
  cpuMs: number;
  /** The engine's counters (messages accepted, duplicates, NACKs, retransmissions, ...). */
  engine: EngineCounters;
}

/** The control endpoint's methods (tools call them with ChorusConnection<ControlMethods>). */
export interface ControlMethods {
  /** `digest: false` leaves the digest empty (it hashes the tentative suffix); it is computed by default. */
  status: { params?: { digest?: boolean }; result: ServerStatus };
  progress: { params?: { digest?: boolean }; result: Progress };
  setFaults: { params: FaultSettings; result: FaultSettings };
  /** Event-loop delay and group-commit times since the last reset; `reset: true` starts a new measurement. */
  timings: { params?: { reset?: boolean }; result: Timings };
}

export interface ControlInfo {
  /** Where it listens: 127.0.0.1 unless chorusd --control-host said otherwise. */
  readonly host?: string;
  readonly port: number;
  readonly pid: number;
}

export class ControlServer {
  private constructor(
    private readonly wss: WebSocketServer,
    private readonly file: string,
  ) {}

  /** `host`: where to listen, 127.0.0.1 by default (a daemon in its own network namespace listens on its address, for the tools outside). */
  static async start(daemon: Daemon, dataDir: string, clusterKey: Buffer, extras: () => ServerExtras, host = '127.0.0.1'): Promise<ControlServer> {
    const rpc = new MethodTable<undefined>();
    rpc.add('status', (params): ServerStatus => ({ ...daemon.status(digestAsked(params, true)), faults: daemon.faults.current, ...extras() }));
    rpc.add('progress', (params): Progress => {
      const withDigest = digestAsked(params, false);
      // Polled often (tools/bench): only what it needs, never the whole status.
      const p = daemon.node.protocol;
      return {
        stableTs: p.stableTs,
        stableEverywhereTs: p.stableEverywhereTs,
        clock: p.clock,
        seqVector: p.seqVector,
        unstable: p.unstableCount,
        retained: p.storeCount,
        digest: withDigest ? daemon.node.app.digest() : '',
        rssBytes: process.memoryUsage.rss(),
        cpuMs: cpuMs(),
        engine: { ...p.counters },
      };
    });
    rpc.add('timings', (params): Timings => {
      const reset = typeof params === 'object' && params !== null && (params as { reset?: unknown }).reset === true;
      return daemon.timings.read(reset);
    });
    rpc.add('setFaults', (params): FaultSettings => {
      let settings;
      try {
        settings = parseFaultSettings(params, daemon.node.protocol.options.serverCount);
      } catch (err) {
        throw new RpcError(RpcErrors.invalidParams, `invalid fault settings: ${(err as Error).message}`);
      }
      saveFaults(dataDir, settings);
      daemon.setFaults(settings);
      return settings;
    });
    const expected = Buffer.from(controlToken(clusterKey), 'utf8');
    const loopbackOnly = isLoopback(host);
    const wss = new WebSocketServer({
      host,
      port: 0,
      maxPayload: 1024 * 1024,
      verifyClient: (info, accept) => {
        const refused = refusal(info.req, expected, loopbackOnly);
        if (refused) accept(false, refused.code, refused.why);
        else accept(true);
      },
    });
    await new Promise<void>((resolve, reject) => {
      wss.once('listening', () => resolve());
      wss.once('error', reject);
    });
    wss.on('connection', (socket) => {
      socket.on('message', (data) => {
        rpc.receiveText(data.toString(), undefined, (answer) => {
          if (answer) socket.send(JSON.stringify(answer));
        });
      });
      socket.on('error', () => socket.terminate());
    });
    const file = join(dataDir, controlFileName);
    const info: ControlInfo = { host, port: (wss.address() as AddressInfo).port, pid: process.pid };
    writeFileSync(file, `${JSON.stringify(info)}\n`);
    return new ControlServer(wss, file);
  }

  async close(): Promise<void> {
    rmSync(this.file, { force: true });
    for (const client of this.wss.clients) client.terminate();
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
  }
}

/** A `digest` parameter: true or false if given as such, else `byDefault`. */
function digestAsked(params: unknown, byDefault: boolean): boolean {
  const digest = typeof params === 'object' && params !== null ? (params as { digest?: unknown }).digest : undefined;
  return typeof digest === 'boolean' ? digest : byDefault;
}

function cpuMs(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1000;
}

/**
 * The control endpoint: status and fault injection for tools/cluster.
 * JSON-RPC 2.0 over WebSocket on 127.0.0.1 only, on a port the kernel
 * picks; the port is written to `control.json` in the data directory, where
 * the tools find it.
 */
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { JSONRPCErrorException, JSONRPCServer } from 'json-rpc-2.0';
import { WebSocketServer, type AddressInfo } from 'ws';
import type { Daemon } from '../daemon/daemon.js';
import { parseFaultSettings, saveFaults } from '../transport/faultsFile.js';
import { RpcErrors } from './protocol.js';

export const controlFileName = 'control.json';

export interface ControlInfo {
  readonly port: number;
  readonly pid: number;
}

export class ControlServer {
  private constructor(
    private readonly wss: WebSocketServer,
    private readonly file: string,
  ) {}

  static async start(daemon: Daemon, dataDir: string, extraStatus: () => Record<string, unknown>): Promise<ControlServer> {
    const rpc = new JSONRPCServer();
    rpc.addMethod('status', () => ({ ...daemon.status(), faults: daemon.faults.current, ...extraStatus() }));
    // A cheap subset of status, for tools that poll often (tools/bench).
    rpc.addMethod('progress', (params) => {
      const withDigest = typeof params === 'object' && params !== null && (params as { digest?: unknown }).digest === true;
      const s = daemon.status(withDigest);
      return {
        stableTs: s.stableTs,
        stableEverywhereTs: s.stableEverywhereTs,
        clock: s.clock,
        seqVector: s.seqVector,
        unstable: s.unstable,
        retained: s.retained,
        digest: s.digest,
        rssBytes: process.memoryUsage().rss,
      };
    });
    rpc.addMethod('setFaults', (params) => {
      let settings;
      try {
        settings = parseFaultSettings(params, daemon.status().seqVector.length);
      } catch (err) {
        throw new JSONRPCErrorException(`invalid fault settings: ${(err as Error).message}`, RpcErrors.invalidParams);
      }
      saveFaults(dataDir, settings);
      daemon.setFaults(settings);
      return settings;
    });
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await new Promise<void>((resolve, reject) => {
      wss.once('listening', () => resolve());
      wss.once('error', reject);
    });
    wss.on('connection', (socket) => {
      socket.on('message', (data) => {
        void rpc.receiveJSON(data.toString()).then((response) => {
          if (response) socket.send(JSON.stringify(response));
        });
      });
      socket.on('error', () => socket.terminate());
    });
    const file = join(dataDir, controlFileName);
    const info: ControlInfo = { port: (wss.address() as AddressInfo).port, pid: process.pid };
    writeFileSync(file, `${JSON.stringify(info)}\n`);
    return new ControlServer(wss, file);
  }

  async close(): Promise<void> {
    rmSync(this.file, { force: true });
    for (const client of this.wss.clients) client.terminate();
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
  }
}

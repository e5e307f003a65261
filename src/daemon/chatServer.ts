/**
 * A whole Chorus server: the daemon running the chat application, the RPC
 * server for its clients, and the control endpoint for the tools. After a
 * crash, the sessions this server had are gone, so their users leave their
 * groups.
 */
import { serverById } from '../config/clusterConfig.js';
import { ChatService } from '../rpc/chatService.js';
import type { RpcLimits } from '../rpc/protocol.js';
import { RpcServer } from '../rpc/server.js';
import { eventLoopTimers } from '../rpc/timers.js';
import { ChatAssembly } from '../server/assembly.js';
import type { ChatApplication } from '../server/chatApplication.js';
import { leaveOrphanedSessions, type ChatPort } from '../server/chatPort.js';
import { nodeFileSystem } from '../storage/fileSystem.js';
import { loadFaults } from '../transport/faultsFile.js';
import { ControlServer } from './controlServer.js';
import { Daemon, type DaemonOptions } from './daemon.js';

export type ChatServerOptions = Omit<DaemonOptions, 'application'> & {
  readonly rpcLimits?: RpcLimits;
  /** Where the control endpoint listens (127.0.0.1 by default; chorusd --control-host). */
  readonly controlHost?: string;
  /** Milliseconds for the client port's rate limiter (tests pass their own). */
  readonly rpcClock?: () => number;
};

export class ChatServer {
  private constructor(
    readonly daemon: Daemon,
    readonly app: ChatApplication,
    readonly port: ChatPort,
    readonly rpc: RpcServer,
    readonly control: ControlServer,
  ) {}

  static async start(options: ChatServerOptions): Promise<ChatServer> {
    const assembly = new ChatAssembly({ fs: options.fileSystem ?? nodeFileSystem, dir: options.dataDir });
    const daemon = await Daemon.start({ ...options, application: assembly.application, faults: loadFaults(options.dataDir, options.config.servers.length) });
    const core = assembly.attach(daemon.node);
    const { app: chat, port } = core;
    const timers = eventLoopTimers(options.rpcClock);
    const service = new ChatService(port, options.config, timers, options.rpcLimits?.maxOpenRequestsPerUser);
    let rpc: RpcServer | undefined;
    let control: ControlServer;
    try {
      rpc = await RpcServer.start(serverById(options.config, options.id), service, options.rpcLimits, timers);
      const sessions = rpc;
      control = await ControlServer.start(daemon, options.dataDir, options.clusterKey, () => ({ sessions: sessions.sessionCount, reappliedMessages: chat.replica.reapplied, refusedRequests: sessions.refusedRequests }), options.controlHost);
    } catch (err) {
      await rpc?.close();
      await daemon.stop((err as Error).message);
      throw err;
    }
    const me = serverById(options.config, options.id);
    daemon.announceStarted(`clients ${me.host}:${me.clientPort}`);
    leaveOrphanedSessions(core);
    return new ChatServer(daemon, chat, port, rpc, control);
  }

  get id(): number {
    return this.daemon.id;
  }

  async stop(): Promise<void> {
    await this.control.close();
    await this.rpc.close();
    await this.daemon.stop();
  }

  async crash(): Promise<void> {
    await this.control.close();
    await this.rpc.crash();
    await this.daemon.crash();
  }
}

/**
 * A whole Chorus server: the daemon running the chat application, and the
 * RPC server for its clients. After a crash, the sessions this server had
 * are gone, so their users leave their groups.
 */
import { serverById } from '../config/clusterConfig.js';
import { ChatApp } from '../daemon/chatApp.js';
import { Daemon, type DaemonOptions } from '../daemon/daemon.js';
import { encodeOp } from '../chat/operations.js';
import { loadFaults } from '../transport/faultsFile.js';
import { ChatService } from './chatService.js';
import { ControlServer } from './controlServer.js';
import type { RpcLimits } from './protocol.js';
import { RpcServer } from './server.js';

export type ChatServerOptions = Omit<DaemonOptions, 'application'> & { readonly rpcLimits?: RpcLimits };

export class ChatServer {
  private constructor(
    readonly daemon: Daemon,
    readonly app: ChatApp,
    readonly service: ChatService,
    readonly rpc: RpcServer,
    readonly control: ControlServer,
  ) {}

  static async start(options: ChatServerOptions): Promise<ChatServer> {
    let app: ChatApp | undefined;
    const daemon = await Daemon.start({
      ...options,
      application: (saved) => (app = new ChatApp(saved)),
      faults: loadFaults(options.dataDir, options.config.servers.length),
    });
    const chat = app!;
    const service = new ChatService(daemon, chat, options.config);
    let rpc: RpcServer | undefined;
    let control: ControlServer;
    try {
      rpc = await RpcServer.start(serverById(options.config, options.id), service, options.rpcLimits);
      const sessions = rpc;
      control = await ControlServer.start(daemon, options.dataDir, options.clusterKey, () => ({ sessions: sessions.sessionCount, tentativeReplays: chat.replica.replays }));
    } catch (err) {
      await rpc?.close();
      await daemon.stop();
      throw err;
    }
    const server = new ChatServer(daemon, chat, service, rpc, control);
    await server.leaveOrphanedSessions();
    return server;
  }

  get id(): number {
    return this.daemon.id;
  }

  /** Sessions joined through this server before it restarted no longer exist: they leave. */
  private async leaveOrphanedSessions(): Promise<void> {
    const orphans: string[] = [];
    for (const group of Object.values(this.app.replica.shown.groups)) {
      for (const [session, member] of Object.entries(group.members)) if (member.server === this.daemon.id) orphans.push(session);
    }
    if (orphans.length === 0) return;
    await Promise.all(orphans.map((session) => this.daemon.broadcast(encodeOp({ op: 'leave', session }))));
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

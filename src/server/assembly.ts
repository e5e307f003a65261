/**
 * One chat server's core, assembled the same way in the daemon, the
 * simulator and the inspector: the node recovers from its log files and
 * builds the chat application from its snapshot (with the history files
 * given here); then the port over both, through which the RPC service (or
 * the simulator's clients) reach the chat.
 *
 *   const chat = new ChatAssembly(files);
 *   const node = Node.recover({ ..., application: chat.application });  // or Daemon.start
 *   const core = chat.attach(node);
 *   leaveOrphanedSessions(core);  // a live server, once it serves clients
 */
import { invariant } from '../errors.js';
import type { ApplicationFactory } from '../node/application.js';
import type { Node } from '../node/node.js';
import { ChatApplication } from './chatApplication.js';
import { chatPort, type ChatPort } from './chatPort.js';
import type { HistoryFiles } from './historyStore.js';

export interface ChatCore {
  readonly node: Node;
  readonly app: ChatApplication;
  readonly port: ChatPort;
}

export class ChatAssembly {
  private app: ChatApplication | undefined;

  constructor(private readonly files: HistoryFiles) {}

  /** What the node recovers its application with. */
  readonly application: ApplicationFactory = (saved) => {
    this.app = new ChatApplication(saved, this.files);
    return this.app;
  };

  /** The node has recovered with this assembly's application: the chat core. */
  attach(node: Node): ChatCore {
    invariant(this.app !== undefined && node.app === this.app, 'the node was not recovered with this assembly\'s application');
    return { node, app: this.app, port: chatPort(node, this.app) };
  }
}

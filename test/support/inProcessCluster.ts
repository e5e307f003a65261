/**
 * Several real daemons in this process, on loopback UDP with free ports and
 * a temporary data directory. Every daemon a test starts is stopped by
 * stopAll(), which tests call in afterEach even when they fail.
 */
import { ChorusConnection } from '../../src/client/connection.js';
import { RawClient } from './rawClient.js';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadClusterConfig, type ClusterConfig } from '../../src/config/clusterConfig.js';
import { Daemon, type DaemonOptions } from '../../src/daemon/daemon.js';
import { ChatServer, type ChatServerOptions } from '../../src/daemon/chatServer.js';
import { Writable } from 'node:stream';
import winston from 'winston';
import { freePorts } from '../../src/tools/freePorts.js';

export const fastTimers = { statusIntervalMs: 50, viewTimeoutMs: 400, nackRetryMs: 20, ackDelayMs: 1 };

/** A logger that keeps each line in `lines`, for tests that check what a daemon logs. */
export function capturingLogger(lines: string[]): winston.Logger {
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(chunk.toString().trimEnd());
      done();
    },
  });
  return winston.createLogger({
    level: 'info',
    format: winston.format.printf(({ level, message }) => `${level}: ${String(message)}`),
    transports: [new winston.transports.Stream({ stream })],
  });
}

/** What every daemon of the cluster is started with; an `application` only without the chat. */
type ClusterOptions = Partial<ChatServerOptions> & Pick<Partial<DaemonOptions>, 'application'>;

export class InProcessCluster {
  readonly daemons: (Daemon | undefined)[];
  /** With `chat`, each server is a whole ChatServer (daemon, chat state, RPC). */
  readonly chatServers: (ChatServer | undefined)[];
  /** What each daemon logged at info level and above, by server id. */
  readonly logs = new Map<number, string[]>();
  /** The cluster key every daemon of this cluster signs its datagrams with. */
  readonly clusterKey = randomBytes(32);
  private constructor(
    readonly config: ClusterConfig,
    readonly root: string,
    private readonly extra: ClusterOptions,
    private readonly chat: boolean,
  ) {
    this.daemons = config.servers.map(() => undefined);
    this.chatServers = config.servers.map(() => undefined);
  }

  static async create(serverCount: number, extra: ClusterOptions = {}, chat = false): Promise<InProcessCluster> {
    const root = mkdtempSync(join(tmpdir(), 'chorus-test-'));
    const ports = await freePorts(serverCount * 2);
    const lines = Array.from({ length: serverCount }, (_, i) => `127.0.0.1 ${ports[2 * i]} ${ports[2 * i + 1]}`);
    const file = join(root, 'clusterconfig');
    writeFileSync(file, `${lines.join('\n')}\n`);
    return new InProcessCluster(loadClusterConfig(file), root, extra, chat);
  }

  dataDir(id: number): string {
    return join(this.root, `server${id}`);
  }

  daemon(id: number): Daemon {
    const d = this.daemons[id - 1];
    if (!d) throw new Error(`server ${id} is not running`);
    return d;
  }

  async start(id: number): Promise<Daemon> {
    const options = {
      id,
      config: this.config,
      dataDir: this.dataDir(id),
      logger: capturingLogger(this.logLines(id)),
      clusterKey: this.clusterKey,
      timers: fastTimers,
      ...this.extra,
    };
    if (this.chat) {
      const { application: _ignored, ...chatOptions } = options;
      const server = await ChatServer.start(chatOptions);
      this.chatServers[id - 1] = server;
      this.daemons[id - 1] = server.daemon;
      return server.daemon;
    }
    const daemon = await Daemon.start(options);
    daemon.announceStarted();
    this.daemons[id - 1] = daemon;
    return daemon;
  }

  chatServer(id: number): ChatServer {
    const server = this.chatServers[id - 1];
    if (!server) throw new Error(`chat server ${id} is not running`);
    return server;
  }

  /** host:port of server id's client (RPC) port. */
  clientAddress(id: number): string {
    const s = this.config.servers[id - 1];
    return `${s.host}:${s.clientPort}`;
  }

  logLines(id: number): string[] {
    let lines = this.logs.get(id);
    if (!lines) {
      lines = [];
      this.logs.set(id, lines);
    }
    return lines;
  }

  async startAll(): Promise<void> {
    for (const server of this.config.servers) await this.start(server.id);
  }

  async crash(id: number): Promise<void> {
    await (this.chatServers[id - 1] ?? this.daemons[id - 1])?.crash();
    this.daemons[id - 1] = undefined;
    this.chatServers[id - 1] = undefined;
  }

  async stop(id: number): Promise<void> {
    await (this.chatServers[id - 1] ?? this.daemons[id - 1])?.stop();
    this.daemons[id - 1] = undefined;
    this.chatServers[id - 1] = undefined;
  }

  /** Only servers in the same group hear each other. */
  partition(groups: number[][]): void {
    for (const d of this.running()) {
      const mine = groups.find((g) => g.includes(d.id)) ?? [d.id];
      const blocked = this.config.servers.map((s) => s.id).filter((id) => !mine.includes(id));
      d.faults.set({ blocked, lossTo: {}, lossFrom: {} });
    }
  }

  heal(): void {
    for (const d of this.running()) d.faults.set({ blocked: [], lossTo: {}, lossFrom: {} });
  }

  running(): Daemon[] {
    return this.daemons.filter((d): d is Daemon => d !== undefined);
  }

  async waitFor(predicate: () => boolean, timeoutMs: number, what: string): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!predicate()) {
      if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for: ${what}`);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }

  /** All running daemons hold the same messages, all stable and collected. */
  converged(): boolean {
    const statuses = this.running().map((d) => d.status());
    return statuses.every(
      (s) =>
        s.unstable === 0 &&
        s.retained === 0 &&
        s.queued === 0 &&
        s.digest === statuses[0].digest &&
        s.seqVector.every((seq, i) => seq === statuses[0].seqVector[i]),
    );
  }

  async stopAll(): Promise<void> {
    for (const server of this.config.servers) await this.crash(server.id);
  }

  async destroy(): Promise<void> {
    await this.stopAll();
    rmSync(this.root, { recursive: true, force: true });
  }
}

/**
 * For one describe block: each test's chat cluster (create, started) and its
 * client connections (connect), closed and destroyed after each test.
 */
export function chatClusterPerTest(): {
  create(serverCount: number, extra?: ClusterOptions): Promise<InProcessCluster>;
  connect(id: number): Promise<ChorusConnection>;
  /** A client that shares no code with ours (support/rawClient.ts). */
  raw(id: number): Promise<RawClient>;
  closeConnections(): void;
} {
  let cluster: InProcessCluster | undefined;
  const connections: { close(): void }[] = [];
  const closeConnections = () => {
    for (const c of connections.splice(0)) c.close();
  };
  afterEach(async () => {
    closeConnections();
    await cluster?.destroy();
    cluster = undefined;
  });
  return {
    async create(serverCount, extra = {}) {
      cluster = await InProcessCluster.create(serverCount, extra, true);
      await cluster.startAll();
      return cluster;
    },
    async connect(id) {
      const c = await ChorusConnection.connect(cluster!.clientAddress(id));
      connections.push(c);
      return c;
    },
    async raw(id) {
      const c = await RawClient.open(cluster!.clientAddress(id));
      connections.push(c);
      return c;
    },
    closeConnections,
  };
}

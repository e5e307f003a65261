/**
 * A clean stop (SIGTERM) of a daemon with a client pipelining appends, seen
 * through a raw WebSocket that shares no code with our client: every request
 * gets an answer before the close, the close says "going away", and every
 * append answered as done is in the history the other servers hold.
 */
import { expect } from 'chai';
import WebSocket from 'ws';
import { ProcessCluster, waitUntil } from './support/processCluster.js';

type Answer = { id: number; result?: unknown; error?: { code: number; message: string } };

/** A JSON-RPC client written against the README alone. */
class RawClient {
  readonly answers = new Map<number, Answer>();
  closed: { code: number; reason: string } | undefined;
  private nextId = 1;

  private constructor(private readonly socket: WebSocket) {
    socket.on('message', (data) => {
      const parsed = JSON.parse(String(data)) as Answer | Answer[] | { method: string };
      for (const answer of Array.isArray(parsed) ? parsed : [parsed]) if ('id' in answer) this.answers.set(answer.id, answer);
    });
    socket.on('close', (code, reason) => (this.closed = { code, reason: String(reason) }));
  }

  static async open(port: number): Promise<RawClient> {
    const socket = new WebSocket(`ws://127.0.0.1:${port}`);
    await new Promise((resolve, reject) => socket.once('open', resolve).once('error', reject));
    return new RawClient(socket);
  }

  /** Send a request; returns its id (undefined once the connection is closing). */
  send(method: string, params: object): number | undefined {
    if (this.socket.readyState !== WebSocket.OPEN) return undefined;
    const id = this.nextId++;
    this.socket.send(JSON.stringify({ jsonrpc: '2.0', id, method, params }));
    return id;
  }

  /** Whether the server said it is shutting down (4008) to any request. */
  get toldShuttingDown(): boolean {
    return [...this.answers.values()].some((a) => a.error?.code === 4008);
  }

  async call(method: string, params: object): Promise<Answer> {
    const id = this.send(method, params);
    if (id === undefined) throw new Error(`the connection closed before ${method}`);
    await waitUntil(() => this.answers.has(id), 10_000, `an answer to ${method}`);
    return this.answers.get(id)!;
  }

  close(): void {
    this.socket.close();
  }
}

describe('RPC: a clean stop answers every request it accepted', function () {
  this.timeout(90_000);
  let cluster: ProcessCluster | undefined;

  afterEach(async () => {
    await cluster?.destroy();
    cluster = undefined;
  });

  it('a client pipelining appends to a daemon that gets SIGTERM gets an answer for each, then close 1001; the confirmed appends are kept', async () => {
    cluster = await ProcessCluster.create(3);
    await cluster.startAll();
    const port = (id: number) => cluster!.config.servers[id - 1].clientPort;
    const writer = await RawClient.open(port(1));
    expect((await writer.call('user', { name: 'piper' })).result).to.deep.equal({ user: 'piper' });
    expect((await writer.call('join', { group: 'pipe' })).error).to.equal(undefined);

    const sent: number[] = [];
    for (let i = 0; i < 150; i++) sent.push(writer.send('append', { text: `before ${i}` })!);
    process.kill(cluster.pids.get(1)!, 'SIGTERM');
    // Requests keep coming while the server stops, until it says so (4008): each is still answered.
    for (let i = 0; i < 300 && !writer.toldShuttingDown; i++) {
      const id = writer.send('append', { text: `during ${i}` });
      if (id === undefined) break;
      sent.push(id);
      await new Promise((r) => setTimeout(r, 1));
    }
    await waitUntil(() => writer.closed !== undefined, 20_000, 'the server closes the connection');
    expect(writer.closed!.code).to.equal(1001);
    const unanswered = sent.filter((id) => !writer.answers.has(id));
    expect(unanswered, 'requests without an answer').to.deep.equal([]);
    const answers = sent.map((id) => writer.answers.get(id)!);
    for (const a of answers) if (a.error) expect(a.error.code, a.error.message).to.equal(4008);
    const done = answers.filter((a) => a.result !== undefined).length;
    expect(done).to.be.greaterThan(0);

    // What was answered as done is in the history the other servers hold, once server 1 is back.
    cluster.pids.delete(1);
    await cluster.start(1);
    const reader = await RawClient.open(port(2));
    await reader.call('user', { name: 'reader' });
    await reader.call('join', { group: 'pipe' });
    await waitUntil(async () => ((await reader.call('history', { from: 1, count: 500 })).result as { total: number }).total >= done, 20_000, 'the confirmed appends on server 2');
    const history = (await reader.call('history', { from: 1, count: 500 })).result as { messages: { id: string; text: string }[] };
    const ids = new Set(history.messages.map((m) => m.id));
    for (const a of answers) if (a.result) expect(ids.has((a.result as { id: string }).id)).to.equal(true);
    reader.close();
  });
});

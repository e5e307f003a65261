/**
 * The client port under hostile input: every parameter rule and every limit
 * answered with a JSON-RPC error object, and random payloads (fast-check)
 * that neither crash the server nor change the chat state.
 */
import { expect } from 'chai';
import fc from 'fast-check';
import WebSocket from 'ws';
import { defaultRpcLimits, RpcErrors } from '../src/rpc/protocol.js';
import { InProcessCluster } from './support/inProcessCluster.js';

interface JsonSchema {
  type?: string;
  description?: string;
  required?: string[];
  additionalProperties?: boolean;
  properties?: Record<string, JsonSchema>;
  items?: JsonSchema;
}
interface RpcError {
  code: number;
  message: string;
}
interface Response {
  id: number | string | null;
  result?: unknown;
  error?: RpcError;
}

/** A bare WebSocket client that sends exact frames and reads exact answers. */
class RawClient {
  private readonly inbox: string[] = [];
  private waiting: (() => void) | undefined;
  closed: { code: number; reason: string } | undefined;
  private nextId = 1;

  private constructor(readonly socket: WebSocket) {
    socket.on('message', (data) => {
      const text = data.toString();
      if (text.includes('"method":"group"')) return;
      this.inbox.push(text);
      this.waiting?.();
    });
    socket.on('close', (code, reason) => {
      this.closed = { code, reason: reason.toString() };
      this.waiting?.();
    });
    socket.on('error', () => undefined);
  }

  static connect(address: string): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const socket = new WebSocket(`ws://${address}`);
      socket.once('open', () => resolve(new RawClient(socket)));
      socket.once('error', reject);
    });
  }

  send(frame: string | Buffer, binary = false): void {
    this.socket.send(frame, { binary });
  }

  /** The next answer the server sends (or undefined if it closes first). */
  async next(timeoutMs = 5000): Promise<Response | undefined> {
    const deadline = Date.now() + timeoutMs;
    while (this.inbox.length === 0 && !this.closed) {
      if (Date.now() > deadline) throw new Error('no answer from the server');
      await new Promise<void>((resolve) => {
        this.waiting = resolve;
        setTimeout(resolve, 50);
      });
    }
    const text = this.inbox.shift();
    return text === undefined ? undefined : (JSON.parse(text) as Response);
  }

  async call(method: string, params?: unknown): Promise<Response> {
    const id = this.nextId++;
    this.send(JSON.stringify({ jsonrpc: '2.0', id, method, ...(params === undefined ? {} : { params }) }));
    const response = await this.next();
    if (!response) throw new Error(`connection closed: ${JSON.stringify(this.closed)}`);
    expect(response.id).to.equal(id);
    return response;
  }

  async error(method: string, params?: unknown): Promise<RpcError> {
    const response = await this.call(method, params);
    expect(response.error, `${method} ${JSON.stringify(params)} should fail`).to.not.equal(undefined);
    return response.error!;
  }

  close(): void {
    this.socket.terminate();
  }
}

describe('client RPC under hostile input', function () {
  this.timeout(120_000);
  let cluster: InProcessCluster | undefined;
  const clients: RawClient[] = [];
  const connect = async (id = 1) => {
    const c = await RawClient.connect(cluster!.clientAddress(id));
    clients.push(c);
    return c;
  };

  afterEach(async () => {
    for (const c of clients.splice(0)) c.close();
    await cluster?.destroy();
    cluster = undefined;
  });

  it('checks every parameter against its schema and says which rule failed', async () => {
    cluster = await InProcessCluster.create(3, {}, true);
    await cluster.startAll();
    const c = await connect();
    const bad: [string, unknown, RegExp][] = [
      ['user', { name: '' }, /^invalid user name: a user name has 1-32 characters$/],
      ['user', { name: 'x'.repeat(33) }, /^invalid user name: a user name has 1-32 characters$/],
      ['user', { name: 'has space' }, /^invalid user name: a user name has printable characters and no spaces$/],
      ['user', { name: 'bell\u0007' }, /^invalid user name: a user name has printable characters and no spaces$/],
      ['user', { name: 7 }, /^invalid user name: must be a string$/],
      ['user', {}, /^invalid user: missing parameter "name"$/],
      ['user', { name: 'ann', admin: true }, /^invalid user: unknown parameter "admin"$/],
      ['user', ['ann'], /^invalid user: params must be an object with named parameters$/],
    ];
    for (const [method, params, message] of bad) {
      const error = await c.error(method, params);
      expect(error.code, JSON.stringify(params)).to.equal(RpcErrors.invalidParams);
      expect(error.message).to.match(message);
    }
    // 32 characters are fine, counted as a person counts them (an emoji is one).
    expect((await c.call('user', { name: `${'é'.repeat(30)}😀x` })).result).to.deep.equal({ user: `${'é'.repeat(30)}😀x` });
    const groups: [unknown, RegExp][] = [
      ['', /^invalid group name: a group name has 1-64 characters$/],
      ['g'.repeat(65), /^invalid group name: a group name has 1-64 characters$/],
      ['tab\there', /^invalid group name: a group name has printable characters/],
      [' padded', /^invalid group name: a group name has printable characters and no leading or trailing spaces$/],
      [null, /^invalid group name: must be a string$/],
    ];
    for (const [group, message] of groups) expect((await c.error('join', { group })).message).to.match(message);
    expect((await c.call('join', { group: 'g'.repeat(64) })).result).to.have.property('group', 'g'.repeat(64));
    const texts: [unknown, RegExp][] = [
      ['', /^invalid message: a message cannot be empty$/],
      ['   ', /^invalid message: a message cannot be empty$/],
      ['y'.repeat(2001), /^invalid message: a message has at most 2000 characters$/],
      ['line\nbreak', /^invalid message: a message cannot contain control characters$/],
      ['esc\u001b[31m', /^invalid message: a message cannot contain control characters$/],
      ['zero\u200bwidth', /^invalid message: a message cannot contain control characters$/],
      [{ text: 'nested' }, /^invalid message: must be a string$/],
    ];
    for (const [text, message] of texts) expect((await c.error('append', { text })).message).to.match(message);
    expect((await c.call('append', { text: 'y'.repeat(2000) })).result).to.have.property('id');
    // Characters as a person counts them: 2,000 emoji (4,000 UTF-16 units) fit, 2,001 do not.
    expect((await c.call('append', { text: '😀'.repeat(2000) })).result).to.have.property('id');
    expect((await c.error('append', { text: '😀'.repeat(2001) })).message).to.match(/^invalid message: a message has at most 2000 characters$/);
    for (const id of ['', '1', 'a.b', '1.2.3', '01.2', '1.0', 7]) {
      expect((await c.error('like', { id })).message, String(id)).to.match(/^invalid message id: /);
    }
    expect((await c.error('history', { extra: 1 })).message).to.equal('invalid history: unknown parameter "extra"');
    expect((await c.error('frobnicate')).code).to.equal(-32601);
  });

  it('says what went wrong in the API\'s own words, with a stable code and data.rule; state errors are not invalid parameters', async () => {
    cluster = await InProcessCluster.create(3, {}, true);
    await cluster.startAll();
    const c = await connect();
    const other = await connect(2);
    expect(await c.error('append', { text: 'too early' })).to.deep.equal({ code: 4001, message: 'no user name yet: call user first', data: { rule: 'user-required' } });
    await c.call('user', { name: 'una' });
    expect(await c.error('append', { text: 'still early' })).to.deep.equal({ code: 4002, message: 'not in a group: call join first', data: { rule: 'group-required' } });
    expect(await c.error('leave', {})).to.deep.equal({ code: 4002, message: 'not in a group', data: { rule: 'group-required' } });
    await c.call('join', { group: 'words' });
    expect(await c.error('user', { name: 'someone-else' })).to.deep.equal({ code: 4014, message: 'the user name cannot change while in a group: call leave first', data: { rule: 'rename-in-group' } });
    const { id } = (await c.call('append', { text: 'mine' })).result as { id: string };
    expect(await c.error('like', { id })).to.deep.equal({ code: 4004, message: 'you cannot like your own message', data: { rule: 'own-message' } });
    expect(await c.error('like', { id: '999999.1' })).to.include({ code: 4003 }).and.to.have.deep.property('data', { rule: 'message-unknown' });
    expect(await other.error('history', { group: 'nowhere' })).to.have.deep.property('data', { rule: 'group-unknown' });
    expect(await c.error('append', { text: '' })).to.deep.equal({ code: -32602, message: 'invalid message: a message cannot be empty', data: { param: 'text', rule: 'a message cannot be empty' } });
    expect(await c.error('history', { extra: 1 })).to.have.deep.property('data', { param: 'extra', rule: 'unknown-parameter' });
    await c.call('leave', {});
    expect((await c.call('user', { name: 'renamed' })).result).to.deep.equal({ user: 'renamed' });
  });

  it('lists every method it answers (rpc.discover), with parameters and results as JSON Schema', async () => {
    cluster = await InProcessCluster.create(3, {}, true);
    await cluster.startAll();
    const c = await connect();
    const { methods } = (await c.call('rpc.discover')).result as { methods: { name: string; description: string; params: JsonSchema; result: JsonSchema }[] };
    expect(methods.map((m) => m.name).sort()).to.deep.equal([...cluster.chatServer(1).rpc.methodNames].sort());
    for (const m of methods) {
      expect(m.description, m.name).to.have.length.above(10);
      expect(m.params.type, m.name).to.equal('object');
      expect(m.result.type, m.name).to.equal('object');
      // Listed means answered: with no parameters a method may refuse, but never as unknown.
      const answer = await c.call(m.name, {});
      expect(answer.error?.code, m.name).not.to.equal(-32601);
    }
    const byName = new Map(methods.map((m) => [m.name, m]));
    expect(byName.get('append')!.params).to.deep.include({ required: ['text'], additionalProperties: false });
    expect(byName.get('append')!.params.properties!.text.description).to.match(/^1-2000 characters/);
    expect(Object.keys(byName.get('history')!.params.properties!)).to.deep.equal(['group', 'after', 'from', 'since', 'before', 'count']);
    expect(byName.get('history')!.result.properties!.messages.items!.properties!.stable.type).to.equal('boolean');
    expect((await c.call('no.such.method', {})).error?.code).to.equal(-32601);
  });

  it('answers frames that are not JSON-RPC with an error object and keeps the connection', async () => {
    cluster = await InProcessCluster.create(3, {}, true);
    await cluster.startAll();
    const c = await connect();
    c.send('{not json');
    expect((await c.next())?.error?.code).to.equal(RpcErrors.parseError);
    c.send(Buffer.from([1, 2, 3]), true);
    expect((await c.next())?.error?.message).to.equal('expected a text frame with JSON');
    c.send('42');
    expect((await c.next())?.error?.code).to.equal(RpcErrors.invalidRequest);
    expect((await c.call('view')).result).to.have.property('server', 1);
  });

  it('limits connections per daemon, requests per second per connection and bytes per frame, each with a clear error', async () => {
    // The rate limiter's clock stands still until the test moves it.
    let clockMs = 0;
    cluster = await InProcessCluster.create(3, { rpcLimits: { maxConnections: 3, requestsPerSecond: 20, maxFrameBytes: 4096 }, rpcClock: () => clockMs }, true);
    await cluster.startAll();
    const first = await connect();
    await connect();
    await connect();
    const fourth = await connect();
    const refusal = await fourth.next();
    expect(refusal?.error?.code).to.equal(RpcErrors.tooManyConnections);
    expect(refusal?.error?.message).to.match(/^too many connections: this server allows 3; try again later or connect to another server$/);
    await fourth.next();
    expect(fourth.closed).to.deep.equal({ code: 1013, reason: 'too many connections' });
    // The connections that were admitted work; a closed one makes room.
    expect((await first.call('view')).result).to.have.property('server', 1);
    first.close();
    const again = await (async () => {
      for (;;) {
        const c = await connect();
        const answer = await c.call('view').catch(() => undefined);
        if (answer?.result) return c;
        await new Promise((r) => setTimeout(r, 50));
      }
    })();

    // Frame size: just over the limit is answered, and the connection stays.
    again.send(JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'append', params: { text: 'z'.repeat(5000) } }));
    const tooLarge = await again.next();
    expect(tooLarge?.error?.code).to.equal(RpcErrors.requestTooLarge);
    expect(tooLarge?.error?.message).to.match(/^request too large: \d+ bytes; the limit is 4096 bytes$/);

    // Request rate: a burst past the limit is answered request by request.
    const answers: Response[] = [];
    for (let i = 0; i < 40; i++) again.send(JSON.stringify({ jsonrpc: '2.0', id: 100 + i, method: 'view' }));
    for (let i = 0; i < 40; i++) answers.push((await again.next())!);
    const limited = answers.filter((a) => a.error?.code === RpcErrors.rateLimited);
    expect(limited.length).to.be.greaterThan(10);
    expect(limited[0].error?.message).to.equal('rate limit: at most 20 requests per second per connection; slow down');
    expect(limited.every((a) => typeof a.id === 'number' && a.id >= 100)).to.equal(true);
    clockMs += 1000;
    expect((await again.call('view')).result).to.have.property('server', 1);
  });

  it('refuses web pages from other origins (403): a page the user visits cannot chat in their name; programs and allowed origins connect', async () => {
    cluster = await InProcessCluster.create(3, { rpcLimits: { ...defaultRpcLimits, allowedOrigins: ['http://127.0.0.1:7300'] } }, true);
    await cluster.startAll();
    const handshake = (origin?: string) =>
      new Promise<number>((resolve) => {
        const socket = new WebSocket(`ws://${cluster!.clientAddress(1)}`, origin === undefined ? {} : { origin });
        socket.on('open', () => {
          socket.close();
          resolve(101);
        });
        socket.on('unexpected-response', (_req, res) => {
          socket.terminate();
          resolve(res.statusCode ?? 0);
        });
        socket.on('error', () => undefined);
      });
    expect(await handshake('https://evil.example')).to.equal(403);
    expect(await handshake('null')).to.equal(403);
    expect(await handshake('http://127.0.0.1:7301')).to.equal(403);
    expect(await handshake()).to.equal(101);
    expect(await handshake('http://127.0.0.1:7300')).to.equal(101);
  });

  it('random payloads never crash the server, always get an answer, and leave the chat state unchanged', async () => {
    cluster = await InProcessCluster.create(3, { rpcLimits: { maxConnections: 10, requestsPerSecond: 1_000_000, maxFrameBytes: 64 * 1024 } }, true);
    await cluster.startAll();
    const app = cluster.chatServer(1).app;
    const c = await connect();
    await c.call('user', { name: 'fuzz' });
    await c.call('join', { group: 'fuzzing' });
    const methods = ['user', 'join', 'leave', 'append', 'like', 'unlike', 'history', 'view', 'status', 'setFaults', '__proto__', 'constructor'];
    const nastyText = fc.oneof(fc.string({ maxLength: 40 }), fc.constantFrom('', ' ', '\u0000', '\u202e', 'x'.repeat(2001), '__proto__'));
    const params = fc.oneof(
      fc.constant(undefined),
      fc.anything({ maxDepth: 2 }),
      fc.record({ text: nastyText }),
      fc.record({ name: nastyText }),
      fc.record({ group: nastyText }),
      fc.record({ id: fc.oneof(fc.string({ maxLength: 12 }), fc.integer()) }),
    );
    const request = fc.oneof(
      fc.record({ jsonrpc: fc.constant('2.0'), id: fc.integer({ min: 1 }), method: fc.constantFrom(...methods), params }).map((r) => JSON.stringify(r)),
      fc.json().filter((text) => !text.includes('"method"')),
      fc.string({ maxLength: 80 }),
    );
    let before = app.digest();
    await fc.assert(
      fc.asyncProperty(request, async (frame) => {
        c.send(frame);
        const answer = await c.next();
        expect(answer, `no answer to ${frame}`).to.not.equal(undefined);
        if (answer?.error) {
          expect(answer.error.code).to.be.a('number');
          expect(answer.error.message).to.be.a('string').and.not.equal('');
          expect(app.digest(), `state changed by rejected ${frame}`).to.equal(before);
        }
        before = app.digest();
      }),
      { numRuns: 10_000 },
    );
    expect(clients[0].closed).to.equal(undefined);
    expect((await c.call('view')).result).to.have.property('server', 1);
  });
});

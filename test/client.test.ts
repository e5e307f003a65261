/** The client library's connection: calls made together travel as one JSON-RPC batch, each answered on its own. */
import { expect } from 'chai';
import type { RpcResponse } from '../src/rpc/jsonRpc.js';
import type { AddressInfo } from 'node:net';
import { WebSocketServer } from 'ws';
import { ErrorAnswer, PendingCalls } from '../src/client/calls.js';
import { ChorusConnection } from '../src/client/connection.js';

interface Request {
  id: number;
  method: string;
  params: { text?: string };
}

describe('client connection', () => {
  let server: WebSocketServer;
  let frames: unknown[];

  beforeEach(async () => {
    frames = [];
    server = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await new Promise<void>((resolve) => server.once('listening', () => resolve()));
    // A server that answers each request with its own text, a batch with an array, as JSON-RPC 2.0 says.
    server.on('connection', (socket) =>
      socket.on('message', (data) => {
        const frame = JSON.parse(data.toString()) as Request | Request[];
        frames.push(frame);
        const answer = (r: Request) => ({ jsonrpc: '2.0', id: r.id, result: { id: `echo ${r.params.text}` } });
        socket.send(JSON.stringify(Array.isArray(frame) ? frame.map(answer) : answer(frame)));
      }),
    );
  });

  afterEach(async () => {
    for (const client of server.clients) client.terminate();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  it('sends calls made in one turn as one batch frame and resolves each with its own answer; a lone call goes alone', async () => {
    const connection = await ChorusConnection.connect(`127.0.0.1:${(server.address() as AddressInfo).port}`);
    try {
      const texts = Array.from({ length: 20 }, (_, i) => `m${i}`);
      const answers = await Promise.all(texts.map((text) => connection.call('append', { text })));
      expect(answers.map((a) => a.id)).to.deep.equal(texts.map((t) => `echo ${t}`));
      expect(frames).to.have.length(1);
      expect((frames[0] as Request[]).map((r) => r.params.text)).to.deep.equal(texts);
      const lone = await connection.call('append', { text: 'alone' });
      expect(lone.id).to.equal('echo alone');
      expect(frames).to.have.length(2);
      expect(Array.isArray(frames[1])).to.equal(false);
    } finally {
      connection.close();
    }
  });

  it('splits a batch that would be too large for one frame', async () => {
    const connection = await ChorusConnection.connect(`127.0.0.1:${(server.address() as AddressInfo).port}`);
    try {
      const texts = Array.from({ length: 40 }, (_, i) => `${i}:${'x'.repeat(1900)}`);
      const answers = await Promise.all(texts.map((text) => connection.call('append', { text })));
      expect(answers.map((a) => a.id)).to.deep.equal(texts.map((t) => `echo ${t}`));
      expect(frames.length).to.be.greaterThan(1);
      for (const frame of frames) expect(JSON.stringify(frame).length).to.be.below(64 * 1024);
    } finally {
      connection.close();
    }
  });
});

describe('client calls waiting for answers (one for the Node client, the console page and the simulator)', () => {
  const answerTo = (text: string, answer: object) => ({ jsonrpc: '2.0', id: (JSON.parse(text) as { id: number }).id, ...answer }) as RpcResponse;

  it('numbers each request, settles each call with the answer that names it in whatever order they come, and drops an answer nobody waits for', async () => {
    const calls = new PendingCalls();
    const first = calls.request('append', { text: 'a' });
    const second = calls.request('history', { count: 5 });
    const requests = [first.text, second.text].map((t) => JSON.parse(t) as { jsonrpc: string; method: string; params: unknown; id: number });
    expect(requests.map(({ jsonrpc, method, params }) => ({ jsonrpc, method, params }))).to.deep.equal([
      { jsonrpc: '2.0', method: 'append', params: { text: 'a' } },
      { jsonrpc: '2.0', method: 'history', params: { count: 5 } },
    ]);
    expect(requests[0].id).to.not.equal(requests[1].id);
    calls.receive(answerTo(second.text, { result: { messages: [] } }));
    calls.receive({ jsonrpc: '2.0', id: 999, result: 'for nobody' });
    calls.receive(answerTo(first.text, { result: null }));
    expect(await first.result).to.equal(null);
    expect(await second.result).to.deep.equal({ messages: [] });
    expect(calls.size).to.equal(0);
  });

  it('fails a call the server answers with an error, with its code, message and data, and one with a malformed error all the same', async () => {
    const calls = new PendingCalls();
    const refused = calls.request('append', { text: '' });
    calls.receive(answerTo(refused.text, { error: { code: -32602, message: 'invalid text', data: { field: 'text' } } }));
    const error = await refused.result.then(() => undefined, (e: unknown) => e);
    expect(error).to.be.instanceOf(ErrorAnswer);
    expect(error).to.include({ code: -32602, message: 'invalid text' });
    expect((error as ErrorAnswer).data).to.deep.equal({ field: 'text' });
    const odd = calls.request('append', { text: 'b' });
    calls.receive(answerTo(odd.text, { error: 'no object' }));
    expect(await odd.result.then(() => undefined, (e: unknown) => e)).to.be.instanceOf(ErrorAnswer).and.include({ code: 0, message: 'no object' });
  });

  it('fails every waiting call when the connection is gone, and takes new calls after', async () => {
    const calls = new PendingCalls();
    const waiting = [calls.request('append', { text: 'a' }), calls.request('append', { text: 'b' })];
    calls.rejectAll('the connection to the server was lost');
    for (const { result } of waiting) expect(await result.then(() => undefined, (e: Error) => e.message)).to.equal('the connection to the server was lost');
    expect(calls.size).to.equal(0);
    const again = calls.request('view', {});
    calls.receive(answerTo(again.text, { result: { server: 1 } }));
    expect(await again.result).to.deep.equal({ server: 1 });
  });
});

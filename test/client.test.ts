/** The client library's connection: calls made together travel as one JSON-RPC batch, each answered on its own. */
import { expect } from 'chai';
import type { AddressInfo } from 'node:net';
import { WebSocketServer } from 'ws';
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

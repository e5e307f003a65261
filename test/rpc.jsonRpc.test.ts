/** The table of methods every port answers through: requests, notifications, batches, refusals and bugs, as JSON-RPC 2.0 says. */
import { expect } from 'chai';
import { MethodTable, RpcError, type FrameAnswer } from '../src/rpc/jsonRpc.js';
import { RpcErrors } from '../src/rpc/protocol.js';

interface Context {
  readonly user: string;
}

describe('JSON-RPC method table', () => {
  let unexpected: { method: string; error: unknown }[];
  let table: MethodTable<Context>;
  let release: (() => void) | undefined;

  beforeEach(() => {
    unexpected = [];
    table = new MethodTable<Context>((method, error) => unexpected.push({ method, error }));
    table.add('echo', (params, c) => ({ params, user: c.user }));
    table.add('nothing', () => undefined);
    table.add('later', (params) => new Promise((resolve) => (release = () => resolve({ later: params }))));
    table.add('refuse', () => {
      throw new RpcError(4004, 'you cannot like your own message', { rule: 'own-message' });
    });
    table.add('refuseLater', () => Promise.reject(new RpcError(4007, 'busy')));
    table.add('bug', () => {
      throw new TypeError('x is undefined');
    });
  });

  /** The answer to a frame, and whether it came before receive returned. */
  const answerOf = (frame: unknown): { answer: FrameAnswer; atOnce: boolean; settled: () => boolean; later: () => FrameAnswer } => {
    let answer: FrameAnswer;
    let answered = false;
    table.receive(frame, { user: 'alice' }, (a) => {
      expect(answered, 'answered twice').to.equal(false);
      answered = true;
      answer = a;
    });
    return { answer, atOnce: answered, settled: () => answered, later: () => answer };
  };

  it('answers a request with its result, at once when the method answers at once', () => {
    const { answer, atOnce } = answerOf({ jsonrpc: '2.0', id: 7, method: 'echo', params: { text: 'hi' } });
    expect(atOnce).to.equal(true);
    expect(answer).to.deep.equal({ jsonrpc: '2.0', id: 7, result: { params: { text: 'hi' }, user: 'alice' } });
    expect(answerOf({ jsonrpc: '2.0', id: 'a', method: 'nothing' }).answer).to.deep.equal({ jsonrpc: '2.0', id: 'a', result: null });
  });

  it('answers a method that answers later once it does', async () => {
    const pending = answerOf({ jsonrpc: '2.0', id: 1, method: 'later', params: 3 });
    expect(pending.atOnce).to.equal(false);
    release!();
    await Promise.resolve();
    await Promise.resolve();
    expect(pending.settled()).to.equal(true);
    expect(pending.later()).to.deep.equal({ jsonrpc: '2.0', id: 1, result: { later: 3 } });
  });

  it('does not answer a notification, even one that fails', () => {
    for (const method of ['echo', 'refuse', 'bug', 'no.such.method']) {
      const { answer, atOnce } = answerOf({ jsonrpc: '2.0', method });
      expect(atOnce, method).to.equal(true);
      expect(answer, method).to.equal(undefined);
    }
  });

  it('answers a batch with one array in the order asked, waiting for every answer, leaving out notifications', async () => {
    const pending = answerOf([
      { jsonrpc: '2.0', id: 1, method: 'later', params: 'a' },
      { jsonrpc: '2.0', method: 'echo' },
      { jsonrpc: '2.0', id: 2, method: 'echo', params: 'b' },
    ]);
    expect(pending.atOnce).to.equal(false);
    release!();
    await Promise.resolve();
    await Promise.resolve();
    expect(pending.later()).to.deep.equal([
      { jsonrpc: '2.0', id: 1, result: { later: 'a' } },
      { jsonrpc: '2.0', id: 2, result: { params: 'b', user: 'alice' } },
    ]);
    expect(answerOf([{ jsonrpc: '2.0', id: 3, method: 'nothing' }]).answer, 'a batch of one is still an array').to.deep.equal([{ jsonrpc: '2.0', id: 3, result: null }]);
    expect(answerOf([{ jsonrpc: '2.0', method: 'nothing' }]).answer, 'a batch of notifications').to.equal(undefined);
  });

  it('answers a refusal with its code, message and data, and tells nobody', async () => {
    expect(answerOf({ jsonrpc: '2.0', id: 1, method: 'refuse' }).answer).to.deep.equal({
      jsonrpc: '2.0',
      id: 1,
      error: { code: 4004, message: 'you cannot like your own message', data: { rule: 'own-message' } },
    });
    const later = answerOf({ jsonrpc: '2.0', id: 2, method: 'refuseLater' });
    await new Promise((resolve) => setImmediate(resolve));
    expect(later.later()).to.deep.equal({ jsonrpc: '2.0', id: 2, error: { code: 4007, message: 'busy' } });
    expect(unexpected).to.deep.equal([]);
  });

  it('answers a bug with an internal error and tells the listener', () => {
    const { answer } = answerOf({ jsonrpc: '2.0', id: 1, method: 'bug' });
    expect(answer).to.deep.equal({ jsonrpc: '2.0', id: 1, error: { code: RpcErrors.internalError, message: 'internal error in bug: x is undefined' } });
    expect(unexpected.map((u) => u.method)).to.deep.equal(['bug']);
    expect(unexpected[0].error).to.be.instanceOf(TypeError);
  });

  it('answers an unknown method, a malformed request, an empty batch and text that is not JSON with their errors', () => {
    const errorOf = (frame: unknown) => (answerOf(frame).answer as { id: unknown; error: { code: number } });
    expect(errorOf({ jsonrpc: '2.0', id: 1, method: 'frobnicate' })).to.deep.include({ id: 1 });
    expect(errorOf({ jsonrpc: '2.0', id: 1, method: 'frobnicate' }).error.code).to.equal(RpcErrors.methodNotFound);
    for (const bad of [{ id: 1, method: 'echo' }, { jsonrpc: '1.0', id: 1, method: 'echo' }, { jsonrpc: '2.0', id: 1, method: 42 }, { jsonrpc: '2.0', id: { x: 1 }, method: 'echo' }, 17, null]) {
      const error = errorOf(bad);
      expect(error.error.code, JSON.stringify(bad)).to.equal(RpcErrors.invalidRequest);
      expect(error.id, JSON.stringify(bad)).to.equal(typeof bad === 'object' && bad !== null && typeof bad.id === 'number' ? 1 : null);
    }
    expect(errorOf([]).error.code).to.equal(RpcErrors.invalidRequest);
    let answer: FrameAnswer;
    table.receiveText('{"jsonrpc": "2.0", "id": 1, ', { user: 'alice' }, (a) => (answer = a));
    expect(answer).to.deep.equal({ jsonrpc: '2.0', id: null, error: { code: RpcErrors.parseError, message: 'parse error: the request is not valid JSON' } });
  });
});

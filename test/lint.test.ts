/** The purity rule: the engine and chat folders may not touch sockets, files, timers, clocks, randomness or process, and the chat may not import the layers above it. */
import { expect } from 'chai';
import { ESLint } from 'eslint';

describe('lint: the engine and chat state machine stay pure', function () {
  this.timeout(60_000);
  const impure = [
    "import { createSocket } from 'node:dgram';",
    "import { readFileSync } from 'fs';",
    'export const a = Date.now();',
    'export const b = Math.random();',
    'export const c = () => setTimeout(() => undefined, 1);',
    'export const d = process.pid;',
  ];

  for (const folder of ['src/broadcast', 'src/chat']) {
    it(`rejects each impure construct in ${folder}`, async () => {
      const eslint = new ESLint();
      for (const line of impure) {
        const [result] = await eslint.lintText(`${line}\n`, { filePath: `${folder}/example.ts` });
        const rules = result.messages.map((m) => m.ruleId);
        expect(rules.some((r) => r?.startsWith('no-restricted')), line).to.equal(true);
      }
    });
  }

  it('keeps src/chat from importing the node, storage, server, RPC and daemon layers (they call it, not the reverse)', async () => {
    const eslint = new ESLint();
    for (const line of [
      "import { Node } from '../node/node.js';",
      "import { SegmentStore } from '../storage/segmentStore.js';",
      "import { HistoryStore } from '../server/historyStore.js';",
      "import { ChatService } from '../rpc/chatService.js';",
      "import { Daemon } from '../daemon/daemon.js';",
    ]) {
      const [result] = await eslint.lintText(`${line}\nexport const x = ${line.split(' ')[2]};\n`, { filePath: 'src/chat/example.ts' });
      expect(result.messages.map((m) => m.ruleId), line).to.include('no-restricted-imports');
    }
    const [allowed] = await eslint.lintText("import { compareOrder } from '../broadcast/types.js';\nexport const x = compareOrder;\n", { filePath: 'src/chat/example.ts' });
    expect(allowed.messages).to.deep.equal([]);
    const [above] = await eslint.lintText("import { Node } from '../node/node.js';\nexport const x = Node;\n", { filePath: 'src/server/example.ts' });
    expect(above.messages).to.deep.equal([]);
  });

  it('allows the same constructs in the daemon', async () => {
    const [result] = await new ESLint().lintText('export const a = Date.now() + Math.random();\n', { filePath: 'src/daemon/example.ts' });
    expect(result.messages).to.deep.equal([]);
  });
});

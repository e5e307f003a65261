/** The layering of src/: every import goes down a layer (or stays in its own), and no imports form a cycle (tools/layers). */
import { expect } from 'chai';
import { join } from 'node:path';
import { checkLayers, readImportGraph } from '../src/tools/layering.js';

describe('layers: imports only go down, no cycles', () => {
  it('holds for src/', () => {
    const graph = readImportGraph(join(process.cwd(), 'src'));
    expect(graph.size).to.be.greaterThan(50);
    expect(graph.get('node/node.ts')).to.include('broadcast/engine.ts');
    expect(checkLayers(graph)).to.deep.equal([]);
  });

  it('reports an upward import, a cycle and a file in no layer', () => {
    const graph = new Map([
      ['broadcast/engine.ts', ['wire/codec.ts', 'broadcast/types.ts']],
      ['wire/codec.ts', ['broadcast/types.ts']],
      ['broadcast/types.ts', ['broadcast/engine.ts']],
      ['misc/thing.ts', []],
    ]);
    expect(checkLayers(graph)).to.deep.equal([
      { kind: 'upward import', detail: 'broadcast/engine.ts (broadcast) imports wire/codec.ts (config, wire, storage)' },
      { kind: 'unplaced file', detail: 'misc/thing.ts is in no layer' },
      { kind: 'cycle', detail: 'broadcast/engine.ts -> wire/codec.ts -> broadcast/types.ts -> broadcast/engine.ts' },
    ]);
  });
});

/** The line buffer (src/storage/lineBuffer.ts) the journal and the history segments encode their writes in. */
import { expect } from 'chai';
import fc from 'fast-check';
import { LineBuffer } from '../src/storage/lineBuffer.js';

describe('line buffer', () => {
  it('holds exactly the UTF-8 bytes of the lines added, in order, whatever their size and characters', () => {
    fc.assert(
      fc.property(fc.array(fc.string({ unit: 'grapheme', maxLength: 40_000 }), { maxLength: 20 }), (lines) => {
        const buffer = new LineBuffer();
        let counted = 0;
        for (const line of lines) counted += buffer.add(line);
        const expected = Buffer.from(lines.join(''));
        expect(buffer.view().equals(expected)).to.equal(true);
        expect(buffer.bytes).to.equal(expected.length);
        expect(counted).to.equal(expected.length);
      }),
      { numRuns: 200 },
    );
  });

  it('starts empty again after clear(), also after growing past a megabyte', () => {
    const buffer = new LineBuffer();
    buffer.add('é'.repeat(600_000));
    expect(buffer.bytes).to.equal(1_200_000);
    buffer.clear();
    expect(buffer.bytes).to.equal(0);
    expect(buffer.view().length).to.equal(0);
    buffer.add('next\n');
    expect(buffer.view().toString()).to.equal('next\n');
  });
});

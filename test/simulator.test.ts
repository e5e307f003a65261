/**
 * The deterministic simulator: hundreds of random fault schedules pass every
 * invariant, the same seed reproduces the same run, and the checker catches
 * each deliberately broken engine variant.
 */
import { expect } from 'chai';
import { runSimulation } from '../src/sim/simulator.js';

const seedsInTest = 200;

describe('simulator', function () {
  this.timeout(300_000);

  it(`${seedsInTest} random fault schedules: prefixes agree, nothing reused, all converge, every acknowledged operation exactly once, stores empty`, () => {
    const failures: string[] = [];
    let faults = 0;
    let crashes = 0;
    for (let seed = 1; seed <= seedsInTest; seed++) {
      const result = runSimulation({ seed });
      faults += result.stats.faults;
      crashes += result.stats.crashes;
      expect(result.stats.confirmed, `seed ${seed} confirmed operations`).to.be.greaterThan(0);
      if (!result.ok) failures.push(`seed ${seed}: ${result.failure}`);
    }
    expect(failures, failures.join('\n\n')).to.deep.equal([]);
    expect(faults / seedsInTest).to.be.greaterThan(50);
    expect(crashes / seedsInTest).to.be.greaterThan(5);
  });

  it('one seed reproduces one run exactly', () => {
    const a = runSimulation({ seed: 4242 });
    const b = runSimulation({ seed: 4242 });
    expect(a).to.deep.equal(b);
    expect(runSimulation({ seed: 4243 }).stats).to.not.deep.equal(a.stats);
  });

  const variants = [
    { broken: 'order-without-sender-tiebreak', catches: /stable prefixes disagree|not next in order/ },
    { broken: 'gc-without-seq-matrix', catches: /not reached within .* convergence|missing in the final order/ },
    { broken: 'send-before-durable', catches: /reused|already left in a status|stable prefixes disagree/ },
    { broken: 'no-nack', catches: /not reached within .* convergence/ },
  ] as const;

  for (const { broken, catches } of variants) {
    it(`catches the broken variant "${broken}" within 40 seeds, printing the seed's trace`, () => {
      for (let seed = 1; seed <= 40; seed++) {
        const result = runSimulation({ seed, broken });
        if (result.ok) continue;
        expect(result.failure).to.match(catches);
        expect(result.failure).to.match(/last events:\n\[\d+\.\d ms\] /);
        return;
      }
      expect.fail(`the simulator did not catch "${broken}" in 40 seeds`);
    });
  }
});

#!/usr/bin/env node
/**
 * tools/sim: run the deterministic simulator. `make sim SEED=<n>` reproduces
 * one run exactly; `make sim SEEDS=<k>` runs k seeds.
 */
import { usageFailure } from '../commandLine.js';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { runSimulation, serversForSeed, type SimulationStats } from './simulator.js';

const defaultFaultPhaseMs = 3000;


const argv = yargs(hideBin(process.argv))
  .scriptName('tools/sim')
  .usage('$0 [--seed <n> | --seeds <k> [--first <n>]]\n\nRun Chorus\'s real engine and chat state machine through randomized, reproducible fault schedules and check its invariants.')
  .option('seed', { type: 'number', describe: 'run this one seed and print its statistics' })
  .option('seeds', { type: 'number', default: 100, describe: 'how many seeds to run' })
  .option('first', { type: 'number', default: 1, describe: 'the first seed of the range' })
  .option('servers', { type: 'number', describe: 'servers per run (3-9); by default each seed its own: 3 + (seed - 1) mod 7' })
  .option('fault-phase-ms', { type: 'number', default: defaultFaultPhaseMs, describe: 'simulated time with faults on, per seed' })
  .check((a) => {
    if (a.seed !== undefined && !Number.isSafeInteger(a.seed)) throw new Error('--seed must be an integer');
    if (!Number.isSafeInteger(a.seeds) || a.seeds < 1) throw new Error('--seeds must be a positive integer');
    if (a.servers !== undefined && (!Number.isInteger(a.servers) || a.servers < 3 || a.servers > 9)) throw new Error('--servers must be from 3 to 9');
    return true;
  })
  .strict()
  .help()
  .alias('help', 'h')
  .fail(usageFailure('tools/sim'))
  .parseSync();

/** The command that runs this one seed again with the same settings. */
function reproduce(seed: number): string {
  const extra = [argv.servers !== undefined ? `--servers ${argv.servers}` : '', argv['fault-phase-ms'] !== defaultFaultPhaseMs ? `--fault-phase-ms ${argv['fault-phase-ms']}` : ''].filter((x) => x !== '');
  return extra.length === 0 ? `make sim SEED=${seed}` : `tools/sim --seed ${seed} ${extra.join(' ')}`;
}

const seeds = argv.seed !== undefined ? [argv.seed] : Array.from({ length: argv.seeds }, (_, i) => argv.first + i);
const totals: SimulationStats = { faults: 0, crashes: 0, restarts: 0, snapshots: 0, operations: 0, confirmed: 0, stableMessages: 0, storedMessages: 0, simulatedMs: 0, convergeMs: 0, answers: 0, finalAnswers: 0 };
const started = performance.now();
let failed = 0;
for (const seed of seeds) {
  const t0 = performance.now();
  const serverCount = argv.servers ?? serversForSeed(seed);
  const result = await runSimulation({ seed, serverCount, faultPhaseMs: argv['fault-phase-ms'] });
  const ms = performance.now() - t0;
  for (const k of Object.keys(totals) as (keyof SimulationStats)[]) totals[k] += result.stats[k];
  if (!result.ok) {
    failed++;
    console.log(`seed ${seed} (${serverCount} servers): FAILED\n${result.failure}\nreproduce: ${reproduce(seed)}`);
    continue;
  }
  if (seeds.length === 1) {
    const s = result.stats;
    console.log(
      `seed ${seed} (${serverCount} servers): ok in ${ms.toFixed(0)} ms: ${s.faults} faults (${s.crashes} crashes, ${s.restarts} restarts, ${s.snapshots} snapshots), ` +
        `${s.operations} client requests (${s.answers} answered, ${s.finalAnswers} with their final outcome), ${s.confirmed} operations durable, ${s.stableMessages} messages in the final order, ` +
        `converged ${s.convergeMs.toFixed(0)} ms after the final heal (${s.simulatedMs.toFixed(0)} ms simulated)`,
    );
  } else if ((seed - argv.first + 1) % 50 === 0) {
    const done = seed - argv.first + 1;
    const elapsedS = (performance.now() - started) / 1000;
    const etaS = (elapsedS / done) * (seeds.length - done);
    process.stdout.write(`  ... ${done} of ${seeds.length} seeds, ${failed} failed, ${elapsedS.toFixed(0)} s so far, about ${etaS.toFixed(0)} s to go\n`);
  }
}
const wall = (performance.now() - started) / 1000;
const k = seeds.length;
if (k > 1) {
  console.log(
    `${k} seeds in ${wall.toFixed(1)} s (${((wall * 1000) / k).toFixed(0)} ms per seed): per seed ${(totals.faults / k).toFixed(1)} faults ` +
      `(${(totals.crashes / k).toFixed(1)} crashes), ${(totals.operations / k).toFixed(0)} client requests (${(totals.finalAnswers / k).toFixed(0)} answered final), ${(totals.stableMessages / k).toFixed(0)} messages ordered ` +
      `(${(totals.storedMessages / k).toFixed(0)} read back from history segments), ` +
      `convergence ${(totals.convergeMs / k).toFixed(0)} ms after the heal (simulated)`,
  );
}
console.log(`${k - failed} passed, ${failed} failed`);
process.exit(failed > 0 ? 1 : 0);

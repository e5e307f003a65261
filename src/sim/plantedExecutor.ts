/**
 * Executor bugs planted for the simulator to catch (test/simulator.test.ts),
 * as replaced executor parts (node/executorParts.ts): the node runs
 * unchanged around them and holds no branch for them. Each lets one effect
 * of a Ready out before its records are durable.
 *
 * - send-before-durable: peers may hold a message its sender loses in a crash.
 * - confirm-before-durable: a client may be told of an operation that is lost.
 * - apply-before-durable: the application may show as stable what a crash
 *   takes back (the clock that ordered it not yet durable).
 */
import type { ExecutorParts, ReadyEffects } from '../node/executorParts.js';

export type PlantedExecutor = 'send-before-durable' | 'confirm-before-durable' | 'apply-before-durable';

export const plantedExecutors: readonly PlantedExecutor[] = ['send-before-durable', 'confirm-before-durable', 'apply-before-durable'];

const effectOf = { 'send-before-durable': 'send', 'confirm-before-durable': 'confirm', 'apply-before-durable': 'apply' } as const satisfies Record<PlantedExecutor, keyof ReadyEffects>;

export function plantedExecutorParts(plant: PlantedExecutor): ExecutorParts {
  const early = effectOf[plant];
  const rest = (['send', 'confirm', 'apply'] as const).filter((effect) => effect !== early);
  return {
    beforeDurable: (ready, effects) => effects[early](ready),
    afterDurable: (ready, effects) => {
      for (const effect of rest) effects[effect](ready);
    },
  };
}

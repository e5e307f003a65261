/**
 * Engine bugs planted for the simulator to catch (test/simulator.test.ts),
 * as replaced engine parts (broadcast/parts.ts): the engine runs unchanged
 * around them and holds no branch for them.
 *
 * - order-without-sender-tiebreak: messages ordered by timestamp alone, so
 *   two servers may order equal timestamps differently.
 * - gc-without-seq-matrix: a message leaves the store once stable, without
 *   waiting until every server holds it, so a server may never get it.
 * - no-nack: gaps are planned but never asked for.
 */
import { AckMatrix } from '../broadcast/ackMatrix.js';
import { NackScheduler } from '../broadcast/nackScheduler.js';
import type { EngineParts } from '../broadcast/parts.js';

export type PlantedEngine = 'order-without-sender-tiebreak' | 'gc-without-seq-matrix' | 'no-nack';

export const plantedEngines: readonly PlantedEngine[] = ['order-without-sender-tiebreak', 'gc-without-seq-matrix', 'no-nack'];

class AcksHeldByAllAlways extends AckMatrix {
  override heldByAll(): number {
    return Infinity;
  }
}

class NacksNeverSent extends NackScheduler {
  override plan(...args: Parameters<NackScheduler['plan']>): undefined {
    super.plan(...args);
    return undefined;
  }
}

export function plantedEngineParts(plant: PlantedEngine): Partial<EngineParts> {
  switch (plant) {
    case 'order-without-sender-tiebreak':
      return { compare: (a, b) => a.ts - b.ts };
    case 'gc-without-seq-matrix':
      return { ackMatrix: (me, serverCount, saved) => new AcksHeldByAllAlways(me, serverCount, saved) };
    case 'no-nack':
      return { nackScheduler: (...args) => new NacksNeverSent(...args) };
  }
}

/**
 * The engine's replaceable parts. The defaults are the protocol; a test
 * replaces one to plant a bug the simulator must catch (src/sim/plantedEngine.ts),
 * so that no engine module holds a branch for a planted bug. Nothing else
 * sets them.
 */
import { AckMatrix } from './ackMatrix.js';
import { NackScheduler } from './nackScheduler.js';
import { compareOrder, type MessageId, type ServerId } from './types.js';

export interface EngineParts {
  /** The total order: by (ts, sender). */
  readonly compare: (a: MessageId, b: MessageId) => number;
  /** The acknowledgement matrices (garbage collection waits for what every server holds). */
  readonly ackMatrix: (me: ServerId, serverCount: number, saved: ConstructorParameters<typeof AckMatrix>[2]) => AckMatrix;
  /** Which NACK to send when, for each gap. */
  readonly nackScheduler: (...args: ConstructorParameters<typeof NackScheduler>) => NackScheduler;
}

export const protocolParts: EngineParts = {
  compare: compareOrder,
  ackMatrix: (me, serverCount, saved) => new AckMatrix(me, serverCount, saved),
  nackScheduler: (...args) => new NackScheduler(...args),
};

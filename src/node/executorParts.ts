/**
 * When the node acts on a Ready, as a replaceable part. The node's own is
 * the contract (node.ts): nothing goes out before the Ready's records are
 * durable; then its packets are sent, its submitters confirmed, the
 * application fed, in that order. A test replaces it to plant a bug the
 * simulator must catch (src/sim/plantedExecutor.ts), so that the node holds
 * no branch for one. Nothing else sets it.
 */
import type { Ready } from '../broadcast/engine.js';

/** What the node can do with a Ready. */
export interface ReadyEffects {
  send(ready: Ready): void;
  confirm(ready: Ready): void;
  apply(ready: Ready): void;
}

export interface ExecutorParts {
  /** The Ready's records were handed to the journal, not durable yet. */
  beforeDurable(ready: Ready, effects: ReadyEffects): void;
  /** They are durable, and so are those of every Ready before. */
  afterDurable(ready: Ready, effects: ReadyEffects): void;
}

export const durableFirst: ExecutorParts = {
  beforeDurable: () => undefined,
  afterDurable: (ready, effects) => {
    effects.send(ready);
    effects.confirm(ready);
    effects.apply(ready);
  },
};

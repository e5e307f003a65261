/**
 * Operating errors: problems a person at the terminal must fix (a bad config
 * line, a corrupt log file, a port in use). Each has a stable code so that
 * tools and tests can tell them apart without parsing the message.
 */
export type ErrorCode =
  | 'CONFIG_INVALID'
  | 'CONFIG_UNREADABLE'
  | 'LOG_CORRUPT'
  | 'LOG_UNREADABLE'
  | 'STORAGE_FAILED'
  | 'PORT_IN_USE'
  | 'NETWORK_FAILED'
  | 'INVALID_ARGUMENT'
  | 'KEY_INVALID';

export class ChorusError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'ChorusError';
  }
}

/** A broken protocol invariant: a bug, never bad input. It stops the daemon. */
export class InvariantError extends Error {
  constructor(message: string) {
    super(`invariant violated: ${message}`);
    this.name = 'InvariantError';
  }
}

/** Its message is built on every call: on a path run for every message, check inline and throw InvariantError only when it fails. */
export function invariant(condition: unknown, message: string): asserts condition {
  if (!condition) throw new InvariantError(message);
}

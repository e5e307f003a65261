/** The daemon's log: one readable line per event, on standard error. */
import winston from 'winston';

export const logLevels = ['error', 'warn', 'info', 'debug'] as const;
export type LogLevel = (typeof logLevels)[number];

export function createLogger(serverId: number, level: LogLevel, options: { silent?: boolean } = {}): winston.Logger {
  return winston.createLogger({
    level,
    silent: options.silent ?? false,
    format: winston.format.combine(
      winston.format.timestamp(),
      winston.format.printf(({ timestamp, level: lvl, message }) => `${String(timestamp)} server${serverId} ${lvl}: ${String(message)}`),
    ),
    transports: [new winston.transports.Console({ stderrLevels: [...logLevels] })],
  });
}

/** A logger that drops everything: for in-process tests. */
export function silentLogger(serverId = 0): winston.Logger {
  return createLogger(serverId, 'error', { silent: true });
}

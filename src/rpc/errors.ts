/** A Chorus error as clients get it, from the writes (chatService.ts) and the reads (groupReader.ts) alike. */
import { JSONRPCErrorException } from 'json-rpc-2.0';
import { errorRules } from './protocol.js';

/** Its code, a message for people, and `data.rule`, its stable name. */
export function rpcError(code: number, message: string): JSONRPCErrorException {
  return new JSONRPCErrorException(message, code, { rule: errorRules[code] });
}

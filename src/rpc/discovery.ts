/**
 * rpc.discover: every method the client port answers, with its parameters
 * and result as JSON Schema, generated from the schemas the server checks
 * parameters with (params.ts) and types its results by (protocol.ts).
 */
import { z } from 'zod';
import { paramSchemas } from './params.js';
import { methodDescriptions, resultSchemas, type ChatMethod, type MethodDescription } from './protocol.js';

export function describeMethods(): MethodDescription[] {
  return (Object.keys(methodDescriptions) as ChatMethod[]).map((name) => ({
    name,
    description: methodDescriptions[name],
    params: jsonSchema(paramSchemas[name], 'input'),
    result: jsonSchema(resultSchemas[name], 'output'),
  }));
}

function jsonSchema(schema: z.ZodType, io: 'input' | 'output'): unknown {
  const { $schema: _dialect, ...rest } = z.toJSONSchema(schema, { io, unrepresentable: 'any' });
  return rest;
}

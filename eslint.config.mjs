// ESLint configuration. The engine and chat folders are pure state machines:
// the last blocks keep sockets, files, timers, clocks, randomness and the
// process object out of them, so that simulation and replay stay deterministic,
// and keep the chat from reaching up into the layers that do I/O for it.
import eslint from '@eslint/js';
import tseslint from 'typescript-eslint';
import globals from 'globals';

const impureModules = ['dgram', 'fs', 'fs/promises', 'net', 'http', 'https', 'child_process', 'timers', 'timers/promises', 'os', 'worker_threads', 'process', 'crypto'];
const impureImports = impureModules.flatMap((name) => [name, `node:${name}`]);
const impurePaths = impureImports.map((name) =>
  name.endsWith('crypto')
    ? { name, allowImportNames: ['createHash'], message: 'Only hashing is pure: randomness must be a seeded generator passed in.' }
    : { name, message: 'The engine and chat state machine are pure: no I/O, timers, clocks or randomness. The daemon wires those in.' },
);
// The chat state machine takes data in and hands effects out: the layers that own the node, the files, the clients and the processes call it, never the reverse.
const layersAboveChat = ['node', 'storage', 'transport', 'server', 'rpc', 'client', 'daemon', 'sim', 'tools', 'bench', 'console'];

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'data/**'] },
  eslint.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { ...globals.node, ...globals.mocha } },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-constant-condition': ['error', { checkLoops: false }],
    },
  },
  {
    files: ['src/broadcast/**/*.ts', 'src/chat/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', { paths: impurePaths }],
      'no-restricted-globals': ['error',
        ...['setTimeout', 'setInterval', 'setImmediate', 'clearTimeout', 'clearInterval', 'clearImmediate', 'queueMicrotask', 'process', 'Date', 'performance', 'require']
          .map((name) => ({ name, message: `${name} is impure; pass time and effects through the engine interface.` })),
      ],
      'no-restricted-properties': ['error',
        { object: 'Math', property: 'random', message: 'Randomness must be a seeded generator passed in.' },
      ],
    },
  },
  {
    files: ['src/chat/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        paths: impurePaths,
        patterns: [{ group: layersAboveChat.map((layer) => `**/${layer}/*`), message: 'The chat state machine is pure: it imports nothing from the node, storage, server, RPC or daemon layers; they hand it data and act on its effects.' }],
      }],
    },
  },
);

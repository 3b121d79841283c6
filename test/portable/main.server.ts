/**
 * Entry point of the portable suite on server runtimes (Node, Bun, Deno):
 * runs it against the installed package and prints one JSON line of results.
 * Exits 1 when a test fails.
 */
import diagnosticsChannel from 'node:diagnostics_channel';
import process from 'node:process';
import * as testing from 'loopsafe/testing';
import { runPortableSuite, type PortableEnvironment } from './suite.js';

const host = globalThis as { Bun?: { version: string }; Deno?: { version: { deno: string } } };
const runtime: PortableEnvironment['runtime'] =
  host.Bun !== undefined ? 'bun' : host.Deno !== undefined ? 'deno' : 'node';
// Bun and Deno report the Node.js version they are compatible with as process.version.
const version = host.Bun?.version ?? host.Deno?.version.deno ?? process.version;

const results = await runPortableSuite({
  runtime,
  testing,
  channels: {
    subscribe: (name, listener) => {
      diagnosticsChannel.subscribe(name, listener);
    },
    unsubscribe: (name, listener) => {
      diagnosticsChannel.unsubscribe(name, listener);
    },
  },
});
console.log(JSON.stringify({ runtime, version, results }));
// Exit explicitly: a leaked ref'd handle must not keep this runner alive (the
// runner's own kill timer would then report a hang rather than the results).
process.exit(results.every((result) => result.ok) ? 0 : 1);

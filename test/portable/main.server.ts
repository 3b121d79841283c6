/**
 * Entry point of the portable suite on server runtimes (Node, Bun, Deno):
 * runs it against the installed package and prints one JSON line of results.
 * Exits 1 when a test fails.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import diagnosticsChannel from 'node:diagnostics_channel';
import process from 'node:process';
import * as testing from 'loopsafe/testing';
import { runPortableSuite, type PortableEnvironment } from './suite.js';

const host = globalThis as { Bun?: { version: string }; Deno?: { version: { deno: string } } };
const runtime: PortableEnvironment['runtime'] =
  host.Bun !== undefined ? 'bun' : host.Deno !== undefined ? 'deno' : 'node';
// Bun and Deno report the Node.js version they are compatible with as process.version.
const version = host.Bun?.version ?? host.Deno?.version.deno ?? process.version;

const scopes = diagnosticsChannel.tracingChannel('loopsafe:scope');
const store = new AsyncLocalStorage<unknown>();
let asyncEnd: ((context: unknown) => void) | undefined;
const onAsyncEnd = (context: unknown): void => asyncEnd?.(context);

const results = await runPortableSuite({
  runtime,
  testing,
  tracing: {
    bindStore: (transform) => {
      scopes.start.bindStore(store, transform);
    },
    unbindStore: () => {
      scopes.start.unbindStore(store);
    },
    store: () => store.getStore(),
    onAsyncEnd: (listener) => {
      const name = 'tracing:loopsafe:scope:asyncEnd';
      if (listener !== undefined && asyncEnd === undefined) diagnosticsChannel.subscribe(name, onAsyncEnd);
      if (listener === undefined && asyncEnd !== undefined) diagnosticsChannel.unsubscribe(name, onAsyncEnd);
      asyncEnd = listener;
    },
  },
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

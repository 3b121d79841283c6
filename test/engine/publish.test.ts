import diagnosticsChannel from 'node:diagnostics_channel';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { QueueFullError, TimeoutError } from '../../src/errors.js';
import { channelNames, type StallMessage } from '../../src/channels.js';
import {
  circuitChannel,
  gatherCancelChannel,
  publishCircuit,
  publishGatherCancel,
  publishRateLimit,
  hedgeChannel,
  publishHedge,
  publishQueueFull,
  publishRace,
  publishRetry,
  publishSingleFlight,
  queueFullChannel,
  raceChannel,
  singleFlightChannel,
  publishShed,
  publishStall,
  publishTimeout,
  rateLimitChannel,
  retryChannel,
  shedChannel,
  stallChannel,
  timeoutChannel,
} from '../../src/internal/publish.js';
import { timeoutContext } from '../../src/scope.js';
import { recordChannels } from '../fixtures/channels.js';

const channels = [
  ['timeout', 'loopsafe:timeout', timeoutChannel],
  ['retry', 'loopsafe:retry', retryChannel],
  ['gatherCancel', 'loopsafe:gather:cancel', gatherCancelChannel],
  ['stall', 'loopsafe:stall', stallChannel],
  ['shed', 'loopsafe:shed', shedChannel],
  ['circuit', 'loopsafe:circuit', circuitChannel],
  ['rateLimit', 'loopsafe:rate-limit', rateLimitChannel],
  ['race', 'loopsafe:race', raceChannel],
  ['hedge', 'loopsafe:hedge', hedgeChannel],
  ['singleFlight', 'loopsafe:single-flight', singleFlightChannel],
  ['queueFull', 'loopsafe:queue-full', queueFullChannel],
] as const;

afterEach(() => {
  vi.restoreAllMocks();
});

describe('the publish helpers behind the diagnostics channels', () => {
  it.each(channels)('%s is the named channel %s, shared with anyone who looks it up', (key, name, channel) => {
    expect(channelNames[key]).toBe(name);
    expect(diagnosticsChannel.channel(name)).toBe(channel);
  });

  it('publish helpers build and publish nothing when nobody subscribes (hasSubscribers)', () => {
    const spies = channels.map(([, , channel]) => vi.spyOn(channel, 'publish'));
    using scope = timeoutContext(10, { name: 'x' });
    const error = new TimeoutError(undefined, { scopeName: 'x', timeoutMs: 10 });
    publishTimeout('x', 10, error, scope);
    publishRetry('r', 1, 5, 'error', error, undefined);
    publishGatherCancel('g', 'failure', error, 2);
    publishStall({ kind: 'overdue', name: 'x', parent: undefined, ageMs: 1, overdueMs: 1, scope, stack: undefined });
    publishShed('lag', 300, 0.5, 2);
    publishCircuit('b', 'closed', 'open', 'consecutive-failures', 1);
    publishRateLimit('l', 'k', 1, 100);
    publishRace('r', 0, 1);
    publishHedge('h', 2, 'delay', 1);
    publishSingleFlight('s', 'k', 'join', 2);
    publishQueueFull('q', 1, new QueueFullError('q', 1));
    for (const spy of spies) expect(spy).not.toHaveBeenCalled();
  });

  it('publish helpers deliver typed payloads, in order, to subscribers', () => {
    const recorder = recordChannels();
    try {
      using scope = timeoutContext(10, { name: 'checkout' });
      const error = new TimeoutError(undefined, { scopeName: 'checkout', timeoutMs: 10 });
      const stall: StallMessage = {
        kind: 'no-deadline',
        name: 'checkout',
        parent: undefined,
        ageMs: 7,
        overdueMs: 0,
        scope,
        stack: undefined,
      };
      publishTimeout('checkout', 10, error, scope);
      publishRetry('fetch', 2, 40, 'error', error, undefined);
      publishGatherCancel('fan-out', 'timeout', error, 3);
      publishStall(stall);
      publishShed('utilization', 12, 0.99, 2);
      publishCircuit('billing', 'half-open', 'open', 'trial-failed', 42);
      publishRateLimit('api', 'tenant-1', 2, 250);
      const full = new QueueFullError('db', 4);
      publishRace('replicas', 1, 2);
      publishHedge('lookup', 3, 'failure', 1);
      publishSingleFlight('users', 7, 'abandon', 0);
      publishQueueFull('db', 4, full);
      expect(recorder.events).toEqual([
        ['loopsafe:timeout', { scopeName: 'checkout', timeoutMs: 10, error, scope }],
        ['loopsafe:retry', { name: 'fetch', attempt: 2, delayMs: 40, kind: 'error', error, value: undefined }],
        ['loopsafe:gather:cancel', { name: 'fan-out', cause: 'timeout', error, running: 3 }],
        ['loopsafe:stall', stall],
        ['loopsafe:shed', { reason: 'utilization', lagMs: 12, utilization: 0.99, retryAfterSeconds: 2 }],
        ['loopsafe:circuit', { name: 'billing', from: 'half-open', to: 'open', reason: 'trial-failed', at: 42 }],
        ['loopsafe:rate-limit', { name: 'api', key: 'tenant-1', cost: 2, retryAfterMs: 250 }],
        ['loopsafe:race', { name: 'replicas', winner: 1, aborted: 2 }],
        ['loopsafe:hedge', { name: 'lookup', attempt: 3, trigger: 'failure', running: 1 }],
        ['loopsafe:single-flight', { name: 'users', key: 7, event: 'abandon', callers: 0 }],
        ['loopsafe:queue-full', { name: 'db', maxQueue: 4, error: full }],
      ]);
    } finally {
      recorder.stop();
    }
  });
});

/**
 * The state one running server shares between its HTTP routes, its
 * WebSocket jobs, its health report and its shutdown.
 */
import type { Agent } from 'node:http';
import type { RetryBudget } from 'loopsafe';
import type { ServerConfig } from './config.js';
import type { Logger } from './log.js';
import type { Shedder } from './shedding.js';
import type { CallStats, Fault, Upstream } from './upstream.js';

/** A request being handled, inside its request scope (`withRequestScope` from loopsafe/http). */
export interface InFlightRequest {
  readonly route: string;
}

export interface WsStats {
  connections: number;
  jobsRunning: number;
  jobsCompleted: number;
  jobsFailed: number;
  /** Jobs ended because their peer went away or stopped answering pings. */
  jobsCancelled: number;
  heartbeatTimeouts: number;
  /** Times a job waited for the peer to read before sending more. */
  backpressureWaits: number;
  /** Jobs refused (`job_rejected`: `limit`, `busy`, `shutdown`). */
  jobsRejected: number;
  /** Connections closed because their outbound queue passed `wsMaxQueueBytes` (a peer that does not read). */
  queueOverflows: number;
}

export interface AppContext {
  readonly config: Readonly<ServerConfig>;
  readonly logger: Logger;
  readonly shedder: Shedder;
  readonly upstreamUrl: string;
  /** The in-process upstream, when there is no external one. */
  readonly upstream: Upstream | undefined;
  readonly agent: Agent;
  readonly callStats: CallStats;
  /** Shared by every `/api/resilient` call: bounds the extra load retries add to the sick upstream. */
  readonly retryBudget: RetryBudget;
  readonly inFlight: Set<InFlightRequest>;
  readonly ws: WsStats;
  readonly startedAt: number;
  draining: boolean;
}

/** The URL of one upstream item with its fault. */
export function itemUrl(ctx: AppContext, id: string, fault: Fault, extra = ''): string {
  return `${ctx.upstreamUrl}/item/${id}${fault === 'none' ? '' : `?fault=${fault}`}${extra === '' ? '' : `${fault === 'none' ? '?' : '&'}${extra}`}`;
}

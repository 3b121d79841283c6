/**
 * Deadlines across services: a request's budget arrives in a header, becomes
 * the request's scope, and leaves in every outgoing call as the remaining
 * budget. Import from `loopsafe/http`. Built on `node:http` and the WHATWG
 * `fetch`/`Headers`, with no dependencies; the framework adapters are
 * `loopsafe/fastify`, `loopsafe/express` and `loopsafe/hono`.
 *
 * @module http
 */
export {
  deadlineHeaders,
  DeadlineHeaderError,
  requestDeadline,
  type DeadlineHeader,
  type DeadlineHeadersOptions,
  type HeaderSource,
  type RequestDeadlineOptions,
} from './http/headers.js';
export { ClientClosedError, ShutdownError, type RequestScopeOptions } from './http/request-life.js';
export { withRequestScope } from './http/request-scope.js';
export { scopedFetch } from './http/fetch.js';
export { gracefulShutdown, type GracefulShutdownOptions, type ShutdownReport } from './http/shutdown.js';

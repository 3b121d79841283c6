/**
 * Defaults shared by `backoff` and `retry`.
 *
 * @internal
 * @module
 */

/** The default `maxMs` of a backoff, and the cap of a backoff function that names none. */
export const DEFAULT_BACKOFF_MAX_MS = 30_000;

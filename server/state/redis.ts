/**
 * The Redis connection of the shared state (`REDIS_URL`), separate from BullMQ's (which needs blocking commands).
 * The offline queue is off: while Redis is down a command fails at once with a clear error instead of waiting in
 * memory; ioredis keeps reconnecting in the background.
 */
import { Redis } from 'ioredis';
import type { Logger } from '../logging.ts';
import { StateUnavailableError } from './types.ts';

/** Connects to `url`; rejects with {@link StateUnavailableError} when Redis does not answer within `timeoutMs`. */
export async function connectRedis(url: string, opts: { logger?: Logger; timeoutMs?: number } = {}): Promise<Redis> {
  const redis = new Redis(url, {
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    connectTimeout: opts.timeoutMs ?? 3000,
    retryStrategy: (attempt) => Math.min(2000, attempt * 100),
  });
  let lastError = '';
  redis.on('error', (err: Error) => {
    // Logged once per distinct message: a down Redis emits this on every reconnect attempt.
    if (err.message !== lastError) opts.logger?.warn({ err: err.message }, 'redis (shared state): connection error; reconnecting');
    lastError = err.message;
  });
  redis.on('ready', () => {
    lastError = '';
  });
  try {
    await redis.connect();
  } catch (err) {
    redis.disconnect();
    throw redisError(err, 'not reachable');
  }
  return redis;
}

/** Wraps an ioredis failure into {@link StateUnavailableError} (typed errors pass through). */
export function redisError(err: unknown, what: string): StateUnavailableError {
  if (err instanceof StateUnavailableError) return err;
  return new StateUnavailableError('redis', `${what}: ${(err as Error).message}`, { cause: err });
}

/** Resolves when Redis answers PING. */
export async function pingRedis(redis: Redis): Promise<void> {
  try {
    await redis.ping();
  } catch (err) {
    throw redisError(err, 'not reachable');
  }
}

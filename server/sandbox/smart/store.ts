/**
 * In-memory, expiring storage of the sandbox authorization server's short-lived state: launch contexts, pending
 * standalone authorizations, authorization codes and refresh tokens. Demo only: a restart forgets everything (and
 * the signing key), which a SMART app handles by launching again.
 */
import { randomBytes } from 'node:crypto';

/** A URL-safe random handle with 256 bits of entropy. */
export function randomHandle(bytes = 32): string {
  return randomBytes(bytes).toString('base64url');
}

/** A map whose entries disappear after their time-to-live; `take` reads and deletes (single-use codes). */
export class ExpiringMap<V> {
  readonly #entries = new Map<string, { value: V; until: number }>();
  readonly #maxEntries: number;

  constructor(maxEntries = 10_000) {
    this.#maxEntries = maxEntries;
  }

  set(key: string, value: V, ttlMs: number): void {
    if (this.#entries.size >= this.#maxEntries) this.sweep();
    if (this.#entries.size >= this.#maxEntries) {
      // Still full of live entries: drop the oldest (Map iterates in insertion order).
      const oldest = this.#entries.keys().next().value;
      if (oldest !== undefined) this.#entries.delete(oldest);
    }
    this.#entries.set(key, { value, until: Date.now() + ttlMs });
  }

  get(key: string): V | undefined {
    const e = this.#entries.get(key);
    if (!e) return undefined;
    if (e.until <= Date.now()) {
      this.#entries.delete(key);
      return undefined;
    }
    return e.value;
  }

  take(key: string): V | undefined {
    const v = this.get(key);
    this.#entries.delete(key);
    return v;
  }

  delete(key: string): void {
    this.#entries.delete(key);
  }

  sweep(): void {
    const now = Date.now();
    for (const [k, e] of this.#entries) if (e.until <= now) this.#entries.delete(k);
  }
}

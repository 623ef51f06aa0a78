/**
 * State the service shares between its replicas, behind small interfaces. Each has an embedded implementation (the
 * default: one `npm start` process, or several processes of one host through a SQLite file) and shared ones selected
 * by `REDIS_URL` / `DATABASE_URL` (PostgreSQL). See server/state/README.md for which store lives where.
 *
 * Failure rule for every implementation: when its backend (Redis, PostgreSQL) cannot be reached, a call rejects with
 * {@link StateUnavailableError} — it never falls back silently to per-process memory, because a per-process answer
 * would accept a replayed token on one replica or split the card log between two.
 */
import type { AuditEvent } from '@medplum/fhirtypes';
import type { CardRecord, FeedbackSummary, SpokenRecord } from '../cds/store.ts';
import type { Feedback } from '../cds/types.ts';

/** Which kind of backend holds a store. */
export type StateBackend = 'memory' | 'sqlite' | 'redis' | 'postgres';

/** A shared-state backend could not be reached or refused the operation. The message names the backend, never PHI. */
export class StateUnavailableError extends Error {
  override readonly name = 'StateUnavailableError';
  constructor(readonly backend: StateBackend, message: string, options?: { cause?: unknown }) {
    super(`${backend}: ${message}`, options);
  }
}

/** What every store offers besides its own operations: a health check for `/readyz`, and closing. */
export interface StateStore {
  /** The backend this instance uses (`/readyz` detail, logs). */
  readonly backend: StateBackend;
  /** Resolves when the backend answers; rejects with {@link StateUnavailableError} otherwise. */
  check(): Promise<void>;
  /** Releases connections/handles the store opened itself (a pool handed in by the caller is left open). */
  close(): Promise<void>;
}

/**
 * Remembers one-time keys (a JWT's `iss|jti`) until they expire, across every replica sharing the backend.
 *
 * A claim is *in flight* until {@link ReplayCache.answered} marks it answered. While it is in flight (and at most
 * the cache's resend window after the claim), the same key presented again with the same `bodyHash` is accepted: an
 * idempotent retry of the same request, e.g. a load balancer resending a call whose replica died before answering.
 * A different body, a claim without a hash, or any resend after the first answer is a replay.
 */
export interface ReplayCache extends StateStore {
  /**
   * Claims `key` until `expiresAtMs` (epoch ms). Resolves true when this is the first claim of an unexpired key
   * (the token may be used) or a resend of an in-flight claim with the same `bodyHash` (sha256 of the raw request
   * body), false otherwise (a replay). Atomic across replicas.
   */
  claim(key: string, expiresAtMs: number, bodyHash?: string): Promise<boolean>;
  /** Marks the claim of `key` answered: from now on it is refused even with the same body. Unknown keys are ignored. */
  answered(key: string): Promise<void>;
}

/** The PNGs of an image-based assessment (display radiograph and heatmap overlay). */
export interface ResultImages {
  display: Buffer;
  overlay: Buffer;
}

/** One stored assessment result. The store does not look inside `body`; the risk service owns its shape. */
export interface ResultRecord {
  /** The assessment id (what `GET /api/assessments/{id}` asks for). */
  id: string;
  /** The cache key (study, model version, factor hash): equal keys mean the same assessment. */
  cacheKey: string;
  /** JSON text of the result without its PNGs. */
  body: string;
  /** PNGs, or null when the assessment has none (clinical-only). */
  images: ResultImages | null;
}

/**
 * Assessment results by id and by cache key, kept for a TTL. An id stays valid after a restart of the service
 * (every implementation but `memory` persists them), and on every replica sharing the backend.
 */
export interface ResultStore extends StateStore {
  /** Stores (or replaces) a result; it expires `ttlMs` from now. Both the id and the cache key find it. */
  put(record: ResultRecord, ttlMs: number): Promise<void>;
  /**
   * Adds the PNGs to a stored result. The risk service stores a new result at once and its PNGs a moment later
   * (encoding them takes tens of ms that no waiting caller should pay); a reader may see `images: null` meanwhile.
   */
  attachImages(id: string, images: ResultImages): Promise<void>;
  /** The unexpired result with this id. */
  byId(id: string): Promise<ResultRecord | undefined>;
  /** The newest unexpired result with this cache key. */
  byKey(cacheKey: string): Promise<ResultRecord | undefined>;
}

/** How a {@link SingleFlight.run} call got its value. */
export interface FlightOutcome<T> {
  value: T;
  /** True when this caller ran `fn`; false when another caller (this or another replica) did and this one waited. */
  led: boolean;
}

/**
 * Runs one computation per key at a time across every replica sharing the backend: the first caller runs `fn`; the
 * others wait until it finishes and then read its result with `read` (from the {@link ResultStore}). When the leader
 * failed (nothing to read), one waiter takes over and runs `fn` itself.
 */
export interface SingleFlight extends StateStore {
  run<T>(key: string, fn: () => Promise<T>, read: () => Promise<T | undefined>): Promise<FlightOutcome<T>>;
}

/**
 * The CDS card log and card feedback, and what the hooks said last per patient (shaped after server/cds/store.ts,
 * asynchronous so it can live in PostgreSQL).
 */
export interface CardLogStore extends StateStore {
  recordCard(card: CardRecord): Promise<void>;
  /** Stores feedback entries (a repeated entry — same card, outcome and timestamp — is stored once); resolves to how many were new. */
  recordFeedback(serviceId: string, clientId: string, entries: readonly Feedback[]): Promise<number>;
  lastSpoken(serviceId: string, source: string, patientId: string): Promise<SpokenRecord | undefined>;
  recordSpoken(serviceId: string, source: string, patientId: string, spoken: SpokenRecord): Promise<void>;
  recordOrderCard(source: string, patientId: string, userId: string, riskKey: string, at?: Date): Promise<void>;
  orderCardShownSince(source: string, patientId: string, userId: string, riskKey: string, since: Date): Promise<boolean>;
  summary(): Promise<FeedbackSummary>;
  /**
   * Deletes what is older than `before`: cards by when they were shown, feedback by when it was received,
   * patient-view memory and order-select cards by their last write. Resolves to the number of rows deleted.
   */
  prune(before: Date): Promise<number>;
}

/** One FLS AuditEvent kept because the FHIR server refused it (shaped after server/fls/audit.ts `LocalAuditRow`). */
export interface KeptAuditEvent {
  id: number;
  recorded: string;
  action: string;
  event: AuditEvent;
  error: string;
  forwardedAt: string | null;
}

/**
 * FLS audit events the FHIR server refused, kept until they are forwarded (append-only: a forwarded event stays,
 * marked). Shared, so an event kept by one replica is forwarded by whichever replica next reaches the FHIR server.
 */
export interface AuditFallbackStore extends StateStore {
  /** Keeps one event; resolves to its local id. */
  keep(entry: { recorded: string; action: string; event: AuditEvent; error: string }): Promise<number>;
  /** Events not yet forwarded, oldest first. */
  pending(): Promise<KeptAuditEvent[]>;
  /** Every kept event, oldest first. */
  rows(): Promise<KeptAuditEvent[]>;
  /**
   * Forwards pending events, oldest first, through `send`, each once across every forwarder sharing the store: an
   * event is claimed while it is sent (a concurrent forwarder skips it), marked forwarded at `now()` when `send`
   * resolves, and released when `send` rejects — forwarding then stops (the FHIR server still refuses). Resolves to
   * how many events this call forwarded.
   */
  forward(send: (event: KeptAuditEvent) => Promise<void>, now: () => Date): Promise<number>;
}

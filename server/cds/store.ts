/**
 * The CDS card log, embedded: the cards the service showed (so feedback can be grouped by tier and suggestion), the
 * feedback the EHR sent (CDS Hooks 2.0 §Feedback), what patient-view last said per patient (so it speaks again only
 * with news) and which order-select card a user saw (so order-sign does not repeat it). This is the default
 * {@link CardLogStore}: SQLite (better-sqlite3) at `CDS_FEEDBACK_DB`. With `DATABASE_URL` set, the PostgreSQL store
 * (server/state/cardlog-postgres.ts) takes its place so every replica writes to one log; both answer the same
 * {@link FeedbackSummary}, shaped by {@link summarise}.
 *
 * WAL journal: an acknowledged write survives a crash or a restart of the process. (`synchronous=NORMAL`: in WAL
 * mode a committed transaction survives a process crash; only an operating-system crash or power cut can lose the
 * last ones. `FULL` would fsync on every card, and better-sqlite3 is synchronous, so every hook call would block the
 * event loop on the disk.) Several processes of one host may share the file (cluster mode): a writer waits up to
 * {@link BUSY_TIMEOUT_MS} for another's write lock instead of failing at once.
 *
 * No PHI beyond ids: patient ids, card/suggestion uuids, codes and timestamps. The free-text `userComment` of an
 * override is NOT stored (it may hold anything); only whether one was given.
 *
 * Retention: both stores delete rows older than `CDS_CARD_LOG_RETENTION_DAYS` ({@link CardLogStore.prune}) in a
 * sweep every {@link CARD_LOG_SWEEP_EVERY_MS} ({@link sweepPeriodically}); the summary covers that period.
 * @see https://cds-hooks.hl7.org/2.0/#feedback
 */
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import type { Tier } from '../risk/assess.ts';
import type { CardLogStore } from '../state/types.ts';
import { StateUnavailableError } from '../state/types.ts';
import type { Feedback } from './types.ts';

/** How long a write waits for another process's lock on the same SQLite file, in ms. */
export const BUSY_TIMEOUT_MS = 5000;

/** Default of `CDS_CARD_LOG_RETENTION_DAYS`: a year of feedback plus a margin for year-on-year comparison. */
export const CARD_LOG_RETENTION_DAYS = 400;
/** How often the retention sweep runs, ms (6 h); the first sweep runs {@link CARD_LOG_FIRST_SWEEP_MS} after start. */
export const CARD_LOG_SWEEP_EVERY_MS = 6 * 3600 * 1000;
export const CARD_LOG_FIRST_SWEEP_MS = 60 * 1000;

/** Retention of a card log: how long rows are kept, and where the sweep reports (the store has no logger). */
export interface CardLogRetention {
  days: number;
  /** Sweep interval, ms (default {@link CARD_LOG_SWEEP_EVERY_MS}). */
  everyMs?: number;
  /** Delay of the first sweep, ms (default {@link CARD_LOG_FIRST_SWEEP_MS}: start-up is not slowed). */
  firstAfterMs?: number;
  onSwept?: (deleted: number) => void;
  onError?: (err: Error) => void;
}

/**
 * Calls `prune` with the retention cut-off now and then (timers unref'd: they keep no process alive); resolves
 * nothing, reports through the callbacks. Every replica sweeps; a delete of what another already deleted is a no-op.
 * Returns the function that stops it.
 */
export function sweepPeriodically(prune: (before: Date) => Promise<number>, r: CardLogRetention): () => void {
  let running = false;
  const sweep = (): void => {
    if (running) return;
    running = true;
    prune(new Date(Date.now() - r.days * 24 * 3600 * 1000))
      .then((n) => r.onSwept?.(n), (err: unknown) => r.onError?.(err as Error))
      .finally(() => (running = false));
  };
  let interval: NodeJS.Timeout | undefined;
  const first = setTimeout(() => {
    sweep();
    interval = setInterval(sweep, r.everyMs ?? CARD_LOG_SWEEP_EVERY_MS);
    interval.unref();
  }, r.firstAfterMs ?? CARD_LOG_FIRST_SWEEP_MS);
  first.unref();
  return () => {
    clearTimeout(first);
    if (interval) clearInterval(interval);
  };
}

/** One card shown. */
export interface CardRecord {
  uuid: string;
  serviceId: string;
  patientId: string;
  tier: Tier;
  mode: string;
  kind: string;
  assessmentId: string;
  suggestions: { fls?: string; dxa?: string };
}

/** What patient-view last said for a patient. */
export interface SpokenRecord {
  assessmentKey: string;
  tier: Tier;
  mode: string;
}

/** Acceptance and override counts and rates of a group of cards. */
export interface Rate {
  cards: number;
  accepted: number;
  overridden: number;
  acceptanceRate: number | null;
  overrideRate: number | null;
}

/** `GET /api/feedback/summary`: rates per card shown, overall and by tier; override reasons; accepted suggestions. */
export interface FeedbackSummary {
  cards: number;
  feedback: number;
  overall: Rate;
  byTier: Record<string, Rate>;
  byReason: { system: string | null; code: string; display: string | null; count: number; share: number }[];
  acceptedSuggestions: { fls: number; dxa: number; other: number };
  notice: string;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS cds_card (
  uuid TEXT PRIMARY KEY, service_id TEXT NOT NULL, patient_id TEXT NOT NULL, tier TEXT NOT NULL, mode TEXT NOT NULL,
  kind TEXT NOT NULL, assessment_id TEXT NOT NULL, fls_suggestion TEXT, dxa_suggestion TEXT, created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS cds_feedback (
  id INTEGER PRIMARY KEY AUTOINCREMENT, card_uuid TEXT NOT NULL, service_id TEXT NOT NULL, client_id TEXT NOT NULL,
  outcome TEXT NOT NULL, accepted_suggestions TEXT NOT NULL, reason_system TEXT, reason_code TEXT, reason_display TEXT,
  has_comment INTEGER NOT NULL, outcome_timestamp TEXT NOT NULL, received_at TEXT NOT NULL,
  UNIQUE (card_uuid, outcome, outcome_timestamp));
CREATE INDEX IF NOT EXISTS cds_feedback_card ON cds_feedback(card_uuid);
CREATE INDEX IF NOT EXISTS cds_card_created ON cds_card(created_at);
CREATE INDEX IF NOT EXISTS cds_feedback_received ON cds_feedback(received_at);
CREATE TABLE IF NOT EXISTS cds_spoken (
  service_id TEXT NOT NULL, source TEXT NOT NULL, patient_id TEXT NOT NULL, assessment_key TEXT NOT NULL,
  tier TEXT NOT NULL, mode TEXT NOT NULL, at TEXT NOT NULL, PRIMARY KEY (service_id, source, patient_id));
CREATE TABLE IF NOT EXISTS cds_order_card (
  source TEXT NOT NULL, patient_id TEXT NOT NULL, user_id TEXT NOT NULL, risk_key TEXT NOT NULL, at TEXT NOT NULL,
  PRIMARY KEY (source, patient_id, user_id));
`;

const rate = (cards: number, accepted: number, overridden: number): Rate => ({
  cards, accepted, overridden,
  acceptanceRate: cards > 0 ? accepted / cards : null,
  overrideRate: cards > 0 ? overridden / cards : null,
});

/** The counts a card log store reads for {@link summarise} (the same queries in SQLite and PostgreSQL). */
export interface SummaryCounts {
  cards: number;
  feedback: number;
  /** Cards shown per tier, and how many of them have any `accepted` / `overridden` feedback. */
  tiers: readonly { tier: string; cards: number; accepted: number; overridden: number }[];
  /** Feedback for cards the log has no record of: distinct cards, of which accepted, of which overridden. */
  unknown: { cards: number; accepted: number; overridden: number };
  /** Override reasons with a code, most frequent first. */
  reasons: readonly { system: string | null; code: string; display: string | null; count: number }[];
  /** Feedback entries with outcome `overridden`. */
  overrides: number;
  /** Each `accepted` entry: the suggestion ids it accepted, and the card's FLS and DXA suggestion ids. */
  acceptedSuggestions: readonly { ids: readonly string[]; fls: string | null; dxa: string | null }[];
}

/**
 * Acceptance and override rates: per card shown (a card counts as accepted / overridden when any feedback for it
 * says so), overall and by tier; override reasons with counts and shares; accepted suggestions by kind.
 */
export function summarise(c: SummaryCounts): FeedbackSummary {
  const byTier: Record<string, Rate> = {};
  let acc = 0;
  let ovr = 0;
  for (const t of c.tiers) {
    byTier[t.tier] = rate(t.cards, t.accepted, t.overridden);
    acc += t.accepted;
    ovr += t.overridden;
  }
  if (c.unknown.cards > 0) byTier['unknown'] = { cards: c.unknown.cards, accepted: c.unknown.accepted, overridden: c.unknown.overridden, acceptanceRate: null, overrideRate: null };
  const accepted = { fls: 0, dxa: 0, other: 0 };
  for (const s of c.acceptedSuggestions) for (const id of s.ids) {
    if (id === s.fls) accepted.fls++;
    else if (id === s.dxa) accepted.dxa++;
    else accepted.other++;
  }
  return {
    cards: c.cards,
    feedback: c.feedback,
    overall: rate(c.cards, acc, ovr),
    byTier,
    byReason: c.reasons.map((r) => ({ ...r, share: c.overrides > 0 ? r.count / c.overrides : 0 })),
    acceptedSuggestions: accepted,
    notice: 'Rates are per card shown; feedback for cards this service has no record of is counted under "unknown". Research use — trained on synthetic data.',
  };
}

/** The embedded {@link CardLogStore}: one SQLite file (see the module comment). */
export class CdsStore implements CardLogStore {
  readonly backend = 'sqlite' as const;
  readonly #db: Database.Database;
  readonly #statements = new Map<string, Database.Statement>();
  readonly #stopSweep: (() => void) | undefined;
  readonly path: string;

  /** Opens (creating when needed) the database at `path`; `:memory:` for a throw-away store. `retention`: sweep old rows. */
  constructor(path: string, opts: { retention?: CardLogRetention } = {}) {
    this.path = path;
    if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
    this.#db = new Database(path);
    // First: processes of one host opening the file together wait for each other's locks (the WAL switch included).
    this.#db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
    this.#db.pragma('journal_mode = WAL');
    this.#db.pragma('synchronous = NORMAL');
    this.#db.exec(SCHEMA);
    this.#stopSweep = opts.retention ? sweepPeriodically((before) => this.prune(before), opts.retention) : undefined;
  }

  /** Hook calls write here on every card: prepare each statement once, not per call. */
  #prepared(sql: string): Database.Statement {
    let stmt = this.#statements.get(sql);
    if (!stmt) {
      stmt = this.#db.prepare(sql);
      this.#statements.set(sql, stmt);
    }
    return stmt;
  }

  /**
   * Runs a synchronous SQLite call as a settled promise: a failure (disk full, file locked past the busy timeout, a
   * closed store) rejects with {@link StateUnavailableError} like the shared stores do, rather than throwing.
   */
  #run<T>(what: string, fn: () => T): Promise<T> {
    try {
      return Promise.resolve(fn());
    } catch (err) {
      return Promise.reject(new StateUnavailableError('sqlite', `card log ${what}: ${(err as Error).message}`, { cause: err }));
    }
  }

  recordCard(c: CardRecord): Promise<void> {
    return this.#run('recordCard', () => {
      this.#prepared(`INSERT OR IGNORE INTO cds_card VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
        .run(c.uuid, c.serviceId, c.patientId, c.tier, c.mode, c.kind, c.assessmentId, c.suggestions.fls ?? null, c.suggestions.dxa ?? null, new Date().toISOString());
    });
  }

  /** Stores feedback entries (a repeated entry — same card, outcome and timestamp — is stored once). Resolves to how many were new. */
  recordFeedback(serviceId: string, clientId: string, entries: readonly Feedback[]): Promise<number> {
    return this.#run('recordFeedback', () => {
      const stmt = this.#prepared(`INSERT OR IGNORE INTO cds_feedback
        (card_uuid, service_id, client_id, outcome, accepted_suggestions, reason_system, reason_code, reason_display, has_comment, outcome_timestamp, received_at)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`);
      const now = new Date().toISOString();
      const tx = this.#db.transaction((list: readonly Feedback[]) => {
        let n = 0;
        for (const f of list) {
          const r = f.overrideReason?.reason;
          n += stmt.run(f.card, serviceId, clientId, f.outcome, JSON.stringify((f.acceptedSuggestions ?? []).map((s) => s.id)), r?.system ?? null, r?.code ?? null, r?.display ?? null,
            f.overrideReason?.userComment ? 1 : 0, f.outcomeTimestamp, now).changes;
        }
        return n;
      });
      return tx(entries);
    });
  }

  lastSpoken(serviceId: string, source: string, patientId: string): Promise<SpokenRecord | undefined> {
    return this.#run('lastSpoken', () => {
      const row = this.#prepared('SELECT assessment_key, tier, mode FROM cds_spoken WHERE service_id = ? AND source = ? AND patient_id = ?').get(serviceId, source, patientId) as
        { assessment_key: string; tier: Tier; mode: string } | undefined;
      return row ? { assessmentKey: row.assessment_key, tier: row.tier, mode: row.mode } : undefined;
    });
  }

  recordSpoken(serviceId: string, source: string, patientId: string, s: SpokenRecord): Promise<void> {
    return this.#run('recordSpoken', () => {
      this.#prepared(`INSERT INTO cds_spoken VALUES (?, ?, ?, ?, ?, ?, ?)
        ON CONFLICT (service_id, source, patient_id) DO UPDATE SET assessment_key = excluded.assessment_key, tier = excluded.tier, mode = excluded.mode, at = excluded.at`)
        .run(serviceId, source, patientId, s.assessmentKey, s.tier, s.mode, new Date().toISOString());
    });
  }

  /** Records that an order-select card showed the risk `riskKey` to `userId` for this patient (one row per user and patient). */
  recordOrderCard(source: string, patientId: string, userId: string, riskKey: string, at: Date = new Date()): Promise<void> {
    return this.#run('recordOrderCard', () => {
      this.#prepared(`INSERT INTO cds_order_card VALUES (?, ?, ?, ?, ?)
        ON CONFLICT (source, patient_id, user_id) DO UPDATE SET risk_key = excluded.risk_key, at = excluded.at`)
        .run(source, patientId, userId, riskKey, at.toISOString());
    });
  }

  /** True when an order-select card showed the same risk to the same user for this patient at or after `since`. */
  orderCardShownSince(source: string, patientId: string, userId: string, riskKey: string, since: Date): Promise<boolean> {
    return this.#run('orderCardShownSince', () => {
      const row = this.#prepared('SELECT risk_key, at FROM cds_order_card WHERE source = ? AND patient_id = ? AND user_id = ?').get(source, patientId, userId) as { risk_key: string; at: string } | undefined;
      return !!row && row.risk_key === riskKey && row.at >= since.toISOString();
    });
  }

  /** See {@link summarise}. */
  summary(): Promise<FeedbackSummary> {
    return this.#run('summary', () => {
      const db = this.#db;
      const count = (sql: string): number => (db.prepare(sql).get() as { n: number }).n;
      const tiers = db.prepare(`
        SELECT c.tier AS tier, COUNT(*) AS cards,
          SUM(EXISTS (SELECT 1 FROM cds_feedback f WHERE f.card_uuid = c.uuid AND f.outcome = 'accepted')) AS accepted,
          SUM(EXISTS (SELECT 1 FROM cds_feedback f WHERE f.card_uuid = c.uuid AND f.outcome = 'overridden')) AS overridden
        FROM cds_card c GROUP BY c.tier ORDER BY c.tier`).all() as { tier: string; cards: number; accepted: number; overridden: number }[];
      const unknown = db.prepare(`SELECT COUNT(DISTINCT card_uuid) AS cards,
          COUNT(DISTINCT CASE WHEN outcome = 'accepted' THEN card_uuid END) AS accepted, COUNT(DISTINCT CASE WHEN outcome = 'overridden' THEN card_uuid END) AS overridden
        FROM cds_feedback WHERE card_uuid NOT IN (SELECT uuid FROM cds_card)`).get() as SummaryCounts['unknown'];
      const reasons = db.prepare(`SELECT reason_system AS system, reason_code AS code, MAX(reason_display) AS display, COUNT(*) AS count
        FROM cds_feedback WHERE outcome = 'overridden' AND reason_code IS NOT NULL GROUP BY reason_system, reason_code ORDER BY count DESC, code`).all() as SummaryCounts['reasons'];
      const accepted = db.prepare(`SELECT f.accepted_suggestions AS ids, c.fls_suggestion AS fls, c.dxa_suggestion AS dxa
        FROM cds_feedback f LEFT JOIN cds_card c ON c.uuid = f.card_uuid WHERE f.outcome = 'accepted'`).all() as { ids: string; fls: string | null; dxa: string | null }[];
      return summarise({
        cards: count('SELECT COUNT(*) AS n FROM cds_card'),
        feedback: count('SELECT COUNT(*) AS n FROM cds_feedback'),
        tiers,
        unknown,
        reasons,
        overrides: count(`SELECT COUNT(*) AS n FROM cds_feedback WHERE outcome = 'overridden'`),
        acceptedSuggestions: accepted.map((a) => ({ ids: JSON.parse(a.ids) as string[], fls: a.fls, dxa: a.dxa })),
      });
    });
  }

  /** Resolves when the database answers. */
  check(): Promise<void> {
    return this.#run('check', () => {
      this.#db.prepare('SELECT 1').get();
    });
  }

  /** See {@link CardLogStore.prune}: one transaction (ISO timestamps compare as text). */
  prune(before: Date): Promise<number> {
    return this.#run('prune', () => {
      const cut = before.toISOString();
      return this.#db.transaction(() =>
        this.#prepared('DELETE FROM cds_card WHERE created_at < ?').run(cut).changes
        + this.#prepared('DELETE FROM cds_feedback WHERE received_at < ?').run(cut).changes
        + this.#prepared('DELETE FROM cds_spoken WHERE at < ?').run(cut).changes
        + this.#prepared('DELETE FROM cds_order_card WHERE at < ?').run(cut).changes)();
    });
  }

  /** Closes the file (idempotent). */
  close(): Promise<void> {
    this.#stopSweep?.();
    if (this.#db.open) this.#db.close();
    return Promise.resolve();
  }
}

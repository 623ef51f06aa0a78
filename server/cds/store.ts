/**
 * Durable CDS state in SQLite (better-sqlite3): the cards the service showed (so feedback can be grouped by tier
 * and suggestion), the feedback the EHR sent (CDS Hooks 2.0 §Feedback), and what patient-view last said per patient
 * (so it speaks again only with news). WAL journal: an acknowledged write survives a crash
 * or a restart of the process. (`synchronous=NORMAL`: in WAL mode a committed transaction survives a process crash;
 * only an operating-system crash or power cut can lose the last ones. `FULL` would fsync on every card, and
 * better-sqlite3 is synchronous, so every hook call would block the event loop on the disk.)
 *
 * No PHI beyond ids: patient ids, card/suggestion uuids, codes and timestamps. The free-text `userComment` of an
 * override is NOT stored (it may hold anything); only whether one was given.
 * @see https://cds-hooks.hl7.org/2.0/#feedback
 */
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import type { Tier } from '../risk/assess.ts';
import type { Feedback } from './types.ts';

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

export interface SpokenRecord {
  assessmentKey: string;
  tier: Tier;
  mode: string;
}

interface Rate {
  cards: number;
  accepted: number;
  overridden: number;
  acceptanceRate: number | null;
  overrideRate: number | null;
}

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

export class CdsStore {
  readonly #db: Database.Database;
  readonly #statements = new Map<string, Database.Statement>();
  readonly path: string;

  /** Opens (creating when needed) the database at `path`; `:memory:` for a throw-away store. */
  constructor(path: string) {
    this.path = path;
    if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
    this.#db = new Database(path);
    this.#db.pragma('journal_mode = WAL');
    this.#db.pragma('synchronous = NORMAL');
    this.#db.exec(SCHEMA);
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

  recordCard(c: CardRecord): void {
    this.#prepared(`INSERT OR IGNORE INTO cds_card VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
      .run(c.uuid, c.serviceId, c.patientId, c.tier, c.mode, c.kind, c.assessmentId, c.suggestions.fls ?? null, c.suggestions.dxa ?? null, new Date().toISOString());
  }

  /** Stores feedback entries (a repeated entry — same card, outcome and timestamp — is stored once). Returns how many were new. */
  recordFeedback(serviceId: string, clientId: string, entries: readonly Feedback[]): number {
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
  }

  lastSpoken(serviceId: string, source: string, patientId: string): SpokenRecord | undefined {
    const row = this.#prepared('SELECT assessment_key, tier, mode FROM cds_spoken WHERE service_id = ? AND source = ? AND patient_id = ?').get(serviceId, source, patientId) as
      { assessment_key: string; tier: Tier; mode: string } | undefined;
    return row ? { assessmentKey: row.assessment_key, tier: row.tier, mode: row.mode } : undefined;
  }

  recordSpoken(serviceId: string, source: string, patientId: string, s: SpokenRecord): void {
    this.#prepared(`INSERT INTO cds_spoken VALUES (?, ?, ?, ?, ?, ?, ?)
      ON CONFLICT (service_id, source, patient_id) DO UPDATE SET assessment_key = excluded.assessment_key, tier = excluded.tier, mode = excluded.mode, at = excluded.at`)
      .run(serviceId, source, patientId, s.assessmentKey, s.tier, s.mode, new Date().toISOString());
  }

  /** Records that an order-select card showed the risk `riskKey` to `userId` for this patient (one row per user and patient). */
  recordOrderCard(source: string, patientId: string, userId: string, riskKey: string, at: Date = new Date()): void {
    this.#prepared(`INSERT INTO cds_order_card VALUES (?, ?, ?, ?, ?)
      ON CONFLICT (source, patient_id, user_id) DO UPDATE SET risk_key = excluded.risk_key, at = excluded.at`)
      .run(source, patientId, userId, riskKey, at.toISOString());
  }

  /** True when an order-select card showed the same risk to the same user for this patient at or after `since`. */
  orderCardShownSince(source: string, patientId: string, userId: string, riskKey: string, since: Date): boolean {
    const row = this.#prepared('SELECT risk_key, at FROM cds_order_card WHERE source = ? AND patient_id = ? AND user_id = ?').get(source, patientId, userId) as { risk_key: string; at: string } | undefined;
    return !!row && row.risk_key === riskKey && row.at >= since.toISOString();
  }

  /**
   * Acceptance and override rates: per card shown (a card counts as accepted / overridden when any feedback for it
   * says so), overall and by tier; override reasons with counts; accepted suggestions by kind.
   */
  summary(): FeedbackSummary {
    const db = this.#db;
    const cards = (db.prepare('SELECT COUNT(*) AS n FROM cds_card').get() as { n: number }).n;
    const feedback = (db.prepare('SELECT COUNT(*) AS n FROM cds_feedback').get() as { n: number }).n;
    const tiers = db.prepare(`
      SELECT c.tier AS tier, COUNT(*) AS cards,
        SUM(EXISTS (SELECT 1 FROM cds_feedback f WHERE f.card_uuid = c.uuid AND f.outcome = 'accepted')) AS accepted,
        SUM(EXISTS (SELECT 1 FROM cds_feedback f WHERE f.card_uuid = c.uuid AND f.outcome = 'overridden')) AS overridden
      FROM cds_card c GROUP BY c.tier`).all() as { tier: string; cards: number; accepted: number; overridden: number }[];
    const unknown = db.prepare(`SELECT COUNT(DISTINCT card_uuid) AS n,
        COUNT(DISTINCT CASE WHEN outcome = 'accepted' THEN card_uuid END) AS a, COUNT(DISTINCT CASE WHEN outcome = 'overridden' THEN card_uuid END) AS o
      FROM cds_feedback WHERE card_uuid NOT IN (SELECT uuid FROM cds_card)`).get() as { n: number; a: number; o: number };
    const byTier: Record<string, Rate> = {};
    let acc = 0;
    let ovr = 0;
    for (const t of tiers) {
      byTier[t.tier] = rate(t.cards, t.accepted, t.overridden);
      acc += t.accepted;
      ovr += t.overridden;
    }
    if (unknown.n > 0) byTier['unknown'] = { cards: unknown.n, accepted: unknown.a, overridden: unknown.o, acceptanceRate: null, overrideRate: null };
    const reasons = db.prepare(`SELECT reason_system AS system, reason_code AS code, MAX(reason_display) AS display, COUNT(*) AS count
      FROM cds_feedback WHERE outcome = 'overridden' AND reason_code IS NOT NULL GROUP BY reason_system, reason_code ORDER BY count DESC`).all() as { system: string | null; code: string; display: string | null; count: number }[];
    const overrides = (db.prepare(`SELECT COUNT(*) AS n FROM cds_feedback WHERE outcome = 'overridden'`).get() as { n: number }).n;
    const accepted = { fls: 0, dxa: 0, other: 0 };
    const sugg = db.prepare(`SELECT f.accepted_suggestions AS ids, c.fls_suggestion AS fls, c.dxa_suggestion AS dxa FROM cds_feedback f LEFT JOIN cds_card c ON c.uuid = f.card_uuid WHERE f.outcome = 'accepted'`).all() as { ids: string; fls: string | null; dxa: string | null }[];
    for (const s of sugg) for (const id of JSON.parse(s.ids) as string[]) {
      if (id === s.fls) accepted.fls++;
      else if (id === s.dxa) accepted.dxa++;
      else accepted.other++;
    }
    return {
      cards,
      feedback,
      overall: rate(cards, acc, ovr),
      byTier,
      byReason: reasons.map((r) => ({ ...r, share: overrides > 0 ? r.count / overrides : 0 })),
      acceptedSuggestions: accepted,
      notice: 'Rates are per card shown; feedback for cards this service has no record of is counted under "unknown". Research use — trained on synthetic data.',
    };
  }

  close(): void {
    this.#db.close();
  }
}

/**
 * The CDS card log in PostgreSQL (`DATABASE_URL`): cards shown, feedback, patient-view memory and order-select cards
 * of every replica in one place (tables of migration 010-cardlog.sql). Same behaviour as the embedded SQLite store
 * (server/cds/store.ts) — the same dedup key for feedback, the same summary via {@link summarise}.
 *
 * Every call is one statement (feedback: one multi-row INSERT), so there is no transaction to hold open across a
 * hook call. A failure of the server rejects with {@link StateUnavailableError}; nothing is kept in memory instead.
 */
import type { Feedback } from '../cds/types.ts';
import { summarise, sweepPeriodically, type CardLogRetention, type CardRecord, type FeedbackSummary, type SpokenRecord, type SummaryCounts } from '../cds/store.ts';
import type { Tier } from '../risk/assess.ts';
import { pgError, pingPostgres, type PgPool } from './postgres.ts';
import type { CardLogStore } from './types.ts';

export class PostgresCardLog implements CardLogStore {
  readonly backend = 'postgres' as const;
  readonly #pool: PgPool;
  readonly #ownsPool: boolean;
  readonly #stopSweep: (() => void) | undefined;

  /**
   * On `pool` (the schema comes from the migrations, run at start by the caller). `ownsPool`: {@link close} ends the
   * pool too (default false: the composition root shares one pool between stores and closes it itself).
   * `retention`: sweep old rows (every replica does; see server/cds/store.ts).
   */
  constructor(pool: PgPool, opts: { ownsPool?: boolean; retention?: CardLogRetention } = {}) {
    this.#pool = pool;
    this.#ownsPool = opts.ownsPool ?? false;
    this.#stopSweep = opts.retention ? sweepPeriodically((before) => this.prune(before), opts.retention) : undefined;
  }

  async #query<R extends object>(what: string, sql: string, params: unknown[] = []): Promise<{ rows: R[]; rowCount: number }> {
    try {
      const r = await this.#pool.query<R>(sql, params);
      return { rows: r.rows, rowCount: r.rowCount ?? 0 };
    } catch (err) {
      throw pgError(err, `card log ${what}`);
    }
  }

  async recordCard(c: CardRecord): Promise<void> {
    await this.#query('recordCard', `INSERT INTO cds_card (uuid, service_id, patient_id, tier, mode, kind, assessment_id, fls_suggestion, dxa_suggestion)
      VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (uuid) DO NOTHING`,
    [c.uuid, c.serviceId, c.patientId, c.tier, c.mode, c.kind, c.assessmentId, c.suggestions.fls ?? null, c.suggestions.dxa ?? null]);
  }

  /** Stores feedback entries in one statement (a repeated entry — same card, outcome and timestamp — is stored once); resolves to how many were new. */
  async recordFeedback(serviceId: string, clientId: string, entries: readonly Feedback[]): Promise<number> {
    if (entries.length === 0) return 0;
    const cols = 10;
    const params: unknown[] = [];
    const values = entries.map((f, i) => {
      const r = f.overrideReason?.reason;
      params.push(f.card, serviceId, clientId, f.outcome, JSON.stringify((f.acceptedSuggestions ?? []).map((s) => s.id)), r?.system ?? null, r?.code ?? null, r?.display ?? null,
        !!f.overrideReason?.userComment, f.outcomeTimestamp);
      return `(${Array.from({ length: cols }, (_, k) => `$${i * cols + k + 1}`).join(', ')})`;
    });
    const r = await this.#query('recordFeedback', `INSERT INTO cds_feedback
      (card_uuid, service_id, client_id, outcome, accepted_suggestions, reason_system, reason_code, reason_display, has_comment, outcome_timestamp)
      VALUES ${values.join(', ')} ON CONFLICT (card_uuid, outcome, outcome_timestamp) DO NOTHING`, params);
    return r.rowCount;
  }

  async lastSpoken(serviceId: string, source: string, patientId: string): Promise<SpokenRecord | undefined> {
    const r = await this.#query<{ assessment_key: string; tier: Tier; mode: string }>('lastSpoken',
      'SELECT assessment_key, tier, mode FROM cds_spoken WHERE service_id = $1 AND source = $2 AND patient_id = $3', [serviceId, source, patientId]);
    const row = r.rows[0];
    return row ? { assessmentKey: row.assessment_key, tier: row.tier, mode: row.mode } : undefined;
  }

  async recordSpoken(serviceId: string, source: string, patientId: string, s: SpokenRecord): Promise<void> {
    await this.#query('recordSpoken', `INSERT INTO cds_spoken (service_id, source, patient_id, assessment_key, tier, mode, at) VALUES ($1, $2, $3, $4, $5, $6, now())
      ON CONFLICT (service_id, source, patient_id) DO UPDATE SET assessment_key = excluded.assessment_key, tier = excluded.tier, mode = excluded.mode, at = excluded.at`,
    [serviceId, source, patientId, s.assessmentKey, s.tier, s.mode]);
  }

  async recordOrderCard(source: string, patientId: string, userId: string, riskKey: string, at: Date = new Date()): Promise<void> {
    await this.#query('recordOrderCard', `INSERT INTO cds_order_card (source, patient_id, user_id, risk_key, at) VALUES ($1, $2, $3, $4, $5)
      ON CONFLICT (source, patient_id, user_id) DO UPDATE SET risk_key = excluded.risk_key, at = excluded.at`,
    [source, patientId, userId, riskKey, at]);
  }

  async orderCardShownSince(source: string, patientId: string, userId: string, riskKey: string, since: Date): Promise<boolean> {
    const r = await this.#query('orderCardShownSince',
      'SELECT 1 FROM cds_order_card WHERE source = $1 AND patient_id = $2 AND user_id = $3 AND risk_key = $4 AND at >= $5', [source, patientId, userId, riskKey, since]);
    return r.rows.length > 0;
  }

  /** The same figures as the embedded store (see {@link summarise}); counts come back from PostgreSQL as integers. */
  async summary(): Promise<FeedbackSummary> {
    const [totals, tiers, unknown, reasons, accepted] = await Promise.all([
      this.#query<{ cards: number; feedback: number; overrides: number }>('summary', `SELECT
        (SELECT COUNT(*) FROM cds_card)::int AS cards, (SELECT COUNT(*) FROM cds_feedback)::int AS feedback,
        (SELECT COUNT(*) FROM cds_feedback WHERE outcome = 'overridden')::int AS overrides`),
      this.#query<SummaryCounts['tiers'][number]>('summary', `SELECT c.tier, COUNT(*)::int AS cards,
        COUNT(*) FILTER (WHERE EXISTS (SELECT 1 FROM cds_feedback f WHERE f.card_uuid = c.uuid AND f.outcome = 'accepted'))::int AS accepted,
        COUNT(*) FILTER (WHERE EXISTS (SELECT 1 FROM cds_feedback f WHERE f.card_uuid = c.uuid AND f.outcome = 'overridden'))::int AS overridden
        FROM cds_card c GROUP BY c.tier ORDER BY c.tier`),
      this.#query<SummaryCounts['unknown']>('summary', `SELECT COUNT(DISTINCT card_uuid)::int AS cards,
        COUNT(DISTINCT card_uuid) FILTER (WHERE outcome = 'accepted')::int AS accepted, COUNT(DISTINCT card_uuid) FILTER (WHERE outcome = 'overridden')::int AS overridden
        FROM cds_feedback f WHERE NOT EXISTS (SELECT 1 FROM cds_card c WHERE c.uuid = f.card_uuid)`),
      this.#query<SummaryCounts['reasons'][number]>('summary', `SELECT reason_system AS system, reason_code AS code, MAX(reason_display) AS display, COUNT(*)::int AS count
        FROM cds_feedback WHERE outcome = 'overridden' AND reason_code IS NOT NULL GROUP BY reason_system, reason_code ORDER BY count DESC, code`),
      this.#query<{ ids: string[]; fls: string | null; dxa: string | null }>('summary', `SELECT f.accepted_suggestions AS ids, c.fls_suggestion AS fls, c.dxa_suggestion AS dxa
        FROM cds_feedback f LEFT JOIN cds_card c ON c.uuid = f.card_uuid WHERE f.outcome = 'accepted'`),
    ]);
    const t = totals.rows[0]!;
    return summarise({
      cards: t.cards,
      feedback: t.feedback,
      overrides: t.overrides,
      tiers: tiers.rows,
      unknown: unknown.rows[0]!,
      reasons: reasons.rows,
      acceptedSuggestions: accepted.rows,
    });
  }

  /** See {@link CardLogStore.prune}: one statement (the deletes of a WITH run as one snapshot, atomically). */
  async prune(before: Date): Promise<number> {
    const r = await this.#query<{ n: number }>('prune', `WITH
      c AS (DELETE FROM cds_card WHERE created_at < $1 RETURNING 1),
      f AS (DELETE FROM cds_feedback WHERE received_at < $1 RETURNING 1),
      s AS (DELETE FROM cds_spoken WHERE at < $1 RETURNING 1),
      o AS (DELETE FROM cds_order_card WHERE at < $1 RETURNING 1)
      SELECT ((SELECT COUNT(*) FROM c) + (SELECT COUNT(*) FROM f) + (SELECT COUNT(*) FROM s) + (SELECT COUNT(*) FROM o))::int AS n`, [before]);
    return r.rows[0]!.n;
  }

  check(): Promise<void> {
    return pingPostgres(this.#pool);
  }

  async close(): Promise<void> {
    this.#stopSweep?.();
    if (this.#ownsPool) await this.#pool.end();
  }
}

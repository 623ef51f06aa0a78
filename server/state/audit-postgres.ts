/**
 * FLS AuditEvents the FHIR server refused, kept in PostgreSQL (`DATABASE_URL`, table `fls_audit_fallback` of
 * migration 011-audit-fallback.sql) so that an event one replica kept is forwarded by whichever replica next reaches
 * the FHIR server.
 *
 * Each event is forwarded once: a forwarder takes the oldest pending event with `FOR UPDATE SKIP LOCKED` in a
 * transaction, sends it, marks it and commits. A concurrent forwarder skips the locked row and takes the next one;
 * a failed send rolls back (the event stays pending, unlocked) and stops the run. If the forwarder's process or
 * connection dies mid-send, PostgreSQL rolls the transaction back and the event is pending again — it is then sent
 * again, the one case where the FHIR server may receive an event twice (a send that succeeded but whose commit was
 * lost).
 */
import type { AuditEvent } from '@medplum/fhirtypes';
import type pg from 'pg';
import { pgError, pingPostgres, type PgPool } from './postgres.ts';
import type { AuditFallbackStore, KeptAuditEvent } from './types.ts';

interface Row { id: string; recorded: string; action: string; event: AuditEvent; error: string; forwarded_at: Date | null }

const COLUMNS = 'id, recorded, action, event, error, forwarded_at';
const toKept = (x: Row): KeptAuditEvent => ({ id: Number(x.id), recorded: x.recorded, action: x.action, event: x.event, error: x.error, forwardedAt: x.forwarded_at ? x.forwarded_at.toISOString() : null });

export class PostgresAuditFallback implements AuditFallbackStore {
  readonly backend = 'postgres' as const;
  readonly #pool: PgPool;
  readonly #ownsPool: boolean;

  /** On `pool` (schema from the migrations). `ownsPool`: {@link close} ends the pool too (default false). */
  constructor(pool: PgPool, opts: { ownsPool?: boolean } = {}) {
    this.#pool = pool;
    this.#ownsPool = opts.ownsPool ?? false;
  }

  async #query<R extends object>(what: string, sql: string, params: unknown[] = []): Promise<R[]> {
    try {
      return (await this.#pool.query<R>(sql, params)).rows;
    } catch (err) {
      throw pgError(err, `audit fallback ${what}`);
    }
  }

  async keep(e: { recorded: string; action: string; event: AuditEvent; error: string }): Promise<number> {
    const rows = await this.#query<{ id: string }>('keep', 'INSERT INTO fls_audit_fallback (recorded, action, event, error) VALUES ($1, $2, $3, $4) RETURNING id',
      [e.recorded, e.action, JSON.stringify(e.event), e.error]);
    return Number(rows[0]!.id);
  }

  async pending(): Promise<KeptAuditEvent[]> {
    return (await this.#query<Row>('pending', `SELECT ${COLUMNS} FROM fls_audit_fallback WHERE forwarded_at IS NULL ORDER BY id`)).map(toKept);
  }

  async rows(): Promise<KeptAuditEvent[]> {
    return (await this.#query<Row>('rows', `SELECT ${COLUMNS} FROM fls_audit_fallback ORDER BY id`)).map(toKept);
  }

  async forward(send: (event: KeptAuditEvent) => Promise<void>, now: () => Date): Promise<number> {
    // Every successful audit write asks; one indexed look-up answers "nothing pending" without a transaction.
    const [any] = await this.#query<{ pending: boolean }>('forward', 'SELECT EXISTS (SELECT 1 FROM fls_audit_fallback WHERE forwarded_at IS NULL) AS pending');
    if (!any?.pending) return 0;
    let client: pg.PoolClient;
    try {
      client = await this.#pool.connect();
    } catch (err) {
      throw pgError(err, 'audit fallback forward');
    }
    let sent = 0;
    let broken: Error | undefined;
    try {
      for (;;) {
        await client.query('BEGIN');
        const row = (await client.query<Row>(`SELECT ${COLUMNS} FROM fls_audit_fallback WHERE forwarded_at IS NULL ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED`)).rows[0];
        if (!row) {
          await client.query('COMMIT');
          break;
        }
        try {
          await send(toKept(row));
        } catch {
          await client.query('ROLLBACK');
          break;
        }
        await client.query('UPDATE fls_audit_fallback SET forwarded_at = $2 WHERE id = $1', [row.id, now()]);
        await client.query('COMMIT');
        sent++;
      }
    } catch (err) {
      broken = err as Error;
      await client.query('ROLLBACK').catch(() => undefined);
      throw pgError(err, 'audit fallback forward');
    } finally {
      // A connection that failed mid-transaction is discarded rather than returned to the pool.
      client.release(broken);
    }
    return sent;
  }

  check(): Promise<void> {
    return pingPostgres(this.#pool);
  }

  async close(): Promise<void> {
    if (this.#ownsPool) await this.#pool.end();
  }
}

/**
 * The embedded {@link AuditFallbackStore}: FLS AuditEvents the FHIR server refused, kept in a SQLite file
 * (`FLS_AUDIT_DB`, table `fls_audit`, the same file and table as before the store was shared) until forwarded.
 *
 * Several processes of one host may share the file (cluster mode), so forwarding claims an event before sending it:
 * a claim is a lease (`claimed_until`) taken in an IMMEDIATE transaction, so two forwarders never send the same event.
 * The lease outlives any FHIR write (the client times out well before it); if the forwarding process dies while
 * sending, the event is claimable again once the lease has passed — and is then sent again, which is the one case
 * where the FHIR server may receive an event twice.
 */
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import type { AuditEvent } from '@medplum/fhirtypes';
import { StateUnavailableError, type AuditFallbackStore, type KeptAuditEvent } from './types.ts';

/** How long a forwarder holds an event it is sending (default), in ms: longer than any FHIR write may take. */
export const DEFAULT_AUDIT_CLAIM_MS = 5 * 60_000;

interface Row { id: number; recorded: string; action: string; event_json: string; error: string; forwarded_at: string | null }

const toKept = (x: Row): KeptAuditEvent => ({ id: x.id, recorded: x.recorded, action: x.action, event: JSON.parse(x.event_json) as AuditEvent, error: x.error, forwardedAt: x.forwarded_at });

export class SqliteAuditFallback implements AuditFallbackStore {
  readonly backend = 'sqlite' as const;
  readonly #db: Database.Database;
  readonly #claimMs: number;

  /** Opens (creating with its folder when needed) the file at `path`; `:memory:` for tests. */
  constructor(path: string, opts: { claimMs?: number } = {}) {
    this.#claimMs = opts.claimMs ?? DEFAULT_AUDIT_CLAIM_MS;
    if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
    this.#db = new Database(path);
    // First: processes of one host opening the file together wait for each other's locks (the WAL switch included).
    this.#db.pragma('busy_timeout = 5000');
    this.#db.pragma('journal_mode = WAL');
    this.#db.exec(`CREATE TABLE IF NOT EXISTS fls_audit (
      id INTEGER PRIMARY KEY AUTOINCREMENT,
      recorded TEXT NOT NULL,
      action TEXT NOT NULL,
      event_json TEXT NOT NULL,
      error TEXT NOT NULL,
      forwarded_at TEXT
    )`);
    this.#db.exec('CREATE INDEX IF NOT EXISTS fls_audit_pending ON fls_audit (id) WHERE forwarded_at IS NULL');
    // Files written before forwarding was claimed have no lease column: add it (NULL = not claimed).
    const cols = this.#db.prepare('PRAGMA table_info(fls_audit)').all() as { name: string }[];
    if (!cols.some((c) => c.name === 'claimed_until')) {
      try {
        this.#db.exec('ALTER TABLE fls_audit ADD COLUMN claimed_until TEXT');
      } catch (err) {
        // Another process of this host added it between the check and here.
        if (!/duplicate column/i.test((err as Error).message)) throw err;
      }
    }
  }

  #run<T>(what: string, fn: () => T): Promise<T> {
    try {
      return Promise.resolve(fn());
    } catch (err) {
      return Promise.reject(new StateUnavailableError('sqlite', `audit fallback ${what}: ${(err as Error).message}`, { cause: err }));
    }
  }

  keep(e: { recorded: string; action: string; event: AuditEvent; error: string }): Promise<number> {
    return this.#run('keep', () => Number(this.#db.prepare('INSERT INTO fls_audit (recorded, action, event_json, error) VALUES (?, ?, ?, ?)')
      .run(e.recorded, e.action, JSON.stringify(e.event), e.error).lastInsertRowid));
  }

  pending(): Promise<KeptAuditEvent[]> {
    return this.#run('pending', () => (this.#db.prepare('SELECT id, recorded, action, event_json, error, forwarded_at FROM fls_audit WHERE forwarded_at IS NULL ORDER BY id').all() as Row[]).map(toKept));
  }

  rows(): Promise<KeptAuditEvent[]> {
    return this.#run('rows', () => (this.#db.prepare('SELECT id, recorded, action, event_json, error, forwarded_at FROM fls_audit ORDER BY id').all() as Row[]).map(toKept));
  }

  async forward(send: (event: KeptAuditEvent) => Promise<void>, now: () => Date): Promise<number> {
    // Every successful audit write asks: answer "nothing pending" with a read, without taking the write lock.
    const any = await this.#run('forward', () => this.#db.prepare('SELECT EXISTS (SELECT 1 FROM fls_audit WHERE forwarded_at IS NULL) AS pending').get() as { pending: number });
    if (!any.pending) return 0;
    const claimNext = this.#db.transaction((at: string, until: string): Row | undefined => {
      const row = this.#db.prepare(`SELECT id, recorded, action, event_json, error, forwarded_at FROM fls_audit
        WHERE forwarded_at IS NULL AND (claimed_until IS NULL OR claimed_until < ?) ORDER BY id LIMIT 1`).get(at) as Row | undefined;
      if (row) this.#db.prepare('UPDATE fls_audit SET claimed_until = ? WHERE id = ?').run(until, row.id);
      return row;
    });
    let sent = 0;
    for (;;) {
      const t = now();
      const row = await this.#run('claim', () => claimNext.immediate(t.toISOString(), new Date(t.getTime() + this.#claimMs).toISOString()));
      if (!row) break;
      try {
        await send(toKept(row));
      } catch {
        await this.#run('release', () => this.#db.prepare('UPDATE fls_audit SET claimed_until = NULL WHERE id = ?').run(row.id));
        break;
      }
      await this.#run('mark', () => this.#db.prepare('UPDATE fls_audit SET forwarded_at = ?, claimed_until = NULL WHERE id = ?').run(now().toISOString(), row.id));
      sent++;
    }
    return sent;
  }

  check(): Promise<void> {
    return this.#run('check', () => void this.#db.prepare('SELECT 1').get());
  }

  close(): Promise<void> {
    if (this.#db.open) this.#db.close();
    return Promise.resolve();
  }
}

/**
 * Where production monitoring keeps its radiograph–DXA pairs, the drift-alarm state and the poller's cursor: the
 * embedded SQLite state file (`STATE_DB`) by default, PostgreSQL (`DATABASE_URL`, migration
 * server/state/migrations/020-tscore-monitoring.sql) when set — so every replica sees the same figures and an alarm
 * is raised (and logged) by one replica only. Tables: `tscore_pair`, `tscore_alarm`, `tscore_cursor`; ids, numbers
 * and dates only.
 *
 * A pair is stored once per DXA Observation (its id is the key): a replica polling the same Observation again, or a
 * second replica, adds nothing. An alarm state change is an atomic compare-and-set: {@link MonitoringStore.setAlarm}
 * answers true only for the call that changed it.
 */
import type { PgPool } from '../state/postgres.ts';
import { pgError } from '../state/postgres.ts';
import type { SqliteDb } from '../state/sqlite.ts';
import { StateUnavailableError, type StateStore } from '../state/types.ts';

/** One measured DXA T-score paired with an image-based estimate. */
export interface TscorePair {
  readonly observationId: string;
  readonly riskAssessmentId: string;
  readonly site: string;
  /** `<model id>@<version>`. */
  readonly model: string;
  /** Calibration version the estimate was made with. */
  readonly calibration: string;
  readonly mean: number;
  readonly low: number;
  readonly high: number;
  readonly measured: number;
  /** YYYY-MM-DD. */
  readonly dxaDate: string;
  /** YYYY-MM-DD of the radiograph. */
  readonly imageDate: string;
}

/** A series: the pairs of one site, model and calibration (figures and alarms are per series). */
export interface SeriesKey {
  readonly site: string;
  readonly model: string;
  readonly calibration: string;
}

export type AlarmStateName = 'ok' | 'alarm';

export interface AlarmRecord {
  readonly state: AlarmStateName;
  readonly reason: string | null;
  readonly since: string;
}

export interface MonitoringStore extends StateStore {
  /** Stores a pair; false when its Observation was stored before. */
  add(pair: TscorePair): Promise<boolean>;
  /** The series that have pairs. */
  series(): Promise<SeriesKey[]>;
  /** The latest `limit` pairs of a series by DXA date (newest first). */
  window(key: SeriesKey, limit: number): Promise<TscorePair[]>;
  /** The alarm state of a series (null: never evaluated). */
  alarm(series: string): Promise<AlarmRecord | null>;
  /** Sets the alarm state; true only when this call changed it (or created it in state `alarm`). */
  setAlarm(series: string, state: AlarmStateName, reason: string | null, at: Date): Promise<boolean>;
  cursor(name: string): Promise<string | null>;
  setCursor(name: string, value: string): Promise<void>;
}

/** The stable text key of a series (alarm table, metrics). */
export const seriesId = (k: SeriesKey): string => `${k.site}|${k.model}|${k.calibration}`;

interface PairRow {
  observation_id: string;
  risk_assessment_id: string;
  site: string;
  model: string;
  calibration: string;
  estimate_mean: number;
  estimate_low: number;
  estimate_high: number;
  measured: number;
  dxa_date: string;
  image_date: string;
}

const toPair = (r: PairRow): TscorePair => ({
  observationId: r.observation_id,
  riskAssessmentId: r.risk_assessment_id,
  site: r.site,
  model: r.model,
  calibration: r.calibration,
  mean: Number(r.estimate_mean),
  low: Number(r.estimate_low),
  high: Number(r.estimate_high),
  measured: Number(r.measured),
  dxaDate: r.dxa_date,
  imageDate: r.image_date,
});

const PAIR_COLUMNS = 'observation_id, risk_assessment_id, site, model, calibration, estimate_mean, estimate_low, estimate_high, measured, dxa_date, image_date';
const pairValues = (p: TscorePair): (string | number)[] => [p.observationId, p.riskAssessmentId, p.site, p.model, p.calibration, p.mean, p.low, p.high, p.measured, p.dxaDate, p.imageDate];

/** The embedded store, in the state file (tables created here; the same shape as the PostgreSQL migration). */
export class SqliteMonitoringStore implements MonitoringStore {
  readonly backend = 'sqlite' as const;
  readonly #db: SqliteDb;
  readonly #ownsDb: boolean;

  /** `db`: the state database; `ownsDb`: close it with the store. */
  constructor(db: SqliteDb, opts: { ownsDb?: boolean } = {}) {
    this.#db = db;
    this.#ownsDb = opts.ownsDb ?? false;
    db.exec(`CREATE TABLE IF NOT EXISTS tscore_pair (
      observation_id TEXT PRIMARY KEY, risk_assessment_id TEXT NOT NULL, site TEXT NOT NULL, model TEXT NOT NULL,
      calibration TEXT NOT NULL, estimate_mean REAL NOT NULL, estimate_low REAL NOT NULL, estimate_high REAL NOT NULL,
      measured REAL NOT NULL, dxa_date TEXT NOT NULL, image_date TEXT NOT NULL, recorded_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')))`);
    db.exec('CREATE INDEX IF NOT EXISTS tscore_pair_series ON tscore_pair (site, model, calibration, dxa_date DESC, observation_id DESC)');
    db.exec('CREATE TABLE IF NOT EXISTS tscore_alarm (series TEXT PRIMARY KEY, state TEXT NOT NULL, reason TEXT, since TEXT NOT NULL)');
    db.exec('CREATE TABLE IF NOT EXISTS tscore_cursor (name TEXT PRIMARY KEY, value TEXT NOT NULL)');
  }

  #run<T>(what: string, fn: () => T): Promise<T> {
    try {
      return Promise.resolve(fn());
    } catch (err) {
      return Promise.reject(new StateUnavailableError('sqlite', `T-score monitoring ${what}: ${(err as Error).message}`, { cause: err }));
    }
  }

  add(p: TscorePair): Promise<boolean> {
    return this.#run('add', () => this.#db.prepare(`INSERT OR IGNORE INTO tscore_pair (${PAIR_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`).run(...pairValues(p)).changes === 1);
  }

  series(): Promise<SeriesKey[]> {
    return this.#run('series', () => this.#db.prepare('SELECT DISTINCT site, model, calibration FROM tscore_pair ORDER BY site, model, calibration').all() as SeriesKey[]);
  }

  window(k: SeriesKey, limit: number): Promise<TscorePair[]> {
    return this.#run('window', () => (this.#db.prepare(`SELECT ${PAIR_COLUMNS} FROM tscore_pair WHERE site = ? AND model = ? AND calibration = ? ORDER BY dxa_date DESC, observation_id DESC LIMIT ?`)
      .all(k.site, k.model, k.calibration, limit) as PairRow[]).map(toPair));
  }

  alarm(series: string): Promise<AlarmRecord | null> {
    return this.#run('alarm', () => (this.#db.prepare('SELECT state, reason, since FROM tscore_alarm WHERE series = ?').get(series) as AlarmRecord | undefined) ?? null);
  }

  setAlarm(series: string, state: AlarmStateName, reason: string | null, at: Date): Promise<boolean> {
    // IMMEDIATE: the read and the write are one step for every process sharing the file.
    return this.#run('set alarm', () => this.#db.transaction(() => {
      const cur = this.#db.prepare('SELECT state FROM tscore_alarm WHERE series = ?').get(series) as { state: string } | undefined;
      if (cur?.state === state) {
        this.#db.prepare('UPDATE tscore_alarm SET reason = ? WHERE series = ?').run(reason, series);
        return false;
      }
      this.#db.prepare('INSERT INTO tscore_alarm (series, state, reason, since) VALUES (?, ?, ?, ?) ON CONFLICT (series) DO UPDATE SET state = excluded.state, reason = excluded.reason, since = excluded.since')
        .run(series, state, reason, at.toISOString());
      return cur !== undefined || state === 'alarm';
    }).immediate());
  }

  cursor(name: string): Promise<string | null> {
    return this.#run('cursor', () => (this.#db.prepare('SELECT value FROM tscore_cursor WHERE name = ?').get(name) as { value: string } | undefined)?.value ?? null);
  }

  setCursor(name: string, value: string): Promise<void> {
    return this.#run('set cursor', () => void this.#db.prepare('INSERT INTO tscore_cursor (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value').run(name, value));
  }

  check(): Promise<void> {
    return this.#run('check', () => void this.#db.prepare('SELECT 1').get());
  }

  async close(): Promise<void> {
    if (this.#ownsDb) this.#db.close();
  }
}

/** The shared store on the service's PostgreSQL pool (migrated at start; the pool stays open on close). */
export class PostgresMonitoringStore implements MonitoringStore {
  readonly backend = 'postgres' as const;
  readonly #pool: PgPool;

  constructor(pool: PgPool) {
    this.#pool = pool;
  }

  async #q<R extends object>(what: string, sql: string, params: unknown[]): Promise<{ rows: R[]; rowCount: number }> {
    try {
      const r = await this.#pool.query<R>(sql, params);
      return { rows: r.rows, rowCount: r.rowCount ?? 0 };
    } catch (err) {
      throw pgError(err, `T-score monitoring ${what}`);
    }
  }

  async add(p: TscorePair): Promise<boolean> {
    const r = await this.#q('add', `INSERT INTO tscore_pair (${PAIR_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT (observation_id) DO NOTHING`, pairValues(p));
    return r.rowCount === 1;
  }

  async series(): Promise<SeriesKey[]> {
    return (await this.#q<SeriesKey>('series', 'SELECT DISTINCT site, model, calibration FROM tscore_pair ORDER BY site, model, calibration', [])).rows;
  }

  async window(k: SeriesKey, limit: number): Promise<TscorePair[]> {
    const r = await this.#q<PairRow>('window', `SELECT ${PAIR_COLUMNS} FROM tscore_pair WHERE site = $1 AND model = $2 AND calibration = $3 ORDER BY dxa_date DESC, observation_id DESC LIMIT $4`, [k.site, k.model, k.calibration, limit]);
    return r.rows.map(toPair);
  }

  async alarm(series: string): Promise<AlarmRecord | null> {
    const r = await this.#q<{ state: AlarmStateName; reason: string | null; since: Date }>('alarm', 'SELECT state, reason, since FROM tscore_alarm WHERE series = $1', [series]);
    const row = r.rows[0];
    return row ? { state: row.state, reason: row.reason, since: new Date(row.since).toISOString() } : null;
  }

  async setAlarm(series: string, state: AlarmStateName, reason: string | null, at: Date): Promise<boolean> {
    // One statement: the row is inserted, or updated only when the state differs; `prior` tells which happened.
    const r = await this.#q<{ prior: string | null }>(
      'set alarm',
      `WITH prior AS (SELECT state FROM tscore_alarm WHERE series = $1)
       INSERT INTO tscore_alarm (series, state, reason, since) VALUES ($1, $2, $3, $4)
       ON CONFLICT (series) DO UPDATE SET state = EXCLUDED.state, reason = EXCLUDED.reason, since = EXCLUDED.since WHERE tscore_alarm.state <> EXCLUDED.state
       RETURNING (SELECT state FROM prior) AS prior`,
      [series, state, reason, at.toISOString()],
    );
    if (r.rowCount === 0) {
      await this.#q('set alarm reason', 'UPDATE tscore_alarm SET reason = $2 WHERE series = $1', [series, reason]);
      return false;
    }
    return r.rows[0]!.prior !== null || state === 'alarm';
  }

  async cursor(name: string): Promise<string | null> {
    return (await this.#q<{ value: string }>('cursor', 'SELECT value FROM tscore_cursor WHERE name = $1', [name])).rows[0]?.value ?? null;
  }

  async setCursor(name: string, value: string): Promise<void> {
    await this.#q('set cursor', 'INSERT INTO tscore_cursor (name, value) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value', [name, value]);
  }

  async check(): Promise<void> {
    await this.#q('check', 'SELECT 1', []);
  }

  async close(): Promise<void> {
    // The pool belongs to the state stores.
  }
}

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { postgresOrSkip, type PostgresHandle } from '../../test/support/postgres.ts';
import { createPgPool, migrate, migrationFiles, pingPostgres } from './postgres.ts';
import { StateUnavailableError } from './types.ts';

describe('PostgreSQL migrations', () => {
  let pgh: PostgresHandle | undefined;
  before(async () => {
    pgh = await postgresOrSkip();
  });
  after(async () => {
    await pgh?.stop();
  });

  it('the shipped migrations are named NNN-name.sql and apply on an empty database', async (t) => {
    if (!pgh) return t.skip('no PostgreSQL');
    assert.ok(migrationFiles().length >= 1);
    const pool = createPgPool(await pgh.createDatabase('shipped'));
    try {
      const applied = await migrate(pool);
      assert.deepEqual(applied, migrationFiles().map((m) => m.version));
      assert.deepEqual(await migrate(pool), [], 'a second run applies nothing');
      const { rows } = await pool.query<{ n: string }>("SELECT count(*) AS n FROM information_schema.tables WHERE table_name IN ('replay_claim', 'assessment_result')");
      assert.equal(Number(rows[0]!.n), 2);
    } finally {
      await pool.end();
    }
  });

  it('two replicas migrating at once apply each file once (advisory lock); a failing file leaves nothing behind', async (t) => {
    if (!pgh) return t.skip('no PostgreSQL');
    const dir = mkdtempSync(join(tmpdir(), 'frcds-mig-'));
    try {
      // 001 takes a moment so that the second runner really waits on the lock.
      writeFileSync(join(dir, '001-first.sql'), 'CREATE TABLE t1 (x int); SELECT pg_sleep(0.3); INSERT INTO t1 VALUES (1);');
      writeFileSync(join(dir, '002-second.sql'), 'INSERT INTO t1 VALUES (2);');
      writeFileSync(join(dir, 'notes.txt'), 'ignored');
      const url = await pgh.createDatabase('race');
      const a = createPgPool(url);
      const b = createPgPool(url);
      try {
        const [ra, rb] = await Promise.all([migrate(a, { dir }), migrate(b, { dir })]);
        assert.deepEqual([...ra, ...rb].sort(), ['001-first', '002-second'], 'each file applied by exactly one runner');
        const { rows } = await a.query<{ x: number }>('SELECT x FROM t1 ORDER BY x');
        assert.deepEqual(rows.map((r) => r.x), [1, 2]);
        writeFileSync(join(dir, '003-broken.sql'), 'INSERT INTO t1 VALUES (3); SELECT * FROM no_such_table;');
        await assert.rejects(migrate(a, { dir }), (e: unknown) => e instanceof StateUnavailableError && /003-broken/.test(e.message));
        const after3 = await a.query<{ x: number }>('SELECT x FROM t1 ORDER BY x');
        assert.deepEqual(after3.rows.map((r) => r.x), [1, 2], 'the failed file was rolled back');
        const versions = await a.query<{ version: string }>('SELECT version FROM schema_migrations ORDER BY version');
        assert.deepEqual(versions.rows.map((r) => r.version), ['001-first', '002-second']);
      } finally {
        await a.end();
        await b.end();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('an unreachable server is a StateUnavailableError, not a hang', async () => {
    const pool = createPgPool('postgres://nobody@127.0.0.1:1/none', { connectionTimeoutMs: 500 });
    try {
      await assert.rejects(pingPostgres(pool), (e: unknown) => e instanceof StateUnavailableError && e.backend === 'postgres');
      await assert.rejects(migrate(pool), StateUnavailableError);
    } finally {
      await pool.end();
    }
  });
});

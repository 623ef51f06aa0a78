/**
 * The FLS audit fallback on both backends (embedded SQLite shared by two connections, as cluster workers share the
 * file; PostgreSQL shared by two pools, as replicas share the database): kept events are listed and forwarded, a
 * failed send leaves the event pending, and forwarders racing each other send every event exactly once. Then the
 * whole AuditLog with a FHIR server that refuses and later accepts (a small HTTP stub): events kept by two replicas
 * while it was down reach it exactly once, forwarded by whichever replica runs next. Real PostgreSQL.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { AuditEvent } from '@medplum/fhirtypes';
import { postgresOrSkip, type PostgresHandle } from '../../test/support/postgres.ts';
import { silentLogger } from '../../test/support/demo-stack.ts';
import { HttpFhirClient } from '../fhir/client.ts';
import { AuditLog, buildAuditEvent } from '../fls/audit.ts';
import { PostgresAuditFallback } from './audit-postgres.ts';
import { SqliteAuditFallback } from './audit-sqlite.ts';
import { createPgPool, migrate, type PgPool } from './postgres.ts';
import { StateUnavailableError, type AuditFallbackStore, type KeptAuditEvent } from './types.ts';

let pg: PostgresHandle | undefined;
let dir: string;
let dbCount = 0;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'frcds-audit-'));
  pg = await postgresOrSkip();
});
after(async () => {
  await pg?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const event = (taskId: string): AuditEvent => buildAuditEvent({ action: 'dismiss', actor: { subject: 'u1', fhirUser: 'Practitioner/p1' }, outcome: '0', taskId, patientIds: ['pat-1'], reason: 'declined' }, new Date('2026-05-01T00:00:00Z'));
const taskOf = (e: AuditEvent): string => e.entity?.find((x) => x.what?.reference?.startsWith('Task/'))?.what?.reference ?? '?';

async function newDatabase(): Promise<string | undefined> {
  if (!pg) return undefined;
  const url = await pg.createDatabase(`audit_${++dbCount}`);
  const pool = createPgPool(url);
  await migrate(pool);
  await pool.end();
  return url;
}

/** Two replicas of one fallback store. */
const backends: { name: string; open: () => Promise<{ a: AuditFallbackStore; b: AuditFallbackStore; close(): Promise<void> } | undefined> }[] = [
  {
    name: 'embedded SQLite',
    open: async () => {
      const path = join(dir, `audit-${++dbCount}.sqlite`);
      const a = new SqliteAuditFallback(path);
      const b = new SqliteAuditFallback(path);
      return { a, b, close: async () => void (await a.close(), await b.close()) };
    },
  },
  {
    name: 'PostgreSQL',
    open: async () => {
      const url = await newDatabase();
      if (!url) return undefined;
      const a = new PostgresAuditFallback(createPgPool(url), { ownsPool: true });
      const b = new PostgresAuditFallback(createPgPool(url), { ownsPool: true });
      return { a, b, close: async () => void (await a.close(), await b.close()) };
    },
  },
];

for (const backend of backends) {
  describe(`audit fallback: ${backend.name}`, () => {
    let s: Awaited<ReturnType<(typeof backends)[number]['open']>>;
    before(async () => {
      s = await backend.open();
    });
    after(async () => s?.close());

    it('keeps events, forwards them oldest first, stops at a failure and leaves the rest pending', async (t) => {
      if (!s) return t.skip('PostgreSQL is not installed');
      const { a, b } = s;
      await a.check();
      const ids = [await a.keep({ recorded: '2026-05-01T00:00:00.000Z', action: 'dismiss', event: event('t1'), error: 'HTTP 503' }),
        await b.keep({ recorded: '2026-05-01T00:00:01.000Z', action: 'accept', event: event('t2'), error: 'HTTP 503' }),
        await a.keep({ recorded: '2026-05-01T00:00:02.000Z', action: 'step', event: event('t3'), error: 'HTTP 503' })];
      assert.deepEqual((await b.pending()).map((r) => r.id), ids, 'the other replica sees every kept event');
      const first = (await b.pending())[0]!;
      assert.deepEqual(first.event, event('t1'));
      assert.equal(first.error, 'HTTP 503');
      assert.equal(first.forwardedAt, null);

      const sent: string[] = [];
      let calls = 0;
      const failSecond = async (e: KeptAuditEvent): Promise<void> => {
        if (++calls === 2) throw new Error('FHIR still down');
        sent.push(taskOf(e.event));
      };
      assert.equal(await a.forward(failSecond, () => new Date('2026-05-01T01:00:00Z')), 1);
      assert.deepEqual(sent, ['Task/t1']);
      assert.deepEqual((await b.pending()).map((r) => taskOf(r.event)), ['Task/t2', 'Task/t3'], 'the failed one stays pending');
      // The failed event is free again at once: the other replica forwards the rest.
      assert.equal(await b.forward(async (e) => void sent.push(taskOf(e.event)), () => new Date('2026-05-01T02:00:00Z')), 2);
      assert.deepEqual(sent, ['Task/t1', 'Task/t2', 'Task/t3']);
      assert.equal((await a.pending()).length, 0);
      const rows = await a.rows();
      assert.equal(rows.length, 3, 'append-only: forwarded events stay');
      assert.equal(rows[0]!.forwardedAt, '2026-05-01T01:00:00.000Z');
      assert.equal(rows[2]!.forwardedAt, '2026-05-01T02:00:00.000Z');
      assert.equal(await a.forward(async () => assert.fail('nothing to send'), () => new Date()), 0);
    });

    it('two forwarders racing send every event exactly once', async (t) => {
      if (!s) return t.skip('PostgreSQL is not installed');
      const { a, b } = s;
      const n = 60;
      const kept = new Set<string>();
      for (let i = 0; i < n; i++) {
        await (i % 2 ? a : b).keep({ recorded: new Date().toISOString(), action: 'note', event: event(`race-${i}`), error: 'down' });
        kept.add(`Task/race-${i}`);
      }
      const sends = new Map<string, number>();
      const by = { a: 0, b: 0 };
      const send = (who: 'a' | 'b') => async (e: KeptAuditEvent): Promise<void> => {
        // A FHIR write takes a moment: the other forwarder runs meanwhile.
        await sleep(1 + Math.floor(Math.random() * 3));
        sends.set(taskOf(e.event), (sends.get(taskOf(e.event)) ?? 0) + 1);
        by[who]++;
      };
      // Several forwarding runs of each replica overlap (after-write triggers and the interval).
      const results = await Promise.all([a.forward(send('a'), () => new Date()), b.forward(send('b'), () => new Date()), a.forward(send('a'), () => new Date()), b.forward(send('b'), () => new Date())]);
      const raced = [...sends.keys()].filter((k) => kept.has(k));
      assert.equal(raced.length, n, 'every kept event was sent');
      assert.deepEqual([...sends.entries()].filter(([, c]) => c !== 1), [], 'no event was sent twice');
      assert.equal(results.reduce((x, y) => x + y, 0), n, 'the counts add up');
      assert.ok(by.a > 0 && by.b > 0, `both replicas forwarded (a ${by.a}, b ${by.b})`);
      assert.equal((await b.pending()).length, 0);
    });
  });
}

describe('audit fallback: SQLite lease', () => {
  it('an event claimed by a forwarder that died is taken again once its lease has passed', async () => {
    const path = join(dir, 'lease.sqlite');
    const a = new SqliteAuditFallback(path, { claimMs: 60_000 });
    const b = new SqliteAuditFallback(path, { claimMs: 60_000 });
    try {
      await a.keep({ recorded: 'r', action: 'note', event: event('lease'), error: 'down' });
      const t0 = new Date('2026-06-01T00:00:00Z');
      // Forwarder a claims the event and never finishes (its send hangs, as if the process had died mid-send).
      let claimed!: () => void;
      const claimedNow = new Promise<void>((r) => (claimed = r));
      void a.forward(() => (claimed(), new Promise<void>(() => undefined)), () => t0);
      await claimedNow;
      assert.equal(await b.forward(async () => assert.fail('claimed by a'), () => new Date(t0.getTime() + 59_000)), 0, 'within the lease');
      const sent: string[] = [];
      assert.equal(await b.forward(async (e) => void sent.push(taskOf(e.event)), () => new Date(t0.getTime() + 61_000)), 1, 'after the lease');
      assert.deepEqual(sent, ['Task/lease']);
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('opens an audit file written before forwarding was claimed (no lease column)', async () => {
    const path = join(dir, 'old.sqlite');
    const { default: Database } = await import('better-sqlite3');
    const old = new Database(path);
    old.exec(`CREATE TABLE fls_audit (id INTEGER PRIMARY KEY AUTOINCREMENT, recorded TEXT NOT NULL, action TEXT NOT NULL, event_json TEXT NOT NULL, error TEXT NOT NULL, forwarded_at TEXT)`);
    old.prepare('INSERT INTO fls_audit (recorded, action, event_json, error) VALUES (?, ?, ?, ?)').run('r', 'note', JSON.stringify(event('old')), 'down');
    old.close();
    const store = new SqliteAuditFallback(path);
    try {
      const sent: string[] = [];
      assert.equal(await store.forward(async (e) => void sent.push(taskOf(e.event)), () => new Date()), 1);
      assert.deepEqual(sent, ['Task/old']);
    } finally {
      await store.close();
    }
  });
});

/** A FHIR server that refuses AuditEvents while `down`, else stores them; counts what it stored per Task. */
async function fhirStub(): Promise<{ url: string; down: boolean; stored: AuditEvent[]; close(): Promise<void> }> {
  const state = { down: true, stored: [] as AuditEvent[] };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (req.method !== 'POST' || req.url !== '/fhir/AuditEvent') return void res.writeHead(404).end();
      if (state.down) return void res.writeHead(503).end();
      const e = JSON.parse(Buffer.concat(chunks).toString('utf8')) as AuditEvent;
      // Answer a little later, as a real server does: concurrent forwarders overlap.
      setTimeout(() => {
        state.stored.push(e);
        res.writeHead(201, { 'Content-Type': 'application/fhir+json' }).end(JSON.stringify({ ...e, id: `ae-${state.stored.length}` }));
      }, 2);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return Object.assign(state, {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/fhir`,
    close: () => new Promise<void>((r) => server.close(() => r())),
  });
}

describe('AuditLog on PostgreSQL: events kept by two replicas while the FHIR server is down', () => {
  it('reach the FHIR server exactly once, forwarded by whichever replica runs next', async (t) => {
    const url = await newDatabase();
    if (!url) return t.skip('PostgreSQL is not installed');
    const fhirServer = await fhirStub();
    const pools: PgPool[] = [createPgPool(url), createPgPool(url), createPgPool(url)];
    const logs = pools.map((p) => new AuditLog({ fhir: new HttpFhirClient({ baseUrl: fhirServer.url, timeoutMs: 5000 }), store: new PostgresAuditFallback(p), logger: silentLogger() }));
    const [r1, r2, r3] = logs as [AuditLog, AuditLog, AuditLog];
    try {
      assert.equal(r1.backend, 'postgres');
      const n = 20;
      const outcomes = await Promise.all(Array.from({ length: n }, (_, i) => (i % 2 ? r1 : r2).record({ action: 'note', actor: { subject: 'u1' }, outcome: '0', taskId: `down-${i}` })));
      assert.ok(outcomes.every((o) => o.stored === 'local'), 'kept while the FHIR server refuses');
      assert.equal((await r3.pending()).length, n, 'a third replica sees what the other two kept');
      assert.equal(await r1.forwardPending(), 0, 'still down: nothing forwarded, nothing lost');
      assert.equal((await r2.pending()).length, n);

      fhirServer.down = false;
      // Replica 3 kept nothing; its next audited action succeeds and forwards everything, while replicas 1 and 2
      // run their own forwarding (interval) at the same moment.
      const [own] = await Promise.all([r3.record({ action: 'kpi-view', actor: { subject: 'u2' }, outcome: '0', query: 'x' }), r1.forwardPending(), r2.forwardPending()]);
      assert.equal(own.stored, 'fhir');
      for (let i = 0; i < 100 && (await r3.pending()).length > 0; i++) await sleep(20);
      assert.equal((await r3.pending()).length, 0, 'nothing left pending');
      const counts = new Map<string, number>();
      for (const e of fhirServer.stored) counts.set(taskOf(e), (counts.get(taskOf(e)) ?? 0) + 1);
      for (let i = 0; i < n; i++) assert.equal(counts.get(`Task/down-${i}`), 1, `Task/down-${i} forwarded once`);
      assert.equal(fhirServer.stored.length, n + 1, 'the kept events and the new one, no duplicates');
      assert.equal((await r1.rows()).length, n, 'the fallback log keeps the forwarded rows');
    } finally {
      for (const l of logs) await l.close();
      for (const p of pools) await p.end();
      await fhirServer.close();
    }
  });

  it('an event that can be written neither to the FHIR server nor to the fallback store fails the request', async (t) => {
    if (!pg) return t.skip('PostgreSQL is not installed');
    const fhirServer = await fhirStub();
    const pool = createPgPool('postgres://frcds@127.0.0.1:1/none', { connectionTimeoutMs: 500 });
    const log = new AuditLog({ fhir: new HttpFhirClient({ baseUrl: fhirServer.url, timeoutMs: 2000 }), store: new PostgresAuditFallback(pool), logger: silentLogger() });
    try {
      await assert.rejects(log.record({ action: 'dismiss', actor: { subject: 'u1' }, outcome: '0', taskId: 'lost' }), StateUnavailableError);
    } finally {
      await log.close();
      await pool.end();
      await fhirServer.close();
    }
  });
});

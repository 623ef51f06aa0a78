/**
 * The card log on both backends (embedded SQLite and PostgreSQL): the same answers for the same calls, feedback
 * stored once whichever "replica" (store object with its own connection) received it, and two replicas writing
 * concurrently into one PostgreSQL log. Real PostgreSQL (test/support/postgres.ts).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { postgresOrSkip, type PostgresHandle } from '../../test/support/postgres.ts';
import { CdsStore, type CardRecord } from '../cds/store.ts';
import type { Feedback } from '../cds/types.ts';
import { PostgresCardLog } from './cardlog-postgres.ts';
import { createPgPool, migrate } from './postgres.ts';
import { StateUnavailableError, type CardLogStore } from './types.ts';

let pg: PostgresHandle | undefined;
let dir: string;
let dbCount = 0;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'frcds-cardlog-'));
  pg = await postgresOrSkip();
});
after(async () => {
  await pg?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const card = (uuid: string, tier: CardRecord['tier'], fls = `${uuid}-fls`, dxa = `${uuid}-dxa`): CardRecord => ({
  uuid, serviceId: 'fracture-risk-order-select', patientId: `p-${uuid}`, tier, mode: 'image-and-clinical', kind: 'assessment', assessmentId: `a-${uuid}`, suggestions: { fls, dxa },
});
const accepted = (c: string, suggestion: string, ts: string): Feedback => ({ card: c, outcome: 'accepted', acceptedSuggestions: [{ id: suggestion }], outcomeTimestamp: ts });
const overridden = (c: string, code: string | undefined, ts: string, comment?: string): Feedback => ({
  card: c, outcome: 'overridden', outcomeTimestamp: ts,
  ...(code ? { overrideReason: { reason: { system: 'urn:reasons', code, display: `reason ${code}` }, ...(comment ? { userComment: comment } : {}) } } : {}),
});

/** Two replicas of one card log: two store objects on one file, or two pools on one database. */
const backends: { name: string; open: () => Promise<[CardLogStore, CardLogStore, () => Promise<void>] | undefined> }[] = [
  {
    name: 'embedded SQLite',
    open: async () => {
      const path = join(dir, `cards-${++dbCount}.sqlite`);
      const a = new CdsStore(path);
      const b = new CdsStore(path);
      return [a, b, async () => void (await a.close(), await b.close())];
    },
  },
  {
    name: 'PostgreSQL',
    open: async () => {
      if (!pg) return undefined;
      const url = await pg.createDatabase(`cardlog_${++dbCount}`);
      const pa = createPgPool(url);
      const pb = createPgPool(url);
      await Promise.all([migrate(pa), migrate(pb)]); // two replicas starting together
      return [new PostgresCardLog(pa, { ownsPool: true }), new PostgresCardLog(pb, { ownsPool: true }), async () => void (await pa.end(), await pb.end())];
    },
  },
];

const summaries = new Map<string, unknown>();

for (const backend of backends) {
  describe(`card log: ${backend.name}`, () => {
    let a: CardLogStore | undefined;
    let b: CardLogStore | undefined;
    let close: (() => Promise<void>) | undefined;
    before(async () => {
      const opened = await backend.open();
      if (opened) [a, b, close] = opened;
    });
    after(async () => close?.());

    it('cards and feedback from two replicas land in one log; a repeated entry is stored once', async (t) => {
      if (!a || !b) return t.skip('PostgreSQL is not installed');
      await a.check();
      await a.recordCard(card('c1', 'high'));
      await b.recordCard(card('c2', 'high'));
      await a.recordCard(card('c3', 'moderate'));
      await b.recordCard(card('c1', 'high')); // the same card twice: one row
      const ts = '2026-01-02T03:04:05Z';
      assert.equal(await a.recordFeedback('fracture-risk-order-select', 'ehr', [accepted('c1', 'c1-fls', ts), overridden('c2', 'already-on-treatment', ts, 'free text that must not be stored')]), 2);
      // The EHR retries the same batch on the other replica: nothing new.
      assert.equal(await b.recordFeedback('fracture-risk-order-select', 'ehr', [accepted('c1', 'c1-fls', ts), overridden('c2', 'already-on-treatment', ts, 'free text that must not be stored')]), 0);
      assert.equal(await b.recordFeedback('fracture-risk-order-select', 'ehr', [
        overridden('c3', 'patient-declined', ts), overridden('c1', 'already-on-treatment', '2026-01-02T03:05:00Z'), accepted('c3', 'c3-dxa', ts), accepted('gone', 'x', ts), overridden('c2', undefined, '2026-01-02T03:06:00Z'),
      ]), 5);
      assert.equal(await a.recordFeedback('fracture-risk-order-select', 'ehr', []), 0);
      const [sa, sb] = [await a.summary(), await b.summary()];
      assert.deepEqual(sa, sb, 'both replicas read the same log');
      assert.equal(sa.cards, 3);
      assert.equal(sa.feedback, 7);
      assert.deepEqual(sa.byTier['high'], { cards: 2, accepted: 1, overridden: 2, acceptanceRate: 0.5, overrideRate: 1 });
      assert.deepEqual(sa.byTier['moderate'], { cards: 1, accepted: 1, overridden: 1, acceptanceRate: 1, overrideRate: 1 });
      assert.deepEqual(sa.byTier['unknown'], { cards: 1, accepted: 1, overridden: 0, acceptanceRate: null, overrideRate: null });
      assert.deepEqual(sa.overall, { cards: 3, accepted: 2, overridden: 3, acceptanceRate: 2 / 3, overrideRate: 1 });
      assert.deepEqual(sa.byReason.map((r) => [r.code, r.count, r.share]), [['already-on-treatment', 2, 0.5], ['patient-declined', 1, 0.25]]);
      assert.deepEqual(sa.acceptedSuggestions, { fls: 1, dxa: 1, other: 1 });
      assert.equal(JSON.stringify(sa).includes('free text'), false);
      assert.match(sa.notice, /Research use — trained on synthetic data/);
      summaries.set(backend.name, sa);
    });

    it('order-select cards and patient-view memory are seen by the other replica', async (t) => {
      if (!a || !b) return t.skip('PostgreSQL is not installed');
      const at = new Date('2026-03-01T10:00:00Z');
      await a.recordOrderCard('https://fhir.a', 'p1', 'Practitioner/1', 'assessment|k1', at);
      assert.equal(await b.orderCardShownSince('https://fhir.a', 'p1', 'Practitioner/1', 'assessment|k1', new Date(at.getTime() - 60_000)), true);
      assert.equal(await b.orderCardShownSince('https://fhir.a', 'p1', 'Practitioner/1', 'assessment|k1', new Date(at.getTime() + 1)), false, 'too long ago');
      assert.equal(await b.orderCardShownSince('https://fhir.a', 'p1', 'Practitioner/1', 'assessment|k2', new Date(0)), false, 'another risk');
      assert.equal(await b.orderCardShownSince('https://fhir.a', 'p1', 'Practitioner/2', 'assessment|k1', new Date(0)), false, 'another user');
      assert.equal(await b.orderCardShownSince('https://fhir.b', 'p1', 'Practitioner/1', 'assessment|k1', new Date(0)), false, 'another FHIR server');
      await b.recordOrderCard('https://fhir.a', 'p1', 'Practitioner/1', 'assessment|k2', new Date(at.getTime() + 1000));
      assert.equal(await a.orderCardShownSince('https://fhir.a', 'p1', 'Practitioner/1', 'assessment|k1', new Date(0)), false, 'replaced by the newer card');
      assert.equal(await a.orderCardShownSince('https://fhir.a', 'p1', 'Practitioner/1', 'assessment|k2', at), true);

      assert.equal(await b.lastSpoken('fracture-risk-patient-view', 'https://fhir.a', 'p1'), undefined);
      await a.recordSpoken('fracture-risk-patient-view', 'https://fhir.a', 'p1', { assessmentKey: 'k1', tier: 'moderate', mode: 'clinical-only' });
      await b.recordSpoken('fracture-risk-patient-view', 'https://fhir.a', 'p1', { assessmentKey: 'k2', tier: 'high', mode: 'image-and-clinical' });
      assert.deepEqual(await a.lastSpoken('fracture-risk-patient-view', 'https://fhir.a', 'p1'), { assessmentKey: 'k2', tier: 'high', mode: 'image-and-clinical' });
      assert.equal(await a.lastSpoken('fracture-risk-patient-view', 'https://fhir.b', 'p1'), undefined);
    });

    it('two replicas writing at the same time lose nothing', async (t) => {
      if (!a || !b) return t.skip('PostgreSQL is not installed');
      const before = await a.summary();
      const n = 100;
      const ts = '2026-04-01T00:00:00Z';
      await Promise.all(Array.from({ length: n }, async (_, i) => {
        const s = i % 2 ? a! : b!;
        const other = i % 2 ? b! : a!;
        await s.recordCard(card(`load-${i}`, 'high'));
        // Each feedback is sent to both replicas at once (an EHR retrying on a time-out): stored once.
        await Promise.all([s.recordFeedback('svc', 'ehr', [accepted(`load-${i}`, `load-${i}-fls`, ts)]), other.recordFeedback('svc', 'ehr', [accepted(`load-${i}`, `load-${i}-fls`, ts)])]);
      }));
      const after = await b.summary();
      assert.equal(after.cards - before.cards, n);
      assert.equal(after.feedback - before.feedback, n);
      assert.equal(after.acceptedSuggestions.fls - before.acceptedSuggestions.fls, n);
    });
  });
}

describe('card log: both backends', () => {
  it('answer the same summary for the same calls', (t) => {
    if (summaries.size < 2) return t.skip('PostgreSQL is not installed');
    assert.deepEqual(summaries.get('PostgreSQL'), summaries.get('embedded SQLite'));
  });

  it('a PostgreSQL that cannot be reached is a StateUnavailableError, not a silent local write', async (t) => {
    if (!pg) return t.skip('PostgreSQL is not installed');
    const pool = createPgPool('postgres://frcds@127.0.0.1:1/none', { connectionTimeoutMs: 500 });
    const log = new PostgresCardLog(pool, { ownsPool: true });
    try {
      await assert.rejects(log.recordCard(card('x', 'high')), StateUnavailableError);
      await assert.rejects(log.summary(), (err: unknown) => err instanceof StateUnavailableError && err.backend === 'postgres');
      await assert.rejects(log.check(), StateUnavailableError);
    } finally {
      await log.close();
    }
  });
});

for (const backend of backends) {
  describe(`card log retention: ${backend.name}`, () => {
    it('prune deletes cards, feedback, patient-view memory and order cards older than the cut-off, and nothing newer', async (t) => {
      const opened = await backend.open();
      if (!opened) return t.skip('PostgreSQL is not installed');
      const [a, b, close] = opened;
      try {
        const old = new Date(Date.now() - 10 * 24 * 3600 * 1000);
        await a.recordCard(card('old', 'high'));
        await a.recordFeedback('svc', 'ehr', [overridden('old', 'r1', '2026-01-01T00:00:00Z')]);
        await a.recordSpoken('svc', 'src', 'p-old', { assessmentKey: 'k-old', tier: 'high', mode: 'image-and-clinical' });
        await a.recordOrderCard('src', 'p-old', 'u1', 'risk-old', old);
        await new Promise((r) => setTimeout(r, 50));
        const cut = new Date();
        await new Promise((r) => setTimeout(r, 50));
        await b.recordCard(card('new', 'low'));
        await b.recordFeedback('svc', 'ehr', [overridden('new', 'r1', '2026-01-02T00:00:00Z')]);
        await b.recordOrderCard('src', 'p-new', 'u1', 'risk-new');
        // The order card of `old` was written 10 days ago, the rest of `old` just before the cut-off.
        assert.equal(await b.prune(cut), 4, 'one card, one feedback entry, one patient-view memory, one order card');
        const s = await a.summary();
        assert.equal(s.cards, 1);
        assert.equal(s.feedback, 1);
        assert.equal(await a.lastSpoken('svc', 'src', 'p-old'), undefined);
        assert.equal(await a.orderCardShownSince('src', 'p-old', 'u1', 'risk-old', new Date(0)), false);
        assert.equal(await a.orderCardShownSince('src', 'p-new', 'u1', 'risk-new', new Date(0)), true);
        assert.equal(await a.prune(cut), 0, 'a second sweep (another replica) deletes nothing more');
      } finally {
        await close();
      }
    });
  });
}

it('a card log built with a retention sweeps by itself, periodically, and reports what it deleted', async () => {
  const swept: number[] = [];
  // 300 ms of retention, a sweep every 100 ms.
  const store = new CdsStore(join(dir, 'retention.sqlite'), { retention: { days: 300 / 86_400_000, firstAfterMs: 10, everyMs: 100, onSwept: (n) => swept.push(n) } });
  try {
    await store.recordCard(card('r1', 'high'));
    assert.equal((await store.summary()).cards, 1);
    await new Promise((r) => setTimeout(r, 700));
    assert.equal((await store.summary()).cards, 0, 'the card older than the retention was swept');
    assert.ok(swept.length >= 3, `swept ${swept.length} times`);
    assert.equal(swept.reduce((x, y) => x + y, 0), 1);
  } finally {
    await store.close();
  }
});

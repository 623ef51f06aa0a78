/**
 * Cost of the card log and the FLS audit fallback on each backend (embedded SQLite, PostgreSQL), as a hook call and
 * a forwarder pay it:
 * - the card-log work of one order-select card (record the order card, record the card) and of one patient-view
 *   card (read and record what it said, record the card), one client at a time and 20 at once;
 * - one feedback call (two entries, one statement / one transaction);
 * - the summary over the log the run wrote;
 * - forwarding kept audit events with a no-op send: events per second with one forwarder and with two racing.
 * Starts its own PostgreSQL (test/support/postgres.ts).
 *
 *   npx tsx bench/cardlog.ts [--n 2000]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { AuditEvent } from '@medplum/fhirtypes';
import { CdsStore } from '../server/cds/store.ts';
import { buildAuditEvent } from '../server/fls/audit.ts';
import { PostgresAuditFallback } from '../server/state/audit-postgres.ts';
import { SqliteAuditFallback } from '../server/state/audit-sqlite.ts';
import { PostgresCardLog } from '../server/state/cardlog-postgres.ts';
import { createPgPool, migrate } from '../server/state/postgres.ts';
import type { AuditFallbackStore, CardLogStore } from '../server/state/types.ts';
import { startPostgres } from '../test/support/postgres.ts';

const { values: args } = parseArgs({ options: { n: { type: 'string', default: '2000' } } });
const N = Number(args.n);
const pct = (xs: number[], p: number): number => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(p * xs.length))]!;

async function measure(label: string, op: (i: number) => Promise<unknown>, concurrency: number, n = N): Promise<void> {
  const times: number[] = [];
  let next = 0;
  const t0 = performance.now();
  await Promise.all(Array.from({ length: concurrency }, async () => {
    for (let i = next++; i < n; i = next++) {
      const s = performance.now();
      await op(i);
      times.push(performance.now() - s);
    }
  }));
  const total = performance.now() - t0;
  console.log(`${label.padEnd(36)} c=${String(concurrency).padEnd(3)} p50 ${pct(times, 0.5).toFixed(2).padStart(6)} ms  p95 ${pct(times, 0.95).toFixed(2).padStart(6)} ms  ${Math.round((n / total) * 1000)} /s`);
}

async function cardLog(name: string, log: CardLogStore): Promise<void> {
  console.log(`\ncard log: ${name}`);
  const tag = Math.random().toString(36).slice(2);
  for (const c of [1, 20]) {
    await measure('order-select card (2 writes)', async (i) => {
      await log.recordOrderCard('https://fhir', `p${i}`, 'Practitioner/1', `assessment|${tag}${i}`);
      await log.recordCard({ uuid: `os-${tag}-${c}-${i}`, serviceId: 'fracture-risk-order-select', patientId: `p${i}`, tier: 'high', mode: 'image-and-clinical', kind: 'assessment', assessmentId: `a${i}`, suggestions: { fls: `f${i}`, dxa: `d${i}` } });
    }, c);
    await measure('patient-view card (1 read, 2 writes)', async (i) => {
      await log.lastSpoken('fracture-risk-patient-view', 'https://fhir', `p${i}`);
      await log.recordSpoken('fracture-risk-patient-view', 'https://fhir', `p${i}`, { assessmentKey: `${tag}${i}`, tier: 'high', mode: 'image-and-clinical' });
      await log.recordCard({ uuid: `pv-${tag}-${c}-${i}`, serviceId: 'fracture-risk-patient-view', patientId: `p${i}`, tier: 'high', mode: 'image-and-clinical', kind: 'assessment', assessmentId: `a${i}`, suggestions: {} });
    }, c);
    await measure('feedback (2 entries)', (i) => log.recordFeedback('fracture-risk-order-select', 'ehr', [
      { card: `os-${tag}-${c}-${i}`, outcome: 'accepted', acceptedSuggestions: [{ id: `f${i}` }], outcomeTimestamp: '2026-01-01T00:00:00Z' },
      { card: `os-${tag}-${c}-${i}`, outcome: 'overridden', overrideReason: { reason: { system: 'urn:r', code: 'declined' } }, outcomeTimestamp: '2026-01-01T00:00:01Z' },
    ]), c);
  }
  const s = await log.summary();
  await measure(`summary (${s.cards} cards, ${s.feedback} feedback)`, () => log.summary(), 1, 20);
}

async function forwarding(name: string, open: () => AuditFallbackStore): Promise<void> {
  console.log(`\naudit fallback: ${name}`);
  const events = Math.min(N, 1000);
  const event: AuditEvent = buildAuditEvent({ action: 'note', actor: { subject: 'u' }, outcome: '0', taskId: 't', patientIds: ['p'] }, new Date());
  for (const forwarders of [1, 2]) {
    const stores = Array.from({ length: forwarders }, open);
    await measure('keep', () => stores[0]!.keep({ recorded: event.recorded, action: 'note', event, error: 'HTTP 503' }), 1, events);
    const t0 = performance.now();
    const sent = (await Promise.all(stores.map((s) => s.forward(async () => undefined, () => new Date())))).reduce((a, b) => a + b, 0);
    const ms = performance.now() - t0;
    console.log(`${`forward, ${forwarders} forwarder(s)`.padEnd(36)}       ${sent} events in ${Math.round(ms)} ms: ${Math.round((sent / ms) * 1000)} /s`);
    for (const s of stores) await s.close();
  }
}

const dir = mkdtempSync(join(tmpdir(), 'frcds-bench-cardlog-'));
const pg = await startPostgres();
try {
  console.log(`load average before: ${loadavg().map((x) => x.toFixed(2)).join(' ')} (the machine may be shared)`);
  const sqlite = new CdsStore(join(dir, 'cards.sqlite'));
  await cardLog('embedded SQLite', sqlite);
  await sqlite.close();
  const url = await pg.createDatabase('bench_cardlog');
  const pool = createPgPool(url, { max: 10 });
  await migrate(pool);
  await cardLog('PostgreSQL (loopback, pool of 10)', new PostgresCardLog(pool));
  await forwarding('embedded SQLite', () => new SqliteAuditFallback(join(dir, 'audit.sqlite')));
  await forwarding('PostgreSQL (loopback)', () => new PostgresAuditFallback(pool));
  await pool.end();
  console.log(`\nload average after: ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
} finally {
  await pg.stop();
  rmSync(dir, { recursive: true, force: true });
}

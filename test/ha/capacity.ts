/**
 * Per-request costs for the README's capacity note, measured on the HA stack (test/ha/stack.ts) with the demo cohort
 * and the real model: CPU time of one replica per operation (user + system time of the whole process, its imaging
 * and inference threads included, from /proc — so other work on the machine does not count, only contention), and
 * the bytes each record takes in PostgreSQL and Redis.
 *
 *   node --import tsx test/ha/capacity.ts [--calls 200] [--concurrency 4]
 *
 * Operations go straight to replica A (not through the proxy), a few at a time, each kind after the previous one's
 * background work has settled. Prints a table; the README's "Capacity" section is computed from it.
 */
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { execFileSync } from 'node:child_process';
import type { Resource } from '@medplum/fhirtypes';
import { Redis } from 'ioredis';
import pg from 'pg';
import { PREFETCH, SERVICE_IDS } from '../../server/cds/services.ts';
import { buildNotification } from '../../server/events/notification.ts';
import { TOPIC_URL } from '../../server/events/topic.ts';
import { QUEUE_NAME } from '../../server/jobs/redis-queue.ts';
import { startHaStack } from './stack.ts';

const { values: args } = parseArgs({ options: { calls: { type: 'string', default: '200' }, concurrency: { type: 'string', default: '4' } } });
const CALLS = Number(args.calls);
const CONCURRENCY = Number(args.concurrency);
const TICKS = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;

/** CPU seconds (user + system, all threads) used so far by process `pid`. */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // After "(comm) ": state is field 3 of stat(5), utime 14 and stime 15 → indexes 11 and 12 here.
  return (Number(fields[11]) + Number(fields[12])) / TICKS;
}

async function pool<T>(items: readonly T[], n: number, fn: (item: T, i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: n }, async () => {
    for (let i = next++; i < items.length; i = next++) await fn(items[i]!, i);
  }));
}

/** Waits until the process has used (almost) no CPU for a second: the previous kind's background work is done. */
async function settle(pid: number): Promise<void> {
  for (let i = 0; i < 60; i++) {
    const c0 = cpuSeconds(pid);
    await new Promise((r) => setTimeout(r, 1000));
    if (cpuSeconds(pid) - c0 < 0.03) return;
  }
}

async function main(): Promise<void> {
  const load0 = loadavg()[0]!;
  const stack = await startHaStack({ cohort: 'demo' });
  const db = new pg.Pool({ connectionString: stack.databaseUrl, max: 2 });
  const redis = new Redis(stack.redis.url);
  const rows: { kind: string; n: number; cpuMs: number; wallMs: number }[] = [];
  try {
    const a = stack.replicas[0]!;
    const pid = a.handle.pid;
    const sys = await stack.systemToken();
    const bundle = (await (await fetch(`${stack.hospital.fhirBase}/Patient?_count=200&_elements=id`, { headers: { Authorization: `Bearer ${sys}` } })).json()) as { entry?: { resource: { id: string } }[] };
    const patients = (bundle.entry ?? []).map((e) => e.resource.id).sort();
    const prefetch = new Map<string, Record<string, Resource | null>>();
    for (const p of patients) {
      const out: Record<string, Resource | null> = {};
      for (const [k, t] of Object.entries(PREFETCH)) {
        const b = (await (await fetch(`${stack.hospital.fhirBase}/${t.replaceAll('{{context.patientId}}', p)}`, { headers: { Authorization: `Bearer ${sys}` } })).json()) as Resource & { entry?: unknown[] };
        out[k] = b.resourceType === 'Bundle' && !(b.entry ?? []).length ? null : b;
      }
      prefetch.set(p, out);
    }

    const measure = async <T>(kind: string, items: readonly T[], fn: (item: T, i: number) => Promise<void>): Promise<void> => {
      await settle(pid);
      const c0 = cpuSeconds(pid);
      const t0 = performance.now();
      await pool(items, CONCURRENCY, fn);
      await settle(pid); // background work the operation started (e.g. a job) belongs to it
      rows.push({ kind, n: items.length, cpuMs: ((cpuSeconds(pid) - c0) * 1000) / items.length, wallMs: (performance.now() - t0) / items.length });
    };
    const ok = async (res: Response, what: string): Promise<string> => {
      const text = await res.text();
      if (!res.ok) throw new Error(`${what}: ${res.status} ${text.slice(0, 200)}`);
      return text;
    };
    const json = { Authorization: `Bearer ${sys}`, 'Content-Type': 'application/json' };

    // 1. Cold assessments (FHIR chart + DICOMweb fetch, decode, inference), one per demo patient, one at a time so each
    // one's CPU time can be told apart: with a radiograph, and clinical-only (no eligible study).
    const bodies: number[] = [];
    const links: string[] = [];
    const cold = { image: [] as number[], clinical: [] as number[], imageWall: [] as number[], clinicalWall: [] as number[] };
    await settle(pid);
    for (const p of patients) {
      const c0 = cpuSeconds(pid);
      const t0 = performance.now();
      const text = await ok(await fetch(`${a.url}/api/assessments`, { method: 'POST', headers: json, body: JSON.stringify({ patient: p }) }), `assess ${p}`);
      const wall = performance.now() - t0;
      const cpu = (cpuSeconds(pid) - c0) * 1000;
      bodies.push(text.length);
      const l = (JSON.parse(text) as { links: { heatmap: string; display: string } | null }).links;
      if (l) links.push(l.heatmap, l.display);
      (l ? cold.image : cold.clinical).push(cpu);
      (l ? cold.imageWall : cold.clinicalWall).push(wall);
    }
    const mean = (xs: number[]): number => xs.reduce((x, y) => x + y, 0) / Math.max(1, xs.length);
    rows.push({ kind: 'assessment, cold, with radiograph (API, one at a time)', n: cold.image.length, cpuMs: mean(cold.image), wallMs: mean(cold.imageWall) });
    rows.push({ kind: 'assessment, cold, clinical-only (API, one at a time)', n: cold.clinical.length, cpuMs: mean(cold.clinical), wallMs: mean(cold.clinicalWall) });
    // 2. Heatmap + display PNGs, made on first request.
    const pngBytes: number[] = [];
    await measure('heatmap or display PNG, first request', links, async (l) => {
      const res = await fetch(`${a.url}${l}`, { headers: json });
      if (!res.ok) throw new Error(`png: ${res.status}`);
      pngBytes.push((await res.arrayBuffer()).byteLength);
    });
    const hookItems = Array.from({ length: CALLS }, (_, i) => patients[i % patients.length]!);
    const hook = (hookName: 'patient-view' | 'order-select') => async (p: string): Promise<void> => {
      const id = hookName === 'patient-view' ? SERVICE_IDS.patientView : SERVICE_IDS.orderSelect;
      const context: Record<string, unknown> = { userId: 'Practitioner/demo-clinician', patientId: p };
      if (hookName === 'order-select') {
        const order = { resourceType: 'ServiceRequest', id: 'cap-xr', status: 'draft', intent: 'order', subject: { reference: `Patient/${p}` }, code: { coding: [{ system: 'http://loinc.org', code: '26401-0' }] } };
        context['draftOrders'] = { resourceType: 'Bundle', type: 'collection', entry: [{ resource: order }] };
        context['selections'] = ['ServiceRequest/cap-xr'];
      }
      const jwt = await stack.ehrJwt(`${stack.proxy.url}/cds-services/${id}`);
      await ok(await fetch(`${a.url}/cds-services/${id}`, { method: 'POST', headers: { Authorization: `Bearer ${jwt}`, 'Content-Type': 'application/json' }, body: JSON.stringify({ hook: hookName, hookInstance: crypto.randomUUID(), context, prefetch: prefetch.get(p) }) }), hookName);
    };
    // 3. Hook calls on cached assessments (the usual case: the report event assessed the study before the order).
    await measure('patient-view hook, cached', hookItems, hook('patient-view'));
    await measure('order-select hook, cached', hookItems, hook('order-select'));
    // 4. Feedback, report events (receive + queue + a job that finds no report), FLS worklist views.
    await measure('card feedback', hookItems, async (_p, i) => {
      const id = SERVICE_IDS.patientView;
      const jwt = await stack.ehrJwt(`${stack.proxy.url}/cds-services/${id}/feedback`);
      await ok(await fetch(`${a.url}/cds-services/${id}/feedback`, { method: 'POST', headers: { Authorization: `Bearer ${jwt}`, 'Content-Type': 'application/json' }, body: JSON.stringify({ feedback: [{ card: `cap-card-${i}`, outcome: 'overridden', outcomeTimestamp: new Date(Date.UTC(2026, 0, 1) + i).toISOString() }] }) }), 'feedback');
    });
    await measure('report event (receive, queue, job without a study)', hookItems, async (_p, i) => {
      const b = buildNotification({ subscriptionUrl: `${stack.hospital.fhirBase}/Subscription/cap`, topic: TOPIC_URL, type: 'event-notification', status: 'active', eventsSinceStart: i, events: [{ number: i, timestamp: new Date().toISOString(), focusUrl: `${stack.hospital.fhirBase}/DiagnosticReport/cap-${i}/_history/1` }] });
      await ok(await fetch(`${a.url}/api/events/notifications`, { method: 'POST', headers: { 'X-Subscription-Secret': stack.eventsSecret, 'Content-Type': 'application/fhir+json' }, body: JSON.stringify(b) }), 'event');
    });
    const coordinator = await stack.coordinatorToken();
    await measure('FLS worklist view (+ audit event)', hookItems.slice(0, Math.min(CALLS, 100)), async () => {
      await ok(await fetch(`${a.url}/api/fls/worklist`, { headers: { Authorization: `Bearer ${coordinator}` } }), 'worklist');
    });

    // Storage per record.
    const tables = ['assessment_result', 'replay_claim', 'cds_card', 'cds_feedback', 'cds_spoken', 'cds_order_card', 'fls_audit_fallback'];
    const storage: string[] = [];
    for (const t of tables) {
      try {
        const r = await db.query<{ n: string; bytes: string }>(`SELECT count(*) AS n, pg_total_relation_size('${t}') AS bytes FROM ${t}`);
        const n = Number(r.rows[0]!.n);
        storage.push(`PostgreSQL ${t}: ${n} rows, ${(Number(r.rows[0]!.bytes) / 1024).toFixed(0)} KiB with indexes${n ? `, ${(Number(r.rows[0]!.bytes) / n / 1024).toFixed(2)} KiB per row` : ''}`);
      } catch (err) {
        storage.push(`PostgreSQL ${t}: ${(err as Error).message}`);
      }
    }
    const sample = async (pattern: string): Promise<string> => {
      const keys: string[] = [];
      let cursor = '0';
      do {
        const [c, ks] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
        cursor = c;
        keys.push(...ks);
      } while (cursor !== '0' && keys.length < 2000);
      if (keys.length === 0) return `Redis ${pattern}: no keys`;
      let total = 0;
      for (const k of keys.slice(0, 200)) total += Number(await redis.memory('USAGE', k)) || 0;
      return `Redis ${pattern}: ${keys.length} keys, ${(total / Math.min(keys.length, 200)).toFixed(0)} bytes per key (MEMORY USAGE)`;
    };
    storage.push(await sample('frcds:jti:*'), await sample('frcds:flight:*'), await sample(`bull:${QUEUE_NAME}:cap-*`), await sample(`bull:${QUEUE_NAME}:DiagnosticReport*`));
    // Completed-report bookkeeping (one field per report version; nothing trims it).
    const doneFields = await redis.hlen('frcds:jobs:done');
    const doneBytes = Number(await redis.memory('USAGE', 'frcds:jobs:done')) || 0;
    storage.push(`Redis frcds:jobs:done: ${doneFields} fields, ${doneFields ? (doneBytes / doneFields).toFixed(0) : 0} bytes per field (MEMORY USAGE)`);
    const info = await redis.info('memory');
    storage.push(`Redis used_memory: ${(Number(/used_memory:(\d+)/.exec(info)?.[1] ?? 0) / 1048576).toFixed(1)} MiB in all`);

    const rss = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
    storage.push(`replica RSS after the run: ${(Number(rss ?? 0) / 1024).toFixed(0)} MiB`);
    const median = (xs: number[]): number => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)] ?? 0;
    console.log(`Capacity figures — one replica (pid CPU time from /proc), ${CONCURRENCY} requests at a time; load average ${load0.toFixed(1)} before, ${loadavg()[0]!.toFixed(1)} after`);
    for (const r of rows) console.log(`  ${r.kind.padEnd(55)} n=${String(r.n).padStart(4)}  CPU ${r.cpuMs.toFixed(1).padStart(7)} ms/op  wall ${r.wallMs.toFixed(1).padStart(7)} ms/op`);
    console.log(`  assessment body (JSON) median ${(median(bodies) / 1024).toFixed(1)} KiB; PNG median ${(median(pngBytes) / 1024).toFixed(1)} KiB (${pngBytes.length} PNGs)`);
    for (const s of storage) console.log(`  ${s}`);
  } finally {
    redis.disconnect();
    await db.end();
    await stack.close();
  }
}

await main();

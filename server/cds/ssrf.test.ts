/**
 * The `fhirServerAllowlist` rules (ssrf.ts, clients.ts) and how {@link HookFhirSource} applies them: matching,
 * address rules per kind of entry, refusals (never a request, one fixed error), redirects, and the concurrency caps —
 * measured on real loopback HTTP servers that count what reaches them. The whole hook path is covered by
 * test/cds/ssrf.test.ts.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { after, before, describe, test } from 'node:test';
import type { HostLookup } from '../fhir/outbound.ts';
import { Semaphore } from '../fhir/outbound.ts';
import { CdsClientsError, parseCdsClients } from './clients.ts';
import { FHIR_SERVER_REFUSED_TEXT, FhirServerRefusedError, HookFhirSource, PREFETCH_SOURCE, PrefetchUnavailableError } from './fhir-source.ts';
import { fhirServerForLog, fhirServerRule, FhirServerRuleError, matchFhirServer, normaliseFhirBase, type FhirServerRefusal } from './ssrf.ts';

describe('normaliseFhirBase', () => {
  const same: [string, string][] = [
    ['https://FHIR.Example.org/R4', 'https://fhir.example.org/R4'],
    ['HTTPS://fhir.example.org:443/r4/', 'https://fhir.example.org/r4'],
    ['http://fhir.example.org:80/r4', 'http://fhir.example.org/r4'],
    ['http://127.0.0.1:8080/sandbox/fhir/', 'http://127.0.0.1:8080/sandbox/fhir'],
    ['http://0x7f.1:8080/fhir', 'http://127.0.0.1:8080/fhir'],
    ['http://[0:0:0:0:0:0:0:1]:8080/fhir', 'http://[::1]:8080/fhir'],
    ['https://fhir.example.org/', 'https://fhir.example.org'],
  ];
  for (const [input, out] of same) test(`${input} → ${out}`, () => assert.equal(normaliseFhirBase(input), out));
  test('only one trailing slash is dropped, and the path is otherwise exact', () => {
    assert.equal(normaliseFhirBase('https://fhir.example.org/r4//'), 'https://fhir.example.org/r4/');
    assert.notEqual(normaliseFhirBase('https://fhir.example.org/R4'), normaliseFhirBase('https://fhir.example.org/r4'));
  });
  for (const bad of ['ftp://fhir.example.org/r4', 'file:///etc/passwd', 'https://user:pw@fhir.example.org/r4', 'https://fhir.example.org/r4?x=1', 'https://fhir.example.org/r4?', 'https://fhir.example.org/r4#f', 'not a url', '']) {
    test(`unusable: ${JSON.stringify(bad)}`, () => assert.equal(normaliseFhirBase(bad), undefined));
  }
});

describe('fhirServerRule and matchFhirServer', () => {
  test('the address rule follows how the entry names its host', () => {
    const ip = fhirServerRule('http://10.1.2.3:8080/fhir', false);
    assert.equal(ip.hostKind, 'ip');
    assert.equal(ip.policy.exactly, '10.1.2.3');
    assert.deepEqual([...ip.policy.allow], []);
    const v6 = fhirServerRule('http://[fd00::5]/fhir', false);
    assert.equal(v6.hostname, 'fd00::5');
    const local = fhirServerRule('http://localhost:8080/sandbox/fhir', false);
    assert.equal(local.hostKind, 'localhost');
    assert.deepEqual([...local.policy.allow], ['loopback']);
    const name = fhirServerRule('https://fhir.example.org/r4', false);
    assert.equal(name.hostKind, 'name');
    assert.deepEqual([...name.policy.allow], ['public']);
    assert.deepEqual([...fhirServerRule('https://fhir.hospital.example/r4', true).policy.allow].sort(), ['private', 'public']);
  });
  test('unspecified addresses and unusable URLs are configuration errors', () => {
    for (const bad of ['http://0.0.0.0:8080/fhir', 'http://[::]/fhir', 'http://0:8080/fhir', 'https://fhir.example.org/r4?tenant=a', 'fhir.example.org/r4']) {
      assert.throws(() => fhirServerRule(bad, false), FhirServerRuleError, bad);
    }
  });
  test('exact base match after normalising; anything else is not on the list', () => {
    const rules = [fhirServerRule('https://fhir.example.org/r4', false), fhirServerRule('http://127.0.0.1:8080/sandbox/fhir', false)];
    for (const ok of ['https://fhir.example.org/r4', 'https://FHIR.example.org/r4/', 'https://fhir.example.org:443/r4', 'HTTP://127.0.0.1:8080/sandbox/fhir/']) {
      assert.ok(matchFhirServer(rules, ok), ok);
    }
    for (const no of [
      'https://fhir.example.org/r4/Patient', 'https://fhir.example.org/r', 'https://fhir.example.org', 'https://fhir.example.org:8443/r4',
      'http://fhir.example.org/r4', 'https://fhir.example.org.evil.test/r4', 'https://user@fhir.example.org/r4', 'https://fhir.example.org/r4?x',
      'http://127.0.0.1:8081/sandbox/fhir', 'http://localhost:8080/sandbox/fhir', 'http://169.254.169.254/latest/meta-data', 'https://fhir.example.org/r4//',
    ]) {
      assert.equal(matchFhirServer(rules, no), undefined, no);
    }
  });
  test('what is logged of a fhirServer: no user info, query or fragment, at most 200 characters', () => {
    assert.equal(fhirServerForLog('https://u:p@fhir.example.org:8443/r4?patient=x#y'), 'https://fhir.example.org:8443/r4');
    assert.equal(fhirServerForLog('nonsense'), 'not a URL');
    assert.equal(fhirServerForLog(`https://x.example/${'a'.repeat(400)}`).length, 201);
  });
});

describe('cds-clients.json fhirServerAllowlist', () => {
  const client = (extra: Record<string, unknown>) => ({ id: 'c', label: 'c', enabled: true, iss: 'https://ehr.example', jwksUrl: 'https://ehr.example/jwks', ...extra });
  test('{PUBLIC_BASE_URL} is expanded; absent means an empty list', () => {
    const [a, b] = parseCdsClients({ clients: [client({ fhirServerAllowlist: ['{PUBLIC_BASE_URL}/sandbox/fhir'] }), { ...client({}), id: 'd', iss: 'https://other.example' }] }, 'http://localhost:8080');
    assert.deepEqual(a!.fhirServerAllowlist.map((r) => [r.base, r.hostKind]), [['http://localhost:8080/sandbox/fhir', 'localhost']]);
    assert.deepEqual(b!.fhirServerAllowlist, []);
  });
  test('fhirServerPrivateNetwork widens names to private addresses', () => {
    const [c] = parseCdsClients({ clients: [client({ fhirServerAllowlist: ['https://fhir.hospital.example/r4'], fhirServerPrivateNetwork: true })] }, 'http://x');
    assert.ok(c!.fhirServerAllowlist[0]!.policy.allow.has('private'));
  });
  test('a bad entry stops start-up with the client and the entry named', () => {
    assert.throws(() => parseCdsClients({ clients: [client({ fhirServerAllowlist: ['http://0.0.0.0:8080/fhir'] })] }, 'http://x'), (e: unknown) => e instanceof CdsClientsError && /client "c" fhirServerAllowlist: http:\/\/0\.0\.0\.0:8080\/fhir/.test(e.message));
  });
});

/** A FHIR-ish loopback server: counts requests and the most in flight at once; `handler` may answer instead. */
async function countingFhir(o: { delayMs?: number; handler?: (url: string, res: import('node:http').ServerResponse) => boolean } = {}): Promise<{ base: string; port: number; requests: () => number; peak: () => number; close(): Promise<void> }> {
  let requests = 0;
  let active = 0;
  let peak = 0;
  const server: Server = createServer((req, res) => {
    requests++;
    active++;
    peak = Math.max(peak, active);
    res.on('close', () => active--);
    if (o.handler?.(req.url ?? '', res)) return;
    setTimeout(() => {
      const type = /^\/fhir\/([A-Za-z]+)/.exec(req.url ?? '')?.[1] ?? 'Bundle';
      const body = type === 'Patient' && /\/Patient\/[^/?]+/.test(req.url ?? '') ? { resourceType: 'Patient', id: 'p1' } : { resourceType: 'Bundle', type: 'searchset', entry: [] };
      res.writeHead(200, { 'Content-Type': 'application/fhir+json' }).end(JSON.stringify(body));
    }, o.delayMs ?? 0);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as { port: number }).port;
  return {
    base: `http://127.0.0.1:${port}/fhir`,
    port,
    requests: () => requests,
    peak: () => peak,
    close: () => new Promise((r) => {
      server.closeAllConnections();
      server.close(() => r());
    }),
  };
}

const TYPES = ['ImagingStudy', 'Observation', 'Condition', 'MedicationRequest', 'MedicationStatement', 'FamilyMemberHistory'] as const;
const noLookup: HostLookup = async (h) => assert.fail(`no DNS lookup expected (${h})`);

describe('HookFhirSource and the allowlist', () => {
  let fhir: Awaited<ReturnType<typeof countingFhir>>;
  before(async () => void (fhir = await countingFhir({ delayMs: 30 })));
  after(() => fhir.close());

  const source = (fhirServer: string, extra: Partial<ConstructorParameters<typeof HookFhirSource>[0]> = {}) => {
    const refusals: FhirServerRefusal[] = [];
    const s = new HookFhirSource({ patientId: 'p1', fhirServer, fhirServerAllowlist: [fhirServerRule(fhir.base, false)], timeoutMs: 5000, lookup: noLookup, onRefused: (r) => refusals.push(r), ...extra });
    return { s, refusals };
  };

  test('a listed server is read (under its listed form), never more than 4 requests of one hook at a time', async () => {
    const before = fhir.requests();
    const { s, refusals } = source(`${fhir.base.replace('http:', 'HTTP:')}/`);
    const results = await Promise.all([s.read('Patient', 'p1'), ...TYPES.map((t) => s.search(t, { patient: 'p1' }))]);
    assert.equal(results.length, 7);
    assert.equal(fhir.requests() - before, 7);
    assert.equal(fhir.peak(), 4, 'seven reads, at most four in flight');
    assert.deepEqual(refusals, []);
  });

  test('a client-wide limit caps all its hooks together', async () => {
    const slow = await countingFhir({ delayMs: 30 });
    try {
      const shared = new Semaphore(3);
      const mk = () => new HookFhirSource({ patientId: 'p1', fhirServer: slow.base, fhirServerAllowlist: [fhirServerRule(slow.base, false)], timeoutMs: 5000, clientLimit: shared });
      const a = mk();
      const b = mk();
      await Promise.all([...TYPES.map((t) => a.search(t, { patient: 'p1' })), ...TYPES.map((t) => b.search(t, { patient: 'p1' }))]);
      assert.equal(slow.requests(), 12);
      assert.equal(slow.peak(), 3);
    } finally {
      await slow.close();
    }
  });

  test('not on the list: no request, no lookup, one fixed error; optional data is reported unavailable', async () => {
    const before = fhir.requests();
    for (const url of [`http://127.0.0.1:${fhir.port + 1}/fhir`, `${fhir.base}/Patient`, 'http://169.254.169.254/latest', 'https://fhir.elsewhere.example/r4']) {
      const { s, refusals } = source(url);
      await assert.rejects(s.read('Patient', 'p1'), (e: unknown) => e instanceof FhirServerRefusedError && e.message === FHIR_SERVER_REFUSED_TEXT);
      await assert.rejects(s.search('Condition', { patient: 'p1' }), FhirServerRefusedError);
      assert.deepEqual(await s.search('FamilyMemberHistory', { patient: 'p1' }), []);
      assert.deepEqual(s.unavailable, ['family history']);
      assert.deepEqual(refusals, [{ reason: 'not-allowlisted' }], url);
    }
    assert.equal(fhir.requests(), before);
  });

  test('prefetch covers what is asked: a refused server changes nothing', async () => {
    const { s } = source('http://10.0.0.1/fhir', { prefetch: { patient: { resourceType: 'Patient', id: 'p1' }, conditions: null } });
    assert.equal((await s.read('Patient', 'p1')).id, 'p1');
    assert.deepEqual(await s.search('Condition', { patient: 'p1' }), []);
  });

  test('the source a call names: the listed base for a listed server, "prefetch only" for a refused one', () => {
    assert.equal(source(`${fhir.base}/`).s.baseUrl, fhir.base);
    assert.equal(source('http://10.0.0.1/fhir').s.baseUrl, PREFETCH_SOURCE);
    assert.equal(source(`http://127.0.0.1:${fhir.port + 1}/fhir`).s.baseUrl, PREFETCH_SOURCE, 'a refused URL cannot pick the memo of another source');
  });

  test('no fhirServer at all keeps the data-specific message', async () => {
    const s = new HookFhirSource({ patientId: 'p1', fhirServerAllowlist: [], timeoutMs: 1000 });
    await assert.rejects(s.search('Condition', { patient: 'p1' }), (e: unknown) => e instanceof PrefetchUnavailableError && !(e instanceof FhirServerRefusedError) && /conditions/.test(e.message));
  });

  test('a listed name that resolves to a refused address: refused before any connection', async () => {
    const before = fhir.requests();
    for (const [address, addressClass] of [['127.0.0.1', 'loopback'], ['10.0.0.1', 'private'], ['169.254.169.254', 'link-local'], ['0.0.0.0', 'unspecified']] as const) {
      const base = `http://fhir.rebind.example:${fhir.port}/fhir`;
      const lookups: string[] = [];
      const s = new HookFhirSource({
        patientId: 'p1', fhirServer: base, fhirServerAllowlist: [fhirServerRule(base, false)], timeoutMs: 5000,
        lookup: async (h) => (lookups.push(h), [{ address: '93.184.216.34', family: 4 }, { address, family: 4 }]),
        onRefused: (r) => assert.deepEqual(r, { reason: 'address', hostKind: 'name', addressClass }),
      });
      await Promise.all([assert.rejects(s.read('Patient', 'p1'), FhirServerRefusedError), assert.rejects(s.search('Observation', { patient: 'p1' }), FhirServerRefusedError)]);
      assert.deepEqual(lookups, ['fhir.rebind.example'], 'one lookup per hook');
    }
    assert.equal(fhir.requests(), before);
  });

  test('a listed server that redirects: not followed, the server counts as refused', async () => {
    const target = await countingFhir();
    const redirecting = await countingFhir({ handler: (_u, res) => (res.writeHead(302, { Location: `${target.base}/Patient/p1` }).end(), true) });
    try {
      const refusals: FhirServerRefusal[] = [];
      const s = new HookFhirSource({ patientId: 'p1', fhirServer: redirecting.base, fhirServerAllowlist: [fhirServerRule(redirecting.base, false)], timeoutMs: 5000, onRefused: (r) => refusals.push(r) });
      await assert.rejects(s.read('Patient', 'p1'), FhirServerRefusedError);
      await assert.rejects(s.search('Condition', { patient: 'p1' }), FhirServerRefusedError);
      assert.deepEqual(refusals, [{ reason: 'redirect', status: 302 }]);
      assert.equal(redirecting.requests(), 1, 'after the redirect the server is not asked again');
      // Seven reads at once: the four in flight get their 302, the three waiting for a place never go out.
      const t = new HookFhirSource({ patientId: 'p1', fhirServer: redirecting.base, fhirServerAllowlist: [fhirServerRule(redirecting.base, false)], timeoutMs: 5000 });
      const all = await Promise.allSettled([t.read('Patient', 'p1'), ...TYPES.map((ty) => t.search(ty, { patient: 'p1' }))]);
      assert.ok(redirecting.requests() >= 1 + 1 && redirecting.requests() <= 1 + 4, `${redirecting.requests() - 1} requests went out`);
      assert.ok(all.every((r) => r.status === 'rejected' ? r.reason instanceof FhirServerRefusedError : Array.isArray(r.value) && r.value.length === 0));
      assert.equal(target.requests(), 0);
    } finally {
      await target.close();
      await redirecting.close();
    }
  });
});

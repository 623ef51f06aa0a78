/**
 * What a `patient/` token reaches on the sandbox FHIR server, probed the way an app holding one could try to reach
 * further: search modifiers and chains on the compartment parameters (`_id:not`, `patient:not`, `:missing`,
 * `:identifier`, `_has`), `Bundle.total` and paging links, types outside the compartment, older versions, and writes
 * that name another patient in a compartment field (`performer`, `link`, …). One small server with two patients,
 * `pa` (the token's) and `pb`; the pure parts (confineSearch, confineAnswer, foreignPatientReferences) are tested
 * directly too.
 * @see https://hl7.org/fhir/R4/compartmentdefinition-patient.html
 */
import assert from 'node:assert/strict';
import type { Server } from 'node:http';
import { after, before, describe, test } from 'node:test';
import express from 'express';
import type { Bundle, Observation, OperationOutcome, Patient, Resource } from '@medplum/fhirtypes';
import { loadConfig } from '../../config.ts';
import { createFhirSandbox, type FhirSandbox } from '../fhir/router.ts';
import { silentLogger } from '../../../test/support/demo-stack.ts';
import { foreignPatientReferences, reachableTypeForPatientScope } from './compartment.ts';
import { confineAnswer, confineSearch } from './fhir-guard.ts';
import { createSmartSandbox, type SmartSandbox } from './server.ts';

const FHIR_JSON = 'application/fhir+json';
const APP = 'fracture-risk-app';

interface Sandbox {
  readonly base: string;
  readonly smart: SmartSandbox;
  readonly fhir: FhirSandbox;
  close(): Promise<void>;
}

const obs = (id: string, subject: string, extra: Partial<Observation> = {}): Observation => ({ resourceType: 'Observation', id, status: 'final', code: { text: 'weight' }, subject: { reference: `Patient/${subject}` }, ...extra });

async function startSandbox(): Promise<Sandbox> {
  const config = loadConfig({});
  const app = express();
  const server = await new Promise<Server>((resolve) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s));
  });
  const base = `http://127.0.0.1:${(server.address() as { port: number }).port}/fhir`;
  const smart = await createSmartSandbox({ publicBaseUrl: base.replace(/\/fhir$/, ''), fhirBaseUrl: base, clients: config.files.smartClients!, logger: silentLogger() });
  const fhir = createFhirSandbox({ baseUrl: base, page: config.files.sandbox.fhir, maxRequestBytes: config.files.sandbox.fhir.maxRequestBytes, logger: silentLogger() });
  const seed: Resource[] = [
    { resourceType: 'Patient', id: 'pa', gender: 'female', birthDate: '1950-01-01', identifier: [{ system: 'urn:mrn', value: 'MRN-A' }] } satisfies Patient,
    { resourceType: 'Patient', id: 'pb', gender: 'female', birthDate: '1948-03-14', identifier: [{ system: 'urn:mrn', value: 'MRN-B' }] } satisfies Patient,
    { resourceType: 'Practitioner', id: 'doc', name: [{ family: 'Doc' }] },
    { resourceType: 'Device', id: 'model', deviceName: [{ name: 'risk model', type: 'model-name' }] },
    { resourceType: 'Substance', id: 'calcium', code: { text: 'calcium carbonate' } },
    obs('oa1', 'pa', { performer: [{ reference: 'Practitioner/doc' }] }),
    obs('oa2', 'pa'),
    obs('oa3', 'pa'),
    obs('ob1', 'pb', { performer: [{ reference: 'Practitioner/doc' }] }),
    // In both records: about pb, performed by pa.
    obs('shared', 'pb', { performer: [{ reference: 'Patient/pa' }] }),
    // pb's at first; moved to pa below, so version 1 is pb's.
    obs('moved', 'pb'),
  ];
  for (const r of seed) {
    const res = await fhir.handle('PUT', `${r.resourceType}/${r.id}`, r);
    assert.ok(res.status === 200 || res.status === 201, JSON.stringify(res.body));
  }
  assert.equal((await fhir.handle('PUT', 'Observation/moved', obs('moved', 'pa'))).status, 200);
  app.use('/fhir', smart.guard(fhir, config.files.sandbox.fhir.maxRequestBytes));
  return {
    base,
    smart,
    fhir,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

interface Answer {
  status: number;
  body: Resource | undefined;
}

const issueText = (b: Resource | undefined): string => (b as OperationOutcome | undefined)?.issue?.[0]?.details?.text ?? '';
const ids = (b: Resource | undefined): string[] => ((b as Bundle | undefined)?.entry ?? []).map((e) => `${e.resource?.resourceType}/${e.resource?.id}`).sort();

describe('patient/ tokens on the sandbox FHIR server', () => {
  let sb: Sandbox;
  let reader = '';
  let writer = '';
  const call = async (path: string, token: string, init: RequestInit = {}): Promise<Answer> => {
    const res = await fetch(`${sb.base}/${path}`, { ...init, headers: { Accept: FHIR_JSON, 'Content-Type': FHIR_JSON, Authorization: `Bearer ${token}`, ...(init.headers ?? {}) } });
    const text = await res.text();
    return { status: res.status, body: text ? (JSON.parse(text) as Resource) : undefined };
  };
  const refused = (a: Answer, why: RegExp, what: string): void => {
    assert.equal(a.status, 403, `${what}: ${a.status} ${JSON.stringify(a.body)}`);
    assert.equal(a.body?.resourceType, 'OperationOutcome', what);
    assert.match(issueText(a.body), why, what);
    assert.equal('total' in (a.body ?? {}), false, `${what}: no total`);
  };

  before(async () => {
    sb = await startSandbox();
    reader = (await sb.smart.issueAccessToken({ clientId: APP, scopes: ['patient/*.rs'], patient: 'pa' })).token;
    writer = (await sb.smart.issueAccessToken({ clientId: APP, scopes: ['patient/*.cruds'], patient: 'pa' })).token;
  });
  after(async () => sb?.close());

  test("_id:not on Patient cannot confirm another patient's MRN and birth date through Bundle.total", async () => {
    for (const q of ['_id:not=pa&identifier=urn:mrn|MRN-B&birthdate=1948-03-14', '_id:not=pa&identifier=urn:mrn|MRN-NOBODY', '_id:not=pb']) {
      refused(await call(`Patient?${q}`, reader), /modifier :not on _id is not allowed with patient\/ scopes/, q);
    }
    // The same through POST _search with a form body.
    const posted = await call('Patient/_search', reader, { method: 'POST', headers: { 'Content-Type': 'application/x-www-form-urlencoded' }, body: '_id:not=pa&identifier=urn:mrn|MRN-B' });
    refused(posted, /modifier :not on _id/, 'POST _search');
    // Own identifiers still answer, confined to the token's patient.
    const own = await call('Patient?identifier=urn:mrn|MRN-B', reader);
    assert.equal(own.status, 200);
    assert.equal((own.body as Bundle).total, 0, "another patient's MRN matches nothing: the search is over Patient/pa only");
    assert.deepEqual(ids((await call('Patient?identifier=urn:mrn|MRN-A', reader)).body), ['Patient/pa']);
  });

  test('modifiers, chains and _has on compartment parameters are refused with a 403 OperationOutcome', async () => {
    const probes: [string, RegExp][] = [
      ['Observation?patient:not=Patient/pa', /modifier :not on patient/],
      ['Observation?subject:not=Patient/pa', /modifier :not on subject/],
      ['Observation?subject:missing=true', /modifier :missing on subject/],
      ['Observation?performer:missing=false', /modifier :missing on performer/],
      ['Observation?subject:identifier=urn:mrn|MRN-B', /modifier :identifier on subject/],
      ['Observation?subject.name=Smith', /chained search parameters/],
      ['Observation?subject:Patient.birthdate=1948-03-14', /chained search parameters/],
      ['Patient?_has:Observation:patient:code=weight', /_has is not allowed/],
      ['Practitioner?_has:Observation:performer:subject=Patient/pb', /_has is not allowed/],
      ['Observation?patient=Patient/pb', /names another patient/],
      ['Observation?subject=Patient/pa,Patient/pb', /names another patient/],
      ['Observation?_filter=subject eq Patient/pb', /_filter is not allowed/],
    ];
    for (const [path, why] of probes) refused(await call(path, reader), why, path);
  });

  test('a confined search: total counts the patient only, next links carry the confinement, includes of others are removed', async () => {
    const page = await call('Observation?_count=2', reader);
    assert.equal(page.status, 200);
    const b = page.body as Bundle<Observation>;
    assert.equal(b.total, 4, 'oa1, oa2, oa3, moved (and not ob1)');
    assert.ok((b.entry ?? []).every((e) => e.resource?.subject?.reference === 'Patient/pa'));
    const next = b.link?.find((l) => l.relation === 'next')?.url;
    assert.ok(next, JSON.stringify(b.link));
    assert.equal(new URL(next).searchParams.get('patient') ?? new URL(next).searchParams.get('subject'), 'Patient/pa');
    // A bare id is made the canonical Patient reference (a bare id would match a Group or Device of that id too).
    const bare = await call('Observation?subject=pa&_count=50', reader);
    assert.equal((bare.body as Bundle).total, 4);
    // performer=Patient/pa is a compartment parameter of Observation: the shared Observation is in pa's record.
    assert.deepEqual(ids((await call('Observation?performer=Patient/pa', reader)).body), ['Observation/shared']);
    // A shared type's search is not confined, but what it _revincludes is: pb's Observation by the same doctor goes.
    const inc = await call('Practitioner?_id=doc&_revinclude=Observation:performer', reader);
    assert.equal(inc.status, 200, JSON.stringify(inc.body));
    assert.deepEqual(ids(inc.body), ['Observation/oa1', 'Practitioner/doc']);
    assert.equal((inc.body as Bundle).total, 1);
  });

  test('types outside the compartment and the shared list are refused; the shared ones are readable', async () => {
    for (const path of ['Device/model', 'Device?_count=5', 'Substance/calcium', 'Substance?_count=5', 'ValueSet?_count=1', 'Binary?_count=1']) {
      refused(await call(path, reader), /outside the patient's record: patient\/ scopes reach the patient's compartment and, read-only, Practitioner/, path);
    }
    assert.equal((await call('Practitioner/doc', reader)).status, 200);
    assert.equal((await call('Practitioner?_count=5', reader)).status, 200);
    assert.equal((await call('Practitioner', writer, { method: 'POST', body: JSON.stringify({ resourceType: 'Practitioner' }) })).status, 403, 'shared types are read-only');
    // A user/ token still reaches them.
    const user = (await sb.smart.issueAccessToken({ clientId: APP, scopes: ['user/*.rs'], user: 'Practitioner/doc' })).token;
    assert.equal((await call('Device/model', user)).status, 200);
  });

  test("older versions and history: what was another patient's stays hidden", async () => {
    assert.equal((await call('Observation/moved', reader)).status, 200);
    const all = (await sb.fhir.handle('GET', 'Observation/moved/_history')).body as Bundle<Observation>;
    const old = all.entry?.find((e) => e.resource?.subject?.reference === 'Patient/pb')?.resource?.meta?.versionId;
    assert.ok(old, JSON.stringify(all));
    refused(await call(`Observation/moved/_history/${old}`, reader), /outside the token's patient compartment/, 'vread of the version about pb');
    const history = await call('Observation/moved/_history', reader);
    assert.equal(history.status, 200);
    const versions = ((history.body as Bundle<Observation>).entry ?? []).map((e) => e.resource?.subject?.reference);
    assert.deepEqual(versions, ['Patient/pa']);
    const total = (history.body as Bundle).total;
    assert.ok(total === undefined || total === 1, `history total ${total}`);
    refused(await call('Patient/pa/$everything', reader), /operations need user\/ or system\//, '$everything');
  });

  test('a write naming another patient in any compartment field is refused', async () => {
    const attempts: [string, Observation][] = [
      ['performer → Patient/pb', obs('x', 'pa', { performer: [{ reference: 'Patient/pb' }] })],
      ['performer → absolute URL of pb', obs('x', 'pa', { performer: [{ reference: 'https://elsewhere.example/fhir/Patient/pb' }] })],
      ['performer → pb by identifier', obs('x', 'pa', { performer: [{ type: 'Patient', identifier: { system: 'urn:mrn', value: 'MRN-B' } }] })],
      ['performer → urn:uuid', obs('x', 'pa', { performer: [{ reference: 'urn:uuid:6c3d7a3c-93b8-4a59-b3b5-5e1b0e1d2c11' }] })],
      ['subject pa, performer pa and pb', obs('x', 'pa', { performer: [{ reference: 'Patient/pa' }, { reference: 'Patient/pb' }] })],
    ];
    for (const [what, body] of attempts) {
      const { id: _id, ...created } = body;
      const r = await call('Observation', writer, { method: 'POST', body: JSON.stringify(created) });
      refused(r, /would enter another patient's record: performer → /, what);
    }
    assert.equal((await sb.fhir.handle('GET', 'Observation?performer=Patient/pb')).body.resourceType, 'Bundle');
    assert.equal(((await sb.fhir.handle('GET', 'Observation?performer=Patient/pb')).body as Bundle).total, 0, 'nothing was written');
    // Patient.link is Patient's compartment field.
    const linked: Patient = { resourceType: 'Patient', id: 'pa', gender: 'female', birthDate: '1950-01-01', link: [{ type: 'seealso', other: { reference: 'Patient/pb' } }] };
    refused(await call('Patient/pa', writer, { method: 'PUT', body: JSON.stringify(linked) }), /link → Patient\/pb/, 'Patient.link');
    // A resource that is also in pb's record cannot be changed or deleted with pa's token.
    refused(await call('Observation/shared', writer, { method: 'PUT', body: JSON.stringify(obs('shared', 'pa', { performer: [{ reference: 'Patient/pa' }] })) }), /also in another patient's record \(subject → Patient\/pb/, 'update of shared');
    refused(await call('Observation/shared', writer, { method: 'DELETE' }), /also in another patient's record/, 'delete of shared');
    // Conditional create would search beyond the compartment.
    const { id: _x, ...fresh } = obs('x', 'pa');
    refused(await call('Observation', writer, { method: 'POST', headers: { 'If-None-Exist': 'subject=Patient/pb' }, body: JSON.stringify(fresh) }), /conditional writes/, 'If-None-Exist');
    // The ordinary write still works: own patient, Practitioner performer, contained references.
    const ok = await call('Observation', writer, { method: 'POST', body: JSON.stringify({ ...fresh, performer: [{ reference: 'Practitioner/doc' }, { display: 'the lab' }] }) });
    assert.equal(ok.status, 201, JSON.stringify(ok.body));
  });
});

describe('confineSearch, confineAnswer, foreignPatientReferences', () => {
  test('confineSearch adds the compartment parameter, canonicalises values, refuses modifiers', () => {
    const run = (type: string, q: string): string => {
      const r = confineSearch(type, new URLSearchParams(q), 'pa');
      return 'refuse' in r ? `refused: ${r.refuse}` : r.query.toString();
    };
    assert.equal(run('Observation', 'code=x'), 'code=x&subject=Patient%2Fpa');
    assert.equal(run('Condition', 'code=x'), 'code=x&patient=Patient%2Fpa');
    assert.equal(run('Patient', 'gender=female'), 'gender=female&_id=pa');
    assert.equal(run('Patient', '_id=pa'), '_id=pa');
    assert.equal(run('Observation', 'subject:Patient=pa&_count=5'), 'subject=Patient%2Fpa&_count=5');
    // patient= is not an Observation compartment parameter: it is canonicalised, and subject is still added.
    assert.equal(run('Observation', 'patient=pa'), 'patient=Patient%2Fpa&subject=Patient%2Fpa');
    assert.equal(run('Practitioner', 'name=Doc'), 'name=Doc');
    assert.match(run('Patient', '_id:not=pa'), /^refused: the modifier :not on _id/);
    assert.match(run('Patient', '_id:exact=pa'), /^refused: the modifier :exact on _id/);
    assert.match(run('Observation', 'subject:Group=pa'), /^refused: the modifier :Group on subject/);
    assert.match(run('Observation', 'subject:above=Patient/pa'), /^refused/);
    assert.match(run('Practitioner', '_has:Observation:performer:subject=Patient/pb'), /^refused: _has/);
    // Idempotent: a confined query passes unchanged.
    for (const [type, q] of [['Observation', 'code=x'], ['Patient', 'gender=female'], ['Observation', 'performer=Patient/pa']] as const) {
      const once = run(type, q);
      assert.equal(run(type, once), once);
    }
  });

  test('confineAnswer recomputes or drops total, re-confines links, refuses an unreachable single resource', () => {
    const mine = obs('m', 'pa');
    const theirs = obs('t', 'pb');
    const bundle = (link: Bundle['link']): Bundle => ({
      resourceType: 'Bundle',
      type: 'searchset',
      total: 7,
      link,
      entry: [
        { resource: mine, search: { mode: 'match' } },
        { resource: theirs, search: { mode: 'match' } },
        { resource: { resourceType: 'Device', id: 'd' }, search: { mode: 'include' } },
        { resource: { resourceType: 'Practitioner', id: 'doc' }, search: { mode: 'include' } },
      ],
    });
    const base = 'http://h/fhir/Observation';
    const one = confineAnswer(bundle([{ relation: 'self', url: `${base}?subject=Patient%2Fpa` }]), 'pa') as Bundle;
    assert.equal(one.total, 1, 'the whole result on one page: the remaining matches');
    assert.deepEqual(one.entry?.map((e) => e.resource?.id), ['m', 'doc']);
    const paged = confineAnswer(bundle([{ relation: 'self', url: `${base}?subject=Patient%2Fpa` }, { relation: 'next', url: `${base}?subject=Patient%2Fpa&_offset=2` }]), 'pa') as Bundle;
    assert.equal(paged.total, undefined, 'spanning pages: dropped');
    const links = confineAnswer(bundle([{ relation: 'self', url: `${base}?code=x` }, { relation: 'next', url: `${base}?patient:not=Patient%2Fpa` }]), 'pa') as Bundle;
    assert.deepEqual(links.link, [{ relation: 'self', url: `${base}?code=x&subject=Patient%2Fpa` }]);
    const clean: Bundle = { resourceType: 'Bundle', type: 'searchset', total: 1, entry: [{ resource: mine, search: { mode: 'match' } }] };
    assert.equal(confineAnswer(clean, 'pa'), clean, 'unchanged answers pass as they are');
    assert.equal(confineAnswer(theirs, 'pa'), 'refuse');
    assert.equal(confineAnswer(mine, 'pa'), mine);
    assert.equal(confineAnswer({ resourceType: 'Device', id: 'd' }, 'pa'), 'refuse');
  });

  test('foreignPatientReferences reads every compartment field of the type', () => {
    const refs = (r: Resource): string[] => foreignPatientReferences(r, 'pa').map((f) => `${f.param}:${f.why}:${f.value}`);
    assert.deepEqual(refs(obs('o', 'pa', { performer: [{ reference: 'Patient/pa' }, { reference: 'Practitioner/doc' }, { reference: '#c1' }, { display: 'lab' }] })), []);
    assert.deepEqual(refs(obs('o', 'pa', { performer: [{ reference: 'Patient/pb/_history/3' }] })), ['performer:other-patient:Patient/pb/_history/3']);
    assert.deepEqual(refs({ resourceType: 'Condition', subject: { reference: 'Patient/pa' }, asserter: { reference: 'Patient/pb' } } as Resource), ['asserter:other-patient:Patient/pb']);
    assert.deepEqual(refs({ resourceType: 'Provenance', recorded: '2024-01-01T00:00:00Z', agent: [], target: [{ reference: 'Patient/pb' }, { reference: 'RiskAssessment/r' }] } as Resource), ['patient:other-patient:Patient/pb']);
    assert.deepEqual(refs({ resourceType: 'Condition', subject: { reference: 'pb' } } as Resource), ['patient:unverifiable:pb']);
    assert.deepEqual(refs({ resourceType: 'Condition', subject: { reference: 'Group/g', type: 'Patient' } } as Resource), ['patient:unverifiable:Group/g']);
    assert.equal(reachableTypeForPatientScope('Practitioner'), true);
    assert.equal(reachableTypeForPatientScope('Subscription'), false);
    assert.equal(reachableTypeForPatientScope('Device'), false);
  });
});

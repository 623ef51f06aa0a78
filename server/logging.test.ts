import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { describe, test } from 'node:test';
import { createLogger, hashPatientId, PatientIdHasher, REDACTED, redactIds, scrubPhi, setPatientIdSalt } from './logging.ts';

function capture(): { stream: Writable; lines: () => Record<string, unknown>[]; text: () => string } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      chunks.push(chunk.toString('utf8'));
      cb();
    },
  });
  const text = (): string => chunks.join('');
  return { stream, text, lines: () => text().trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>) };
}

const patient = {
  resourceType: 'Patient',
  id: 'pat-123',
  identifier: [{ system: 'urn:frcds:synthetic-mrn', value: 'MRN0042' }],
  name: [{ family: 'Synthetic-Abbott', given: ['Ada'] }],
  birthDate: '1941-02-11',
  telecom: [{ system: 'phone', value: '+44 1234 567890' }],
  text: { status: 'generated', div: '<div>Ada Synthetic-Abbott</div>' },
  gender: 'female',
};

describe('hashPatientId', () => {
  test('is stable for one salt, differs across salts, and treats "Patient/x" like "x"', () => {
    const a = new PatientIdHasher('salt-one-0123456789');
    const b = new PatientIdHasher('salt-two-0123456789');
    assert.equal(a.hash('pat-123'), a.hash('pat-123'));
    assert.notEqual(a.hash('pat-123'), b.hash('pat-123'));
    assert.notEqual(a.hash('pat-123'), a.hash('pat-124'));
    assert.match(a.hash('pat-123'), /^[0-9a-f]{16}$/);
    setPatientIdSalt('salt-one-0123456789');
    assert.equal(hashPatientId('Patient/pat-123'), hashPatientId('pat-123'));
    assert.equal(hashPatientId('pat-123'), a.hash('pat-123'));
  });
});

describe('scrubPhi', () => {
  test('redacts names, identifiers, contact details and narrative of a FHIR Patient at any depth', () => {
    const out = JSON.stringify(scrubPhi({ deep: { deeper: { resource: patient } } }));
    for (const phi of ['Synthetic-Abbott', 'Ada', 'MRN0042', '1941-02-11', '567890']) assert.ok(!out.includes(phi), `${phi} leaked: ${out}`);
    assert.ok(out.includes('"gender":"female"'), 'non-identifying fields are kept');
  });

  test('hashes patientId / patient / subject references, keeps counts keyed by resource type', () => {
    setPatientIdSalt('salt-one-0123456789');
    const out = scrubPhi({ patientId: 'pat-123', patient: { reference: 'Patient/pat-123' }, byType: { Patient: 7, Observation: 3 } }) as Record<string, unknown>;
    assert.equal(out['patientIdHash'], hashPatientId('pat-123'));
    assert.equal(out['patientHash'], hashPatientId('pat-123'));
    assert.equal(out['patientId'], undefined);
    assert.deepEqual(out['byType'], { Patient: 7, Observation: 3 });
  });

  test('redacts DICOM JSON patient attributes (keyword and tag spellings) and credentials', () => {
    const out = JSON.stringify(
      scrubPhi({
        PatientID: 'MRN0042',
        '00100010': { vr: 'PN', Value: [{ Alphabetic: 'Synthetic^Ada' }] },
        '00100020': { vr: 'LO', Value: ['MRN0042'] },
        headers: { authorization: 'Bearer eyJhbGciOi.secret', Cookie: 'sid=1' },
        access_token: 'tok-999',
        password: 'hunter2',
      }),
    );
    for (const phi of ['MRN0042', 'Synthetic^Ada', 'eyJhbGciOi', 'tok-999', 'hunter2', 'sid=1']) assert.ok(!out.includes(phi), `${phi} leaked: ${out}`);
    assert.ok(out.includes(REDACTED));
  });

  test('survives cycles-free deep objects and binary data without copying it', () => {
    let deep: Record<string, unknown> = { leaf: 1 };
    for (let i = 0; i < 20; i++) deep = { next: deep };
    assert.doesNotThrow(() => JSON.stringify(scrubPhi(deep)));
    assert.equal(scrubPhi({ pixels: new Uint16Array(10) }) && (scrubPhi({ pixels: new Uint16Array(10) }) as { pixels: string }).pixels, '[20 bytes]');
  });
});

describe('createLogger', () => {
  test('writes JSON lines with ISO time and level label, and no PHI', () => {
    const sink = capture();
    const logger = createLogger({ level: 'info', hashSalt: 'a-salt-of-sixteen+', destination: sink.stream });
    logger.info({ patientId: 'pat-123', resource: patient, req: { headers: { authorization: 'Bearer abc.def.ghi' } } }, 'loaded chart');
    logger.debug({ patientId: 'pat-123' }, 'not written at info');
    const lines = sink.lines();
    assert.equal(lines.length, 1);
    const line = lines[0]!;
    assert.equal(line['level'], 'info');
    assert.equal(line['msg'], 'loaded chart');
    assert.match(String(line['time']), /^\d{4}-\d\d-\d\dT/);
    assert.equal(line['patientIdHash'], new PatientIdHasher('a-salt-of-sixteen+').hash('pat-123'));
    for (const phi of ['pat-123', 'Synthetic-Abbott', 'MRN0042', 'abc.def.ghi']) assert.ok(!sink.text().includes(phi), `${phi} leaked`);
  });
});

describe('redactIds', () => {
  test('hashes the ids of FHIR references in free text (as hashPatientId does), keeps definitional ids, versions and HTTP/1.1', () => {
    setPatientIdSalt('salt-one-0123456789');
    const text = 'GET https://fhir.example/r4/DiagnosticReport/rep-1/_history/2: HTTP 500 (HTTP/1.1); Patient/pat-123 and ImagingStudy/st.9; StructureDefinition/bodyweight, Subscription/frcds-1';
    const out = redactIds(text);
    assert.ok(!/rep-1|pat-123|st\.9/.test(out), out);
    assert.ok(out.includes(`DiagnosticReport/#${hashPatientId('rep-1')}/_history/2`));
    assert.ok(out.includes(`Patient/#${hashPatientId('pat-123')}`));
    for (const kept of ['HTTP/1.1', 'StructureDefinition/bodyweight', 'Subscription/frcds-1']) assert.ok(out.includes(kept), `${kept} kept: ${out}`);
    assert.equal(redactIds(out), out, 'hashing twice changes nothing');
  });

  test('the logger hashes ids in string values and in logged errors (message and stack), keeping the error type', () => {
    const sink = capture();
    const logger = createLogger({ level: 'info', hashSalt: 'a-salt-of-sixteen+', destination: sink.stream });
    class FhirLikeError extends Error {
      override readonly name = 'FhirLikeError';
      readonly code = 'FHIR_HTTP';
    }
    const err = new FhirLikeError('GET https://fhir.example/Patient/pat-123: HTTP 403');
    logger.warn({ error: 'PUT https://fhir.example/RiskAssessment/frcds-report-rep-9: HTTP 500', err }, 'job failed');
    const text = sink.text();
    for (const raw of ['pat-123', 'rep-9']) assert.ok(!text.includes(raw), `${raw} leaked: ${text}`);
    const line = sink.lines()[0]!;
    const logged = line['err'] as { type: string; message: string; stack: string; code: string };
    assert.equal(logged.type, 'FhirLikeError');
    assert.equal(logged.code, 'FHIR_HTTP');
    assert.match(logged.message, /^GET https:\/\/fhir\.example\/Patient\/#[0-9a-f]{16}: HTTP 403$/);
    assert.match(logged.stack, /FhirLikeError: GET https:\/\/fhir\.example\/Patient\/#/);
    assert.equal(err.message, 'GET https://fhir.example/Patient/pat-123: HTTP 403', 'the thrown error itself is not changed');
  });
});

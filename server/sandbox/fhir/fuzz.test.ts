/**
 * Property tests: whatever a client sends to the sandbox FHIR server, it answers with a Bundle, a resource or an
 * OperationOutcome and a 2xx/4xx status — never a 5xx, a throw or a hang.
 */
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { before, describe, test } from 'node:test';
import fc from 'fast-check';
import { createLogger } from '../../logging.ts';
import { createFhirSandbox, type FhirSandbox } from './router.ts';

let sandbox: FhirSandbox;
before(async () => {
  const logger = createLogger({ level: 'silent', destination: new Writable({ write: (_c, _e, cb) => cb() }) });
  sandbox = createFhirSandbox({ baseUrl: 'http://localhost:8080/sandbox/fhir', page: { defaultPageSize: 5, maxPageSize: 10 }, maxRequestBytes: 1 << 20, logger });
  for (let i = 0; i < 3; i++) {
    await sandbox.handle('PUT', `Patient/p${i}`, { resourceType: 'Patient', id: `p${i}`, gender: 'female' });
    await sandbox.handle('PUT', `ImagingStudy/s${i}`, { resourceType: 'ImagingStudy', id: `s${i}`, status: 'available', subject: { reference: `Patient/p${i}` } });
  }
});

const types = fc.constantFrom('Patient', 'ImagingStudy', 'Observation', 'Endpoint', 'Bundle', 'Nope', '', '$x', 'patient');
const names = fc.constantFrom('_count', '_offset', '_sort', '_include', '_revinclude', '_summary', '_total', '_id', 'patient', 'subject', 'subject:Patient', 'identifier', 'gender', 'birthdate', 'date', 'status', '_has', 'x.y', '_format', 'code:in', 'started');
const values = fc.oneof(
  fc.string({ maxLength: 20 }),
  fc.constantFrom('-1', '0', '3', '999999999999', 'abc', 'Patient/p1', 'p1', 'ImagingStudy:patient', 'ImagingStudy:subject:Patient', 'DiagnosticReport:subject', '-date', 'ge2020-01-01', 'a|b', '', ',', 'count', ':::'),
);
const query = fc.array(fc.tuple(names, values), { maxLength: 5 }).map((pairs) => new URLSearchParams(pairs).toString());

function assertFhirAnswer(status: number, body: { resourceType?: string }): void {
  assert.ok(status >= 200 && status < 500, `status ${status}: ${JSON.stringify(body).slice(0, 300)}`);
  assert.equal(typeof body.resourceType, 'string');
  if (status >= 400) assert.equal(body.resourceType, 'OperationOutcome');
}

describe('sandbox FHIR under random input', () => {
  test('random searches and reads answer 2xx/4xx with FHIR bodies', async () => {
    await fc.assert(
      fc.asyncProperty(types, fc.option(fc.string({ maxLength: 70 }), { nil: undefined }), query, async (type, id, q) => {
        const path = `${type}${id !== undefined ? `/${encodeURIComponent(id)}` : ''}${q ? `?${q}` : ''}`;
        const r = await sandbox.handle('GET', path);
        assertFhirAnswer(r.status, r.body);
      }),
      { numRuns: 400 },
    );
  });

  test('random JSON bodies created or updated answer 2xx/4xx and invalid ones are not stored', async () => {
    const resourceish = fc.record(
      {
        resourceType: fc.constantFrom('Patient', 'Observation', 'ImagingStudy', 'Nope', 42),
        id: fc.oneof(fc.constant('fz1'), fc.string({ maxLength: 70 })),
        gender: fc.oneof(fc.constantFrom('male', 'female', 'bogus'), fc.integer()),
        status: fc.constantFrom('final', 'available', 'bogus'),
        birthDate: fc.oneof(fc.constant('1950-01-01'), fc.string({ maxLength: 12 })),
        code: fc.oneof(fc.constant({ text: 'x' }), fc.anything()),
        extra: fc.anything(),
      },
      { requiredKeys: [] },
    );
    await fc.assert(
      fc.asyncProperty(resourceish, fc.constantFrom('POST', 'PUT') as fc.Arbitrary<'POST' | 'PUT'>, async (body, method) => {
        const type = typeof body.resourceType === 'string' ? body.resourceType : 'Patient';
        const path = method === 'POST' ? type : `${type}/fz1`;
        const r = await sandbox.handle(method, path, body);
        assertFhirAnswer(r.status, r.body);
        if (r.status < 300 && r.body.resourceType !== 'OperationOutcome') {
          // whatever was stored must itself be valid
          assert.doesNotThrow(() => sandbox.repo.validator.validate(r.body));
        }
      }),
      { numRuns: 300 },
    );
  });
});

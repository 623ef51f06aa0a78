import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { DicomJsonDataset } from './dicom-json.ts';
import { assertImageIdentity, checkImageIdentity, PatientMismatchError } from './identity.ts';

const MRN = 'urn:frcds:synthetic-mrn';
const header = (pid?: string, issuer?: string): DicomJsonDataset => ({
  ...(pid !== undefined ? { '00100020': { vr: 'LO', Value: [pid] } } : {}),
  ...(issuer !== undefined ? { '00100021': { vr: 'LO', Value: [issuer] } } : {}),
});
const patient = { identifier: [{ system: MRN, value: 'DEMOA0001' }, { system: 'urn:oid:1.2.3.4', value: 'PACS-77' }] };

describe('image identity: DICOM Patient ID against the FHIR Patient', () => {
  it('matches the identifier of the issuer named in the header (padding ignored)', () => {
    assert.deepEqual(checkImageIdentity(header('DEMOA0001 ', MRN), patient), { match: true });
  });
  it('matches any identifier when the header names no issuer', () => {
    assert.deepEqual(checkImageIdentity(header('PACS-77'), patient), { match: true });
  });
  it('refuses another patient\'s id', () => {
    assert.deepEqual(checkImageIdentity(header('DEMOA0022', MRN), patient), { match: false, reason: 'mismatch' });
  });
  it('refuses the right value under another issuer', () => {
    assert.deepEqual(checkImageIdentity(header('DEMOA0001', 'urn:other-hospital'), patient), { match: false, reason: 'issuer-mismatch' });
  });
  it('refuses an image without a Patient ID', () => {
    assert.deepEqual(checkImageIdentity(header(), patient), { match: false, reason: 'no-patient-id' });
    assert.deepEqual(checkImageIdentity(header('  '), patient), { match: false, reason: 'no-patient-id' });
  });
  it('with configured systems, only identifiers of those systems count', () => {
    assert.deepEqual(checkImageIdentity(header('PACS-77', 'RIS'), patient, { systems: ['urn:oid:1.2.3.4'] }), { match: true });
    assert.deepEqual(checkImageIdentity(header('DEMOA0001', MRN), patient, { systems: ['urn:oid:1.2.3.4'] }), { match: false, reason: 'mismatch' });
  });
  it('a patient without identifiers never matches', () => {
    assert.equal(checkImageIdentity(header('DEMOA0001'), {}).match, false);
  });
  it('the error carries no identifier value', () => {
    assert.throws(() => assertImageIdentity(header('DEMOA0022', MRN), patient), (e: unknown) => e instanceof PatientMismatchError && e.code === 'PATIENT_MISMATCH' && !/DEMOA/.test(e.message));
  });
});

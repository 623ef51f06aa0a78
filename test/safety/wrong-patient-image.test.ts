/**
 * A study filed under the wrong patient, through the real composition (`startWholeService`, sandbox FHIR + DICOMweb):
 * an ImagingStudy of patient demo-a-005 that points at demo-a-022's radiograph (same UIDs) is the newest eligible
 * study, so the engine selects it — and must refuse its pixels because the DICOM Patient ID is demo-a-022's: no
 * image-derived risk, a warning saying why, no radiograph served for demo-a-005, and an AuditEvent.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { AuditEvent, Bundle, ImagingStudy } from '@medplum/fhirtypes';
import { startWholeService, type WholeService } from '../support/whole-service.ts';

interface AssessmentBody {
  assessment: { id: string; patientId: string; mode: string; warnings: string[] };
  links: { heatmap: string; display: string } | null;
}

describe('an image of another patient is never used or shown', () => {
  let whole: WholeService;
  let base: string;
  let token: string;

  const assess = async (patient: string): Promise<AssessmentBody> => {
    const res = await fetch(`${base}/api/assessments`, { method: 'POST', headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' }, body: JSON.stringify({ patient }) });
    assert.ok(res.status === 200 || res.status === 201, await res.clone().text());
    return (await res.json()) as AssessmentBody;
  };
  const fhir = async <T>(path: string, init: RequestInit = {}): Promise<T> => {
    const res = await fetch(`${base}/sandbox/fhir/${path}`, { ...init, headers: { Accept: 'application/fhir+json', 'Content-Type': 'application/fhir+json', Authorization: `Bearer ${token}` } });
    assert.ok(res.ok, `${init.method ?? 'GET'} ${path.split('?')[0]} → ${res.status}`);
    return (await res.json()) as T;
  };

  before(async () => {
    whole = await startWholeService();
    base = whole.base;
    token = await whole.token('system/*.cruds');
  });
  after(async () => {
    await whole?.close();
  });

  it('the patient\'s own radiograph passes the identity check', { timeout: 60_000 }, async () => {
    const own = await assess('demo-a-003');
    assert.equal(own.assessment.mode, 'image-and-clinical', own.assessment.warnings.join(' | '));
    assert.ok(own.links);
  });

  it('a study linking another patient\'s radiograph gives a clinical-only result with the reason, no image, and an AuditEvent', { timeout: 90_000 }, async () => {
    const theirs = await fhir<ImagingStudy>('ImagingStudy/demo-a-022-xr');
    const { id: _id, meta: _meta, ...rest } = theirs;
    const misfiled: ImagingStudy = { ...rest, subject: { reference: 'Patient/demo-a-005' }, started: new Date().toISOString() };
    await fhir<ImagingStudy>('ImagingStudy', { method: 'POST', body: JSON.stringify(misfiled) });

    const res = await assess('demo-a-005');
    assert.equal(res.assessment.mode, 'clinical-only');
    assert.ok(res.assessment.warnings.some((w) => /belongs to another patient/.test(w)), res.assessment.warnings.join(' | '));
    assert.ok(!res.assessment.warnings.some((w) => /DEMOA0022|2\.25\./.test(w)), 'the warning names no identifier or UID');
    assert.equal(res.links, null);
    for (const kind of ['display', 'heatmap']) {
      const png = await fetch(`${base}/api/assessments/${res.assessment.id}/${kind}.png`, { headers: { Authorization: `Bearer ${token}` } });
      assert.equal(png.status, 404, `${kind}.png is not served`);
    }
    const audits = await fhir<Bundle<AuditEvent>>('AuditEvent?_count=100');
    const alert = (audits.entry ?? []).map((e) => e.resource!).find((a) => a.type.code === '110113' && a.entity?.some((x) => x.what?.reference === 'Patient/demo-a-005'));
    assert.ok(alert, 'a Security Alert AuditEvent names the patient');
  });
});

/**
 * The CT spine pathway over a real DICOMweb server (the sandbox router over Part 10 files written here from the
 * TS phantom): eligibility from FHIR; a readable study gives findings close to the phantom truth with the fetch
 * parallelism bounded; one instance of another patient refuses the whole study before any pixel is fetched; a
 * 3 mm series gives attenuation without morphometry; thick, localizer-only, non-CT and missing studies are refusals,
 * never exceptions.
 */
import assert from 'node:assert/strict';
import type { Server } from 'node:http';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { ImagingStudy } from '@medplum/fhirtypes';
import express from 'express';
import { silentLogger } from '../../../test/support/demo-stack.ts';
import { DicomWebClient, type CallOptions } from '../../imaging/dicomweb-client.ts';
import { inlineImaging } from '../../imaging/worker-pool.ts';
import { createDicomWebRouter } from '../../sandbox/dicomweb/router.ts';
import { fileMeta } from '../../sandbox/dicomweb/transcode.ts';
import { isRefusal } from '../types.ts';
import { CT_IMAGE_STORAGE, ENHANCED_CT_IMAGE_STORAGE } from './dicom-tags.ts';
import { ctEligible, readCtStudy, type CtReadDeps, type CtReadRefusal, type CtStudyRead } from './pathway.ts';
import { buildSpinePhantom, DEFAULT_PHANTOM, defaultLevels } from './phantom.ts';
import type { CtVolume } from './volume.ts';

const EXPLICIT_LE = '1.2.840.10008.1.2.1';
const PATIENT = { identifier: [{ system: 'urn:test:mrn', value: 'P-CT-1' }] };

/** One explicit-VR little-endian element (PS3.5 §7.1.2). */
function el(tag: number, vr: string, value: Buffer): Buffer {
  const long = ['OB', 'OW', 'SQ', 'UN', 'UT'].includes(vr);
  const head = Buffer.alloc(long ? 12 : 8);
  head.writeUInt16LE(tag >>> 16, 0);
  head.writeUInt16LE(tag & 0xffff, 2);
  head.write(vr, 4, 'latin1');
  if (long) head.writeUInt32LE(value.length, 8);
  else head.writeUInt16LE(value.length, 6);
  return Buffer.concat([head, value]);
}
const str = (v: string, pad = ' '): Buffer => Buffer.from(v.length % 2 ? v + pad : v, 'latin1');
const us = (v: number): Buffer => {
  const b = Buffer.alloc(2);
  b.writeUInt16LE(v);
  return b;
};

interface SeriesSpec {
  studyUid: string;
  seriesUid: string;
  patientId: (k: number) => string;
  thicknessMm: number;
  description: string;
  modality?: string;
  imageType?: string;
  bodyPart?: string;
}

/** Writes the volume as one CT Image Storage instance per slice (Int16, rescale −1024), `<study>/<series>/<k>.dcm`. */
function writeSeries(root: string, vol: CtVolume, spec: SeriesSpec): void {
  const dir = join(root, spec.studyUid, spec.seriesUid);
  mkdirSync(dir, { recursive: true });
  const plane = vol.rows * vol.columns;
  const x0 = (-(vol.columns - 1) / 2) * vol.spacing.column;
  const y0 = (-vol.rows / 2) * vol.spacing.row;
  for (let k = 0; k < vol.slices; k++) {
    const sop = `${spec.seriesUid}.${k + 1}`;
    const px = Buffer.alloc(plane * 2);
    for (let j = 0; j < plane; j++) px.writeInt16LE(Math.max(-32768, Math.min(32767, Math.round(vol.hu[k * plane + j]! + 1024))), j * 2);
    const ds = Buffer.concat([
      el(0x00080008, 'CS', str(spec.imageType ?? 'ORIGINAL\\PRIMARY\\AXIAL')),
      el(0x00080016, 'UI', str(CT_IMAGE_STORAGE, '\0')),
      el(0x00080018, 'UI', str(sop, '\0')),
      el(0x00080060, 'CS', str(spec.modality ?? 'CT')),
      el(0x0008103e, 'LO', str(spec.description)),
      el(0x00100010, 'PN', str('Test^Phantom')),
      el(0x00100020, 'LO', str(spec.patientId(k))),
      ...(spec.bodyPart ? [el(0x00180015, 'CS', str(spec.bodyPart))] : []),
      el(0x00180050, 'DS', str(String(spec.thicknessMm))),
      el(0x0020000d, 'UI', str(spec.studyUid, '\0')),
      el(0x0020000e, 'UI', str(spec.seriesUid, '\0')),
      el(0x00200013, 'IS', str(String(k + 1))),
      el(0x00200032, 'DS', str(`${x0.toFixed(3)}\\${y0.toFixed(3)}\\${vol.z[k]!.toFixed(3)}`)),
      el(0x00200037, 'DS', str('1\\0\\0\\0\\1\\0')),
      el(0x00280002, 'US', us(1)),
      el(0x00280004, 'CS', str('MONOCHROME2')),
      el(0x00280010, 'US', us(vol.rows)),
      el(0x00280011, 'US', us(vol.columns)),
      el(0x00280030, 'DS', str(`${vol.spacing.row}\\${vol.spacing.column}`)),
      el(0x00280100, 'US', us(16)),
      el(0x00280101, 'US', us(16)),
      el(0x00280102, 'US', us(15)),
      el(0x00280103, 'US', us(1)),
      el(0x00281052, 'DS', str('-1024')),
      el(0x00281053, 'DS', str('1')),
      el(0x7fe00010, 'OW', px),
    ]);
    writeFileSync(join(dir, `${k + 1}.dcm`), Buffer.concat([fileMeta(CT_IMAGE_STORAGE, sop, EXPLICIT_LE), ds]));
  }
}

const item = (elements: Buffer[]): Buffer => {
  const body = Buffer.concat(elements);
  const head = Buffer.alloc(8);
  head.writeUInt16LE(0xfffe, 0);
  head.writeUInt16LE(0xe000, 2);
  head.writeUInt32LE(body.length, 4);
  return Buffer.concat([head, body]);
};
const sq = (tag: number, items: Buffer[]): Buffer => el(tag, 'SQ', Buffer.concat(items));

/**
 * The volume as ONE Enhanced CT Image Storage instance: geometry per frame (Plane Position) and shared (Pixel Measures,
 * Plane Orientation, Pixel Value Transformation), nothing of it at the top level.
 */
function writeEnhanced(root: string, vol: CtVolume, spec: Pick<SeriesSpec, 'studyUid' | 'seriesUid' | 'description'>): void {
  const dir = join(root, spec.studyUid, spec.seriesUid);
  mkdirSync(dir, { recursive: true });
  const plane = vol.rows * vol.columns;
  const x0 = (-(vol.columns - 1) / 2) * vol.spacing.column;
  const y0 = (-vol.rows / 2) * vol.spacing.row;
  const px = Buffer.alloc(plane * vol.slices * 2);
  for (let j = 0; j < plane * vol.slices; j++) px.writeInt16LE(Math.max(-32768, Math.min(32767, Math.round(vol.hu[j]! + 1024))), j * 2);
  const sop = `${spec.seriesUid}.1`;
  const shared = item([
    sq(0x00209116, [item([el(0x00200037, 'DS', str('1\\0\\0\\0\\1\\0'))])]),
    sq(0x00289110, [item([el(0x00180050, 'DS', str(String(vol.spacing.slice))), el(0x00280030, 'DS', str(`${vol.spacing.row}\\${vol.spacing.column}`))])]),
    sq(0x00289145, [item([el(0x00281052, 'DS', str('-1024')), el(0x00281053, 'DS', str('1'))])]),
  ]);
  const perFrame = Array.from({ length: vol.slices }, (_, k) => item([sq(0x00209113, [item([el(0x00200032, 'DS', str(`${x0.toFixed(3)}\\${y0.toFixed(3)}\\${vol.z[k]!.toFixed(3)}`))])])]));
  const ds = Buffer.concat([
    el(0x00080008, 'CS', str('ORIGINAL\\PRIMARY\\AXIAL\\NONE')),
    el(0x00080016, 'UI', str(ENHANCED_CT_IMAGE_STORAGE, '\0')),
    el(0x00080018, 'UI', str(sop, '\0')),
    el(0x00080060, 'CS', str('CT')),
    el(0x0008103e, 'LO', str(spec.description)),
    el(0x00100010, 'PN', str('Test^Phantom')),
    el(0x00100020, 'LO', str('P-CT-1')),
    el(0x0020000d, 'UI', str(spec.studyUid, '\0')),
    el(0x0020000e, 'UI', str(spec.seriesUid, '\0')),
    el(0x00200013, 'IS', str('1')),
    el(0x00280002, 'US', us(1)),
    el(0x00280004, 'CS', str('MONOCHROME2')),
    el(0x00280008, 'IS', str(String(vol.slices))),
    el(0x00280010, 'US', us(vol.rows)),
    el(0x00280011, 'US', us(vol.columns)),
    el(0x00280100, 'US', us(16)),
    el(0x00280101, 'US', us(16)),
    el(0x00280102, 'US', us(15)),
    el(0x00280103, 'US', us(1)),
    sq(0x52009229, [shared]),
    sq(0x52009230, perFrame),
    el(0x7fe00010, 'OW', px),
  ]);
  writeFileSync(join(dir, '1.dcm'), Buffer.concat([fileMeta(ENHANCED_CT_IMAGE_STORAGE, sop, EXPLICIT_LE), ds]));
}

const imagingStudy = (studyUid: string, over: Partial<ImagingStudy> = {}): ImagingStudy => ({
  resourceType: 'ImagingStudy',
  id: `is-${studyUid.split('.').pop()}`,
  status: 'available',
  subject: { reference: 'Patient/p-ct' },
  started: '2026-10-01T10:00:00Z',
  identifier: [{ system: 'urn:dicom:uid', value: `urn:oid:${studyUid}` }],
  series: [{ uid: '9.9', modality: { system: 'http://dicom.nema.org/resources/ontology/DCM', code: 'CT' }, bodySite: { system: 'http://snomed.info/sct', code: '818981001', display: 'Abdomen' } }],
  ...over,
});

/** A DICOMweb client that counts frame requests in flight. */
class CountingClient extends DicomWebClient {
  inFlight = 0;
  maxInFlight = 0;
  frameRequests = 0;
  override async retrieveFrames(studyUid: string, seriesUid: string, sopUid: string, frames: readonly number[], opts?: CallOptions & { transferSyntaxes?: '*' | readonly string[] }) {
    this.frameRequests++;
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    try {
      return await super.retrieveFrames(studyUid, seriesUid, sopUid, frames, opts);
    } finally {
      this.inFlight--;
    }
  }
}

const UID = {
  good: '2.25.7001',
  wrongPatient: '2.25.7002',
  thick3: '2.25.7003',
  thick6: '2.25.7004',
  localizer: '2.25.7005',
  mr: '2.25.7006',
  enhanced: '2.25.7007',
};

let root = '';
let server: Server;
let base = '';
let overlayCalls = 0;
let truthT12 = 0;

before(async () => {
  root = mkdtempSync(join(tmpdir(), 'frcds-ct-pathway-'));
  const levels = defaultLevels(120);
  levels[3] = { ...levels[3]!, anteriorFraction: 0.6 }; // L1 wedge: Genant grade 2–3
  const two = buildSpinePhantom({ ...DEFAULT_PHANTOM, levels, sliceMm: 2, seed: 11 });
  truthT12 = two.truth.find((t) => t.label === 'T12')!.trabecularHu;
  const same = () => 'P-CT-1';
  writeSeries(root, two.volume, { studyUid: UID.good, seriesUid: `${UID.good}.1`, patientId: same, thicknessMm: 2, description: 'ABD PORTAL VENOUS 2mm', bodyPart: 'ABDOMEN' });
  writeSeries(root, two.volume, { studyUid: UID.wrongPatient, seriesUid: `${UID.wrongPatient}.1`, patientId: (k) => (k === 37 ? 'P-OTHER' : 'P-CT-1'), thicknessMm: 2, description: 'ABD 2mm' });
  writeSeries(root, two.volume, { studyUid: UID.thick6, seriesUid: `${UID.thick6}.1`, patientId: same, thicknessMm: 6, description: 'ABD 6mm' });
  writeSeries(root, two.volume, { studyUid: UID.localizer, seriesUid: `${UID.localizer}.1`, patientId: same, thicknessMm: 2, description: 'TOPOGRAM', imageType: 'ORIGINAL\\PRIMARY\\LOCALIZER' });
  writeEnhanced(root, two.volume, { studyUid: UID.enhanced, seriesUid: `${UID.enhanced}.1`, description: 'ABD PORTAL VENOUS 2mm ENHANCED' });
  writeSeries(root, two.volume, { studyUid: UID.mr, seriesUid: `${UID.mr}.1`, patientId: same, thicknessMm: 2, description: 'T1 SAG', modality: 'MR' });
  const three = buildSpinePhantom({ ...DEFAULT_PHANTOM, levels: defaultLevels(120), sliceMm: 3, seed: 12 });
  writeSeries(root, three.volume, { studyUid: UID.thick3, seriesUid: `${UID.thick3}.1`, patientId: same, thicknessMm: 3, description: 'ABD NON CONTRAST 3mm' });
  const app = express();
  const dicom = await createDicomWebRouter({ dicomDir: root, logger: silentLogger() });
  app.use('/dicom-web', dicom.router);
  server = await new Promise<Server>((resolve) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s));
  });
  base = `http://127.0.0.1:${(server.address() as { port: number }).port}/dicom-web`;
});

after(async () => {
  await new Promise((r) => server?.close(r));
  if (root) rmSync(root, { recursive: true, force: true });
});

function depsWith(client: DicomWebClient, over: Partial<CtReadDeps> = {}): CtReadDeps {
  return {
    dicomweb: client,
    imaging: inlineImaging,
    patient: PATIENT,
    phaseOffsetHu: { 'portal-venous': 12 },
    concurrency: 3,
    renderOverlays: () => {
      overlayCalls++;
      return { sagittal: { png: Buffer.from('s'), width: 10, height: 20 }, axial: { png: Buffer.from('a'), width: 30, height: 40 } };
    },
    ...over,
  };
}

async function read(uid: string, client = new CountingClient({ baseUrl: base }), over: Partial<CtReadDeps> = {}): Promise<{ r: CtStudyRead | CtReadRefusal; client: CountingClient }> {
  const c = client as CountingClient;
  return { r: await readCtStudy(depsWith(c, over), imagingStudy(uid)), client: c };
}

function refusal(r: CtStudyRead | CtReadRefusal): CtReadRefusal {
  assert.ok(isRefusal(r), `expected a refusal, got findings`);
  return r as CtReadRefusal;
}

describe('CT eligibility from FHIR', () => {
  test('CT with a chest/abdomen/spine body site or none; not MR, not a knee CT, not cancelled, not without a UID', () => {
    assert.equal(ctEligible(imagingStudy('1.2')), true);
    assert.equal(ctEligible(imagingStudy('1.2', { series: [{ uid: '1', modality: { code: 'CT' } }] })), true, 'no body site recorded');
    assert.equal(ctEligible(imagingStudy('1.2', { series: [{ uid: '1', modality: { code: 'CT' }, bodySite: { display: 'Chest abdomen pelvis' } }] })), true, 'by words');
    assert.equal(ctEligible(imagingStudy('1.2', { series: [{ uid: '1', modality: { code: 'MR' } }] })), false);
    assert.equal(ctEligible(imagingStudy('1.2', { series: [{ uid: '1', modality: { code: 'CT' }, bodySite: { system: 'http://snomed.info/sct', code: '72696002', display: 'Knee' } }] })), false);
    assert.equal(ctEligible(imagingStudy('1.2', { status: 'cancelled' })), false);
    assert.equal(ctEligible(imagingStudy('1.2', { identifier: [] })), false);
    assert.equal(ctEligible(imagingStudy('1.2', { series: [], modality: [{ code: 'CT' }] })), true, 'study-level modality when no series are listed');
    assert.equal(ctEligible(imagingStudy('1.2', { series: [{ uid: '1', modality: { code: 'DX' }, bodySite: { system: 'http://snomed.info/sct', code: '29836001' } }] })), false, 'a hip radiograph');
  });
});

describe('reading a CT study over DICOMweb', () => {
  test('a readable study: findings near the phantom truth, contrast offset applied, overlays drawn, parallelism bounded', async () => {
    const before = overlayCalls;
    const { r, client } = await read(UID.good);
    assert.ok(!isRefusal(r), isRefusal(r) ? `${r.code}: ${r.reason}` : '');
    const s = r as CtStudyRead;
    assert.equal(s.series.phase, 'portal-venous');
    assert.equal(s.series.thicknessMm, 2);
    assert.equal(s.findings.pathway, 'ct-spine');
    const att = s.findings.attenuation!;
    assert.equal(att.level, 'T12', 'the fractured L1 is not used for attenuation');
    assert.ok(Math.abs(att.medianHu - truthT12) < 8, `T12 median ${att.medianHu} vs truth ${truthT12}`);
    assert.ok(Math.abs(att.adjustedHu - (att.medianHu - 12)) < 1e-9, 'the phase offset is subtracted');
    assert.ok(s.findings.morphometry && s.findings.morphometry.length >= 4, 'heights measured at 2 mm');
    assert.equal(s.findings.worstLevel, 'L1');
    assert.ok(s.findings.worstGrade >= 2, `L1 wedge graded ${s.findings.worstGrade}`);
    assert.equal(overlayCalls, before + 1);
    assert.equal(s.overlays?.axial.width, 30);
    assert.equal(client.frameRequests, s.timings.frames);
    assert.ok(client.maxInFlight <= 3 && client.maxInFlight >= 2, `max in flight ${client.maxInFlight}`);
  });

  test('the same volume as one Enhanced CT multi-frame instance: per-frame geometry and the functional-group rescale give the same findings', async () => {
    const single = (await read(UID.good)).r as CtStudyRead;
    const { r, client } = await read(UID.enhanced);
    assert.ok(!isRefusal(r), isRefusal(r) ? `${r.code}: ${r.reason}` : '');
    const s = r as CtStudyRead;
    assert.equal(s.timings.frames, single.timings.frames);
    assert.equal(client.frameRequests, single.timings.frames);
    assert.deepEqual(s.findings.levels.map((l) => l.label), single.findings.levels.map((l) => l.label));
    assert.equal(s.findings.attenuation!.medianHu, single.findings.attenuation!.medianHu);
    assert.equal(s.findings.worstGrade, single.findings.worstGrade);
  });

  test('one instance of another patient inside the CT series refuses the whole study before any frame is fetched', async () => {
    const { r, client } = await read(UID.wrongPatient);
    const ref = refusal(r);
    assert.equal(ref.code, 'patient-mismatch');
    assert.equal(ref.mismatch, 'mismatch');
    assert.doesNotMatch(ref.reason, /P-OTHER|P-CT-1|2\.25\./, 'no identifiers or UIDs in the reason');
    assert.equal(client.frameRequests, 0);
  });

  test('a 3 mm series: attenuation measured, no morphometry, with the reason as a warning', async () => {
    const { r } = await read(UID.thick3);
    assert.ok(!isRefusal(r), isRefusal(r) ? `${r.code}: ${r.reason}` : '');
    const s = r as CtStudyRead;
    assert.equal(s.findings.morphometry, null);
    assert.ok(s.findings.attenuation !== null);
    assert.ok(s.findings.warnings.some((w) => /thick|mm/i.test(w)), s.findings.warnings.join(' | '));
    assert.equal(s.series.phase, 'non-contrast');
  });

  test('thick, localizer-only, non-CT and missing studies are refusals with plain reasons, never exceptions', async () => {
    assert.equal(refusal((await read(UID.thick6)).r).code, 'too-thick');
    assert.equal(refusal((await read(UID.localizer)).r).code, 'localizer-only');
    const mr = refusal((await read(UID.mr)).r);
    assert.equal(mr.code, 'not-ct');
    assert.match(mr.reason, /MR/);
    const missing = refusal((await read('2.25.7999')).r);
    assert.equal(missing.code, 'fetch-failed');
    const down = refusal((await read(UID.good, new CountingClient({ baseUrl: 'http://127.0.0.1:9/dicom-web', retries: 0, timeoutMs: 2000 }))).r);
    assert.equal(down.code, 'fetch-failed');
    assert.doesNotMatch(down.reason, /127\.0\.0\.1|2\.25\./);
  });
});

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { DicomJsonDataset } from './dicom-json.ts';
import { candidateSeries, chooseInstance, matchRule, selectionRuleFromManifest, studyUidOf, type ImagingStudyLike, type SelectionRule } from './select.ts';

const ds = (o: Record<string, string | number>): DicomJsonDataset => {
  const tags: Record<string, [string, string]> = {
    modality: ['00080060', 'CS'], body: ['00180015', 'CS'], view: ['00185101', 'CS'], lat: ['00200062', 'CS'],
    serLat: ['00200060', 'CS'], rows: ['00280010', 'US'], cols: ['00280011', 'US'], sop: ['00080018', 'UI'],
    series: ['0020000E', 'UI'], seriesNo: ['00200011', 'IS'], inst: ['00200013', 'IS'],
  };
  const out: DicomJsonDataset = {};
  for (const [k, v] of Object.entries(o)) out[tags[k]![0]] = { vr: tags[k]![1], Value: [v] };
  return out;
};

const rule: SelectionRule = { modality: ['DX', 'CR'], bodyPart: ['HIP', 'PELVIS'], viewPosition: 'AP', laterality: 'any' };

describe('series/instance selection by rule', () => {
  it('matches on modality, body part, view and laterality (case-insensitive), saying why not', () => {
    const good = ds({ modality: 'DX', body: 'hip', view: 'AP', lat: 'L', rows: 10, cols: 10 });
    assert.equal(matchRule(good, rule).ok, true);
    const lateral = ds({ modality: 'DX', body: 'HIP', view: 'LL', lat: 'L', rows: 10, cols: 10 });
    const m = matchRule(lateral, rule);
    assert.equal(m.ok, false);
    assert.match(m.reasons.join(), /ViewPosition is LL, rule wants AP/);
    assert.equal(matchRule(ds({ modality: 'DX', body: 'HIP', view: 'AP', rows: 10, cols: 10 }), { ...rule, laterality: 'R' }).ok, false);
    assert.equal(matchRule(ds({ modality: 'DX', body: 'HIP', view: 'AP', serLat: 'R', rows: 10, cols: 10 }), { ...rule, laterality: 'R' }).ok, true);
    assert.equal(matchRule(ds({ modality: 'SR' }), rule).ok, false);
  });

  it('prefers the largest image, then the lowest series and instance numbers', () => {
    const a = ds({ modality: 'DX', body: 'HIP', view: 'AP', lat: 'R', rows: 100, cols: 100, sop: '1.1', seriesNo: 2, inst: 1 });
    const b = ds({ modality: 'DX', body: 'HIP', view: 'AP', lat: 'R', rows: 200, cols: 100, sop: '1.2', seriesNo: 3, inst: 1 });
    const c = ds({ modality: 'DX', body: 'HIP', view: 'AP', lat: 'R', rows: 200, cols: 100, sop: '1.3', seriesNo: 1, inst: 5 });
    const d = ds({ modality: 'DX', body: 'CHEST', view: 'AP', rows: 999, cols: 999, sop: '1.4' });
    assert.equal(chooseInstance([a, b, c, d], rule), c);
    assert.equal(chooseInstance([d], rule), undefined);
  });

  it('narrows candidate series from the ImagingStudy without excluding what FHIR leaves unsaid', () => {
    const study: ImagingStudyLike = {
      resourceType: 'ImagingStudy',
      identifier: [{ system: 'urn:dicom:uid', value: 'urn:oid:1.2.3' }],
      series: [
        { uid: 's-chest', number: 1, modality: { code: 'DX' }, bodySite: { system: 'http://snomed.info/sct', code: '51185008' } },
        { uid: 's-hip-left', number: 3, modality: { code: 'DX' }, bodySite: { system: 'http://snomed.info/sct', code: '24136001' }, laterality: { system: 'http://snomed.info/sct', code: '7771000' } },
        { uid: 's-unknown', number: 2, modality: { code: 'DX' } },
        { uid: 's-ct', number: 4, modality: { code: 'CT' } },
      ],
    };
    assert.equal(studyUidOf(study), '1.2.3');
    assert.deepEqual(candidateSeries(study, rule), ['s-unknown', 's-hip-left']);
    assert.deepEqual(candidateSeries(study, { ...rule, laterality: 'R' }), ['s-unknown']);
  });
});

describe('selection rule from the model manifest', () => {
  it('maps dicom_selection (snake_case) and applies SOP class and photometric filters', () => {
    const r = selectionRuleFromManifest({
      modality: ['DX', 'CR'], body_part_examined: ['HIP', 'PELVIS'], view_position: ['AP'],
      sop_class_uids: ['1.2.840.10008.5.1.4.1.1.1.1'], photometric_interpretation: ['MONOCHROME1', 'MONOCHROME2'], rule: 'text is ignored',
    });
    assert.deepEqual(r.bodyPart, ['HIP', 'PELVIS']);
    const base = { modality: 'DX', body: 'HIP', view: 'AP', rows: 10, cols: 10 };
    const withClass = (uid: string) => ({ ...ds(base), '00080016': { vr: 'UI', Value: [uid] }, '00280004': { vr: 'CS', Value: ['MONOCHROME2'] } });
    assert.equal(matchRule(withClass('1.2.840.10008.5.1.4.1.1.1.1'), r).ok, true);
    assert.equal(matchRule(withClass('1.2.840.10008.5.1.4.1.1.7'), r).ok, false);
    assert.throws(() => selectionRuleFromManifest({ body_part_examined: 'HIP' }), TypeError);
    assert.throws(() => selectionRuleFromManifest({ modality: [1] }), TypeError);
  });

  it('prefers the most recent acquisition', () => {
    const r: SelectionRule = { modality: 'DX' };
    const old = { ...ds({ modality: 'DX', rows: 999, cols: 999, sop: 'old' }), '00080023': { vr: 'DA', Value: ['20240101'] } };
    const recent = { ...ds({ modality: 'DX', rows: 10, cols: 10, sop: 'new' }), '00080023': { vr: 'DA', Value: ['20250101'] }, '00080033': { vr: 'TM', Value: ['0815'] } };
    assert.equal(chooseInstance([old, recent], r), recent);
  });
});

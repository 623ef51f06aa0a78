import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { DicomJsonDataset } from '../../imaging/dicom-json.ts';
import { isRefusal } from '../types.ts';
import { kernelClass, selectCtSeries, type CtSeriesMetadata } from './select.ts';

interface SeriesSpec {
  uid: string;
  modality?: string;
  imageType?: string[];
  body?: string;
  iop?: number[];
  thickness?: number;
  kernel?: string;
  n?: number;
  spacing?: number;
  sop?: string;
  enhancedFrames?: number;
}

const AXIAL = [1, 0, 0, 0, 1, 0];

function series(s: SeriesSpec): CtSeriesMetadata {
  const n = s.n ?? 200;
  const spacing = s.spacing ?? s.thickness ?? 1;
  const inst = (i: number): DicomJsonDataset => {
    const ds: DicomJsonDataset = {
      '00080060': { vr: 'CS', Value: [s.modality ?? 'CT'] },
      '00080008': { vr: 'CS', Value: s.imageType ?? ['ORIGINAL', 'PRIMARY', 'AXIAL'] },
      '00200037': { vr: 'DS', Value: s.iop ?? AXIAL },
      '00200032': { vr: 'DS', Value: [0, 0, -i * spacing] },
    };
    if (s.sop) ds['00080016'] = { vr: 'UI', Value: [s.sop] };
    if (s.body) ds['00180015'] = { vr: 'CS', Value: [s.body] };
    if (s.thickness !== undefined) ds['00180050'] = { vr: 'DS', Value: [s.thickness] };
    if (s.kernel) ds['00181210'] = { vr: 'SH', Value: [s.kernel] };
    return ds;
  };
  if (s.enhancedFrames) {
    const ds: DicomJsonDataset = {
      '00080060': { vr: 'CS', Value: ['CT'] },
      '00080016': { vr: 'UI', Value: ['1.2.840.10008.5.1.4.1.1.2.1'] },
      '00080008': { vr: 'CS', Value: ['ORIGINAL', 'PRIMARY', 'AXIAL'] },
      '00280008': { vr: 'IS', Value: [s.enhancedFrames] },
      '52009229': {
        vr: 'SQ',
        Value: [
          {
            '00209116': { vr: 'SQ', Value: [{ '00200037': { vr: 'DS', Value: s.iop ?? AXIAL } }] },
            '00289110': { vr: 'SQ', Value: [{ '00180050': { vr: 'DS', Value: [s.thickness ?? 1] } }] },
          },
        ],
      },
    };
    return { seriesInstanceUid: s.uid, instances: [ds] };
  }
  return { seriesInstanceUid: s.uid, instances: Array.from({ length: n }, (_, i) => inst(i)) };
}

describe('CT series selection', () => {
  it('prefers the thinnest axial series, then a soft kernel, and skips localizers', () => {
    const r = selectCtSeries([
      series({ uid: 'scout', imageType: ['ORIGINAL', 'PRIMARY', 'LOCALIZER'], n: 2 }),
      series({ uid: 'thick', thickness: 5, n: 60, body: 'ABDOMEN' }),
      series({ uid: 'thin-bone', thickness: 1, kernel: 'BONE', body: 'ABDOMEN' }),
      series({ uid: 'thin-soft', thickness: 1, kernel: 'B30f', body: 'ABDOMEN' }),
      series({ uid: 'sagittal', thickness: 1, iop: [0, 1, 0, 0, 0, -1] }),
    ]);
    assert.ok(!isRefusal(r));
    assert.equal(r.seriesInstanceUid, 'thin-soft');
    assert.equal(r.kernel, 'soft');
    assert.equal(r.assessed.find((a) => a.seriesInstanceUid === 'sagittal')?.code, 'non-axial');
  });

  it('reads Enhanced CT geometry from the shared functional groups', () => {
    const r = selectCtSeries([series({ uid: 'enh', enhancedFrames: 300, thickness: 0.625 })]);
    assert.ok(!isRefusal(r));
    assert.equal(r.slices, 300);
    assert.equal(r.thicknessMm, 0.625);
  });

  it('falls back to the spacing of positions when the thickness is missing, with a warning', () => {
    const r = selectCtSeries([series({ uid: 'a', spacing: 2 })]);
    assert.ok(!isRefusal(r));
    assert.equal(r.thicknessMm, 2);
    assert.match(r.warnings.join(), /thickness not recorded/);
    assert.match(r.warnings.join(), /body part not recorded/);
  });

  const refusals: [string, SeriesSpec[], string, RegExp][] = [
    ['not CT', [{ uid: 'mr', modality: 'MR', thickness: 1 }], 'not-ct', /MR, not CT/],
    ['secondary capture', [{ uid: 'sc', thickness: 1, sop: '1.2.840.10008.5.1.4.1.1.7' }], 'not-ct', /not stored as CT/],
    ['localizer only', [{ uid: 's', imageType: ['ORIGINAL', 'PRIMARY', 'LOCALIZER'], n: 2 }], 'localizer-only', /localizer/],
    ['head CT', [{ uid: 'h', body: 'HEAD', thickness: 1 }], 'wrong-body-part', /HEAD/],
    ['coronal only', [{ uid: 'c', thickness: 1, iop: [1, 0, 0, 0, 0, -1] }], 'non-axial', /not axial \(90°/],
    ['too thick', [{ uid: 't', thickness: 7.5, n: 40 }], 'too-thick', /7\.5 mm thick/],
    ['too few slices', [{ uid: 'f', thickness: 1, n: 40 }], 'too-few-slices', /covers 40 mm in 40 slices/],
  ];
  for (const [name, specs, code, reason] of refusals) {
    it(`refuses: ${name}`, () => {
      const r = selectCtSeries(specs.map(series));
      assert.ok(isRefusal(r));
      assert.equal(r.code, code);
      assert.match(r.reason, reason);
      assert.equal(r.pathway, 'ct-spine');
    });
  }

  it('reports the reason of the series that got furthest', () => {
    const r = selectCtSeries([series({ uid: 'mr', modality: 'MR' }), series({ uid: 't', thickness: 8, n: 30 })]);
    assert.ok(isRefusal(r));
    assert.equal(r.code, 'too-thick');
    const empty = selectCtSeries([]);
    assert.ok(isRefusal(empty));
    assert.equal(empty.code, 'no-series');
  });

  it('classifies vendor kernels', () => {
    assert.deepEqual(['B30f', 'Br40d', 'STANDARD', 'FC18', 'B', 'B70f', 'BONEPLUS', 'FC30', 'YC', 'XYZ', undefined].map(kernelClass), [
      'soft', 'soft', 'soft', 'soft', 'soft', 'sharp', 'sharp', 'sharp', 'sharp', 'unknown', 'unknown',
    ]);
  });
});

/**
 * T-score calibration loading: the manifest's by default, a site's local recalibration file when named, and a file
 * for another model or version refused with an error that says so.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { calibrate, CalibrationError, loadTscoreCalibration, type CalibratedManifest, type RecalibrationFile } from './calibration.ts';

const dir = mkdtempSync(join(tmpdir(), 'frcds-calibration-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const manifest: CalibratedManifest = {
  id: 'hip-xray-v2',
  version: '2.0.0',
  tscore_head: { calibration: { intercept: 0.1, slope: 0.9, sd_scale: 1.2, version: 'train-20261203', fitted_on: 'validation DXA pairs' } },
};

const file = (over: Partial<Record<keyof RecalibrationFile, unknown>> = {}): string => {
  const body = {
    kind: 'frcds-tscore-recalibration',
    model: 'hip-xray-v2',
    modelVersion: '2.0.0',
    version: 'site-c-20261203-1',
    created: '2026-12-03T14:00:00.000Z',
    site: 'site-c',
    intercept: -0.3,
    slope: 1.1,
    sd_scale: 1.4,
    basis: { pairs: 120, from: '2025-01-01', to: '2026-11-30' },
    before: { n: 60, r: 0.7, bias: 0.4, coverage: 0.8 },
    after: { n: 60, r: 0.7, bias: 0.02, coverage: 0.95 },
    ...over,
  };
  const p = join(dir, `${Math.random().toString(36).slice(2)}.json`);
  writeFileSync(p, JSON.stringify(body));
  return p;
};

describe('loadTscoreCalibration', () => {
  test('without a file: the manifest calibration, with its version', () => {
    assert.deepEqual(loadTscoreCalibration(manifest, undefined), { intercept: 0.1, slope: 0.9, sdScale: 1.2, version: 'train-20261203', source: 'manifest' });
  });

  test('a local file for this model and version replaces the manifest parameters', () => {
    assert.deepEqual(loadTscoreCalibration(manifest, file()), { intercept: -0.3, slope: 1.1, sdScale: 1.4, version: 'site-c-20261203-1', source: 'local' });
  });

  test('a file for another model is refused, naming both', () => {
    assert.throws(() => loadTscoreCalibration(manifest, file({ model: 'hip-xray-v3' })), (e: unknown) => e instanceof CalibrationError && /hip-xray-v3@2\.0\.0, not hip-xray-v2@2\.0\.0/.test(e.message));
  });

  test('a file for another version of the same model is refused', () => {
    assert.throws(() => loadTscoreCalibration(manifest, file({ modelVersion: '2.0.1' })), (e: unknown) => e instanceof CalibrationError && /2\.0\.1/.test(e.message));
  });

  test('a file with a non-positive slope or sd scale, or the wrong kind, is refused', () => {
    for (const bad of [{ slope: 0 }, { sd_scale: -1 }, { kind: 'something-else' }, { intercept: 'x' }, { version: 'no date' }]) {
      assert.throws(() => loadTscoreCalibration(manifest, file(bad)), CalibrationError, JSON.stringify(bad));
    }
  });

  test('an unreadable file is refused with the setting named', () => {
    const p = join(dir, 'broken.json');
    writeFileSync(p, '{ not json');
    assert.throws(() => loadTscoreCalibration(manifest, p), /MODEL_TSCORE_CALIBRATION: .*not readable JSON/);
    assert.throws(() => loadTscoreCalibration(manifest, join(dir, 'missing.json')), /not readable JSON/);
  });

  test('a manifest without a T-score calibration (v1) and no file: refused', () => {
    assert.throws(() => loadTscoreCalibration({ id: 'hip-xray-v1', version: '1.0.0' }, undefined), /no tscore_head\.calibration/);
    assert.throws(() => loadTscoreCalibration({ ...manifest, tscore_head: { calibration: { intercept: 0, slope: -1, sd_scale: 1 } } }, undefined), /slope > 0/);
  });
});

test('calibrate: mean = a + b·raw, sd = s·raw sd', () => {
  const c = calibrate({ intercept: -0.5, slope: 2, sdScale: 1.5 }, { mean: -1, sd: 0.4 });
  assert.ok(Math.abs(c.mean - -2.5) < 1e-12 && Math.abs(c.sd - 0.6) < 1e-12);
});

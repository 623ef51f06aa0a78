/**
 * The measurement CLI on what the Python generator writes (the contract CT-model training relies on): two coarse
 * studies (`--size test`, RLE, seed 7704: the first readable, the second a short chest field) and a folder with a
 * broken file; one JSON line per folder in name order, refusals as lines, never a crash.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { StudyMeasurement } from './measure-cli.ts';

describe('CT measurement CLI', () => {
  let dir = '';
  let lines: StudyMeasurement[] = [];
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'ct-measure-'));
    execFileSync('sh', ['models/training/run', '-m', 'frcds.ct.cli', '--out', dir, '--patients', '2', '--seed', '7704', '--size', 'test', '--syntax', 'rle'], { stdio: 'ignore' });
    mkdirSync(join(dir, 'zz-broken'));
    writeFileSync(join(dir, 'zz-broken', 'IM00001.dcm'), 'not a DICOM file');
    const out = join(dir, 'out.jsonl');
    execFileSync('node', ['--import', 'tsx', 'server/pathways/ct-spine/measure-cli.ts', '--dir', dir, '--out', out], { stdio: 'ignore' });
    lines = readFileSync(out, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as StudyMeasurement);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('writes one line per study folder, in name order, with its time', () => {
    assert.deepEqual(lines.map((l) => l.study), ['ct-a7704-00001', 'ct-a7704-00002', 'zz-broken']);
    assert.ok(lines.every((l) => l.seconds >= 0));
  });

  it('measures a readable study: RLE decoded, the axial series chosen over the localizer, L1 near the truth', () => {
    const m = lines[0]!;
    const truth = JSON.parse(readFileSync(join(dir, m.study, 'truth.json'), 'utf8')) as {
      geometry: { n_slices: number };
      acquisition: { slice_thickness: number; phase_recorded: boolean; phase: string };
      levels: { label: string; trabecular_hu_scan: number }[];
    };
    assert.equal(m.refusal, undefined, JSON.stringify(m.refusal));
    assert.equal(m.series!.slices, truth.geometry.n_slices);
    assert.equal(m.series!.thicknessMm, truth.acquisition.slice_thickness);
    assert.equal(m.series!.phaseRecorded, truth.acquisition.phase === 'portal-venous' && truth.acquisition.phase_recorded);
    const f = m.findings!;
    assert.ok(['T12', 'L1', 'L2'].every((l) => f.levels.some((x) => x.label === l)), f.levels.map((x) => x.label).join());
    assert.equal(f.attenuation!.level, 'L1');
    const l1 = truth.levels.find((l) => l.label === 'L1')!.trabecular_hu_scan;
    // 3.3 mm pixels and 5 mm slices (the generator's test size): a coarse ROI, so a wider bound than full size.
    assert.ok(Math.abs(f.attenuation!.medianHu - l1) <= 15, `median ${f.attenuation!.medianHu} vs ${l1}`);
    assert.equal(f.morphometry, null);
  });

  it('gives refusals as lines: a field too short, a file that is not DICOM', () => {
    assert.equal(lines[1]!.refusal?.code, 'too-few-slices');
    assert.equal(lines[2]!.refusal?.code, 'unreadable');
    assert.equal(lines[2]!.findings, undefined);
  });
});

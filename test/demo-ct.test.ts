/**
 * The committed demo CT studies (server/sandbox/demo-cohort: dicom/ct, ct/truth.json, written by
 * `frcds.ct.demo`) read as their roles promise when the service's own decoders and CT spine analysis measure them
 * (measure-cli.ts `measureStudy`, what CT-model training uses): normal bone, an osteoporotic L1 below 110 HU, a
 * moderate or severe fracture at its true level, a portal-venous series recognised as such, and the chest CT refused
 * because L1 and L2 are not in the field. Fails, not skips, when the files are missing (they are committed).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { REPO_ROOT } from '../server/config.ts';
import { measureStudy } from '../server/pathways/ct-spine/measure-cli.ts';

interface DemoCtTruth {
  patient_id: string;
  role: string;
  study_instance_uid: string;
  l1_hu_scan: number;
  fractures: { level: string; grade: number }[];
}

const DEMO = join(REPO_ROOT, 'server/sandbox/demo-cohort');
const truth = (JSON.parse(readFileSync(join(DEMO, 'ct', 'truth.json'), 'utf8')) as { patients: DemoCtTruth[] }).patients;
const byRole = new Map(truth.map((t) => [t.role, t]));

async function measured(role: string): Promise<Awaited<ReturnType<typeof measureStudy>>> {
  const t = byRole.get(role);
  assert.ok(t, `the demo has a ${role} CT patient`);
  const m = await measureStudy(join(DEMO, 'dicom', 'ct', t.study_instance_uid), t.study_instance_uid);
  delete m.volume;
  return m;
}

describe('demo CT studies, measured by the service', () => {
  test('normal bone: L1 within 10 HU of the phantom, no fracture of grade 2 or more', async () => {
    const m = await measured('normal');
    assert.ok(m.findings, JSON.stringify(m.refusal));
    assert.equal(m.findings.attenuation?.level, 'L1');
    assert.ok(Math.abs(m.findings.attenuation!.medianHu - byRole.get('normal')!.l1_hu_scan) <= 10);
    assert.ok(m.findings.attenuation!.medianHu > 160);
    assert.ok((m.findings.morphometry ?? []).every((l) => l.grade < 2));
  });

  test('osteoporotic: L1 below the 110 HU threshold, no fracture of grade 2 or more', async () => {
    const m = await measured('osteoporotic');
    assert.ok(m.findings, JSON.stringify(m.refusal));
    assert.ok(m.findings.attenuation!.medianHu < 110, String(m.findings.attenuation!.medianHu));
    assert.ok((m.findings.morphometry ?? []).every((l) => l.grade < 2));
  });

  test('the unreported fracture is found at its level with grade 2 or 3', async () => {
    const t = byRole.get('fracture')!;
    const m = await measured('fracture');
    assert.ok(m.findings, JSON.stringify(m.refusal));
    const level = (m.findings.morphometry ?? []).find((l) => l.level === t.fractures[0]!.level);
    assert.ok(level && level.grade >= 2, JSON.stringify(m.findings.morphometry?.map((l) => [l.level, l.grade])));
  });

  test('portal-venous: the phase is read from the series description', async () => {
    const m = await measured('portal-venous');
    assert.ok(m.findings, JSON.stringify(m.refusal));
    assert.equal(m.findings.attenuation?.phase, 'portal-venous');
  });

  test('the chest CT is refused: L1 and L2 are not in the field', async () => {
    const m = await measured('chest-refused');
    assert.equal(m.findings, undefined);
    assert.equal(m.refusal?.code, 'l1-l2-not-in-field');
  });
});

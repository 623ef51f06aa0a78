/**
 * A moderate or severe vertebral fracture on CT in the FLS: the triage Task is made whatever the tier, is urgent and
 * carries the fracture as its reason; the worklist (against the embedded FHIR sandbox) ranks it first in the risk
 * order and flags the imminent risk with "vertebral fracture on CT, grade N at L1"; a CT without one changes nothing.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Resource, RiskAssessment, Task } from '@medplum/fhirtypes';
import type { FhirDataSource } from '../../server/fhir/client.ts';
import { buildTriageTask, imminentReasonOfTask, maybeCreateTriageTask } from '../../server/fls/triage.ts';
import { RESEARCH_NOTICE } from '../../server/fls/types.ts';
import { Worklist } from '../../server/fls/worklist.ts';
import type { CtAssessmentView } from '../../server/pathways/ct-spine/types.ts';
import type { Assessment } from '../../server/risk/assess.ts';
import { EXT } from '../../server/risk/fhir-output.ts';
import { startDemoStack, type DemoStack } from '../support/demo-stack.ts';

const AT = new Date('2026-11-04T09:00:00Z');

function riskAssessment(id: string, pid: string, hip: number, mof: number, tier: 'low' | 'moderate' | 'high'): RiskAssessment & { id: string } {
  const prediction = (system: string, code: string, p: number): NonNullable<RiskAssessment['prediction']>[number] => ({
    outcome: { coding: [{ system, code }] },
    probabilityDecimal: p,
    whenRange: { low: { value: 0, unit: 'a' }, high: { value: 10, unit: 'a' } },
    qualitativeRisk: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/risk-probability', code: tier }] },
  });
  return {
    resourceType: 'RiskAssessment', id, status: 'final', subject: { reference: `Patient/${pid}` }, occurrenceDateTime: AT.toISOString(),
    extension: [{ url: EXT.mode, valueCode: 'image-and-clinical' }],
    prediction: [prediction('http://snomed.info/sct', '5913000', hip), prediction('urn:frcds:outcome', 'mof', mof)],
    note: [{ text: RESEARCH_NOTICE }],
  };
}

const ct = (worstGrade: 0 | 1 | 2 | 3, worstLevel: string | null): Pick<CtAssessmentView, 'imminentRisk' | 'worstGrade' | 'worstLevel'> => ({ worstGrade, worstLevel, imminentRisk: worstGrade >= 2 });
const withCt = (tier: 'low' | 'moderate' | 'high', view: ReturnType<typeof ct> | null): Pick<Assessment, 'tier'> =>
  ({ tier: { tier, basis: 'fused', rule: '' }, ct: view }) as unknown as Pick<Assessment, 'tier'>;

/** A FHIR source that finds nothing and stores what it is given. */
function emptyFhir(): FhirDataSource & { written: Resource[] } {
  const written: Resource[] = [];
  return {
    baseUrl: 'https://fhir.example.test',
    written,
    read: () => Promise.reject(new Error('not used')),
    search: () => Promise.resolve([]),
    write: <T extends Resource>(r: T) => {
      written.push(r);
      return Promise.resolve(r);
    },
  };
}

describe('triage of a CT fracture', () => {
  test('grade 2 at L1 on a low tier: an urgent Task with the fracture as its reason; grade 1 or no CT: no Task', async () => {
    const ra = riskAssessment('ra-ct-low', 'p-ct', 0.01, 0.06, 'low');
    const fhir = emptyFhir();
    const made = await maybeCreateTriageTask(fhir, { patientId: 'p-ct', riskAssessment: ra, assessment: withCt('low', ct(2, 'L1')) }, { now: () => AT });
    assert.equal(made.reason, 'created');
    const task = fhir.written[0] as Task;
    assert.equal(task.priority, 'urgent');
    assert.equal(task.reasonCode?.text, 'vertebral fracture on CT, grade 2 at L1');
    assert.equal(task.reasonCode?.coding?.[0]?.code, '15724005');
    assert.match(task.description!, /^Vertebral fracture on CT, grade 2 at L1\. FLS review: low fracture-risk tier/);
    assert.equal(imminentReasonOfTask(task), 'vertebral fracture on CT, grade 2 at L1');
    for (const view of [ct(1, 'L1'), ct(0, null), null]) {
      const r = await maybeCreateTriageTask(emptyFhir(), { patientId: 'p-ct', riskAssessment: ra, assessment: withCt('low', view) });
      assert.equal(r.reason, 'tier-not-eligible', JSON.stringify(view));
    }
  });

  test('a high tier without a CT fracture: a routine Task, no reason, no imminent flag from it', () => {
    const t = buildTriageTask('p', riskAssessment('ra-x', 'p', 0.05, 0.25, 'high'), AT);
    assert.equal(t.priority, 'routine');
    assert.equal(t.reasonCode, undefined);
    assert.equal(imminentReasonOfTask(t), undefined);
    assert.equal(imminentReasonOfTask({ priority: 'urgent' }), undefined, 'urgent for another reason is not a CT fracture');
  });
});

describe('worklist with a CT fracture', () => {
  let stack: DemoStack;
  before(async () => {
    stack = await startDemoStack();
  });
  after(async () => {
    await stack?.close();
  });

  test('the CT fracture patient comes first in the risk order with the imminent flag and its reason', async () => {
    const put = async (r: Resource): Promise<void> => {
      const res = await stack.fhir.handle('PUT', `${r.resourceType}/${r.id}`, r);
      assert.ok(res.status < 300, `PUT ${r.resourceType}/${r.id}: ${res.status}`);
    };
    // demo-a-011: moderate risk with a grade 3 T12 fracture on CT; demo-a-012: a higher risk without one.
    const raCt = riskAssessment('ra-ctprio-1', 'demo-a-011', 0.018, 0.14, 'moderate');
    const raHigh = riskAssessment('ra-ctprio-2', 'demo-a-012', 0.09, 0.31, 'high');
    await put(raCt);
    await put(raHigh);
    await put(buildTriageTask('demo-a-011', raCt, AT, undefined, 'vertebral fracture on CT, grade 3 at T12'));
    await put(buildTriageTask('demo-a-012', raHigh, AT));
    const worklist = new Worklist({ fhir: stack.fhirClient({ timeoutMs: 10_000 }), imminentDays: 730, now: () => new Date('2026-11-05T10:00:00Z') });
    const items = (await worklist.list()).filter((i) => i.riskAssessmentId.startsWith('ra-ctprio-'));
    assert.deepEqual(items.map((i) => i.patientId), ['demo-a-011', 'demo-a-012']);
    const [first, second] = items as [(typeof items)[number], (typeof items)[number]];
    assert.equal(first.imminent, true);
    assert.equal(first.imminentReason, 'vertebral fracture on CT, grade 3 at T12');
    assert.match(first.flagReason, /; vertebral fracture on CT, grade 3 at T12$/);
    assert.equal(second.imminentReason, undefined);
    // Lowest risk first puts it last: the fracture is part of the risk order, not a pin.
    const asc = (await worklist.list({ sort: 'risk', dir: 'asc' })).filter((i) => i.riskAssessmentId.startsWith('ra-ctprio-'));
    assert.deepEqual(asc.map((i) => i.patientId), ['demo-a-012', 'demo-a-011']);
  });
});

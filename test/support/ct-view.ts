/**
 * A CT assessment view (`Assessment.ct`, server/pathways/ct-spine/types.ts) as the CT pathway fills it, for tests of
 * what the card, the app and the worklist show before (and without) a CT study being analysed.
 */
import type { CtAssessmentView } from '../../server/pathways/ct-spine/types.ts';

/** The default: L1 96 HU non-contrast, a moderate (grade 2) wedge fracture at L1. */
export function ctView(over: Partial<CtAssessmentView> = {}): CtAssessmentView {
  const level = (label: string, z: number) => ({ label, zBottom: z, zTop: z + 26, truncated: false });
  return {
    seriesUid: '1.2.826.0.1.3680043.10.1.1',
    seriesDescription: 'ABD/PELVIS 1.25mm STND',
    sliceThicknessMm: 1.25,
    slices: 250,
    phase: 'non-contrast',
    levels: [level('L2', 0), level('L1', 30), level('T12', 60), level('T11', 88)],
    attenuation: {
      level: 'L1', medianHu: 96, p25: 84, p75: 108, meanHu: 95.5, sdHu: 18, voxels: 4200, band: 'low (≤ 110 HU)', excluded: [], warnings: [],
      phase: 'non-contrast', adjustedHu: 96, tScore: { estimate: -2.7, low: -3.4, high: -2.0 },
    },
    morphometry: [
      { level: 'L2', ha: 27.1, hm: 26.5, hp: 27.8, ratios: { wedge: 0.97, biconcave: 0.95, crush: null }, heightLoss: 0.05, grade: 0, shape: 'none' },
      { level: 'L1', ha: 17.9, hm: 22.4, hp: 26.9, ratios: { wedge: 0.67, biconcave: 0.83, crush: null }, heightLoss: 0.33, grade: 2, shape: 'wedge' },
      { level: 'T12', ha: 24.6, hm: 24.0, hp: 25.2, ratios: { wedge: 0.98, biconcave: 0.95, crush: null }, heightLoss: 0.05, grade: 0, shape: 'none' },
    ],
    worstGrade: 2,
    worstLevel: 'L1',
    imminentRisk: true,
    inProblemList: false,
    observationIds: ['ct-att-1', 'ct-morph-1'],
    overlays: { sagittal: { width: 256, height: 320 }, axial: { width: 256, height: 256 } },
    ...over,
  };
}

/**
 * The CT spine analysis of one assembled volume: localisation and labelling (`vertebrae.ts`) → L1 trabecular
 * attenuation (`l1-roi.ts`) → mid-sagittal morphometry (`morphometry.ts`) → `CtFindings` (`types.ts`).
 *
 * Rules, in order:
 * 1. Localisation refusals (`no-spine`, `no-labelling-cue`, `l1-l2-not-in-field`) are returned as they are.
 * 2. A level with metal in its body (any voxel > 2500 HU) is excluded from attenuation and morphometry, with the
 *    reason on the level; so is a level cut by the edge of the field.
 * 3. Attenuation: the first usable level of L1, T12, L2 that is neither excluded nor fractured (grade ≥ 1 by rule 4:
 *    compacted trabecular bone reads denser). The contrast phase is handled here, not in `l1-roi.ts`:
 *    adjustedHu = medianHu − the caller's offset for the phase (the model manifest's `phase_offset_hu`; 0 when not
 *    given). A contrast phase without an offset, an unknown phase, or a contrast agent recorded without a phase
 *    each add a plain warning, because contrast raises trabecular HU (≈ 10 HU portal-venous) and the Pickhardt
 *    thresholds were derived without adjustment. No usable level → attenuation null with the reasons as warnings.
 * 4. Morphometry: heights and Genant grade of T11–L4 where present, complete and free of metal (T10 and L5, when
 *    complete, serve only as the crush reference of their neighbours). Slices thicker than 2.5 mm → morphometry
 *    null and a plain warning (the end plates are too blurred for a 20 % height difference).
 * 5. A level whose end plates are not found on the midline is left out of morphometry with a warning.
 * 6. The worst grade and its level (on a tie the lower level); 0 / null when none is measured or fractured.
 * 7. The out-of-distribution gate (`gate.ts`: reference fat, muscle and air, spacing, noise, kVp) at the attenuation
 *    level (else L1, T12, L2, whichever is in the field) is returned as `gate`; it changes no measurement here — the
 *    service decides what a CT outside the gate may be used for.
 */
import type { PathwayRefusal } from '../types.ts';
import { isRefusal } from '../types.ts';
import { DEFAULT_ROI, hasMetal, measureTrabecularHu, type ContrastPhase } from './l1-roi.ts';
import { ctGate } from './gate.ts';
import { DEFAULT_MORPHOMETRY, measureMorphometry } from './morphometry.ts';
import type { CtFindings, CtLevel, CtLevelMorphometry, GenantGrade } from './types.ts';
import { localiseVertebrae } from './vertebrae.ts';
import type { CtVolume } from './volume.ts';

export interface AnalyseOptions {
  phase: ContrastPhase;
  /** Whether the header records a contrast agent (Contrast/Bolus Agent), whatever the phase. */
  phaseRecorded: boolean;
  /** HU that each phase adds at the trabecular ROI (the model manifest's `phase_offset_hu`); missing = 0. */
  phaseOffsetHu?: Partial<Record<ContrastPhase, number>>;
  /** Tube voltage from the header (KVP), when recorded: one of the gate's acquisition checks. */
  kvp?: number;
}

/** The levels whose heights and grade are reported. */
export const MORPHOMETRY_LEVELS: readonly string[] = ['T11', 'T12', 'L1', 'L2', 'L3', 'L4'];

function phaseWarnings(phase: ContrastPhase, recorded: boolean, offset: number): string[] {
  if (phase === 'non-contrast') return [];
  if (phase === 'unknown') {
    return [
      recorded
        ? 'a contrast agent is recorded but not the phase: contrast raises trabecular HU (about 10 HU portal-venous), so the value is not adjusted and a value near a threshold is uncertain'
        : 'contrast phase unknown: contrast raises trabecular HU (about 10 HU portal-venous), so a value near a threshold is uncertain',
    ];
  }
  return offset !== 0
    ? [`${phase} contrast: ${offset.toFixed(1)} HU subtracted to refer the value to a non-contrast scan`]
    : [`${phase} contrast: trabecular HU reads higher than without contrast (about 10 HU portal-venous); value reported unadjusted`];
}

/** Analyses one assembled CT volume; a refusal when the spine cannot be localised and labelled. */
export function analyseCtVolume(vol: CtVolume, opts: AnalyseOptions): CtFindings | PathwayRefusal {
  const loc = localiseVertebrae(vol);
  if (isRefusal(loc)) return loc;
  const warnings = [...loc.warnings];

  const metal = new Set(loc.vertebrae.filter((v) => !v.truncated && hasMetal(vol, loc, v, DEFAULT_ROI.metalHu)).map((v) => v.label));
  const levels: CtLevel[] = loc.vertebrae.map((v) => ({
    label: v.label,
    zBottom: v.zBottom,
    zTop: v.zTop,
    truncated: v.truncated,
    ...(v.truncated ? { excluded: 'only partly in the field of view' } : metal.has(v.label) ? { excluded: `metal (> ${DEFAULT_ROI.metalHu} HU) in the vertebral body` } : {}),
  }));

  const measured = measureMorphometry(vol, loc, { ...DEFAULT_MORPHOMETRY, exclude: [...metal] });
  let morphometry: CtLevelMorphometry[] | null = null;
  if (isRefusal(measured)) warnings.push(`no vertebral heights or fracture grades: ${measured.reason}`);
  else {
    morphometry = [];
    for (const m of measured.filter((x) => MORPHOMETRY_LEVELS.includes(x.level))) {
      if (Number.isFinite(m.heightLoss)) morphometry.push(m);
      else warnings.push(`${m.level}: the end plates were not found on the midline, so its heights are not measured`);
    }
  }

  // A compressed vertebra's trabecular bone is compacted and reads denser than its neighbours, so a fractured
  // level is not used for attenuation; the next of L1, T12, L2 is (Pickhardt et al. measure an adjacent level).
  const fractured = (morphometry ?? []).filter((m) => m.grade >= 1).map((m) => m.level);
  // Phase warnings are composed here (with the offset), so the ROI is asked as if non-contrast.
  const roi = measureTrabecularHu(vol, loc, { phase: 'non-contrast', exclude: [...metal, ...fractured] });
  let attenuation: CtFindings['attenuation'] = null;
  if (isRefusal(roi)) {
    warnings.push(`no trabecular attenuation: ${roi.reason} (${roi.excluded.map((e) => `${e.level}: ${e.reason}`).join('; ')})`);
  } else {
    const offset = opts.phaseOffsetHu?.[opts.phase] ?? 0;
    const skipped = fractured.filter((l) => DEFAULT_ROI.order.indexOf(l) >= 0 && DEFAULT_ROI.order.indexOf(l) < DEFAULT_ROI.order.indexOf(roi.level));
    // The ROI's own "L1 was not usable" says where, this says why.
    const roiWarnings = skipped.length ? roi.warnings.filter((w) => !/was not usable/.test(w)) : roi.warnings;
    if (skipped.length) warnings.push(`${skipped.join(' and ')} not used for attenuation: a compression fracture makes trabecular bone read denser; ${roi.level} was measured instead`);
    warnings.push(...roiWarnings, ...phaseWarnings(opts.phase, opts.phaseRecorded, offset));
    attenuation = { ...roi, warnings: [...roi.warnings], phase: opts.phase, adjustedHu: roi.medianHu - offset };
  }

  let worstGrade: GenantGrade = 0;
  let worstLevel: string | null = null;
  for (const m of morphometry ?? []) {
    // morphometry is inferior → superior, so on a tie the lower level is kept
    if (m.grade > worstGrade) {
      worstGrade = m.grade;
      worstLevel = m.level;
    }
  }
  const gateLevel = [attenuation?.level, ...DEFAULT_ROI.order].map((l) => loc.vertebrae.find((v) => v.label === l && !v.truncated)).find((v) => v !== undefined);
  const gate = gateLevel
    ? ctGate(vol, { sliceFrom: gateLevel.sliceFrom, sliceTo: gateLevel.sliceTo, box: loc.box, midlineColumn: loc.midlineColumn, level: gateLevel.label }, opts.kvp !== undefined ? { kvp: opts.kvp } : {})
    : undefined;
  return { pathway: 'ct-spine', levels, attenuation, morphometry, worstGrade, worstLevel, geometry: { midlineColumn: loc.midlineColumn, box: loc.box }, warnings, ...(gate ? { gate } : {}) };
}

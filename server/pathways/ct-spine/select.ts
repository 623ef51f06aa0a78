/**
 * Choosing the CT series the spine pathway reads, from WADO-RS series metadata (DICOM JSON, one dataset per
 * instance; an Enhanced CT series is one multi-frame instance whose geometry sits in the functional groups).
 *
 * The rule, in order (each series is checked against every step; the first failed step is its reason):
 * 1. Modality CT and a CT image SOP class (CT Image Storage or Enhanced CT) when the SOP class is given.
 * 2. Not a localizer: ImageType value 3 `LOCALIZER` (scout/topogram) is rejected.
 * 3. Body part, when Body Part Examined is present, is one that contains T11–L4 (spine, chest, abdomen and their
 *    combinations); a missing body part is accepted with a warning (many scanners leave it empty).
 * 4. Axial: the slice normal (row × column direction) within 15° of the patient's head–foot axis.
 * 5. Slice thickness ≤ 5 mm (SliceThickness; when absent, the spacing of slice positions stands in, with a warning).
 * 6. Enough slices: at least `minSlices` and a covered length ≥ `minCoverageMm` (three vertebrae ≈ 90 mm).
 * Among the series that pass, the choice is: thinnest slices first; then a soft/standard reconstruction kernel
 * before an unknown one before a sharp (bone/lung) one, because sharp kernels add noise and edge overshoot to
 * trabecular HU; then ORIGINAL before DERIVED images; then more slices.
 * When none passes, the refusal carries the reason of the series that got furthest through the rule.
 */
import { jsonNumber, jsonNumbers, jsonString, jsonStrings, TAG, type DicomJsonDataset } from '../../imaging/dicom-json.ts';
import type { PathwayRefusal } from '../types.ts';
import { CT_IMAGE_STORAGE, CT_TAG, ENHANCED_CT_IMAGE_STORAGE } from './dicom-tags.ts';

export const CT_SPINE_PATHWAY = 'ct-spine';

/** One series as the PACS describes it: its UID and the metadata of its instances. */
export interface CtSeriesMetadata {
  seriesInstanceUid: string;
  instances: DicomJsonDataset[];
}

/** Ordered as the rule checks them: a later code means the series got further. */
export const SELECTION_REFUSALS = ['no-series', 'not-ct', 'localizer-only', 'wrong-body-part', 'non-axial', 'too-thick', 'too-few-slices'] as const;
export type SelectionRefusalCode = (typeof SELECTION_REFUSALS)[number];

export interface SelectionOptions {
  maxThicknessMm: number;
  minSlices: number;
  minCoverageMm: number;
  /** Largest angle between the slice normal and the head–foot axis still called axial. */
  maxObliquityDeg: number;
}

export const DEFAULT_SELECTION: SelectionOptions = { maxThicknessMm: 5, minSlices: 20, minCoverageMm: 90, maxObliquityDeg: 15 };

/** Body Part Examined values (upper case, as scanners write them) whose field can hold T11–L4. */
const SPINE_BODY_PARTS = new Set([
  'SPINE', 'TSPINE', 'LSPINE', 'TLSPINE', 'WHOLESPINE', 'CHEST', 'ABDOMEN', 'CHESTABDOMEN', 'ABDOMENPELVIS', 'CHESTABDPELVIS',
  'CAP', 'THORAXABDOMEN', 'TORSO', 'WHOLEBODY', 'TRUNK', 'THORAX',
]);

export type KernelClass = 'soft' | 'unknown' | 'sharp';

/**
 * Vendor kernel names → soft/standard vs sharp. Siemens B/Br/I/Q + two digits (≤ 45 soft), GE STANDARD/SOFT vs
 * BONE/LUNG/EDGE, Philips A/B/C vs D/E/L/YA-YC, Canon FC01–FC18 vs FC30+; anything else is unknown.
 */
export function kernelClass(kernel: string | undefined): KernelClass {
  if (!kernel) return 'unknown';
  const k = kernel.toUpperCase().trim();
  if (/BONE|LUNG|EDGE|SHARP|DETAIL|ULTRA/.test(k)) return 'sharp';
  if (/STANDARD|SOFT|SMOOTH|BODY|ABDOMEN/.test(k)) return 'soft';
  const siemens = /^(?:B|BR|BF|I|J|Q|HR)(\d{2})/.exec(k);
  if (siemens) return Number(siemens[1]) <= 45 ? 'soft' : 'sharp';
  const canon = /^FC(\d{1,2})$/.exec(k);
  if (canon) return Number(canon[1]) <= 18 ? 'soft' : 'sharp';
  if (/^[ABC]$/.test(k)) return 'soft';
  if (/^(?:D|E|L|Y[A-D])$/.test(k)) return 'sharp';
  return 'unknown';
}

export interface SeriesAssessment {
  seriesInstanceUid: string;
  ok: boolean;
  code?: SelectionRefusalCode;
  reason?: string;
  slices: number;
  thicknessMm?: number;
  coverageMm?: number;
  kernel: KernelClass;
  original: boolean;
  warnings: string[];
}

export interface SelectedSeries {
  seriesInstanceUid: string;
  thicknessMm: number;
  slices: number;
  coverageMm: number;
  kernel: KernelClass;
  warnings: string[];
  /** Every series with its verdict, for the audit log. */
  assessed: SeriesAssessment[];
}

export interface SelectionRefusal extends PathwayRefusal<SelectionRefusalCode> {
  assessed: SeriesAssessment[];
}

function item(ds: DicomJsonDataset | undefined, tag: string): DicomJsonDataset | undefined {
  const v = ds?.[tag]?.Value?.[0];
  return typeof v === 'object' && v !== null && !('Alphabetic' in v) ? (v as DicomJsonDataset) : undefined;
}

/** Attribute from the dataset, else from the Enhanced CT shared functional groups (`group` sequence). */
function geometry(ds: DicomJsonDataset, tag: string, group: string): number[] | undefined {
  const direct = jsonNumbers(ds, tag);
  if (direct) return direct;
  const shared = item(item(ds, CT_TAG.SharedFunctionalGroupsSequence), group);
  const fromShared = shared && jsonNumbers(shared, tag);
  if (fromShared) return fromShared;
  const perFrame = item(item(ds, CT_TAG.PerFrameFunctionalGroupsSequence), group);
  return perFrame && jsonNumbers(perFrame, tag);
}

/** Slice normal (row × column cosines), unit length, or undefined when the orientation is absent or degenerate. */
export function sliceNormal(iop: readonly number[] | undefined): [number, number, number] | undefined {
  if (!iop || iop.length < 6) return undefined;
  const [a, b, c, d, e, f] = iop as [number, number, number, number, number, number];
  const n: [number, number, number] = [b * f - c * e, c * d - a * f, a * e - b * d];
  const len = Math.hypot(...n);
  return len > 0.5 ? [n[0] / len, n[1] / len, n[2] / len] : undefined;
}

function median(xs: number[]): number {
  const s = [...xs].sort((p, q) => p - q);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export function assessSeries(series: CtSeriesMetadata, opts: SelectionOptions = DEFAULT_SELECTION): SeriesAssessment {
  const first = series.instances[0];
  const warnings: string[] = [];
  const base = { seriesInstanceUid: series.seriesInstanceUid, warnings, kernel: 'unknown' as KernelClass, original: false };
  if (!first) return { ...base, ok: false, code: 'no-series', reason: 'the series has no instances', slices: 0 };
  const sop = jsonString(first, TAG.SOPClassUID);
  const enhanced = sop === ENHANCED_CT_IMAGE_STORAGE;
  const slices = enhanced ? series.instances.reduce((n, ds) => n + (jsonNumber(ds, TAG.NumberOfFrames) ?? 1), 0) : series.instances.length;
  const out = { ...base, slices, kernel: kernelClass(jsonString(first, CT_TAG.ConvolutionKernel)) };
  const imageType = jsonStrings(first, CT_TAG.ImageType).map((s) => s.toUpperCase());
  out.original = imageType[0] === 'ORIGINAL';
  const fail = (code: SelectionRefusalCode, reason: string, extra: Partial<SeriesAssessment> = {}): SeriesAssessment => ({ ...out, ...extra, ok: false, code, reason });

  const modality = jsonString(first, TAG.Modality)?.toUpperCase();
  if (modality !== 'CT') return fail('not-ct', `the series is ${modality ?? 'of unknown modality'}, not CT`);
  if (sop !== undefined && sop !== CT_IMAGE_STORAGE && sop !== ENHANCED_CT_IMAGE_STORAGE) return fail('not-ct', 'the series is not stored as CT images (e.g. a secondary capture or a report)');
  if (imageType.includes('LOCALIZER')) return fail('localizer-only', 'the series is a localizer (scout) image');
  const body = jsonString(first, TAG.BodyPartExamined)?.toUpperCase().replace(/[\s_-]/g, '');
  if (body === undefined) warnings.push('body part not recorded; the field of view is checked from the images');
  else if (!SPINE_BODY_PARTS.has(body)) return fail('wrong-body-part', `the body part examined (${body}) does not contain the thoracolumbar spine`);

  const normal = sliceNormal(geometry(first, CT_TAG.ImageOrientationPatient, CT_TAG.PlaneOrientationSequence));
  if (!normal) return fail('non-axial', 'the slice orientation is not recorded');
  const obliquity = (Math.acos(Math.min(1, Math.abs(normal[2]))) * 180) / Math.PI;
  if (obliquity > opts.maxObliquityDeg) return fail('non-axial', `the slices are not axial (${obliquity.toFixed(0)}° from axial; a sagittal or coronal reformat?)`);

  // Positions along the normal give the spacing (and the coverage); Enhanced CT with one instance has no per-instance positions.
  const positions = series.instances
    .map((ds) => geometry(ds, CT_TAG.ImagePositionPatient, CT_TAG.PlanePositionSequence))
    .filter((p): p is number[] => p !== undefined && p.length >= 3)
    .map((p) => p[0]! * normal[0] + p[1]! * normal[1] + p[2]! * normal[2])
    .sort((p, q) => p - q);
  const steps = positions.slice(1).map((p, i) => p - positions[i]!).filter((d) => d > 1e-3);
  const spacing = steps.length ? median(steps) : undefined;
  let thickness = geometry(first, CT_TAG.SliceThickness, CT_TAG.PixelMeasuresSequence)?.[0];
  if (thickness === undefined || !(thickness > 0)) {
    thickness = spacing;
    if (thickness !== undefined) warnings.push('slice thickness not recorded; the spacing of slice positions is used');
  }
  if (thickness === undefined) return fail('too-thick', 'neither the slice thickness nor the slice positions are recorded');
  if (thickness > opts.maxThicknessMm) return fail('too-thick', `the slices are ${thickness} mm thick (at most ${opts.maxThicknessMm} mm)`, { thicknessMm: thickness });
  const coverage = slices * (spacing ?? thickness);
  if (slices < opts.minSlices || coverage < opts.minCoverageMm) {
    return fail('too-few-slices', `the series covers ${coverage.toFixed(0)} mm in ${slices} slices (needs ${opts.minCoverageMm} mm and ${opts.minSlices} slices)`, { thicknessMm: thickness, coverageMm: coverage });
  }
  return { ...out, ok: true, thicknessMm: thickness, coverageMm: coverage };
}

const KERNEL_RANK: Record<KernelClass, number> = { soft: 0, unknown: 1, sharp: 2 };

/** The series the pathway reads (see the rule above), or a typed refusal saying why none fits. */
export function selectCtSeries(series: readonly CtSeriesMetadata[], opts: SelectionOptions = DEFAULT_SELECTION): SelectedSeries | SelectionRefusal {
  const assessed = series.map((s) => assessSeries(s, opts));
  const ok = assessed.filter((a) => a.ok);
  if (ok.length === 0) {
    const furthest = assessed.reduce<SeriesAssessment | undefined>(
      (best, a) => (!best || SELECTION_REFUSALS.indexOf(a.code!) > SELECTION_REFUSALS.indexOf(best.code!) ? a : best),
      undefined,
    );
    return {
      refused: true,
      pathway: CT_SPINE_PATHWAY,
      code: furthest?.code ?? 'no-series',
      reason: furthest?.reason ?? 'the study has no series',
      assessed,
    };
  }
  ok.sort(
    (a, b) =>
      a.thicknessMm! - b.thicknessMm! ||
      KERNEL_RANK[a.kernel] - KERNEL_RANK[b.kernel] ||
      Number(b.original) - Number(a.original) ||
      b.slices - a.slices,
  );
  const best = ok[0]!;
  return {
    seriesInstanceUid: best.seriesInstanceUid,
    thicknessMm: best.thicknessMm!,
    slices: best.slices,
    coverageMm: best.coverageMm!,
    kernel: best.kernel,
    warnings: best.warnings,
    assessed,
  };
}

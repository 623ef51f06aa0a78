/**
 * The CT spine pathway in the service: an ImagingStudy → DICOMweb → `CtFindings` and the two overlay pictures.
 *
 * Eligible studies ({@link ctEligible}): not cancelled or entered in error, with a DICOM Study Instance UID, with a
 * CT series (ImagingStudy.series.modality CT, or the study's `modality` listing CT), and a body site that can hold
 * T11–L4 (chest, abdomen, spine, trunk and their combinations by SNOMED CT code or by words) or none recorded.
 *
 * Reading one study ({@link readCtStudy}), in order; anything unsuitable is a typed refusal, never an exception:
 * 1. QIDO-RS: the study's series; only CT series are read further.
 * 2. WADO-RS series metadata (one dataset per instance). The Patient ID of EVERY instance of every series read is
 *    checked against the chart (server/imaging/identity.ts) before any pixel is fetched: one instance of another
 *    patient refuses the whole study (`patient-mismatch`, which the caller reports as a security event).
 * 3. `selectCtSeries` (select.ts): CT, not a localizer, axial, ≤ 5 mm, enough coverage; its refusal passes through.
 * 4. The fetch plan (volume.ts `planSlices`): which instances (frames for an Enhanced CT) are fetched, checked for
 *    duplicates and gaps before anything is fetched. Today that is every slice of the series: labelling needs the
 *    ribs, and neither the positions nor the localizer say where T10–L5 lie before the volume is analysed.
 * 5. Frames fetched with BOUNDED parallelism (`concurrency`, default 6) through the DicomWebClient (its allow-list,
 *    size caps and time-outs stay in force) and decoded by the imaging executor (worker pool). The HU volume is
 *    allocated first; each frame, once decoded, is written into it and dropped (encoded and decoded parts of at most
 *    `concurrency` frames exist beside the volume), and the volume is dropped once analysis and overlays are done.
 * 6. `analyseCtVolume` (analyse.ts) with the model's phase offsets; the overlays by the caller's renderer
 *    (`renderCtOverlays`, overlay.ts, in the service) while the volume is still held.
 * @see https://dicom.nema.org/medical/dicom/current/output/chtml/part18/sect_10.4.html (WADO-RS)
 */
import type { ImagingStudy, Patient } from '@medplum/fhirtypes';
import { jsonNumber, jsonNumbers, jsonString, TAG, type DicomJsonDataset } from '../../imaging/dicom-json.ts';
import type { DicomWebClient } from '../../imaging/dicomweb-client.ts';
import { ImagingError } from '../../imaging/errors.ts';
import { checkImageIdentity } from '../../imaging/identity.ts';
import { fetchFrame } from '../../imaging/retrieve.ts';
import { pixelModuleFromJson, type PixelModule } from '../../imaging/pixel-module.ts';
import { maskStored } from '../../imaging/pixels.ts';
import { studyUidOf, type ImagingStudyLike } from '../../imaging/select.ts';
import type { ImagingExecutor } from '../../imaging/worker-pool.ts';
import type { Logger } from '../../logging.ts';
import { isRefusal, type ImagingPathway, type PathwayRefusal } from '../types.ts';
import { analyseCtVolume } from './analyse.ts';
import { CT_TAG, ENHANCED_CT_IMAGE_STORAGE } from './dicom-tags.ts';
import { contrastPhaseOf, contrastRecorded, type ContrastPhase } from './l1-roi.ts';
import { CT_SPINE_PATHWAY, selectCtSeries, sliceNormal, type CtSeriesMetadata } from './select.ts';
import type { CtFindings } from './types.ts';
import { DEFAULT_VOLUME, planSlices, VolumeError, type CtSlice, type CtVolume } from './volume.ts';

/** Pixel Value Transformation Sequence (0028,9145): an Enhanced CT frame's rescale. */
const PIXEL_VALUE_TRANSFORMATION_SEQUENCE = '00289145';

/** Default number of frames fetched at once. */
export const CT_FETCH_CONCURRENCY = 6;

/** SNOMED CT body structures whose field can hold T11–L4 (chest, abdomen, spine, trunk and combinations). */
export const CT_SPINE_BODY_SITES: readonly string[] = [
  '51185008', // Thoracic structure (chest)
  '43799004', // Thorax
  '113345001', // Abdominal structure
  '818981001', // Abdomen
  '818982008', // Thorax and abdomen
  '416550000', // Chest and abdomen
  '416775004', // Chest, abdomen and pelvis
  '421060004', // Spine
  '280717001', // Vertebral column
  '122496007', // Lumbar spine
  '122495006', // Thoracic spine
  '297171002', // Thoracolumbar spine
  '22943007', // Trunk
  '38266002', // Entire body
];
const SITE_WORDS = /chest|thora|abdom|spine|spinal|lumbar|vertebr|trunk|torso|whole ?body/i;
const SNOMED = 'http://snomed.info/sct';

/** Whether the ImagingStudy can be read by this pathway (header). */
export function ctEligible(study: ImagingStudy): boolean {
  if (study.status === 'cancelled' || study.status === 'entered-in-error') return false;
  if (!studyUidOf(study as ImagingStudyLike)) return false;
  const ct = (c: { code?: string } | undefined) => (c?.code ?? '').toUpperCase() === 'CT';
  const series = study.series ?? [];
  const ctSeries = series.filter((s) => ct(s.modality));
  if (ctSeries.length === 0 && !(series.length === 0 && (study.modality ?? []).some(ct))) return false;
  const siteOk = (site: { system?: string; code?: string; display?: string } | undefined): boolean => {
    if (!site || (!site.code && !site.display)) return true;
    if (site.system === SNOMED && site.code && CT_SPINE_BODY_SITES.includes(site.code)) return true;
    return !!site.display && SITE_WORDS.test(site.display);
  };
  return ctSeries.length === 0 || ctSeries.some((s) => siteOk(s.bodySite));
}

export type CtReadRefusalCode =
  | 'no-study-uid'
  | 'patient-mismatch'
  | 'fetch-failed'
  | 'volume'
  | (string & {});

/** A refusal of the pathway; `mismatch` says why an identity check failed (for the security event). */
export interface CtReadRefusal extends PathwayRefusal<CtReadRefusalCode> {
  mismatch?: 'no-patient-id' | 'mismatch' | 'issuer-mismatch';
}

export interface CtOverlayPng {
  png: Buffer;
  width: number;
  height: number;
}

export interface CtStudyRead {
  studyUid: string;
  series: { uid: string; description: string | null; thicknessMm: number; slices: number; phase: ContrastPhase };
  findings: CtFindings;
  overlays: { sagittal: CtOverlayPng; axial: CtOverlayPng } | null;
  /** Series-selection warnings (e.g. body part not recorded), in plain words. */
  warnings: string[];
  /** `fetchMs`: frames fetched, decoded and written into the HU volume. */
  timings: { metadataMs: number; fetchMs: number; analyseMs: number; overlayMs: number; frames: number };
}

export interface CtReadDeps {
  dicomweb: DicomWebClient;
  imaging: ImagingExecutor;
  /** The chart's Patient: every instance's Patient ID is checked against its identifiers. */
  patient: Pick<Patient, 'identifier'>;
  identitySystems?: readonly string[];
  /** HU each contrast phase adds at the trabecular ROI (the CT model manifest's `phase_offset_hu`). */
  phaseOffsetHu?: Partial<Record<ContrastPhase, number>>;
  /** Draws the sagittal and axial overlays (overlay.ts `renderCtOverlays` in the service); null: none drawn. */
  renderOverlays: ((vol: CtVolume, findings: CtFindings) => { sagittal: CtOverlayPng; axial: CtOverlayPng }) | null;
  /** Frames fetched at once (default {@link CT_FETCH_CONCURRENCY}). */
  concurrency?: number;
  signal?: AbortSignal;
  logger?: Logger;
}

const refuse = (code: CtReadRefusalCode, reason: string, extra: Partial<CtReadRefusal> = {}): CtReadRefusal => ({ refused: true, pathway: CT_SPINE_PATHWAY, code, reason, ...extra });

/** One frame to fetch: the instance, the 1-based frame number and its geometry. */
interface FramePlan {
  sopUid: string;
  frame: number;
  metadata: DicomJsonDataset;
  position: number[];
  orientation: number[];
}

function sequenceItems(ds: DicomJsonDataset | undefined, tag: string): DicomJsonDataset[] {
  return (ds?.[tag]?.Value ?? []).filter((v): v is DicomJsonDataset => typeof v === 'object' && v !== null && !('Alphabetic' in v));
}

/** Attribute of a functional group: per frame first, then shared (Enhanced CT, PS3.3 C.7.6.16). */
function groupValue(ds: DicomJsonDataset, frameIndex: number, group: string, tag: string): number[] | undefined {
  const perFrame = sequenceItems(ds, CT_TAG.PerFrameFunctionalGroupsSequence)[frameIndex];
  const shared = sequenceItems(ds, CT_TAG.SharedFunctionalGroupsSequence)[0];
  for (const g of [perFrame, shared]) {
    const v = sequenceItems(g, group)[0];
    const n = v && jsonNumbers(v, tag);
    if (n) return n;
  }
  return undefined;
}

/** Every frame of the series with its position and orientation; frames without geometry are left out. */
function framesOf(series: CtSeriesMetadata): FramePlan[] {
  const out: FramePlan[] = [];
  for (const ds of series.instances) {
    const sopUid = jsonString(ds, TAG.SOPInstanceUID);
    if (!sopUid) continue;
    if (jsonString(ds, TAG.SOPClassUID) === ENHANCED_CT_IMAGE_STORAGE) {
      const n = jsonNumber(ds, TAG.NumberOfFrames) ?? 1;
      for (let f = 0; f < n; f++) {
        const position = groupValue(ds, f, CT_TAG.PlanePositionSequence, CT_TAG.ImagePositionPatient);
        const orientation = groupValue(ds, f, CT_TAG.PlaneOrientationSequence, CT_TAG.ImageOrientationPatient);
        if (position && orientation) out.push({ sopUid, frame: f + 1, metadata: ds, position, orientation });
      }
    } else {
      const position = jsonNumbers(ds, CT_TAG.ImagePositionPatient);
      const orientation = jsonNumbers(ds, CT_TAG.ImageOrientationPatient);
      if (position && orientation) out.push({ sopUid, frame: 1, metadata: ds, position, orientation });
    }
  }
  return out;
}

/**
 * The HU volume of the planned frames (in plan order: inferior → superior), allocated once before any pixel arrives,
 * so each decoded slice is written into it and dropped at once: slices and volume are never held together (for a
 * 512² × 250 series that is 125 MB of stored values less at the peak). The geometry checks are `assembleVolume`'s
 * (volume.ts): one orientation, matrix size and pixel spacing; duplicates and gaps were refused by `planSlices`.
 */
function emptyVolume(frames: readonly FramePlan[], plan: readonly number[], firstMetadata: DicomJsonDataset): CtVolume {
  const pm = pixelModuleFromJson(firstMetadata);
  const ps = pm.pixelSpacingMm;
  if (!ps) throw new VolumeError('inconsistent-spacing', 'the pixel spacing is not recorded');
  const orientation = frames[plan[0]!]!.orientation;
  const normal = sliceNormal(orientation)!;
  const sign = Math.sign(normal[2]) || 1;
  const z = Float64Array.from(plan, (k) => {
    const p = frames[k]!.position;
    return sign * (p[0]! * normal[0] + p[1]! * normal[1] + p[2]! * normal[2]) + 0;
  });
  const steps = Array.from(z.subarray(1), (v, i) => v - z[i]!).sort((a, b) => a - b);
  const step = steps.length ? steps[steps.length >> 1]! : 0;
  return {
    rows: pm.rows,
    columns: pm.columns,
    slices: plan.length,
    spacing: { row: ps[0], column: ps[1], slice: step },
    orientation,
    z,
    rowsGoPosterior: orientation[4]! >= 0,
    hu: new Float32Array(pm.rows * pm.columns * plan.length),
  };
}

/** Writes decoded slice `index` into the volume as HU (masking + modality LUT), after the geometry checks. */
function putSlice(vol: CtVolume, index: number, s: CtSlice): void {
  const tol = DEFAULT_VOLUME;
  if (s.orientation.length < 6 || s.orientation.some((v, i) => Math.abs(v - vol.orientation[i]!) > tol.orientationTolerance)) {
    throw new VolumeError('inconsistent-orientation', 'the slices do not share one orientation');
  }
  if (s.pm.rows !== vol.rows || s.pm.columns !== vol.columns) throw new VolumeError('inconsistent-size', `slices of ${vol.rows}×${vol.columns} and ${s.pm.rows}×${s.pm.columns}`);
  const p = s.pm.pixelSpacingMm;
  if (!p || Math.abs(p[0] - vol.spacing.row) > tol.spacingTolerance * vol.spacing.row || Math.abs(p[1] - vol.spacing.column) > tol.spacingTolerance * vol.spacing.column) {
    throw new VolumeError('inconsistent-spacing', 'the slices do not share one pixel spacing');
  }
  const n = vol.rows * vol.columns;
  if (s.stored.length < n) throw new VolumeError('inconsistent-size', 'a slice has fewer pixels than its header says');
  const v = maskStored(s.stored, s.pm as PixelModule);
  const { rescaleSlope: m, rescaleIntercept: b } = s.pm;
  const off = index * n;
  for (let j = 0; j < n; j++) vol.hu[off + j] = v[j]! * m + b;
}

/** Runs `fn` over `items` with at most `limit` calls in flight; the first failure stops new calls and rejects. */
async function mapBounded<T, R>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<R>, signal?: AbortSignal): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  let failed = false;
  const worker = async (): Promise<void> => {
    while (!failed && next < items.length) {
      signal?.throwIfAborted();
      const i = next++;
      try {
        out[i] = await fn(items[i]!, i);
      } catch (e) {
        failed = true;
        throw e;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  return out;
}

/**
 * The pixel module of one frame of an Enhanced CT: Pixel Spacing (Pixel Measures) and Rescale Slope / Intercept (Pixel
 * Value Transformation) live in the functional groups there, not at the top level where the imaging layer reads
 * them. Single-frame CT metadata is returned as it is.
 */
function withFrameGroups(ds: DicomJsonDataset, frameIndex: number): DicomJsonDataset {
  if (jsonString(ds, TAG.SOPClassUID) !== ENHANCED_CT_IMAGE_STORAGE) return ds;
  const out: DicomJsonDataset = { ...ds };
  const ps = groupValue(ds, frameIndex, CT_TAG.PixelMeasuresSequence, TAG.PixelSpacing);
  if (ps && !jsonNumbers(ds, TAG.PixelSpacing)) out[TAG.PixelSpacing] = { vr: 'DS', Value: ps };
  for (const tag of [TAG.RescaleIntercept, TAG.RescaleSlope]) {
    const v = groupValue(ds, frameIndex, PIXEL_VALUE_TRANSFORMATION_SEQUENCE, tag);
    if (v && jsonNumber(ds, tag) === undefined) out[tag] = { vr: 'DS', Value: v };
  }
  return out;
}

/**
 * Reads one CT study (header). Throws only when `signal` aborts; every problem with the study or the PACS is a
 * {@link CtReadRefusal} with a plain reason (no UIDs, no PHI).
 */
export async function readCtStudy(deps: CtReadDeps, study: ImagingStudy): Promise<CtStudyRead | CtReadRefusal> {
  const studyUid = studyUidOf(study as ImagingStudyLike);
  if (!studyUid) return refuse('no-study-uid', 'the imaging study has no DICOM Study Instance UID');
  const call = deps.signal ? { signal: deps.signal } : {};
  const log = deps.logger?.child({ pathway: CT_SPINE_PATHWAY });
  const t0 = performance.now();
  let seriesMeta: CtSeriesMetadata[];
  try {
    const listed = await deps.dicomweb.searchSeries(studyUid, {}, call);
    const uids = listed
      .filter((s) => (jsonString(s, TAG.Modality) ?? 'CT').toUpperCase() === 'CT')
      .map((s) => jsonString(s, TAG.SeriesInstanceUID))
      .filter((u): u is string => !!u);
    if (uids.length === 0) {
      const other = listed.map((s) => jsonString(s, TAG.Modality)).filter((m): m is string => !!m);
      return refuse('not-ct', other.length ? `the study holds no CT series (${[...new Set(other)].join(', ')})` : 'the PACS lists no series for the study');
    }
    seriesMeta = [];
    for (const uid of uids) seriesMeta.push({ seriesInstanceUid: uid, instances: await deps.dicomweb.retrieveMetadata(studyUid, uid, undefined, call) });
  } catch (e) {
    if (!(e instanceof ImagingError)) throw e;
    log?.warn({ code: e.code, detail: e.message }, 'CT study metadata could not be read');
    return refuse('fetch-failed', `the CT study could not be read from the PACS (${e.userMessage})`);
  }
  // Before any pixel: every instance must be this patient's.
  for (const s of seriesMeta) {
    for (const ds of s.instances) {
      const v = checkImageIdentity(ds, deps.patient, { systems: deps.identitySystems ?? [] });
      if (!v.match) {
        log?.warn({ reason: v.reason, instances: s.instances.length }, 'CT instance identity check failed; study not used');
        return refuse(
          'patient-mismatch',
          v.reason === 'no-patient-id' ? 'an image of the CT study carries no DICOM Patient ID, so the study cannot be matched to the patient' : 'an image of the CT study belongs to another patient (its DICOM Patient ID does not match the chart)',
          { mismatch: v.reason },
        );
      }
    }
  }
  const metadataMs = performance.now() - t0;
  const sel = selectCtSeries(seriesMeta);
  if (isRefusal(sel)) return refuse(sel.code, sel.reason);
  const series = seriesMeta.find((s) => s.seriesInstanceUid === sel.seriesInstanceUid)!;
  const first = series.instances[0]!;
  const phase = contrastPhaseOf(first);

  const frames = framesOf(series);
  let plan: number[];
  try {
    plan = planSlices(frames, { from: -Infinity, to: Infinity }, 0);
  } catch (e) {
    if (!(e instanceof VolumeError)) throw e;
    return refuse('volume', `the CT slices do not form one regular stack (${e.message})`);
  }
  const t1 = performance.now();
  let volume: CtVolume | null;
  try {
    const vol = emptyVolume(frames, plan, withFrameGroups(frames[plan[0]!]!.metadata, frames[plan[0]!]!.frame - 1));
    await mapBounded(plan, deps.concurrency ?? CT_FETCH_CONCURRENCY, async (k, i) => {
      const f = frames[k]!;
      const metadata = withFrameGroups(f.metadata, f.frame - 1);
      const got = await fetchFrame(deps.dicomweb, { studyUid, seriesUid: series.seriesInstanceUid, sopUid: f.sopUid }, { metadata, frame: f.frame, imaging: deps.imaging, ...call });
      putSlice(vol, i, { pm: got.pixelModule, stored: got.stored, position: f.position, orientation: f.orientation });
    }, deps.signal);
    volume = vol;
  } catch (e) {
    if (e instanceof VolumeError) return refuse('volume', `the CT slices do not form one regular stack (${e.message})`);
    if (!(e instanceof ImagingError)) throw e;
    log?.warn({ code: e.code, detail: e.message }, 'CT frames could not be fetched or decoded');
    return refuse('fetch-failed', `the CT images could not be used (${e.userMessage})`);
  }
  const t3 = performance.now();
  const kvp = jsonNumber(first, CT_TAG.KVP);
  const findings = analyseCtVolume(volume, { phase, phaseRecorded: contrastRecorded(first), ...(deps.phaseOffsetHu ? { phaseOffsetHu: deps.phaseOffsetHu } : {}), ...(kvp !== undefined ? { kvp } : {}) });
  const t4 = performance.now();
  if (isRefusal(findings)) {
    log?.info({ code: findings.code }, 'CT analysis refused the study');
    return refuse(findings.code, findings.reason);
  }
  const overlays = deps.renderOverlays ? deps.renderOverlays(volume, findings) : null;
  volume = null;
  const t5 = performance.now();
  const description = jsonString(first, TAG.SeriesDescription) ?? null;
  log?.info({ slices: plan.length, thicknessMm: sel.thicknessMm, worstGrade: findings.worstGrade, ms: Math.round(t5 - t0) }, 'CT study analysed');
  return {
    studyUid,
    series: { uid: sel.seriesInstanceUid, description, thicknessMm: sel.thicknessMm, slices: plan.length, phase },
    findings,
    overlays,
    warnings: sel.warnings,
    timings: { metadataMs, fetchMs: t3 - t1, analyseMs: t4 - t3, overlayMs: t5 - t4, frames: plan.length },
  };
}

/** The CT spine pathway as the risk engine sees it. */
export const ctSpinePathway: ImagingPathway<CtReadDeps, CtStudyRead, CtReadRefusal> = {
  id: CT_SPINE_PATHWAY,
  eligible: ctEligible,
  read: readCtStudy,
};

/**
 * Choosing the image the model should read: from a FHIR R4 ImagingStudy (which series exist, their modality, body
 * site and laterality) plus the DICOM tags the PACS returns (WADO-RS series metadata), by a rule object the model
 * manifest supplies — e.g. `{ modality: 'DX', bodyPart: ['HIP', 'PELVIS'], viewPosition: 'AP', laterality: 'any' }`.
 *
 * FHIR is used only to narrow the candidate series (it may be incomplete or stale); the DICOM tags decide.
 */
import type { CallOptions, DicomWebClient } from './dicomweb-client.ts';
import { jsonNumber, jsonString, TAG, type DicomJsonDataset } from './dicom-json.ts';
import { NoMatchingImageError } from './errors.ts';

type OneOrMany = string | readonly string[];

export interface SelectionRule {
  /** DICOM Modality (0008,0060), e.g. 'DX' or ['DX', 'CR']. */
  modality: OneOrMany;
  /** DICOM Body Part Examined (0018,0015) code strings, e.g. 'HIP'. */
  bodyPart?: OneOrMany;
  /** DICOM View Position (0018,5101), e.g. 'AP'. */
  viewPosition?: OneOrMany;
  /** 'L' | 'R' | ['L','R'] | 'any' — Image Laterality (0020,0062), else Laterality (0020,0060). */
  laterality?: OneOrMany;
  /** SOP Class UIDs accepted (0008,0016). */
  sopClassUids?: OneOrMany;
  /** Photometric Interpretation values accepted (0028,0004). */
  photometric?: OneOrMany;
}

/**
 * The rule as the model manifest writes it (`dicom_selection`, snake_case, from frcds/model/manifest.py) →
 * SelectionRule. A malformed rule is a configuration bug: TypeError, not an imaging error.
 */
export function selectionRuleFromManifest(sel: unknown): SelectionRule {
  if (typeof sel !== 'object' || sel === null) throw new TypeError('manifest dicom_selection is not an object');
  const o = sel as Record<string, unknown>;
  const strings = (k: string): string[] | undefined => {
    const v = o[k];
    if (v === undefined) return undefined;
    const arr = typeof v === 'string' ? [v] : v;
    if (!Array.isArray(arr) || !arr.every((x) => typeof x === 'string')) throw new TypeError(`manifest dicom_selection.${k} must be a string or string[]`);
    return arr as string[];
  };
  const modality = strings('modality');
  if (!modality?.length) throw new TypeError('manifest dicom_selection.modality is required');
  const rule: SelectionRule = { modality };
  const map: [string, keyof SelectionRule][] = [
    ['body_part_examined', 'bodyPart'],
    ['view_position', 'viewPosition'],
    ['laterality', 'laterality'],
    ['sop_class_uids', 'sopClassUids'],
    ['photometric_interpretation', 'photometric'],
  ];
  for (const [from, to] of map) {
    const v = strings(from);
    if (v) rule[to] = v;
  }
  return rule;
}

/** The subset of FHIR R4 ImagingStudy this module reads (structurally compatible with fhir4.ImagingStudy). */
export interface ImagingStudyLike {
  resourceType: 'ImagingStudy';
  identifier?: { system?: string; value?: string }[];
  series?: {
    uid: string;
    number?: number;
    modality: { system?: string; code?: string };
    bodySite?: { system?: string; code?: string; display?: string };
    laterality?: { system?: string; code?: string; display?: string };
    instance?: { uid: string; number?: number }[];
  }[];
}

export interface SelectedImage {
  studyUid: string;
  seriesUid: string;
  sopUid: string;
  /** WADO-RS metadata of the chosen instance (saves fetchFrame a request). */
  metadata: DicomJsonDataset;
  /** 'L' | 'R' | undefined, as the DICOM tags say. */
  laterality: string | undefined;
}

const list = (v: OneOrMany | undefined): string[] | undefined =>
  v === undefined ? undefined : (typeof v === 'string' ? [v] : [...v]).map((s) => s.trim().toUpperCase());

/** DICOM Body Part Examined ↔ SNOMED CT (PS3.16 Annex L, the entries this product meets). */
const BODY_PART_SNOMED: Record<string, string[]> = {
  HIP: ['24136001', '29836001'],
  PELVIS: ['12921003', '816092008'],
  FEMUR: ['71341001'],
  KNEE: ['72696002'],
  CHEST: ['51185008'],
  LSPINE: ['122496007'],
  SPINE: ['421060004'],
  HAND: ['85562004'],
};
const LATERALITY_SNOMED: Record<string, string> = { '7771000': 'L', '24028007': 'R', '51440002': 'B' };

/** StudyInstanceUID from ImagingStudy.identifier (system urn:dicom:uid, value urn:oid:…). */
export function studyUidOf(study: ImagingStudyLike): string | undefined {
  const id = study.identifier?.find((i) => i.system === 'urn:dicom:uid' && i.value);
  return id?.value?.replace(/^urn:oid:/, '');
}

/**
 * Series of the ImagingStudy that may satisfy the rule, judged from FHIR alone. A property FHIR leaves out does
 * not exclude a series (DICOM decides later); a property FHIR states and the rule contradicts does.
 */
export function candidateSeries(study: ImagingStudyLike, rule: SelectionRule): string[] {
  const modalities = list(rule.modality)!;
  const parts = list(rule.bodyPart);
  const lats = list(rule.laterality);
  return (study.series ?? [])
    .filter((s) => {
      if (s.modality.code && !modalities.includes(s.modality.code.toUpperCase())) return false;
      if (parts && s.bodySite?.code && s.bodySite.system === 'http://snomed.info/sct') {
        const ok = parts.some((p) => (BODY_PART_SNOMED[p] ?? []).includes(s.bodySite!.code!));
        if (!ok) return false;
      }
      if (lats && !lats.includes('ANY') && s.laterality?.code) {
        const l = LATERALITY_SNOMED[s.laterality.code] ?? s.laterality.code.toUpperCase();
        if (!lats.includes(l)) return false;
      }
      return true;
    })
    .sort((a, b) => (a.number ?? 0) - (b.number ?? 0))
    .map((s) => s.uid);
}

/** Laterality of an image from its tags: Image Laterality, else Laterality (series). */
export function imageLaterality(ds: DicomJsonDataset): string | undefined {
  return (jsonString(ds, TAG.ImageLaterality) ?? jsonString(ds, TAG.Laterality))?.toUpperCase();
}

/** Checks one instance's DICOM tags against the rule; `reasons` says why not (for the no-match message). */
export function matchRule(ds: DicomJsonDataset, rule: SelectionRule): { ok: boolean; reasons: string[] } {
  const reasons: string[] = [];
  const check = (name: string, tag: string, wanted: string[] | undefined, got: string | undefined) => {
    if (!wanted || wanted.includes('ANY')) return;
    if (!got || !wanted.includes(got.toUpperCase())) reasons.push(`${name} is ${got ?? 'absent'}, rule wants ${wanted.join('|')}`);
  };
  check('Modality', TAG.Modality, list(rule.modality), jsonString(ds, TAG.Modality));
  check('BodyPartExamined', TAG.BodyPartExamined, list(rule.bodyPart), jsonString(ds, TAG.BodyPartExamined));
  check('ViewPosition', TAG.ViewPosition, list(rule.viewPosition), jsonString(ds, TAG.ViewPosition));
  check('laterality', TAG.ImageLaterality, list(rule.laterality), imageLaterality(ds));
  check('SOPClassUID', TAG.SOPClassUID, list(rule.sopClassUids), jsonString(ds, TAG.SOPClassUID));
  check('PhotometricInterpretation', TAG.PhotometricInterpretation, list(rule.photometric), jsonString(ds, TAG.PhotometricInterpretation));
  if (!ds[TAG.PixelData] && jsonNumber(ds, TAG.Rows) === undefined) reasons.push('no image (no Rows / Pixel Data)');
  return { ok: reasons.length === 0, reasons };
}

/** Acquisition moment as sortable text: Content, else Acquisition, else Series date+time ('' when unknown). */
function when(ds: DicomJsonDataset): string {
  for (const [d, t] of [['00080023', '00080033'], ['00080022', '00080032'], ['00080021', '00080031']] as const) {
    const date = jsonString(ds, d);
    if (date) return `${date}${(jsonString(ds, t) ?? '').padEnd(13, '0')}`;
  }
  return '';
}

/**
 * Best matching instance among metadata data sets: the rule must hold; then the most recent (as the manifest's
 * rule says), then the larger image, the lower series number, the lower instance number (deterministic).
 */
export function chooseInstance(instances: readonly DicomJsonDataset[], rule: SelectionRule): DicomJsonDataset | undefined {
  const ok = instances.filter((ds) => matchRule(ds, rule).ok);
  const size = (ds: DicomJsonDataset) => (jsonNumber(ds, TAG.Rows) ?? 0) * (jsonNumber(ds, TAG.Columns) ?? 0);
  const num = (ds: DicomJsonDataset, tag: string) => jsonNumber(ds, tag) ?? Number.MAX_SAFE_INTEGER;
  ok.sort(
    (a, b) =>
      when(b).localeCompare(when(a)) ||
      size(b) - size(a) ||
      num(a, TAG.SeriesNumber) - num(b, TAG.SeriesNumber) ||
      num(a, TAG.InstanceNumber) - num(b, TAG.InstanceNumber) ||
      (jsonString(a, TAG.SOPInstanceUID) ?? '').localeCompare(jsonString(b, TAG.SOPInstanceUID) ?? ''),
  );
  return ok[0];
}

/**
 * Selects the image for the model: candidate series from the ImagingStudy, their WADO-RS metadata from the PACS,
 * the rule applied to the DICOM tags. Throws NoMatchingImageError (with the reasons per series) when nothing fits.
 */
export async function selectImage(
  client: DicomWebClient,
  study: ImagingStudyLike,
  rule: SelectionRule,
  call?: CallOptions,
): Promise<SelectedImage> {
  const studyUid = studyUidOf(study);
  if (!studyUid) throw new NoMatchingImageError('ImagingStudy has no DICOM StudyInstanceUID identifier (system urn:dicom:uid)');
  const series = candidateSeries(study, rule);
  if (series.length === 0) {
    throw new NoMatchingImageError(`none of the ${study.series?.length ?? 0} series in the ImagingStudy fits the rule (by FHIR modality/body site/laterality)`);
  }
  const all: DicomJsonDataset[] = [];
  const why: string[] = [];
  for (const [i, uid] of series.entries()) {
    const md = await client.retrieveMetadata(studyUid, uid, undefined, call);
    all.push(...md);
    for (const ds of md) {
      const m = matchRule(ds, rule);
      // Series by number, not UID: the reasons reach the clinician's warning.
      if (!m.ok) why.push(`series ${jsonString(ds, TAG.SeriesNumber) ?? `#${i + 1}`}: ${m.reasons.join('; ')}`);
    }
  }
  const best = chooseInstance(all, rule);
  if (!best) throw new NoMatchingImageError(`no instance satisfies the selection rule: ${why.slice(0, 5).join(' / ') || 'no instances'}`);
  return {
    studyUid,
    seriesUid: jsonString(best, TAG.SeriesInstanceUID)!,
    sopUid: jsonString(best, TAG.SOPInstanceUID)!,
    metadata: best,
    laterality: imageLaterality(best),
  };
}

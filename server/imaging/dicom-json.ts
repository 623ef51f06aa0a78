/**
 * The DICOM JSON model (PS3.18 Annex F.2) and typed accessors for it. QIDO-RS results and WADO-RS metadata arrive
 * in this shape; the embedded DICOMweb server writes it.
 */

export interface PersonNameJson {
  Alphabetic?: string;
  Ideographic?: string;
  Phonetic?: string;
}

export type DicomJsonValue = string | number | PersonNameJson | DicomJsonDataset | null;

/** One attribute (PS3.18 F.2.2): `vr` plus exactly one of Value, BulkDataURI, InlineBinary (or none when empty). */
export interface DicomJsonAttribute {
  vr: string;
  Value?: DicomJsonValue[];
  BulkDataURI?: string;
  InlineBinary?: string;
}

/** Keys are 8 upper-case hex digits `GGGGEEEE`. */
export type DicomJsonDataset = Record<string, DicomJsonAttribute>;

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Checks the outer shape of a QIDO/metadata response: an array of objects keyed by tags with `vr`. */
export function isDicomJsonArray(v: unknown): v is DicomJsonDataset[] {
  if (!Array.isArray(v)) return false;
  return v.every(
    (ds) =>
      isRecord(ds) &&
      Object.entries(ds).every(([k, a]) => /^[0-9A-Fa-f]{8}$/.test(k) && isRecord(a) && typeof a.vr === 'string'),
  );
}

/** First value of a string-like attribute (PN → Alphabetic), trimmed; undefined when absent or empty. */
export function jsonString(ds: DicomJsonDataset, tag: string, index = 0): string | undefined {
  const v = ds[tag]?.Value?.[index];
  if (typeof v === 'string') return v.trim() || undefined;
  if (typeof v === 'number') return String(v);
  if (isRecord(v) && typeof (v as PersonNameJson).Alphabetic === 'string') return (v as PersonNameJson).Alphabetic;
  return undefined;
}

/** All values of a string-like attribute. */
export function jsonStrings(ds: DicomJsonDataset, tag: string): string[] {
  const values = ds[tag]?.Value ?? [];
  return values.flatMap((v) => (typeof v === 'string' ? [v.trim()] : typeof v === 'number' ? [String(v)] : []));
}

/** A numeric attribute (US/UL/IS/DS/FL/FD; IS and DS may arrive as JSON numbers or strings per F.2.3.1). */
export function jsonNumber(ds: DicomJsonDataset, tag: string, index = 0): number | undefined {
  const v = ds[tag]?.Value?.[index];
  if (typeof v === 'number') return Number.isFinite(v) ? v : undefined;
  if (typeof v === 'string' && v.trim() !== '') {
    const n = Number(v.trim());
    return Number.isFinite(n) ? n : undefined;
  }
  return undefined;
}

export function jsonNumbers(ds: DicomJsonDataset, tag: string): number[] | undefined {
  const a = ds[tag];
  if (!a?.Value || a.Value.length === 0) return undefined;
  const out: number[] = [];
  for (let i = 0; i < a.Value.length; i++) {
    const n = jsonNumber(ds, tag, i);
    if (n === undefined) return undefined;
    out.push(n);
  }
  return out;
}

/** Tags the imaging layer reads, as DICOM JSON keys. */
export const TAG = {
  TransferSyntaxUID: '00020010',
  SOPClassUID: '00080016',
  SOPInstanceUID: '00080018',
  StudyDate: '00080020',
  StudyTime: '00080030',
  AccessionNumber: '00080050',
  Modality: '00080060',
  ModalitiesInStudy: '00080061',
  StudyDescription: '00081030',
  SeriesDescription: '0008103E',
  PatientName: '00100010',
  PatientID: '00100020',
  IssuerOfPatientID: '00100021',
  PatientBirthDate: '00100030',
  PatientSex: '00100040',
  BodyPartExamined: '00180015',
  ViewPosition: '00185101',
  StudyInstanceUID: '0020000D',
  SeriesInstanceUID: '0020000E',
  StudyID: '00200010',
  SeriesNumber: '00200011',
  InstanceNumber: '00200013',
  Laterality: '00200060',
  ImageLaterality: '00200062',
  NumberOfStudyRelatedSeries: '00201206',
  NumberOfStudyRelatedInstances: '00201208',
  NumberOfSeriesRelatedInstances: '00201209',
  SamplesPerPixel: '00280002',
  PhotometricInterpretation: '00280004',
  PlanarConfiguration: '00280006',
  NumberOfFrames: '00280008',
  Rows: '00280010',
  Columns: '00280011',
  PixelSpacing: '00280030',
  ImagerPixelSpacing: '00181164',
  BitsAllocated: '00280100',
  BitsStored: '00280101',
  HighBit: '00280102',
  PixelRepresentation: '00280103',
  WindowCenter: '00281050',
  WindowWidth: '00281051',
  RescaleIntercept: '00281052',
  RescaleSlope: '00281053',
  RescaleType: '00281054',
  LossyImageCompression: '00282110',
  PresentationIntentType: '00080068',
  RetrieveURL: '00081190',
  PixelData: '7FE00010',
} as const;

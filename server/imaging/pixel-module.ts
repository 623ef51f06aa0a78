/**
 * The Image Pixel module (PS3.3 C.7.6.3) plus the modality LUT and spacing attributes the model needs, read from
 * either a parsed Part 10 file or DICOM JSON metadata, and checked before any memory is allocated for pixels.
 */
import { InvalidPixelModuleError, MissingAttributeError } from './errors.ts';
import { jsonNumber, jsonNumbers, jsonString, TAG, type DicomJsonDataset } from './dicom-json.ts';

export interface PixelModule {
  rows: number;
  columns: number;
  samplesPerPixel: number;
  bitsAllocated: number;
  bitsStored: number;
  highBit: number;
  /** 0 unsigned, 1 two's complement. */
  pixelRepresentation: number;
  photometricInterpretation: string;
  planarConfiguration: number;
  numberOfFrames: number;
  /** Modality LUT (PS3.3 C.11.1); 1 and 0 when absent. */
  rescaleSlope: number;
  rescaleIntercept: number;
  windowCenter?: number;
  windowWidth?: number;
  /** (row, column) spacing in mm: Pixel Spacing, else Imager Pixel Spacing; undefined when neither is present. */
  pixelSpacingMm?: [number, number];
  /**
   * Set only on the pixel module of a frame decoded at a reduced resolution (a JPEG 2000 resolution level, see
   * decode/resolution.ts): `rows`, `columns` and `pixelSpacingMm` above then describe the decoded array, and this
   * keeps the header's own geometry (e.g. for the acquisition's pixel spacing).
   */
  reducedFrom?: { level: number; rows: number; columns: number; pixelSpacingMm?: [number, number] };
}

export interface PixelLimits {
  /** Largest Rows or Columns accepted. */
  maxDimension: number;
  /** Largest rows × columns × samples × frames accepted (guards memory against absurd headers). */
  maxTotalPixels: number;
}

/** 16k × 16k per side and 100 M samples in total: larger than any radiograph, small enough to fit in memory. */
export const DEFAULT_PIXEL_LIMITS: PixelLimits = { maxDimension: 16_384, maxTotalPixels: 100_000_000 };

const PHOTOMETRIC = new Set([
  'MONOCHROME1',
  'MONOCHROME2',
  'RGB',
  'YBR_FULL',
  'YBR_FULL_422',
  'YBR_RCT',
  'YBR_ICT',
  'PALETTE COLOR',
]);

/** Raw values as read; `undefined` where the source lacks the attribute. */
export interface RawPixelModule {
  rows?: number;
  columns?: number;
  samplesPerPixel?: number;
  bitsAllocated?: number;
  bitsStored?: number;
  highBit?: number;
  pixelRepresentation?: number;
  photometricInterpretation?: string;
  planarConfiguration?: number;
  numberOfFrames?: number;
  rescaleSlope?: number;
  rescaleIntercept?: number;
  windowCenter?: number;
  windowWidth?: number;
  pixelSpacing?: number[];
  imagerPixelSpacing?: number[];
}

function required(v: number | undefined, name: string): number {
  if (v === undefined || !Number.isFinite(v)) throw new MissingAttributeError(name);
  return v;
}

/** Validates raw attribute values into a PixelModule; throws a typed error naming the first bad attribute. */
export function validatePixelModule(raw: RawPixelModule, limits: PixelLimits = DEFAULT_PIXEL_LIMITS): PixelModule {
  const rows = required(raw.rows, 'Rows (0028,0010)');
  const columns = required(raw.columns, 'Columns (0028,0011)');
  const bitsAllocated = required(raw.bitsAllocated, 'BitsAllocated (0028,0100)');
  const samplesPerPixel = raw.samplesPerPixel ?? 1;
  const bitsStored = raw.bitsStored ?? bitsAllocated;
  const highBit = raw.highBit ?? bitsStored - 1;
  const pixelRepresentation = raw.pixelRepresentation ?? 0;
  const numberOfFrames = raw.numberOfFrames ?? 1;
  const photometricInterpretation = (raw.photometricInterpretation ?? '').trim().toUpperCase();
  if (!photometricInterpretation) throw new MissingAttributeError('PhotometricInterpretation (0028,0004)');

  const intIn = (v: number, lo: number, hi: number) => Number.isInteger(v) && v >= lo && v <= hi;
  if (!intIn(rows, 1, limits.maxDimension) || !intIn(columns, 1, limits.maxDimension)) {
    throw new InvalidPixelModuleError(
      `image dimensions ${rows}×${columns} are outside 1..${limits.maxDimension} per side`,
    );
  }
  if (!intIn(numberOfFrames, 1, 100_000)) {
    throw new InvalidPixelModuleError(`NumberOfFrames ${numberOfFrames} is not a usable frame count`);
  }
  if (samplesPerPixel !== 1 && samplesPerPixel !== 3) {
    throw new InvalidPixelModuleError(`SamplesPerPixel ${samplesPerPixel} is not 1 or 3`);
  }
  const total = rows * columns * samplesPerPixel * numberOfFrames;
  if (total > limits.maxTotalPixels) {
    throw new InvalidPixelModuleError(
      `image holds ${total} samples (${rows}×${columns}×${samplesPerPixel}×${numberOfFrames} frames), more than the limit of ${limits.maxTotalPixels}`,
    );
  }
  if (bitsAllocated !== 8 && bitsAllocated !== 16 && bitsAllocated !== 32) {
    throw new InvalidPixelModuleError(`BitsAllocated ${bitsAllocated} is not supported (8, 16 or 32)`);
  }
  if (!intIn(bitsStored, 1, bitsAllocated) || !intIn(highBit, bitsStored - 1, bitsAllocated - 1)) {
    throw new InvalidPixelModuleError(
      `BitsStored ${bitsStored} / HighBit ${highBit} are inconsistent with BitsAllocated ${bitsAllocated}`,
    );
  }
  if (pixelRepresentation !== 0 && pixelRepresentation !== 1) {
    throw new InvalidPixelModuleError(`PixelRepresentation ${pixelRepresentation} is not 0 or 1`);
  }
  if (!PHOTOMETRIC.has(photometricInterpretation)) {
    throw new InvalidPixelModuleError(`PhotometricInterpretation "${photometricInterpretation.slice(0, 32)}" is not supported`);
  }
  const rescaleSlope = raw.rescaleSlope ?? 1;
  const rescaleIntercept = raw.rescaleIntercept ?? 0;
  if (!Number.isFinite(rescaleSlope) || rescaleSlope === 0 || !Number.isFinite(rescaleIntercept)) {
    throw new InvalidPixelModuleError(`RescaleSlope ${rescaleSlope} / RescaleIntercept ${rescaleIntercept} are unusable`);
  }
  const spacing = [raw.pixelSpacing, raw.imagerPixelSpacing].find(
    (s): s is number[] => Array.isArray(s) && s.length >= 2 && s.slice(0, 2).every((x) => Number.isFinite(x) && x > 0),
  );
  const pm: PixelModule = {
    rows,
    columns,
    samplesPerPixel,
    bitsAllocated,
    bitsStored,
    highBit,
    pixelRepresentation,
    photometricInterpretation,
    planarConfiguration: raw.planarConfiguration ?? 0,
    numberOfFrames,
    rescaleSlope,
    rescaleIntercept,
  };
  if (raw.windowCenter !== undefined && Number.isFinite(raw.windowCenter)) pm.windowCenter = raw.windowCenter;
  if (raw.windowWidth !== undefined && Number.isFinite(raw.windowWidth)) pm.windowWidth = raw.windowWidth;
  if (spacing) pm.pixelSpacingMm = [spacing[0]!, spacing[1]!];
  return pm;
}

/** Reads the pixel module from WADO-RS metadata (DICOM JSON). */
export function pixelModuleFromJson(ds: DicomJsonDataset, limits?: PixelLimits): PixelModule {
  const raw: RawPixelModule = {
    rows: jsonNumber(ds, TAG.Rows),
    columns: jsonNumber(ds, TAG.Columns),
    samplesPerPixel: jsonNumber(ds, TAG.SamplesPerPixel),
    bitsAllocated: jsonNumber(ds, TAG.BitsAllocated),
    bitsStored: jsonNumber(ds, TAG.BitsStored),
    highBit: jsonNumber(ds, TAG.HighBit),
    pixelRepresentation: jsonNumber(ds, TAG.PixelRepresentation),
    photometricInterpretation: jsonString(ds, TAG.PhotometricInterpretation),
    planarConfiguration: jsonNumber(ds, TAG.PlanarConfiguration),
    numberOfFrames: jsonNumber(ds, TAG.NumberOfFrames),
    rescaleSlope: jsonNumber(ds, TAG.RescaleSlope),
    rescaleIntercept: jsonNumber(ds, TAG.RescaleIntercept),
    windowCenter: jsonNumber(ds, TAG.WindowCenter),
    windowWidth: jsonNumber(ds, TAG.WindowWidth),
    pixelSpacing: jsonNumbers(ds, TAG.PixelSpacing),
    imagerPixelSpacing: jsonNumbers(ds, TAG.ImagerPixelSpacing),
  };
  return validatePixelModule(raw, limits);
}

/** Bytes of one uncompressed frame. */
export function frameByteLength(pm: PixelModule): number {
  return (pm.rows * pm.columns * pm.samplesPerPixel * pm.bitsAllocated) / 8;
}

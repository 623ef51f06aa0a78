/**
 * dicom-parser data set → DICOM JSON (PS3.18 Annex F.2), for QIDO-RS results and WADO-RS metadata. Pixel Data is
 * replaced by a BulkDataURI (F.2.6); other binary values up to 64 KiB are inlined as base64 (F.2.7).
 */
import type { DataSet, Element } from 'dicom-parser';
import type { DicomJsonAttribute, DicomJsonDataset, DicomJsonValue } from '../../imaging/dicom-json.ts';
import { vrOf } from './dictionary.ts';

const STRING_VRS = new Set(['AE', 'AS', 'CS', 'DA', 'DT', 'LO', 'SH', 'TM', 'UC', 'UI']);
const TEXT_VRS = new Set(['LT', 'ST', 'UT', 'UR']); // single-valued: backslash is data
const BINARY_VRS = new Set(['OB', 'OW', 'OF', 'OD', 'OL', 'OV', 'UN']);
const NUMERIC: Record<string, [size: number, read: (dv: DataView, o: number) => number | bigint]> = {
  US: [2, (dv, o) => dv.getUint16(o, true)],
  SS: [2, (dv, o) => dv.getInt16(o, true)],
  UL: [4, (dv, o) => dv.getUint32(o, true)],
  SL: [4, (dv, o) => dv.getInt32(o, true)],
  FL: [4, (dv, o) => dv.getFloat32(o, true)],
  FD: [8, (dv, o) => dv.getFloat64(o, true)],
  SV: [8, (dv, o) => dv.getBigInt64(o, true)],
  UV: [8, (dv, o) => dv.getBigUint64(o, true)],
};
const INLINE_LIMIT = 64 * 1024;

export interface ToJsonOptions {
  /** BulkDataURI for Pixel Data (omitted when undefined). */
  pixelDataUri?: string;
}

function rawString(ds: DataSet, el: Element): string {
  const bytes = ds.byteArray.subarray(el.dataOffset, el.dataOffset + el.length);
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1');
}

function vrFor(tag: string, el: Element): string {
  if (el.vr) return el.vr;
  if (el.items) return 'SQ';
  return vrOf(tag) ?? 'UN';
}

function attribute(ds: DataSet, key: string, el: Element, opts: ToJsonOptions): DicomJsonAttribute | undefined {
  const tag = key.slice(1).toUpperCase();
  const vr = vrFor(tag, el);
  if (tag === '7FE00010') return opts.pixelDataUri ? { vr, BulkDataURI: opts.pixelDataUri } : { vr };
  if (vr === 'SQ') {
    const items = (el.items ?? []).map((item) => (item.dataSet ? datasetToJson(item.dataSet, {}) : {}));
    return items.length ? { vr, Value: items } : { vr };
  }
  if (el.length === 0) return { vr };
  if (el.dataOffset + el.length > ds.byteArray.length) return { vr }; // truncated value: report presence only
  if (BINARY_VRS.has(vr)) {
    if (el.length > INLINE_LIMIT) return { vr };
    const b = ds.byteArray.subarray(el.dataOffset, el.dataOffset + el.length);
    return { vr, InlineBinary: Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64') };
  }
  const numeric = NUMERIC[vr];
  if (numeric) {
    const [size, read] = numeric;
    const dv = new DataView(ds.byteArray.buffer, ds.byteArray.byteOffset + el.dataOffset, el.length);
    const values: DicomJsonValue[] = [];
    for (let o = 0; o + size <= el.length; o += size) {
      const v = read(dv, o);
      values.push(typeof v === 'bigint' ? Number(v) : v);
    }
    return { vr, Value: values };
  }
  if (vr === 'AT') {
    const dv = new DataView(ds.byteArray.buffer, ds.byteArray.byteOffset + el.dataOffset, el.length);
    const values: DicomJsonValue[] = [];
    for (let o = 0; o + 4 <= el.length; o += 4) {
      values.push(
        (dv.getUint16(o, true).toString(16).padStart(4, '0') + dv.getUint16(o + 2, true).toString(16).padStart(4, '0')).toUpperCase(),
      );
    }
    return { vr, Value: values };
  }
  const raw = rawString(ds, el).replace(/[\0 ]+$/, '');
  if (TEXT_VRS.has(vr)) return raw ? { vr, Value: [raw] } : { vr };
  const parts = raw.split('\\').map((s) => s.replace(/\0/g, '').trim());
  if (parts.every((p) => p === '')) return { vr };
  if (vr === 'PN') return { vr, Value: parts.map((p) => (p ? { Alphabetic: p.split('=')[0] } : null)) };
  if (vr === 'IS' || vr === 'DS') {
    return { vr, Value: parts.map((p) => (p === '' || !Number.isFinite(Number(p)) ? null : Number(p))) };
  }
  if (STRING_VRS.has(vr)) return { vr, Value: parts.map((p) => (p === '' ? null : p)) };
  return { vr, Value: parts };
}

/** Converts all data elements except File Meta (group 0002) and group lengths. */
export function datasetToJson(ds: DataSet, opts: ToJsonOptions = {}): DicomJsonDataset {
  const out: DicomJsonDataset = {};
  for (const key of Object.keys(ds.elements).sort()) {
    if (key.startsWith('x0002') || key.endsWith('0000')) continue;
    const a = attribute(ds, key, ds.elements[key]!, opts);
    if (a) out[key.slice(1).toUpperCase()] = a;
  }
  return out;
}

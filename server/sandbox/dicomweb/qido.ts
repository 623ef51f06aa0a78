/**
 * QIDO-RS search (PS3.18 §10.6) over the sandbox store: attribute matching as PS3.4 §C.2.2.2 defines it for
 * the value kinds a hospital client sends (single value, UID list, wildcard, date/time range, universal),
 * limit/offset, includefield, and the per-level default return attributes (PS3.18 §10.6.3.3).
 */
import type { DicomJsonAttribute, DicomJsonDataset } from '../../imaging/dicom-json.ts';
import { TAG } from '../../imaging/dicom-json.ts';
import { resolveAttribute, vrOf } from './dictionary.ts';
import type { DicomStore, InstanceRecord } from './store.ts';

export type QueryLevel = 'study' | 'series' | 'instance';

export class QidoQueryError extends Error {}

export interface QidoQuery {
  /** tag → raw match value ('' = universal matching: return the attribute, do not filter). */
  keys: Map<string, string>;
  includeAll: boolean;
  include: Set<string>;
  limit: number | undefined;
  offset: number;
}

const CONTROL = new Set(['limit', 'offset', 'includefield', 'fuzzymatching']);

/** Parses a QIDO-RS query string (PS3.18 §8.3.4). Unknown attribute names are an error (400), not ignored. */
export function parseQuery(search: URLSearchParams): QidoQuery {
  const q: QidoQuery = { keys: new Map(), includeAll: false, include: new Set(), limit: undefined, offset: 0 };
  for (const [name, value] of search) {
    const lname = name.toLowerCase();
    if (lname === 'limit' || lname === 'offset') {
      const n = Number(value);
      if (!Number.isInteger(n) || n < 0) throw new QidoQueryError(`${name} must be a non-negative integer`);
      if (lname === 'limit') q.limit = n;
      else q.offset = n;
      continue;
    }
    if (lname === 'includefield') {
      for (const f of value.split(',').map((s) => s.trim()).filter(Boolean)) {
        if (f.toLowerCase() === 'all') q.includeAll = true;
        else {
          const tag = resolveAttribute(f);
          if (!tag) throw new QidoQueryError(`includefield "${f}" is not a known attribute keyword or tag`);
          q.include.add(tag);
        }
      }
      continue;
    }
    if (CONTROL.has(lname)) continue;
    if (name.includes('.')) throw new QidoQueryError(`sequence matching ("${name}") is not supported`);
    const tag = resolveAttribute(name);
    if (!tag) throw new QidoQueryError(`"${name}" is not a known attribute keyword or tag`);
    q.keys.set(tag, value);
  }
  return q;
}

function valuesOf(a: DicomJsonAttribute | undefined): string[] {
  if (!a?.Value) return [];
  return a.Value.flatMap((v) => {
    if (typeof v === 'string') return [v];
    if (typeof v === 'number') return [String(v)];
    if (v && typeof v === 'object' && 'Alphabetic' in v && typeof v.Alphabetic === 'string') return [v.Alphabetic];
    return [];
  });
}

function wildcard(pattern: string, caseInsensitive: boolean): RegExp {
  const re = pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${re}$`, caseInsensitive ? 'i' : '');
}

/** Does one attribute's value set satisfy one match key (PS3.4 §C.2.2.2)? */
export function matchValue(vr: string, key: string, values: string[]): boolean {
  if (key === '') return true;
  if (vr === 'UI') {
    const uids = key.split(/[\\,]/).map((s) => s.trim());
    return values.some((v) => uids.includes(v));
  }
  if (vr === 'DA' || vr === 'TM' || vr === 'DT') {
    const dash = key.indexOf('-');
    if (dash >= 0) {
      const lo = key.slice(0, dash).trim();
      const hi = key.slice(dash + 1).trim();
      if (!lo && !hi) return true;
      // DA: YYYYMMDD compares as text; TM/DT: compare on the shorter precision of the two.
      return values.some((v) => (!lo || v.slice(0, lo.length) >= lo) && (!hi || v.slice(0, hi.length) <= hi));
    }
    return values.some((v) => v === key || (vr !== 'DA' && v.startsWith(key)));
  }
  if (vr === 'IS' || vr === 'DS' || vr === 'US' || vr === 'UL' || vr === 'SS' || vr === 'SL' || vr === 'FL' || vr === 'FD') {
    const n = Number(key);
    return values.some((v) => Number(v) === n);
  }
  const alternatives = key.split('\\');
  return alternatives.some((alt) => {
    if (alt.includes('*') || alt.includes('?')) {
      const re = wildcard(alt, vr === 'PN');
      return values.some((v) => re.test(v));
    }
    return vr === 'PN' ? values.some((v) => v.toLowerCase() === alt.toLowerCase()) : values.includes(alt);
  });
}

function vrFor(tag: string, ds: DicomJsonDataset): string {
  return ds[tag]?.vr ?? vrOf(tag) ?? 'UN';
}

function instanceMatches(inst: InstanceRecord, keys: Map<string, string>, skip: Set<string>): boolean {
  for (const [tag, key] of keys) {
    if (skip.has(tag) || key === '') continue;
    if (!matchValue(vrFor(tag, inst.json), key, valuesOf(inst.json[tag]))) return false;
  }
  return true;
}

const STUDY_DEFAULT = [
  '00080005', '00080020', '00080030', '00080050', '00080056', '00080061', '00080090', '00080201', '00081030',
  '00100010', '00100020', '00100030', '00100040', '0020000D', '00200010', '00201206', '00201208',
];
const SERIES_DEFAULT = ['00080005', '00080060', '00080201', '0008103E', '0020000E', '00200011', '00201209', '00400244', '00400245', '00180015'];
const INSTANCE_DEFAULT = ['00080005', '00080016', '00080018', '00080056', '00200013', '00280010', '00280011', '00280100', '00280008'];

export interface QidoScope {
  level: QueryLevel;
  studyUid?: string;
  seriesUid?: string;
  /** Base URL of the DICOMweb root, for RetrieveURL. */
  base: string;
}

/** Runs a QIDO-RS query and returns the DICOM JSON result array. */
export function runQuery(store: DicomStore, scope: QidoScope, q: QidoQuery): DicomJsonDataset[] {
  const modalities = q.keys.get(TAG.ModalitiesInStudy);
  const skip = new Set<string>([TAG.ModalitiesInStudy, TAG.NumberOfStudyRelatedInstances, TAG.NumberOfStudyRelatedSeries, TAG.NumberOfSeriesRelatedInstances]);
  const candidates = store.instancesOf(scope.studyUid, scope.seriesUid);
  const results: DicomJsonDataset[] = [];
  const seen = new Set<string>();

  for (const inst of candidates) {
    const groupKey = scope.level === 'study' ? inst.studyUid : scope.level === 'series' ? inst.seriesUid : inst.sopUid;
    if (seen.has(groupKey)) continue;
    if (!instanceMatches(inst, q.keys, skip)) continue;
    const study = store.studies.get(inst.studyUid)!;
    if (modalities) {
      const mods = [...study.series.values()].flatMap((se) => [...se.instances.values()].flatMap((i) => valuesOf(i.json[TAG.Modality])));
      if (!matchValue('CS', modalities, mods)) continue;
    }
    seen.add(groupKey);

    const wanted = new Set<string>([...q.keys.keys(), ...q.include]);
    const defaults =
      scope.level === 'study'
        ? STUDY_DEFAULT
        : scope.level === 'series'
          ? [...SERIES_DEFAULT, ...(scope.studyUid ? [] : STUDY_DEFAULT)]
          : [...INSTANCE_DEFAULT, ...(scope.seriesUid ? [] : SERIES_DEFAULT), ...(scope.studyUid ? [] : STUDY_DEFAULT)];
    for (const t of defaults) wanted.add(t);
    const out: DicomJsonDataset = {};
    if (q.includeAll) {
      for (const [t, a] of Object.entries(inst.json)) if (t !== TAG.PixelData) out[t] = a;
    }
    for (const t of wanted) {
      const a = inst.json[t];
      if (a && t !== TAG.PixelData) out[t] = a;
    }
    // Computed attributes.
    out['00080056'] = { vr: 'CS', Value: ['ONLINE'] };
    if (wanted.has(TAG.ModalitiesInStudy) || scope.level === 'study') {
      const mods = new Set<string>();
      for (const se of study.series.values()) for (const i of se.instances.values()) for (const m of valuesOf(i.json[TAG.Modality])) mods.add(m);
      out[TAG.ModalitiesInStudy] = { vr: 'CS', Value: [...mods].sort() };
    }
    if (wanted.has(TAG.NumberOfStudyRelatedSeries)) out[TAG.NumberOfStudyRelatedSeries] = { vr: 'IS', Value: [study.series.size] };
    if (wanted.has(TAG.NumberOfStudyRelatedInstances)) {
      let n = 0;
      for (const se of study.series.values()) n += se.instances.size;
      out[TAG.NumberOfStudyRelatedInstances] = { vr: 'IS', Value: [n] };
    }
    if (wanted.has(TAG.NumberOfSeriesRelatedInstances)) {
      out[TAG.NumberOfSeriesRelatedInstances] = { vr: 'IS', Value: [study.series.get(inst.seriesUid)!.instances.size] };
    }
    out[TAG.StudyInstanceUID] = { vr: 'UI', Value: [inst.studyUid] };
    if (scope.level !== 'study') out[TAG.SeriesInstanceUID] = { vr: 'UI', Value: [inst.seriesUid] };
    let url = `${scope.base}/studies/${inst.studyUid}`;
    if (scope.level !== 'study') url += `/series/${inst.seriesUid}`;
    if (scope.level === 'instance') url += `/instances/${inst.sopUid}`;
    out[TAG.RetrieveURL] = { vr: 'UR', Value: [url] };
    results.push(sortKeys(out));
  }
  const start = Math.min(q.offset, results.length);
  return results.slice(start, q.limit === undefined ? undefined : start + q.limit);
}

function sortKeys(ds: DicomJsonDataset): DicomJsonDataset {
  const out: DicomJsonDataset = {};
  for (const k of Object.keys(ds).sort()) out[k] = ds[k]!;
  return out;
}

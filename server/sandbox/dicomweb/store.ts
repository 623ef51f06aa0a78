/**
 * The sandbox PACS's index: every `<study>/<series>/<instance>.dcm` under the DICOM folder, parsed once at
 * start-up into DICOM JSON (headers only are kept in memory; pixel bytes are read from disk on demand, with a
 * small cache of recently used files).
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { parseDicomFile, type DicomFile } from '../../imaging/dicom.ts';
import { jsonString, TAG, type DicomJsonDataset } from '../../imaging/dicom-json.ts';
import { ImagingError } from '../../imaging/errors.ts';
import { datasetToJson } from './to-json.ts';

export interface InstanceRecord {
  path: string;
  studyUid: string;
  seriesUid: string;
  sopUid: string;
  transferSyntaxUid: string;
  /** Full metadata without Pixel Data value (BulkDataURI is added per request, it needs the base URL). */
  json: DicomJsonDataset;
  size: number;
}

export interface SeriesRecord {
  uid: string;
  studyUid: string;
  instances: Map<string, InstanceRecord>;
}

export interface StudyRecord {
  uid: string;
  series: Map<string, SeriesRecord>;
}

async function walk(dir: string): Promise<string[]> {
  const out: string[] = [];
  const entries = await readdir(dir, { withFileTypes: true });
  for (const e of entries.sort((a, b) => a.name.localeCompare(b.name))) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...(await walk(p)));
    else if (e.isFile() && e.name.toLowerCase().endsWith('.dcm')) out.push(p);
  }
  return out;
}

export class DicomStore {
  readonly studies = new Map<string, StudyRecord>();
  private readonly cache = new Map<string, DicomFile>();
  private cacheBytes = 0;

  private constructor(private readonly maxCacheBytes: number) {}

  /** Scans `dir` (missing folder → empty store). Files that fail to parse are logged (path only) and skipped. */
  static async load(dir: string, logger: Logger, maxCacheBytes = 128 * 1024 * 1024): Promise<DicomStore> {
    const store = new DicomStore(maxCacheBytes);
    let files: string[] = [];
    try {
      if ((await stat(dir)).isDirectory()) files = await walk(dir);
    } catch {
      logger.warn({ dicomDir: dir }, 'sandbox DICOMweb: DICOM folder not found; serving an empty archive');
    }
    for (const path of files) {
      try {
        const bytes = await readFile(path);
        const file = parseDicomFile(bytes);
        const rec: InstanceRecord = {
          path,
          studyUid: file.studyInstanceUid,
          seriesUid: file.seriesInstanceUid,
          sopUid: file.sopInstanceUid,
          transferSyntaxUid: file.transferSyntaxUid,
          json: datasetToJson(file.dataSet),
          size: bytes.length,
        };
        store.add(rec);
      } catch (e) {
        logger.warn({ file: path, err: e instanceof ImagingError ? e.message : String(e) }, 'sandbox DICOMweb: skipping unreadable DICOM file');
      }
    }
    return store;
  }

  private add(rec: InstanceRecord): void {
    let study = this.studies.get(rec.studyUid);
    if (!study) this.studies.set(rec.studyUid, (study = { uid: rec.studyUid, series: new Map() }));
    let series = study.series.get(rec.seriesUid);
    if (!series) study.series.set(rec.seriesUid, (series = { uid: rec.seriesUid, studyUid: rec.studyUid, instances: new Map() }));
    series.instances.set(rec.sopUid, rec);
  }

  get instanceCount(): number {
    let n = 0;
    for (const s of this.studies.values()) for (const se of s.series.values()) n += se.instances.size;
    return n;
  }

  *allInstances(): Generator<InstanceRecord> {
    for (const s of this.studies.values()) for (const se of s.series.values()) yield* se.instances.values();
  }

  /** Instances in (study, series, instance) order, optionally restricted. */
  instancesOf(studyUid?: string, seriesUid?: string): InstanceRecord[] {
    const out: InstanceRecord[] = [];
    for (const s of this.studies.values()) {
      if (studyUid && s.uid !== studyUid) continue;
      for (const se of s.series.values()) {
        if (seriesUid && se.uid !== seriesUid) continue;
        out.push(...se.instances.values());
      }
    }
    return out;
  }

  find(studyUid: string, seriesUid: string, sopUid: string): InstanceRecord | undefined {
    return this.studies.get(studyUid)?.series.get(seriesUid)?.instances.get(sopUid);
  }

  /** The parsed file (pixel access), from cache or disk. */
  async open(rec: InstanceRecord): Promise<DicomFile> {
    const hit = this.cache.get(rec.path);
    if (hit) {
      this.cache.delete(rec.path);
      this.cache.set(rec.path, hit); // most recently used last
      return hit;
    }
    const file = parseDicomFile(await readFile(rec.path));
    if (rec.size <= this.maxCacheBytes) {
      this.cache.set(rec.path, file);
      this.cacheBytes += file.bytes.byteLength;
      for (const [k, v] of this.cache) {
        if (this.cacheBytes <= this.maxCacheBytes) break;
        this.cache.delete(k);
        this.cacheBytes -= v.bytes.byteLength;
      }
    }
    return file;
  }
}

/** Study-level value from the first instance (study attributes are identical across a study's instances). */
export function studyPatientId(study: StudyRecord): string | undefined {
  const first = study.series.values().next().value?.instances.values().next().value;
  return first ? jsonString(first.json, TAG.PatientID) : undefined;
}

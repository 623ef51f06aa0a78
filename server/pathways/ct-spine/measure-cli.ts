/**
 * `node --import tsx server/pathways/ct-spine/measure-cli.ts --dir <studies folder> [--out <file.jsonl>] [--limit <n>]`
 *
 * Measures every CT study folder under `--dir` (one folder per study, all `.dcm` files below it, as the Python
 * generator `frcds.ct.cli` writes them) with the service's own steps, so a model trained on these measurements sees
 * what the service will measure: Part 10 parsing and the imaging layer's decoders (`server/imaging`), series
 * selection on DICOM JSON metadata (`select.ts`; the localizer is refused there), volume assembly (`volume.ts`),
 * analysis with no phase offset (`analyse.ts`; the offset belongs to the model). Writes one JSON line per study,
 * in folder-name order: `{ study, refusal?: { code, reason }, findings?, series?, seconds }` (stdout unless `--out`).
 * A study that cannot be read (no DICOM, a broken file, a stack that is not one volume) is a refusal with its code,
 * never a crash of the run. Enhanced CT (multi-frame) instances are refused here (`multi-frame-not-supported`).
 * Exit codes: 0 done, 2 bad arguments.
 */
import { createWriteStream, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { decodeFrame } from '../../imaging/decode/index.ts';
import { parseDicomFile, type DicomFile } from '../../imaging/dicom.ts';
import { jsonNumbers } from '../../imaging/dicom-json.ts';
import { datasetToJson } from '../../sandbox/dicomweb/to-json.ts';
import { isRefusal } from '../types.ts';
import { analyseCtVolume } from './analyse.ts';
import { CT_TAG } from './dicom-tags.ts';
import { contrastPhaseOf, contrastRecorded, type ContrastPhase } from './l1-roi.ts';
import { selectCtSeries, type CtSeriesMetadata } from './select.ts';
import type { CtFindings } from './types.ts';
import { assembleVolume, VolumeError, type CtSlice, type CtVolume } from './volume.ts';

export interface StudyMeasurement {
  study: string;
  refusal?: { code: string; reason: string };
  findings?: CtFindings;
  /** The series read: its thickness, slice count, phase as the header gives it. */
  series?: { seriesInstanceUid: string; thicknessMm: number; slices: number; phase: ContrastPhase; phaseRecorded: boolean };
  seconds: number;
}

/** Every `.dcm` file below `dir`, sorted by path so the slice order of the read does not depend on the file system. */
function dicomFiles(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...dicomFiles(p));
    else if (e.isFile() && e.name.toLowerCase().endsWith('.dcm')) out.push(p);
  }
  return out.sort();
}

class StudyRefusal extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

async function sliceOf(file: DicomFile, position: number[], orientation: number[]): Promise<CtSlice> {
  const pm = file.pixelModule;
  if (pm.numberOfFrames !== 1) throw new StudyRefusal('multi-frame-not-supported', 'Enhanced CT (multi-frame) series are not read by this tool');
  const stored = await decodeFrame(file.transferSyntaxUid, file.frame(0), pm);
  return { pm, stored, position, orientation };
}

/** The assembled volume of a study's chosen series, with what the header says of it; throws `StudyRefusal`. */
export async function loadStudyVolume(dir: string): Promise<{ volume: CtVolume; series: NonNullable<StudyMeasurement['series']> }> {
  const files = dicomFiles(dir);
  if (files.length === 0) throw new StudyRefusal('no-dicom', 'the study folder holds no .dcm files');
  const bySeries = new Map<string, { files: DicomFile[]; meta: CtSeriesMetadata }>();
  for (const path of files) {
    let file: DicomFile;
    try {
      file = parseDicomFile(readFileSync(path));
    } catch (e) {
      throw new StudyRefusal('unreadable', `a file cannot be parsed: ${e instanceof Error ? e.message : String(e)}`);
    }
    const uid = file.seriesInstanceUid;
    let s = bySeries.get(uid);
    if (!s) bySeries.set(uid, (s = { files: [], meta: { seriesInstanceUid: uid, instances: [] } }));
    s.files.push(file);
    s.meta.instances.push(datasetToJson(file.dataSet));
  }
  const chosen = selectCtSeries([...bySeries.values()].map((s) => s.meta));
  if (isRefusal(chosen)) throw new StudyRefusal(chosen.code, chosen.reason);
  const s = bySeries.get(chosen.seriesInstanceUid)!;
  const slices = await Promise.all(
    s.files.map((f, i) => {
      const ds = s.meta.instances[i]!;
      const position = jsonNumbers(ds, CT_TAG.ImagePositionPatient);
      const orientation = jsonNumbers(ds, CT_TAG.ImageOrientationPatient);
      if (!position || position.length < 3 || !orientation || orientation.length < 6) {
        throw new StudyRefusal('no-geometry', 'an instance has no Image Position / Orientation (Patient)');
      }
      return sliceOf(f, position, orientation);
    }),
  );
  let volume: CtVolume;
  try {
    volume = assembleVolume(slices);
  } catch (e) {
    if (e instanceof VolumeError) throw new StudyRefusal(e.code, e.message);
    throw e;
  }
  const first = s.meta.instances[0]!;
  return {
    volume,
    series: {
      seriesInstanceUid: chosen.seriesInstanceUid,
      thicknessMm: chosen.thicknessMm,
      slices: chosen.slices,
      phase: contrastPhaseOf(first),
      phaseRecorded: contrastRecorded(first),
    },
  };
}

/** Measures one study folder; every failure to read it is a refusal in the result. */
export async function measureStudy(dir: string, study: string): Promise<StudyMeasurement & { volume?: CtVolume }> {
  const t0 = performance.now();
  const seconds = (): number => Math.round((performance.now() - t0) / 10) / 100;
  try {
    const { volume, series } = await loadStudyVolume(dir);
    const r = analyseCtVolume(volume, { phase: series.phase, phaseRecorded: series.phaseRecorded });
    if (isRefusal(r)) return { study, refusal: { code: r.code, reason: r.reason }, series, seconds: seconds(), volume };
    return { study, findings: r, series, seconds: seconds(), volume };
  } catch (e) {
    if (e instanceof StudyRefusal) return { study, refusal: { code: e.code, reason: e.message }, seconds: seconds() };
    throw e;
  }
}

/** Study folders directly under `root` (those holding any .dcm below them), by name. */
export function studyFolders(root: string): string[] {
  return readdirSync(root, { withFileTypes: true })
    .filter((e) => e.isDirectory())
    .map((e) => e.name)
    .sort()
    .filter((name) => dicomFiles(join(root, name)).length > 0);
}

const USAGE = 'usage: node --import tsx server/pathways/ct-spine/measure-cli.ts --dir <studies folder> [--out <file.jsonl>] [--limit <n>]\n';

async function main(): Promise<number> {
  let args;
  try {
    args = parseArgs({ options: { dir: { type: 'string' }, out: { type: 'string' }, limit: { type: 'string' }, help: { type: 'boolean', short: 'h' } } }).values;
  } catch (e) {
    process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n${USAGE}`);
    return 2;
  }
  if (args.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const limit = args.limit === undefined ? Infinity : Number(args.limit);
  if (!args.dir || !statSync(args.dir, { throwIfNoEntry: false })?.isDirectory() || !(limit > 0)) {
    process.stderr.write(USAGE);
    return 2;
  }
  const root = resolve(args.dir);
  const out = args.out ? createWriteStream(args.out) : process.stdout;
  const names = studyFolders(root).slice(0, limit);
  const t0 = performance.now();
  let refused = 0;
  for (const name of names) {
    const { volume: _volume, ...m } = await measureStudy(join(root, name), name);
    if (m.refusal) refused++;
    out.write(`${JSON.stringify(m)}\n`);
  }
  const s = (performance.now() - t0) / 1000;
  process.stderr.write(`${JSON.stringify({ studies: names.length, refused, seconds: Math.round(s * 10) / 10, studiesPerSecond: names.length ? Math.round((names.length / s) * 100) / 100 : 0 })}\n`);
  if (out !== process.stdout) await new Promise<void>((res) => (out as ReturnType<typeof createWriteStream>).end(res));
  return 0;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().then(
    (code) => process.exit(code),
    (e: unknown) => {
      process.stderr.write(`${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
      process.exit(1);
    },
  );
}

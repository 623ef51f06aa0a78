/**
 * Test inputs for the imaging tests: the committed small fixtures (every syntax, incl. those the demo cohort lacks)
 * and, when present, the committed demo cohort; plus reference pixels from an independent decoder (pydicom + GDCM).
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const FIXTURE_DIR = join(REPO, 'test/fixtures/dicom');
export const DEMO_DICOM_DIR = join(REPO, 'server/sandbox/demo-cohort/dicom');

export interface FixtureEntry {
  file: string;
  transferSyntax: string;
  reference: string | null;
  bitExact: boolean;
  note: string;
}

export function fixtureIndex(): FixtureEntry[] {
  const idx = JSON.parse(readFileSync(join(FIXTURE_DIR, 'index.json'), 'utf8')) as { files: FixtureEntry[] };
  return idx.files;
}

export function fixturePath(name: string): string {
  return join(FIXTURE_DIR, name);
}

/** All `.dcm` files below a folder (sorted), or [] when the folder does not exist. */
export function listDicomFiles(dir: string): string[] {
  if (!existsSync(dir)) return [];
  const out: string[] = [];
  const walk = (d: string) => {
    for (const name of readdirSync(d).sort()) {
      const p = join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else if (name.endsWith('.dcm')) out.push(p);
    }
  };
  walk(dir);
  return out;
}

export function demoCohortFiles(): string[] {
  return listDicomFiles(DEMO_DICOM_DIR);
}

export function repoRelative(p: string): string {
  return relative(REPO, p);
}

/** Pixel values of each file (all frames, row-major) as decoded by pydicom + GDCM, as Int32Array. */
export async function referencePixels(files: readonly string[]): Promise<Int32Array[]> {
  const out = mkdtempSync(join(tmpdir(), 'frcds-refpx-'));
  try {
    await promisify(execFile)('sh', [join(REPO, 'models/training/run'), join(REPO, 'test/support/dump_pixels.py'), out, ...files], {
      maxBuffer: 16 * 1024 * 1024,
    });
    return files.map((_, i) => {
      const b = readFileSync(join(out, `${i}.i32`));
      return new Int32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
    });
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
}

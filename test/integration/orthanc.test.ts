/**
 * Imaging access against a real PACS: Debian's Orthanc with the DICOMweb plugin, started on a loopback port with a
 * temporary storage folder, loaded by STOW-RS with the fixtures and the demo cohort, then put through the same
 * cases as the embedded DICOMweb server (imaging-access.cases.ts). Orthanc is stopped by its PID.
 *
 * Outside CI the suite skips with a loud message when Orthanc is not installed; with CI=true it fails instead.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { DicomWebClient } from '../../server/imaging/dicomweb-client.ts';
import { TS } from '../../server/imaging/transfer-syntax.ts';
import { dicomWebPlugin, orthancBinary, startOrthanc, type OrthancHandle } from '../support/orthanc.ts';
import { corpusFiles, imagingAccessCases, pixelCorpus, type CorpusEntry, type ServerUnderTest } from './imaging-access.cases.ts';

const missing = !orthancBinary() ? 'Orthanc' : !dicomWebPlugin() ? 'the Orthanc DICOMweb plugin' : undefined;
const inCi = process.env.CI === 'true';

if (missing && !inCi) {
  const bar = '!'.repeat(100);
  console.warn(`\n${bar}\n!! SKIPPING the Orthanc PACS integration suite: ${missing} is not installed.\n!! Install with \`npm run setup\` (Debian packages orthanc orthanc-dicomweb). CI (CI=true) runs it and fails without it.\n${bar}\n`);
  it('Orthanc (real PACS) integration suite', { skip: `${missing} is not installed (see the warning above)` }, () => undefined);
} else {
  suite();
}

function suite(): void {
describe('Orthanc (real PACS) integration', () => {
  let orthanc: OrthancHandle | undefined;
  let sut: ServerUnderTest | undefined;
  let corpus: CorpusEntry[] = [];

  before(async () => {
    if (missing) throw new Error(`CI=true but ${missing} is not installed: the PACS integration suite must run in CI`);
    orthanc = await startOrthanc();
    const client = new DicomWebClient({
      baseUrl: orthanc.dicomWebUrl,
      auth: { type: 'basic', username: orthanc.username, password: orthanc.password },
      timeoutMs: 30_000,
    });
    // STOW-RS upload in batches of ≤ 32 MB.
    let batch: Uint8Array[] = [];
    let size = 0;
    for (const p of corpusFiles()) {
      const b = readFileSync(p);
      batch.push(b);
      size += b.length;
      if (size > 32 * 1024 * 1024) {
        await client.store(batch);
        batch = [];
        size = 0;
      }
    }
    if (batch.length) await client.store(batch);
    corpus = pixelCorpus();
    sut = {
      name: 'Orthanc',
      client,
      badAuthClient: new DicomWebClient({ baseUrl: orthanc.dicomWebUrl, auth: { type: 'basic', username: orthanc.username, password: 'wrong' }, retries: 0 }),
      rootUrl: orthanc.dicomWebUrl,
      authHeaders: { authorization: `Basic ${Buffer.from(`${orthanc.username}:${orthanc.password}`).toString('base64')}` },
      // Orthanc 1.10 + DICOMweb 1.7 transcode with DCMTK, which has no JPEG 2000 codec (platform notes).
      cannotTranscode: new Set([TS.jpeg2000Lossless, TS.jpeg2000]),
    };
  });

  after(async () => {
    await orthanc?.stop();
  });

  it('stored every uploaded instance', async () => {
    const r = await fetch(`${orthanc!.restUrl}/statistics`, { headers: sut!.authHeaders });
    const stats = (await r.json()) as { CountInstances: number };
    assert.equal(stats.CountInstances, corpusFiles().length);
  });

  imagingAccessCases(() => {
    assert.ok(sut, 'Orthanc did not start');
    return sut;
  }, () => corpus);

  it('is stopped by PID at the end (process exists while the suite runs)', () => {
    assert.doesNotThrow(() => process.kill(orthanc!.pid, 0));
  });
});
}

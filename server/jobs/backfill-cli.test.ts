/**
 * The backfill command line (`npm run backfill -- …`, server/jobs/backfill.ts) as a user runs it, in a child
 * process: `--help` and `-h` print the usage and exit 0; an unknown option is still refused with exit 2.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { REPO_ROOT } from '../config.ts';

function backfill(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'server/jobs/backfill.ts'), ...args], { cwd: REPO_ROOT, encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('backfill command line', () => {
  for (const flag of ['--help', '-h']) {
    test(`${flag} prints the usage and the options on stdout and exits 0`, () => {
      const r = backfill(flag);
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stdout, /^usage: npm run backfill -- --since <YYYY-MM-DD>/);
      for (const opt of ['--fhir', '--dicomweb', '--concurrency', '--run', '--no-triage', '--limit', '--db', '--help']) assert.ok(r.stdout.includes(`${opt} `), `${opt} is described`);
      assert.doesNotMatch(r.stderr, /Unknown option/);
    });
  }

  test('an unknown option is refused with the usage on stderr and exit 2', () => {
    const r = backfill('--bogus');
    assert.equal(r.status, 2);
    assert.match(r.stderr, /Unknown option '--bogus'/);
    assert.match(r.stderr, /usage: npm run backfill/);
    assert.equal(r.stdout, '');
  });
});

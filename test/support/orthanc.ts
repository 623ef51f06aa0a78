/**
 * Starts Debian's Orthanc (with the DICOMweb plugin) as a real PACS for tests and benchmarks: free loopback port,
 * temporary storage folder, generated configuration with basic auth, readiness poll, and stop by PID
 * (SIGTERM, then SIGKILL after a grace period). See the "Orthanc" section of the platform notes.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './net.ts';

export interface OrthancHandle {
  /** DICOMweb root, e.g. http://127.0.0.1:PORT/dicom-web */
  dicomWebUrl: string;
  /** Orthanc REST root. */
  restUrl: string;
  username: string;
  password: string;
  pid: number;
  stop(): Promise<void>;
}

const PLUGIN_CANDIDATES = ['/usr/share/orthanc/plugins/libOrthancDicomWeb.so', '/usr/lib/orthanc/plugins/libOrthancDicomWeb.so'];

/** Path of the Orthanc executable on PATH, or undefined. */
export function orthancBinary(): string | undefined {
  const r = spawnSync('sh', ['-c', 'command -v Orthanc'], { encoding: 'utf8' });
  const p = r.stdout.trim();
  return r.status === 0 && p ? p : undefined;
}

export function dicomWebPlugin(): string | undefined {
  return PLUGIN_CANDIDATES.find((p) => existsSync(p));
}


function exited(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once('exit', () => resolve());
  });
}

export async function startOrthanc(opts: { username?: string; password?: string; readyTimeoutMs?: number } = {}): Promise<OrthancHandle> {
  const bin = orthancBinary();
  const plugin = dicomWebPlugin();
  if (!bin) throw new Error('Orthanc is not installed (Debian packages "orthanc" and "orthanc-dicomweb"; run `npm run setup`)');
  if (!plugin) throw new Error('the Orthanc DICOMweb plugin is not installed (Debian package "orthanc-dicomweb")');
  const username = opts.username ?? 'pacs';
  const password = opts.password ?? `pw-${Math.random().toString(36).slice(2)}`;
  const dir = mkdtempSync(join(tmpdir(), 'frcds-orthanc-'));
  const port = await freePort();
  const config = {
    Name: 'FRCDS-TEST',
    StorageDirectory: join(dir, 'storage'),
    IndexDirectory: join(dir, 'storage'),
    Plugins: [plugin],
    HttpPort: port,
    DicomServerEnabled: false,
    RemoteAccessAllowed: false,
    AuthenticationEnabled: true,
    RegisteredUsers: { [username]: password },
    HttpCompressionEnabled: false,
    DicomWeb: { Enable: true, Root: '/dicom-web/', EnableWado: false, Ssl: false },
  };
  const configPath = join(dir, 'orthanc.json');
  writeFileSync(configPath, JSON.stringify(config, null, 2));
  const logPath = join(dir, 'orthanc.log');
  const { openSync } = await import('node:fs');
  const log = openSync(logPath, 'w');
  const child = spawn(bin, [configPath], { stdio: ['ignore', log, log] });
  // If the test process dies without calling stop(), do not leave a PACS running.
  const onExit = () => {
    if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) process.kill(child.pid, 'SIGKILL');
  };
  process.once('exit', onExit);
  const restUrl = `http://127.0.0.1:${port}`;
  const auth = `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`;

  const stop = async () => {
    if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) {
      process.kill(child.pid, 'SIGTERM');
      const killer = setTimeout(() => {
        if (child.exitCode === null && child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
      }, 10_000);
      await exited(child);
      clearTimeout(killer);
    }
    process.removeListener('exit', onExit);
    rmSync(dir, { recursive: true, force: true });
  };

  const deadline = Date.now() + (opts.readyTimeoutMs ?? 20_000);
  for (;;) {
    if (child.exitCode !== null) {
      const tail = readFileSync(logPath, 'utf8').split('\n').slice(-20).join('\n');
      rmSync(dir, { recursive: true, force: true });
      throw new Error(`Orthanc exited with code ${child.exitCode} during start-up:\n${tail}`);
    }
    try {
      const r = await fetch(`${restUrl}/system`, { headers: { authorization: auth }, signal: AbortSignal.timeout(1000) });
      if (r.ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`Orthanc did not become ready on port ${port} in time`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return { dicomWebUrl: `${restUrl}/dicom-web`, restUrl, username, password, pid: child.pid!, stop };
}

/**
 * Imaging worker entry for worker-pool.test.ts: the real worker (imaging-worker.ts), plus faults that cannot be
 * caused through real inputs, chosen by the transfer syntax UID of a decode job: `fault:exit` ends the thread,
 * `fault:throw` throws an uncaught exception, `fault:hang` never answers. Any other job is served normally.
 */
import { parentPort } from 'node:worker_threads';
import '../../server/imaging/imaging-worker.ts';
import type { WorkerRequest } from '../../server/imaging/worker-protocol.ts';

parentPort!.on('message', (req: WorkerRequest) => {
  if (req.kind !== 'decode') return;
  if (req.transferSyntaxUid === 'fault:exit') process.exit(7);
  if (req.transferSyntaxUid === 'fault:throw') throw new Error('injected fault');
  if (req.transferSyntaxUid === 'fault:hang') for (;;);
});

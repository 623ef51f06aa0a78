/**
 * Entry of an imaging worker thread (started by worker-pool.ts): decodes frames and runs the preprocessing recipe
 * off the service's main event loop, so a CDS hook that arrives while another patient's radiograph is being
 * decoded is not queued behind it. One job at a time; results go back with their ArrayBuffers transferred.
 */
import { parentPort } from 'node:worker_threads';
import { decodeFrameAt, warmUpCodecs } from './decode/index.ts';
import type { StoredArray } from './decode/types.ts';
import { preprocessPixels } from './preprocess.ts';
import { serializeError, type WorkerReply, type WorkerRequest } from './worker-protocol.ts';

/**
 * The array itself when it owns its whole ArrayBuffer (it can be moved), else a compact copy: a view into WASM
 * memory or into a larger buffer cannot be transferred without detaching memory someone else uses.
 */
function movable<T extends StoredArray | Float32Array>(a: T): T {
  const whole = a.buffer instanceof ArrayBuffer && a.byteOffset === 0 && a.byteLength === a.buffer.byteLength;
  return whole ? a : (a.slice() as T);
}

async function run(req: WorkerRequest): Promise<{ reply: WorkerReply; transfer: ArrayBuffer[] }> {
  if (req.kind === 'decode') {
    const decoded = await decodeFrameAt(req.transferSyntaxUid, req.bytes, req.pixelModule, req.need);
    const stored = movable(decoded.stored);
    return {
      reply: { id: req.id, ok: true, kind: 'decode', stored, pixelModule: decoded.pixelModule, level: decoded.level },
      transfer: [stored.buffer as ArrayBuffer],
    };
  }
  const working = movable(preprocessPixels({ stored: req.stored, pixelModule: req.pixelModule, laterality: req.laterality }, req.recipe));
  // The stored array came in by transfer; hand it back the same way (the caller still needs it for quality/heatmap).
  const stored = movable(req.stored);
  const transfer = [working.buffer as ArrayBuffer];
  if (stored.buffer !== working.buffer) transfer.push(stored.buffer as ArrayBuffer);
  return { reply: { id: req.id, ok: true, kind: 'preprocess', stored, working }, transfer };
}

const port = parentPort;
if (!port) throw new Error('imaging-worker.ts must run in a worker thread');
// Codec initialisation (≈40 ms each) happens here, in the background, not on the first patient's request.
warmUpCodecs().catch(() => undefined);
port.on('message', (req: WorkerRequest) => {
  run(req).then(
    ({ reply, transfer }) => port.postMessage(reply, transfer),
    (err: unknown) => port.postMessage({ id: req.id, ok: false, error: serializeError(err) } satisfies WorkerReply),
  );
});

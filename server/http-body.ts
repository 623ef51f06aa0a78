/**
 * Reading an HTTP answer's body with a byte cap, for every client that talks to a server it does not control (FHIR
 * servers named by CDS clients, PACSes): the read stops and the connection is cancelled as soon as the cap is
 * passed, so a huge or endless answer costs at most `limit` bytes of memory. Hand-written because fetch has no
 * size limit and undici's `maxResponseSize` applies to its own dispatcher only.
 */

/** What went wrong, for the caller to turn into its own typed error. */
export type BodyProblem =
  | { readonly kind: 'too-large'; readonly declared?: number }
  | { readonly kind: 'length-mismatch'; readonly received: number; readonly declared: number };

/** Thrown by {@link readCappedBody} unless the caller maps problems to its own errors. */
export class BodyReadError extends Error {
  override readonly name = 'BodyReadError';
  constructor(readonly problem: BodyProblem) {
    super(problem.kind === 'too-large' ? 'the answer is larger than the limit' : `the answer ended after ${problem.received} of ${problem.declared} bytes`);
  }
}

/**
 * The body of `res`, at most `limit` bytes. A `Content-Length` above the limit is refused before reading; with a
 * known length each chunk is copied once into place and a short or long body is a `length-mismatch`.
 * @throws the error `fail` returns for the problem (default {@link BodyReadError})
 */
export async function readCappedBody(res: Response, limit: number, fail: (p: BodyProblem) => Error = (p) => new BodyReadError(p)): Promise<Uint8Array> {
  // With Content-Encoding (gzip…) fetch inflates the body and Content-Length counts compressed bytes.
  const encoded = (res.headers.get('content-encoding') ?? 'identity').toLowerCase() !== 'identity';
  const declared = encoded ? Number.NaN : Number(res.headers.get('content-length') ?? Number.NaN);
  if (Number.isFinite(declared) && declared > limit) {
    await res.body?.cancel().catch(() => undefined);
    throw fail({ kind: 'too-large', declared });
  }
  if (!res.body) return new Uint8Array(0);
  const reader = res.body.getReader();
  if (Number.isFinite(declared) && declared > 0) {
    const out = new Uint8Array(declared);
    let at = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      if (at + value.byteLength > declared) {
        await reader.cancel().catch(() => undefined);
        throw fail({ kind: 'length-mismatch', received: at + value.byteLength, declared });
      }
      out.set(value, at);
      at += value.byteLength;
    }
    if (at !== declared) throw fail({ kind: 'length-mismatch', received: at, declared });
    return out;
  }
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > limit) {
      await reader.cancel().catch(() => undefined);
      throw fail({ kind: 'too-large' });
    }
    chunks.push(value);
  }
  return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
}

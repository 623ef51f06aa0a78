/**
 * HTTP plumbing of the simulated EHRs: a loopback listener that can be closed at once, the CORS answers a browser
 * app needs from a FHIR server and a token endpoint on another origin, and FHIR error bodies.
 * @see https://fetch.spec.whatwg.org/#http-cors-protocol
 */
import { createServer, type Server } from 'node:http';
import type { Express, RequestHandler, Response } from 'express';
import { freePort } from '../net.ts';

export interface Listening {
  /** `http://127.0.0.1:<port>` */
  readonly origin: string;
  close(): Promise<void>;
}

/** Serves `app` on a free loopback port. */
export async function listen(app: Express): Promise<Listening> {
  const port = await freePort();
  const server: Server = createServer(app);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  return {
    origin: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/**
 * CORS for a browser app served from another origin: the requesting origin is echoed (with `Vary: Origin`), bearer
 * tokens and form posts are allowed, and preflights are answered here with 204 — as public FHIR servers and SMART
 * token endpoints do, since the app calls them straight from the browser.
 */
export const cors: RequestHandler = (req, res, next) => {
  const origin = req.get('origin');
  if (origin) {
    res.set({ 'Access-Control-Allow-Origin': origin, Vary: 'Origin', 'Access-Control-Expose-Headers': 'Location, ETag, Content-Location' });
  }
  if (req.method === 'OPTIONS') {
    res.set({ 'Access-Control-Allow-Methods': 'GET, HEAD, POST, PUT, OPTIONS', 'Access-Control-Allow-Headers': 'Authorization, Content-Type, Accept, Prefer, If-None-Exist', 'Access-Control-Max-Age': '600' });
    res.status(204).end();
    return;
  }
  next();
};

/** A FHIR OperationOutcome error answer in the EHR's media type. */
export function fhirError(res: Response, mediaType: string, status: number, code: string, text: string): void {
  res
    .status(status)
    .type(mediaType)
    .send(JSON.stringify({ resourceType: 'OperationOutcome', issue: [{ severity: 'error', code, diagnostics: text }] }));
}

/** An OAuth 2.0 error answer (RFC 6749 §5.2). */
export function oauthError(res: Response, status: number, error: string, description: string): void {
  res.status(status).set({ 'Cache-Control': 'no-store', Pragma: 'no-cache' }).json({ error, error_description: description });
}

/**
 * The embedded DICOMweb server of the demo stack (mounted at /sandbox/dicom-web): QIDO-RS, WADO-RS metadata,
 * instances, frames and Pixel Data bulk data over the DICOM files under `dicomDir`
 * (`<study>/<series>/<instance>.dcm`), indexed once at start-up. Read-only; answers like a PACS would
 * (PS3.18 §10.4 retrieve, §10.6 search), including transfer-syntax negotiation and transcoding to explicit VR LE.
 */
import { Router, type Request, type Response } from 'express';
import type { Logger } from 'pino';
import type { DicomFile } from '../../imaging/dicom.ts';
import { TAG, type DicomJsonDataset } from '../../imaging/dicom-json.ts';
import { ImagingError } from '../../imaging/errors.ts';
import { multipartChunks, type PartInput } from '../../imaging/multipart.ts';
import { formatMediaType } from '../../imaging/media-type.ts';
import { negotiate, type Negotiated } from './negotiate.ts';
import { parseQuery, QidoQueryError, runQuery, type QueryLevel } from './qido.ts';
import { DicomStore, type InstanceRecord } from './store.ts';
import { canTranscode, nativeFrameBytes, transcodeInstance } from './transcode.ts';

export interface DicomWebRouterOptions {
  dicomDir: string;
  logger: Logger;
}

const DICOM_JSON = 'application/dicom+json';

function baseUrl(req: Request): string {
  return `${req.protocol}://${req.get('host') ?? 'localhost'}${req.baseUrl}`;
}

/** Streams a multipart/related body chunk by chunk (no concatenated copy of multi-megabyte pixel data). */
function sendMultipart(res: Response, parts: PartInput[], type: string): void {
  const out = multipartChunks(parts, type);
  res.status(200).set({ 'Content-Type': out.contentType, 'Content-Length': String(out.length) });
  for (const c of out.chunks) res.write(c);
  res.end();
}

function fail(res: Response, status: number, message: string): void {
  res.status(status).type('text/plain').send(`${message}\n`);
}

function param(req: Request, name: string): string {
  const v = (req.params as Record<string, string | undefined>)[name];
  return v ?? '';
}

/** Creates the router and indexes the DICOM folder (a missing folder gives an empty archive, logged). */
export async function createDicomWebRouter(
  options: DicomWebRouterOptions,
): Promise<{ router: Router; instanceCount: number }> {
  const { logger } = options;
  const t0 = performance.now();
  const store = await DicomStore.load(options.dicomDir, logger);
  logger.info(
    { studies: store.studies.size, instances: store.instanceCount, ms: Math.round(performance.now() - t0) },
    'sandbox DICOMweb: index built',
  );
  const router = Router();

  // ---- QIDO-RS -------------------------------------------------------------------------------------------------
  const search = (level: QueryLevel) => (req: Request, res: Response) => {
    const study = param(req, 'study') || undefined;
    const series = param(req, 'series') || undefined;
    if (study && !store.studies.has(study)) return fail(res, 404, 'study not found');
    if (study && series && !store.studies.get(study)!.series.has(series)) return fail(res, 404, 'series not found');
    try {
      const url = new URL(req.originalUrl, 'http://x');
      const q = parseQuery(url.searchParams);
      const result = runQuery(store, { level, studyUid: study, seriesUid: series, base: baseUrl(req) }, q);
      res.status(200).type(DICOM_JSON).send(JSON.stringify(result));
    } catch (e) {
      if (e instanceof QidoQueryError) return fail(res, 400, e.message);
      throw e;
    }
  };
  router.get('/studies', search('study'));
  router.get('/series', search('series'));
  router.get('/instances', search('instance'));
  router.get('/studies/:study/series', search('series'));
  router.get('/studies/:study/instances', search('instance'));
  router.get('/studies/:study/series/:series/instances', search('instance'));

  // ---- WADO-RS metadata ---------------------------------------------------------------------------------------
  const withBulk = (inst: InstanceRecord, base: string): DicomJsonDataset => {
    if (!inst.json[TAG.PixelData]) return inst.json;
    const uri = `${base}/studies/${inst.studyUid}/series/${inst.seriesUid}/instances/${inst.sopUid}/bulk/${TAG.PixelData}`;
    return { ...inst.json, [TAG.PixelData]: { vr: inst.json[TAG.PixelData]!.vr, BulkDataURI: uri } };
  };
  const selected = (req: Request, res: Response): InstanceRecord[] | undefined => {
    const study = param(req, 'study');
    const series = param(req, 'series') || undefined;
    const sop = param(req, 'instance') || undefined;
    const list = store.instancesOf(study, series).filter((i) => !sop || i.sopUid === sop);
    if (list.length === 0) {
      fail(res, 404, `${sop ? 'instance' : series ? 'series' : 'study'} not found`);
      return undefined;
    }
    return list;
  };
  const metadata = (req: Request, res: Response) => {
    const list = selected(req, res);
    if (!list) return;
    const base = baseUrl(req);
    res.status(200).type(DICOM_JSON).send(JSON.stringify(list.map((i) => withBulk(i, base))));
  };
  router.get('/studies/:study/metadata', metadata);
  router.get('/studies/:study/series/:series/metadata', metadata);
  router.get('/studies/:study/series/:series/instances/:instance/metadata', metadata);

  // ---- WADO-RS instances --------------------------------------------------------------------------------------
  const instances = async (req: Request, res: Response) => {
    const list = selected(req, res);
    if (!list) return;
    const parts: PartInput[] = [];
    for (const inst of list) {
      const file = await store.open(inst);
      const n = negotiate(req.get('accept'), 'instance', inst.transferSyntaxUid, canTranscode(file));
      if (!n.ok) return fail(res, n.status, n.message);
      const body = n.transcode ? await transcodeInstance(file) : file.bytes;
      parts.push({ contentType: formatMediaType('application/dicom', { 'transfer-syntax': n.syntax }), body });
    }
    sendMultipart(res, parts, 'application/dicom');
  };
  router.get('/studies/:study', instances);
  router.get('/studies/:study/series/:series', instances);
  router.get('/studies/:study/series/:series/instances/:instance', instances);

  // ---- WADO-RS frames and Pixel Data bulk data ----------------------------------------------------------------
  const sendFrames = async (res: Response, file: DicomFile, frameNumbers: number[], n: Extract<Negotiated, { ok: true }>) => {
    const parts: PartInput[] = [];
    for (const f of frameNumbers) {
      const body = n.transcode ? await nativeFrameBytes(file, f - 1) : file.frame(f - 1);
      parts.push({ contentType: formatMediaType(n.partType, { 'transfer-syntax': n.syntax }), body });
    }
    sendMultipart(res, parts, n.partType);
  };
  const openOne = async (req: Request, res: Response): Promise<DicomFile | undefined> => {
    const inst = store.find(param(req, 'study'), param(req, 'series'), param(req, 'instance'));
    if (!inst) {
      fail(res, 404, 'instance not found');
      return undefined;
    }
    const file = await store.open(inst);
    if (!file.hasPixelData) {
      fail(res, 404, 'instance has no Pixel Data');
      return undefined;
    }
    return file;
  };
  router.get('/studies/:study/series/:series/instances/:instance/frames/:frames', async (req, res) => {
    const file = await openOne(req, res);
    if (!file) return;
    const count = file.pixelModule.numberOfFrames;
    const list = param(req, 'frames').split(',').map((s) => Number(s.trim()));
    if (list.length === 0 || list.some((f) => !Number.isInteger(f) || f < 1)) return fail(res, 400, 'frame list must be positive integers');
    if (list.some((f) => f > count)) return fail(res, 404, `frame number out of range (instance has ${count} frame(s))`);
    const n = negotiate(req.get('accept'), 'frames', file.transferSyntaxUid, canTranscode(file));
    if (!n.ok) return fail(res, n.status, n.message);
    await sendFrames(res, file, list, n);
  });
  router.get('/studies/:study/series/:series/instances/:instance/bulk/:tag', async (req, res) => {
    if (param(req, 'tag').toUpperCase() !== TAG.PixelData) return fail(res, 404, 'only Pixel Data (7FE00010) is served as bulk data');
    const file = await openOne(req, res);
    if (!file) return;
    const n = negotiate(req.get('accept'), 'frames', file.transferSyntaxUid, canTranscode(file));
    if (!n.ok) return fail(res, n.status, n.message);
    await sendFrames(res, file, Array.from({ length: file.pixelModule.numberOfFrames }, (_, i) => i + 1), n);
  });

  // Read-only archive: say so instead of a bare 404 for STOW-RS and deletes.
  router.all(['/studies', '/studies/*rest'], (req, res, next) => {
    if (req.method === 'GET' || req.method === 'HEAD') return next();
    res.set('Allow', 'GET, HEAD');
    fail(res, 405, 'the sandbox DICOMweb archive is read-only');
  });

  // Errors from bad files on disk become 500 with a clear, PHI-free message.
  router.use((err: unknown, _req: Request, res: Response, next: (e?: unknown) => void) => {
    if (res.headersSent) return next(err);
    if (err instanceof ImagingError) {
      logger.warn({ code: err.code }, 'sandbox DICOMweb: cannot serve instance');
      return fail(res, 500, `${err.code}: ${err.message}`);
    }
    next(err);
  });

  return { router, instanceCount: store.instanceCount };
}

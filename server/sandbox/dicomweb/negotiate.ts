/**
 * WADO-RS transfer-syntax negotiation as a PACS does it (PS3.18 §8.7.3.5): walk the Accept entries in q order,
 * serve the stored syntax when an entry accepts it (by UID or `transfer-syntax=*`), else transcode to explicit
 * VR little endian when an entry asks for it and the stored syntax can be decoded, else 406.
 */
import { parseAccept } from '../../imaging/media-type.ts';
import { LOCALLY_DECODABLE } from '../../imaging/decode/index.ts';
import { defaultSyntaxForMediaType, frameMediaType, isNativeLittleEndian, TS } from '../../imaging/transfer-syntax.ts';

export type Resource = 'instance' | 'frames';

export type Negotiated =
  | { ok: true; syntax: string; transcode: boolean; partType: string }
  | { ok: false; status: 406 | 400; message: string };

/**
 * @param resource 'instance' (parts are application/dicom) or 'frames' (bulk data: octet-stream / image types).
 * @param stored the stored transfer syntax.
 * @param canTranscode whether this instance can be turned into explicit VR LE (pixel data decodable, monochrome…).
 */
export function negotiate(accept: string | undefined, resource: Resource, stored: string, canTranscode: boolean): Negotiated {
  const rootDefault = resource === 'instance' ? 'application/dicom' : 'application/octet-stream';
  const entries = parseAccept(accept);
  if (entries.length === 0) entries.push({ type: 'multipart/related', params: { type: rootDefault }, q: 1 });
  const nativeStored = isNativeLittleEndian(stored);
  const decodable = LOCALLY_DECODABLE.includes(stored) && canTranscode;
  let sawMultipart = false;

  for (const e of entries) {
    let partType: string;
    if (e.type === '*/*' || e.type === 'multipart/*') partType = rootDefault;
    else if (e.type === 'multipart/related') partType = (e.params.type ?? rootDefault).toLowerCase();
    else continue;
    sawMultipart = true;
    const wanted = e.params['transfer-syntax'] ?? (resource === 'instance' ? TS.explicitLE : defaultSyntaxForMediaType(partType));
    const typeOk =
      resource === 'instance'
        ? partType === 'application/dicom'
        : partType === 'application/octet-stream' || partType === '*/*' || partType === frameMediaType(stored);
    if (!typeOk || !wanted) continue;

    if (wanted === '*' || wanted === stored) {
      return { ok: true, syntax: stored, transcode: false, partType: resource === 'instance' ? 'application/dicom' : frameMediaType(stored) };
    }
    if (wanted === TS.explicitLE) {
      // Frames of implicit VR LE files are already explicit-LE bytes (bulk data carries no VRs).
      if (resource === 'frames' && nativeStored) return { ok: true, syntax: TS.explicitLE, transcode: false, partType: 'application/octet-stream' };
      if (!nativeStored && decodable) {
        return { ok: true, syntax: TS.explicitLE, transcode: true, partType: resource === 'instance' ? 'application/dicom' : 'application/octet-stream' };
      }
    }
  }
  if (!sawMultipart) {
    return {
      ok: false,
      status: 406,
      message: `WADO-RS ${resource === 'instance' ? 'instances' : 'frames'} are served as multipart/related; Accept "${(accept ?? '').slice(0, 200)}" names no multipart/related type`,
    };
  }
  return {
    ok: false,
    status: 406,
    message: `stored transfer syntax ${stored} is not acceptable and cannot be transcoded to what was asked (${(accept ?? '').slice(0, 200)})`,
  };
}

/**
 * Lazy loading of the Cornerstone WebAssembly codecs (CharLS, OpenJPEG, libjpeg-turbo). Each factory is awaited
 * once (≈40 ms) on first use; if a codec aborts (Emscripten leaves the module unusable after an abort), the cached
 * instance is dropped so the next call starts a fresh one.
 */
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

/** The part of an Emscripten-embound decoder class the service uses (shared by all three codecs). */
export interface WasmDecoder {
  getEncodedBuffer(length: number): Uint8Array;
  getDecodedBuffer(): Uint8Array;
  decode(): void;
  getFrameInfo(): { width: number; height: number; bitsPerSample: number; componentCount: number; isSigned?: boolean };
  delete(): void;
}

export interface CodecModules {
  charls: { JpegLSDecoder: new () => WasmDecoder };
  openjpeg: { J2KDecoder: new () => WasmDecoder };
  libjpegTurbo: { JPEGDecoder: new () => WasmDecoder };
}

type Factory = (moduleArg?: { print?: (s: string) => void; printErr?: (s: string) => void }) => Promise<unknown>;

const ENTRY: Record<keyof CodecModules, string> = {
  charls: '@cornerstonejs/codec-charls/decodewasmjs',
  openjpeg: '@cornerstonejs/codec-openjpeg/decodewasmjs',
  libjpegTurbo: '@cornerstonejs/codec-libjpeg-turbo-8bit/decodewasmjs',
};

const cache = new Map<keyof CodecModules, Promise<unknown>>();

/** Returns the initialised codec module, loading it on first use. */
export async function codec<K extends keyof CodecModules>(name: K): Promise<CodecModules[K]> {
  let p = cache.get(name);
  if (!p) {
    const factory = require(ENTRY[name]) as Factory;
    // OpenJPEG prints [INFO] lines to stdout for every frame: keep codec chatter out of the service's JSON logs.
    p = factory({ print: () => undefined, printErr: () => undefined });
    cache.set(name, p);
    p.catch(() => cache.delete(name));
  }
  return (await p) as CodecModules[K];
}

/** Forgets a codec instance after a WebAssembly trap or abort so the next use re-instantiates it. */
export function resetCodec(name: keyof CodecModules): void {
  cache.delete(name);
}

/** Loads all codecs now (e.g. at service start-up, so the first request does not pay the init). */
export async function warmUpCodecs(): Promise<void> {
  await Promise.all((Object.keys(ENTRY) as (keyof CodecModules)[]).map((k) => codec(k)));
}

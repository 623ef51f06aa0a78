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

/** The Emscripten heap views every codec module exports (used to read a thrown C++ exception). */
export interface EmscriptenHeap {
  HEAPU8?: Uint8Array;
  HEAPU32?: Uint32Array;
}

export interface CodecModules {
  charls: EmscriptenHeap & { JpegLSDecoder: new () => WasmDecoder };
  openjpeg: EmscriptenHeap & { J2KDecoder: new () => WasmDecoder };
  libjpegTurbo: EmscriptenHeap & { JPEGDecoder: new () => WasmDecoder };
}

/** What a C++ exception thrown inside a codec says, as far as it can be read (see {@link readCppException}). */
export interface CppException {
  /** Mangled type name, e.g. `N6charls12jpegls_errorE`, `PKc` (a `const char*`), `St13runtime_error`. */
  typeName: string;
  /** `what()` (or the thrown C string): printable ASCII only, white space collapsed. */
  what?: string;
  /** The `std::error_code` value of a `std::system_error` (CharLS's `jpegls_error` carries its `jpegls_errc`). */
  errorCode?: number;
}

const SYSTEM_ERRORS = new Set(['N6charls12jpegls_errorE', 'St12system_error']);
const WHAT_AT_4 = new Set([
  ...SYSTEM_ERRORS, 'St13runtime_error', 'St11logic_error', 'St16invalid_argument', 'St12length_error', 'St12out_of_range',
  'St11range_error', 'St14overflow_error', 'St15underflow_error', 'St12domain_error',
]);

/**
 * Reads a C++ exception that an Emscripten codec built without JavaScript exception support throws as a bare
 * number: the address of the exception object in WebAssembly memory (so a corrupt JPEG-LS file surfaced as
 * "decoding failed: 264512"). Emscripten keeps its `__cxa_exception` header 24 bytes below that address with the
 * `std::type_info*` at +4 (its ExceptionInfo class); a type_info holds its mangled name pointer at +4; libc++ lays
 * out `std::runtime_error` as [vtable, message pointer] and `std::system_error` adds [error value, category].
 * Emscripten exports no helper for this in these builds, hence the hand-read. Every read is bounds-checked and the
 * layout is only trusted for type names known to have it; anything else yields undefined.
 */
export function readCppException(mod: EmscriptenHeap, thrown: unknown): CppException | undefined {
  const u8 = mod.HEAPU8;
  const u32 = mod.HEAPU32;
  if (typeof thrown !== 'number' || !Number.isInteger(thrown) || !u8 || !u32) return undefined;
  const word = (addr: number): number | undefined => (addr >= 0 && addr % 4 === 0 && addr + 4 <= u8.length ? u32[addr >> 2] : undefined);
  const cString = (addr: number | undefined): string | undefined => {
    if (addr === undefined || addr <= 0 || addr >= u8.length) return undefined;
    let s = '';
    for (let i = addr; i < u8.length && s.length < 300; i++) {
      const c = u8[i]!;
      if (c === 0) return s.replace(/\s+/g, ' ').trim() || undefined;
      if ((c < 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0d) || c > 0x7e) return undefined;
      s += String.fromCharCode(c);
    }
    return undefined;
  };
  const typeInfo = word(thrown - 24 + 4);
  const typeName = cString(typeInfo === undefined ? undefined : word(typeInfo + 4));
  if (!typeName) return undefined;
  const out: CppException = { typeName };
  if (typeName === 'PKc' || typeName === 'Pc') {
    const what = cString(word(thrown));
    if (what) out.what = what;
  } else if (WHAT_AT_4.has(typeName)) {
    const what = cString(word(thrown + 4));
    if (what) out.what = what;
    if (SYSTEM_ERRORS.has(typeName)) out.errorCode = word(thrown + 8);
  }
  return out;
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

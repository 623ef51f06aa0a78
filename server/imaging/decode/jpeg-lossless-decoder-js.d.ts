// The package names release/lossless.d.ts in its package.json but does not ship it; this declares the one class
// the service uses (see node_modules/jpeg-lossless-decoder-js/src/decoder.ts).
declare module 'jpeg-lossless-decoder-js' {
  export class Decoder {
    constructor(buffer?: ArrayBuffer | null, numBytes?: number);
    decode(buffer?: ArrayBuffer, offset?: number, length?: number, numBytes?: number): Uint8Array | Uint16Array;
    xDim: number;
    yDim: number;
    numComp: number;
  }
}

/** JPEG-LS lossless (.80) and near-lossless (.81) (ITU-T T.87) with @cornerstonejs/codec-charls. */
import { DecodeError } from '../errors.ts';
import type { PixelModule } from '../pixel-module.ts';
import { readJpegFrameHeader } from './jpeg-markers.ts';
import type { StoredArray } from './types.ts';
import { decodeWithWasm, type ExplainCodecError } from './wasm-decode.ts';
import type { CodecModules } from './wasm.ts';

/**
 * CharLS `charls::jpegls_errc` values, numbered as in CharLS 2.4 (include/charls/public_types.h), the release
 * @cornerstonejs/codec-charls 1.2 is built from — CharLS 3 renumbered them, so decode.test.ts provokes several
 * and checks each against CharLS's own text. [enum name, what it means for the file, in plain words].
 * @see https://github.com/team-charls/charls/blob/2.4.2/include/charls/public_types.h
 */
export const CHARLS_ERRORS: Readonly<Record<number, readonly [string, string]>> = {
  1: ['invalid_argument', 'the JPEG-LS decoder was called with invalid arguments'],
  2: ['parameter_value_not_supported', 'the JPEG-LS data uses a parameter value the decoder does not support'],
  3: ['destination_buffer_too_small', 'the JPEG-LS data holds more pixels than its header announces'],
  4: ['source_buffer_too_small', 'the JPEG-LS data is truncated: it ends before the image is complete'],
  5: ['invalid_encoded_data', 'the JPEG-LS compressed data is invalid'],
  6: ['too_much_encoded_data', 'the JPEG-LS data continues after the image is complete'],
  7: ['invalid_operation', 'the JPEG-LS decoder was used in the wrong order'],
  8: ['bit_depth_for_transform_not_supported', 'the JPEG-LS data uses a colour transform not supported at its bit depth'],
  9: ['color_transform_not_supported', 'the JPEG-LS data uses a colour transform that is not supported'],
  10: ['encoding_not_supported', 'the data is not JPEG-LS encoded'],
  11: ['unknown_jpeg_marker_found', 'the JPEG-LS data contains an unknown marker'],
  12: ['jpeg_marker_start_byte_not_found', 'the JPEG-LS data is invalid: a marker lacks its start byte'],
  13: ['not_enough_memory', 'the JPEG-LS decoder ran out of memory'],
  14: ['unexpected_failure', 'the JPEG-LS decoder failed unexpectedly'],
  15: ['start_of_image_marker_not_found', 'the JPEG-LS data does not begin with a start-of-image marker'],
  16: ['unexpected_marker_found', 'the JPEG-LS data has a marker in a place where none may be'],
  17: ['invalid_marker_segment_size', 'a JPEG-LS marker segment has an invalid size'],
  18: ['duplicate_start_of_image_marker', 'the JPEG-LS data has more than one start-of-image marker'],
  19: ['duplicate_start_of_frame_marker', 'the JPEG-LS data has more than one frame header'],
  20: ['duplicate_component_id_in_sof_segment', 'the JPEG-LS frame header names a component twice'],
  21: ['unexpected_end_of_image_marker', 'the JPEG-LS data ends (end-of-image marker) before the image is complete'],
  22: ['invalid_jpegls_preset_parameter_type', 'the JPEG-LS preset parameters are of an invalid type'],
  23: ['jpegls_preset_extended_parameter_type_not_supported', 'the JPEG-LS data uses JPEG-LS part 2 extensions, which are not supported'],
  24: ['missing_end_of_spiff_directory', 'the JPEG-LS SPIFF header has no end-of-directory entry'],
  25: ['unexpected_restart_marker', 'the JPEG-LS data has a restart marker outside the compressed data'],
  26: ['restart_marker_not_found', 'the JPEG-LS data lacks an expected restart marker'],
  27: ['callback_failed', 'the JPEG-LS decoder failed unexpectedly'],
  28: ['end_of_image_marker_not_found', 'the JPEG-LS data has no end-of-image marker (truncated?)'],
  29: ['invalid_spiff_header', 'the JPEG-LS SPIFF header is invalid'],
  100: ['invalid_argument_width', 'the JPEG-LS decoder was called with invalid arguments'],
  101: ['invalid_argument_height', 'the JPEG-LS decoder was called with invalid arguments'],
  102: ['invalid_argument_component_count', 'the JPEG-LS decoder was called with invalid arguments'],
  103: ['invalid_argument_bits_per_sample', 'the JPEG-LS decoder was called with invalid arguments'],
  104: ['invalid_argument_interleave_mode', 'the JPEG-LS decoder was called with invalid arguments'],
  105: ['invalid_argument_near_lossless', 'the JPEG-LS decoder was called with invalid arguments'],
  106: ['invalid_argument_jpegls_pc_parameters', 'the JPEG-LS decoder was called with invalid arguments'],
  110: ['invalid_argument_size', 'the JPEG-LS decoder was called with invalid arguments'],
  111: ['invalid_argument_color_transformation', 'the JPEG-LS decoder was called with invalid arguments'],
  112: ['invalid_argument_stride', 'the JPEG-LS decoder was called with invalid arguments'],
  113: ['invalid_argument_encoding_options', 'the JPEG-LS decoder was called with invalid arguments'],
  200: ['invalid_parameter_width', 'the JPEG-LS frame header has an invalid width'],
  201: ['invalid_parameter_height', 'the JPEG-LS frame header has an invalid height'],
  202: ['invalid_parameter_component_count', 'the JPEG-LS data has an invalid component count'],
  203: ['invalid_parameter_bits_per_sample', 'the JPEG-LS data has an invalid bit depth'],
  204: ['invalid_parameter_interleave_mode', 'the JPEG-LS data has an invalid interleave mode'],
  205: ['invalid_parameter_near_lossless', 'the JPEG-LS data has an invalid near-lossless setting'],
  206: ['invalid_parameter_jpegls_preset_parameters', 'the JPEG-LS preset coding parameters are invalid'],
};

/** CharLS throws `charls::jpegls_error` (a std::system_error) carrying its jpegls_errc and its own message. */
export const explainCharlsError: ExplainCodecError = (thrown) => {
  if (thrown?.typeName !== 'N6charls12jpegls_errorE' || thrown.errorCode === undefined) return undefined;
  const known = CHARLS_ERRORS[thrown.errorCode];
  const name = known ? ` ${known[0]}` : '';
  return {
    detail: `CharLS error ${thrown.errorCode}${name}${thrown.what ? ` (${thrown.what})` : ''}`,
    ...(known ? { reason: known[1] } : {}),
  };
};

export async function decodeJpegLs(bytes: Uint8Array, pm: PixelModule, ts: string): Promise<StoredArray> {
  // CharLS has no header-only call: check SOF55 ourselves before it allocates.
  const sof = readJpegFrameHeader(bytes);
  if (!sof || sof.marker !== 0xf7) throw new DecodeError(ts, 'JPEG-LS frame has no SOF55 frame header', { reason: 'the JPEG-LS data has no frame header' });
  if (sof.rows !== pm.rows || sof.columns !== pm.columns || sof.components !== pm.samplesPerPixel) {
    throw new DecodeError(ts, `JPEG-LS frame is ${sof.rows}×${sof.columns}×${sof.components}, header says ${pm.rows}×${pm.columns}×${pm.samplesPerPixel}`, {
      reason: 'the JPEG-LS image size differs from the DICOM header',
    });
  }
  return decodeWithWasm('charls', (m) => new (m as CodecModules['charls']).JpegLSDecoder(), bytes, pm, ts, 'JPEG-LS', explainCharlsError);
}

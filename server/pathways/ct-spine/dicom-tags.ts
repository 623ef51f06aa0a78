/**
 * DICOM JSON keys the CT spine pathway reads beyond the shared `TAG` table of the imaging layer (kept here so the
 * shared table only grows when a second user needs a tag).
 */
export const CT_TAG = {
  ImageType: '00080008',
  ContrastBolusAgent: '00180010',
  KVP: '00180060',
  SliceThickness: '00180050',
  ConvolutionKernel: '00181210',
  ImagePositionPatient: '00200032',
  ImageOrientationPatient: '00200037',
  SharedFunctionalGroupsSequence: '52009229',
  PerFrameFunctionalGroupsSequence: '52009230',
  PixelMeasuresSequence: '00289110',
  PlaneOrientationSequence: '00209116',
  PlanePositionSequence: '00209113',
  CTReconstructionSequence: '00189314',
} as const;

/** SOP Class UIDs of CT images: CT Image Storage and Enhanced CT Image Storage (multi-frame). */
export const CT_IMAGE_STORAGE = '1.2.840.10008.5.1.4.1.1.2';
export const ENHANCED_CT_IMAGE_STORAGE = '1.2.840.10008.5.1.4.1.1.2.1';

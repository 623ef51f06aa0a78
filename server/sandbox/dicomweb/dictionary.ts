/**
 * A small slice of the DICOM data dictionary (PS3.6 §6): keyword and VR for the attributes QIDO-RS matches on and
 * the sandbox files carry. Needed because implicit-VR files do not state VRs and QIDO-RS keys may be keywords.
 * Attributes outside this list still appear in metadata: with their stated VR (explicit VR files) or as UN.
 */
const ENTRIES: [tag: string, keyword: string, vr: string][] = [
  ['00080005', 'SpecificCharacterSet', 'CS'],
  ['00080008', 'ImageType', 'CS'],
  ['00080012', 'InstanceCreationDate', 'DA'],
  ['00080013', 'InstanceCreationTime', 'TM'],
  ['00080016', 'SOPClassUID', 'UI'],
  ['00080018', 'SOPInstanceUID', 'UI'],
  ['00080020', 'StudyDate', 'DA'],
  ['00080021', 'SeriesDate', 'DA'],
  ['00080022', 'AcquisitionDate', 'DA'],
  ['00080023', 'ContentDate', 'DA'],
  ['00080030', 'StudyTime', 'TM'],
  ['00080031', 'SeriesTime', 'TM'],
  ['00080032', 'AcquisitionTime', 'TM'],
  ['00080033', 'ContentTime', 'TM'],
  ['00080050', 'AccessionNumber', 'SH'],
  ['00080056', 'InstanceAvailability', 'CS'],
  ['00080060', 'Modality', 'CS'],
  ['00080061', 'ModalitiesInStudy', 'CS'],
  ['00080064', 'ConversionType', 'CS'],
  ['00080068', 'PresentationIntentType', 'CS'],
  ['00080070', 'Manufacturer', 'LO'],
  ['00080080', 'InstitutionName', 'LO'],
  ['00080090', 'ReferringPhysicianName', 'PN'],
  ['00080201', 'TimezoneOffsetFromUTC', 'SH'],
  ['00081030', 'StudyDescription', 'LO'],
  ['0008103E', 'SeriesDescription', 'LO'],
  ['00081090', 'ManufacturerModelName', 'LO'],
  ['00081190', 'RetrieveURL', 'UR'],
  ['00082111', 'DerivationDescription', 'ST'],
  ['00100010', 'PatientName', 'PN'],
  ['00100020', 'PatientID', 'LO'],
  ['00100021', 'IssuerOfPatientID', 'LO'],
  ['00100030', 'PatientBirthDate', 'DA'],
  ['00100040', 'PatientSex', 'CS'],
  ['00101010', 'PatientAge', 'AS'],
  ['00101020', 'PatientSize', 'DS'],
  ['00101030', 'PatientWeight', 'DS'],
  ['00180015', 'BodyPartExamined', 'CS'],
  ['00181000', 'DeviceSerialNumber', 'LO'],
  ['00181020', 'SoftwareVersions', 'LO'],
  ['00181164', 'ImagerPixelSpacing', 'DS'],
  ['00185101', 'ViewPosition', 'CS'],
  ['00185100', 'PatientPosition', 'CS'],
  ['0020000D', 'StudyInstanceUID', 'UI'],
  ['0020000E', 'SeriesInstanceUID', 'UI'],
  ['00200010', 'StudyID', 'SH'],
  ['00200011', 'SeriesNumber', 'IS'],
  ['00200013', 'InstanceNumber', 'IS'],
  ['00200020', 'PatientOrientation', 'CS'],
  ['00200060', 'Laterality', 'CS'],
  ['00200062', 'ImageLaterality', 'CS'],
  ['00201206', 'NumberOfStudyRelatedSeries', 'IS'],
  ['00201208', 'NumberOfStudyRelatedInstances', 'IS'],
  ['00201209', 'NumberOfSeriesRelatedInstances', 'IS'],
  ['00280002', 'SamplesPerPixel', 'US'],
  ['00280004', 'PhotometricInterpretation', 'CS'],
  ['00280006', 'PlanarConfiguration', 'US'],
  ['00280008', 'NumberOfFrames', 'IS'],
  ['00280010', 'Rows', 'US'],
  ['00280011', 'Columns', 'US'],
  ['00280030', 'PixelSpacing', 'DS'],
  ['00280100', 'BitsAllocated', 'US'],
  ['00280101', 'BitsStored', 'US'],
  ['00280102', 'HighBit', 'US'],
  ['00280103', 'PixelRepresentation', 'US'],
  ['00281040', 'PixelIntensityRelationship', 'CS'],
  ['00281041', 'PixelIntensityRelationshipSign', 'SS'],
  ['00281050', 'WindowCenter', 'DS'],
  ['00281051', 'WindowWidth', 'DS'],
  ['00281052', 'RescaleIntercept', 'DS'],
  ['00281053', 'RescaleSlope', 'DS'],
  ['00281054', 'RescaleType', 'LO'],
  ['00282110', 'LossyImageCompression', 'CS'],
  ['00282112', 'LossyImageCompressionRatio', 'DS'],
  ['00282114', 'LossyImageCompressionMethod', 'CS'],
  ['00400244', 'PerformedProcedureStepStartDate', 'DA'],
  ['00400245', 'PerformedProcedureStepStartTime', 'TM'],
  ['7FE00010', 'PixelData', 'OW'],
];

const BY_TAG = new Map(ENTRIES.map(([t, k, v]) => [t, { keyword: k, vr: v }]));
const BY_KEYWORD = new Map(ENTRIES.map(([t, k, v]) => [k.toLowerCase(), { tag: t, vr: v }]));

/** VR of a tag from the dictionary; group-length elements are UL. */
export function vrOf(tag: string): string | undefined {
  if (tag.endsWith('0000')) return 'UL';
  return BY_TAG.get(tag.toUpperCase())?.vr;
}

export function keywordOf(tag: string): string | undefined {
  return BY_TAG.get(tag.toUpperCase())?.keyword;
}

/** Resolves a QIDO-RS attribute id (keyword or 8 hex digits, PS3.18 §8.3.4.1) to its tag. */
export function resolveAttribute(id: string): string | undefined {
  if (/^[0-9A-Fa-f]{8}$/.test(id)) return id.toUpperCase();
  return BY_KEYWORD.get(id.toLowerCase())?.tag;
}

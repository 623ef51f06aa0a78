/**
 * Types shared by imaging pathways (hip radiograph, CT spine, …): see the imaging-pathways design note. The refusal,
 * and the pathway as the risk engine sees it (the CT spine pathway is the first wired through it).
 */
import type { ImagingStudy } from '@medplum/fhirtypes';

/**
 * A pathway's typed "cannot read this study": never an exception for a bad or unsuitable image. `code` is stable and
 * machine-readable; `reason` is plain words for the clinician's warning (no UIDs, no PHI).
 */
export interface PathwayRefusal<Code extends string = string> {
  refused: true;
  pathway: string;
  code: Code;
  reason: string;
}

export function isRefusal<T extends object>(v: T | PathwayRefusal): v is PathwayRefusal {
  return (v as Partial<PathwayRefusal>).refused === true;
}

/**
 * An imaging pathway: which ImagingStudies it can read (from FHIR alone, before any DICOMweb request), and reading
 * one into its findings or a refusal. `read` never throws for an unsuitable or unreadable study (only when the
 * caller aborts): the risk engine turns a refusal into a warning and a clinical-only assessment.
 */
export interface ImagingPathway<Deps, Findings, Refusal extends PathwayRefusal = PathwayRefusal> {
  readonly id: string;
  eligible(study: ImagingStudy): boolean;
  read(deps: Deps, study: ImagingStudy): Promise<Findings | Refusal>;
}

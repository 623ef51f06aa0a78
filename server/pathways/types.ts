/**
 * Types shared by imaging pathways (hip radiograph, CT spine, …): see the imaging-pathways design note. Only the
 * refusal is here so far; `ImagingPathway` and `Findings` join when a pathway is wired into the risk engine.
 */

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

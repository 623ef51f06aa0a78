/**
 * CDS Hooks 2.0 wire types as a CDS *client* sees them. The demo EHR keeps its own copy rather than importing the
 * service's (server/cds/): it plays a separate system that only knows the specification, so nothing it does can
 * depend on how our service happens to be written.
 * @see https://cds-hooks.hl7.org/2.0/ (HL7 CDS Hooks 2.0, "Discovery", "Calling a CDS Service", "CDS Service Response", "Feedback")
 */
import type { Bundle, Coding, Resource } from '@medplum/fhirtypes';

/** One entry of `GET /cds-services`. */
export interface CdsServiceDescriptor {
  hook: string;
  id: string;
  title?: string;
  description: string;
  prefetch?: Record<string, string>;
  usageRequirements?: string;
}

/** `fhirAuthorization` of a hook request (OAuth 2.0 access token the service may use against `fhirServer`). */
export interface FhirAuthorization {
  access_token: string;
  token_type: 'Bearer';
  expires_in: number;
  scope: string;
  /** The OAuth client id of the CDS service the token was issued to. */
  subject: string;
  patient?: string;
}

export interface HookRequest {
  hook: string;
  hookInstance: string;
  fhirServer?: string;
  fhirAuthorization?: FhirAuthorization;
  context: Record<string, unknown>;
  prefetch?: Record<string, Resource | null>;
}

export interface CdsAction {
  type: 'create' | 'update' | 'delete';
  description: string;
  resource?: Resource;
  resourceId?: string;
}

export interface CdsSuggestion {
  label: string;
  uuid?: string;
  isRecommended?: boolean;
  actions?: CdsAction[];
}

export interface CdsLink {
  label: string;
  url: string;
  type: 'absolute' | 'smart';
  appContext?: string;
  autolaunchable?: boolean;
}

export interface CdsSource {
  label: string;
  url?: string;
  icon?: string;
  topic?: Coding;
}

export interface CdsCard {
  uuid?: string;
  summary: string;
  detail?: string;
  indicator: 'info' | 'warning' | 'critical';
  source: CdsSource;
  suggestions?: CdsSuggestion[];
  selectionBehavior?: 'at-most-one' | 'any';
  overrideReasons?: Coding[];
  links?: CdsLink[];
}

export interface CdsResponse {
  cards: CdsCard[];
  systemActions?: CdsAction[];
}

export interface FeedbackItem {
  card: string;
  outcome: 'accepted' | 'overridden';
  acceptedSuggestions?: { id: string }[];
  overrideReason?: { reason?: Coding; userComment?: string };
  outcomeTimestamp: string;
}

/** The `draftOrders` Bundle of order-select and order-sign. */
export type DraftOrders = Bundle;

-- CDS card log shared by the replicas (server/state/cardlog-postgres.ts): the same tables as the embedded SQLite store
-- (server/cds/store.ts). Only ids, codes and timestamps: an override's free-text comment is never stored.

-- Cards shown; feedback is grouped by their tier and suggestions.
CREATE TABLE IF NOT EXISTS cds_card (
  uuid TEXT PRIMARY KEY,
  service_id TEXT NOT NULL,
  patient_id TEXT NOT NULL,
  tier TEXT NOT NULL,
  mode TEXT NOT NULL,
  kind TEXT NOT NULL,
  assessment_id TEXT NOT NULL,
  fls_suggestion TEXT,
  dxa_suggestion TEXT,
  created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Feedback entries; the same entry (card, outcome, timestamp as sent) is stored once, whichever replica it reached.
CREATE TABLE IF NOT EXISTS cds_feedback (
  id BIGSERIAL PRIMARY KEY,
  card_uuid TEXT NOT NULL,
  service_id TEXT NOT NULL,
  client_id TEXT NOT NULL,
  outcome TEXT NOT NULL,
  accepted_suggestions JSONB NOT NULL,
  reason_system TEXT,
  reason_code TEXT,
  reason_display TEXT,
  has_comment BOOLEAN NOT NULL,
  outcome_timestamp TEXT NOT NULL,
  received_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  UNIQUE (card_uuid, outcome, outcome_timestamp)
);
CREATE INDEX IF NOT EXISTS cds_feedback_card ON cds_feedback (card_uuid);

-- What patient-view last said per service, FHIR server and patient.
CREATE TABLE IF NOT EXISTS cds_spoken (
  service_id TEXT NOT NULL,
  source TEXT NOT NULL,
  patient_id TEXT NOT NULL,
  assessment_key TEXT NOT NULL,
  tier TEXT NOT NULL,
  mode TEXT NOT NULL,
  at TIMESTAMPTZ NOT NULL,
  PRIMARY KEY (service_id, source, patient_id)
);

-- The last order-select card per FHIR server, patient and user (order-sign stays silent after the same risk).
CREATE TABLE IF NOT EXISTS cds_order_card (
  source TEXT NOT NULL,
  patient_id TEXT NOT NULL,
  user_id TEXT NOT NULL,
  risk_key TEXT NOT NULL,
  at TIMESTAMPTZ NOT NULL,
  PRIMARY KEY (source, patient_id, user_id)
);

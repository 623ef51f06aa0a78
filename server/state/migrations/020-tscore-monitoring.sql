-- Production monitoring of the radiograph T-score estimate against measured DXA (server/monitoring/store.ts): the
-- same tables as the embedded SQLite store. Ids, numbers and dates only: no patient id or other PHI.

-- One row per measured DXA femoral-neck T-score paired with the latest image-based RiskAssessment of its patient.
CREATE TABLE IF NOT EXISTS tscore_pair (
  observation_id TEXT PRIMARY KEY,
  risk_assessment_id TEXT NOT NULL,
  site TEXT NOT NULL,
  model TEXT NOT NULL,
  calibration TEXT NOT NULL,
  estimate_mean DOUBLE PRECISION NOT NULL,
  estimate_low DOUBLE PRECISION NOT NULL,
  estimate_high DOUBLE PRECISION NOT NULL,
  measured DOUBLE PRECISION NOT NULL,
  dxa_date TEXT NOT NULL,
  image_date TEXT NOT NULL,
  recorded_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
-- The rolling window of a series: its latest pairs by DXA date.
CREATE INDEX IF NOT EXISTS tscore_pair_series ON tscore_pair (site, model, calibration, dxa_date DESC, observation_id DESC);

-- Drift alarm state per series (site, model, calibration): a change of state is logged by the replica that made it.
CREATE TABLE IF NOT EXISTS tscore_alarm (
  series TEXT PRIMARY KEY,
  state TEXT NOT NULL,
  reason TEXT,
  since TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Where the DXA poller got to (FHIR meta.lastUpdated of the last Observation seen).
CREATE TABLE IF NOT EXISTS tscore_cursor (
  name TEXT PRIMARY KEY,
  value TEXT NOT NULL
);

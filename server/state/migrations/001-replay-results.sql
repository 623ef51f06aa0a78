-- JWT replay cache: one row per claimed key (`iss|jti`) until it expires; the primary key makes a claim atomic.
CREATE TABLE IF NOT EXISTS replay_claim (
  key TEXT PRIMARY KEY,
  expires_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX IF NOT EXISTS replay_claim_expires ON replay_claim (expires_at);

-- Assessment results by id and by cache key. `body` is the risk service's JSON text (no PNGs; kept as text, the service reads it whole); the PNGs of an
-- image-based assessment sit beside it. Rows past `expires_at` are ignored and deleted by a sweep.
CREATE TABLE IF NOT EXISTS assessment_result (
  id TEXT PRIMARY KEY,
  cache_key TEXT NOT NULL,
  body TEXT NOT NULL,
  display_png BYTEA,
  overlay_png BYTEA,
  created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  expires_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX IF NOT EXISTS assessment_result_key ON assessment_result (cache_key, created_at DESC);
CREATE INDEX IF NOT EXISTS assessment_result_expires ON assessment_result (expires_at);

-- Single-flight leases: the replica holding a live row for a key computes it; the others wait and read the result.
-- A lease expires (`expires_at`) if its holder dies, so a crashed replica never blocks a key for long.
CREATE TABLE IF NOT EXISTS flight_lease (
  key TEXT PRIMARY KEY,
  token TEXT NOT NULL,
  expires_at TIMESTAMPTZ NOT NULL
);

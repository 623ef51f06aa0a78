-- JWT replay cache: each claim records the sha256 of the request body and whether its first use was answered, so a
-- load balancer's resend of an unanswered call (same body, the replica died) is accepted and anything else refused.
-- Rows claimed before this migration count as answered: they are never resendable.
ALTER TABLE replay_claim ADD COLUMN IF NOT EXISTS body_hash TEXT;
ALTER TABLE replay_claim ADD COLUMN IF NOT EXISTS state TEXT NOT NULL DEFAULT 'answered';
ALTER TABLE replay_claim ADD COLUMN IF NOT EXISTS claimed_at TIMESTAMPTZ NOT NULL DEFAULT now();

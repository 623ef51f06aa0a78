-- FLS AuditEvents the FHIR server refused, kept until forwarded (server/state/audit-postgres.ts). Append-only: a
-- forwarded event stays, with the time it was forwarded. `event` is the AuditEvent JSON as built (patient references,
-- no names): protect the table as you would the audit trail.
CREATE TABLE IF NOT EXISTS fls_audit_fallback (
  id BIGSERIAL PRIMARY KEY,
  recorded TEXT NOT NULL,
  action TEXT NOT NULL,
  event JSON NOT NULL,
  error TEXT NOT NULL,
  kept_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  forwarded_at TIMESTAMPTZ
);
-- Forwarders look for the oldest pending event on every successful audit write: keep that lookup on a small index.
CREATE INDEX IF NOT EXISTS fls_audit_fallback_pending ON fls_audit_fallback (id) WHERE forwarded_at IS NULL;

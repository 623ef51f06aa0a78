-- Card log retention (CDS_CARD_LOG_RETENTION_DAYS): the periodic sweep deletes cards and feedback by age.
CREATE INDEX IF NOT EXISTS cds_card_created ON cds_card (created_at);
CREATE INDEX IF NOT EXISTS cds_feedback_received ON cds_feedback (received_at);

-- /runs?has_error=…: the runs with a failed step, found from the (few) failed steps rather
-- than by probing every run's steps. Partial, so ingest pays only for failed steps.
-- queries/sql.py RUN_HAS_ERROR spells the same condition so the planner uses it.
CREATE INDEX steps_failed_idx ON steps (run_id) WHERE status = 'FAILED' OR error IS NOT NULL;

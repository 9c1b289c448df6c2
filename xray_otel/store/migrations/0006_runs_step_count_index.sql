-- /runs?sort=-step_count over all runs: read from an index rather than sorting every run
-- (58 ms at 100,000 runs without it, bench/queries.py). One small entry per run.
CREATE INDEX runs_step_count_idx ON runs (step_count, id);

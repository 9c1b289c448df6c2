-- Every write of a run's candidate outcome parts (a part stored, or marked incomplete by a copy that
-- disagrees) counts on the run's row, in the same statement (issue 18, bench/candidates.py). The
-- per-hour candidate index (0010) signed an hour's runs by their outcome parts, which meant joining and
-- hashing every part of the hour's runs on each read (85 ms of a 10,000-run history); it now signs them
-- by this counter, read with the run's row. A count may only grow, so a part written after an hour was
-- indexed always changes its signature; a copy re-sent unchanged counts too (it was staged), which at
-- worst has the hour indexed again.
ALTER TABLE runs ADD COLUMN outcome_writes bigint NOT NULL DEFAULT 0;

-- The index was signed the old way: forgotten, and built again by the next reads that need it.
DELETE FROM candidate_hour_shards;
DELETE FROM candidate_hours;

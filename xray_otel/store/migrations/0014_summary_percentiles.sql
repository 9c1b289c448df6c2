-- Each stored summary row (per day 0007, per hour 0013) keeps the percentiles of its own histograms
-- (issue 20, bench/health.py): /pipelines/{name}/series by hour showed 7,000 points a month, and
-- decoding two histograms to find three percentiles per point was most of its time. A bucket read
-- from one row takes them as stored; a bucket made of several rows still merges their histograms.
-- They are percentile_cont over the values the histogram buckets stand for (pipeline_stats.py), the
-- figure pipeline_stats.percentile gives from the histogram, so either way a point reads the same.
--
--   drop_p95      95th percentile of the drop rate
--   duration_p50  median duration, ms
--   duration_p95  95th percentile of the duration, ms
ALTER TABLE pipeline_step_days
    ADD COLUMN drop_p95     double precision,
    ADD COLUMN duration_p50 double precision,
    ADD COLUMN duration_p95 double precision;
ALTER TABLE pipeline_step_hours
    ADD COLUMN drop_p95     double precision,
    ADD COLUMN duration_p50 double precision,
    ADD COLUMN duration_p95 double precision;

-- A cache: rows stored before lack the new figures, so they are forgotten and summarised again by
-- the next read that needs them.
DELETE FROM pipeline_step_days;
DELETE FROM pipeline_days;
DELETE FROM pipeline_step_hours;
DELETE FROM pipeline_hours;

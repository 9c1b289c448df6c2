-- What the per-day summaries (0007) must hold for /pipelines/{name}/series and the change tests
-- (issue 20, xray_otel/health): candidates in and out, and the sums of squares that give the
-- run-to-run variance of a step's drop rate, cost and reason shares. Every one adds up across
-- days exactly, as the counts and sums before them, so a baseline of whole days is read from here.
--
--   drop_sq_sum    sum over step rows of drop_rate^2
--   cost_sq_sum    sum of cost^2
--   rejecting_rows   rows whose rejections add up to more than 0 (t > 0, t = the row's rejections
--                    added up over its reasons)
--   reason_runs      per reason (aligned with reasons): rows that name it
--   reason_share_sum per reason: sum over rows with t > 0 of n / t, n = its count in the row
--   reason_share_sq  per reason: sum of (n / t)^2
ALTER TABLE pipeline_step_days
    ADD COLUMN input_sum     numeric,
    ADD COLUMN output_sum    numeric,
    ADD COLUMN drop_sq_sum   double precision,
    ADD COLUMN cost_sq_sum   double precision,
    ADD COLUMN rejecting_rows   bigint,
    ADD COLUMN reason_runs      bigint[],
    ADD COLUMN reason_share_sum double precision[],
    ADD COLUMN reason_share_sq  double precision[];

-- A cache: days stored before lack the new figures, so they are forgotten and summarised again
-- by the next read that needs them.
DELETE FROM pipeline_step_days;
DELETE FROM pipeline_days;

-- What the per-day summaries (0007) must hold for /pipelines/{name}/series and the change tests
-- (issue 20, xray_otel/health): candidates in and out, and the sums of squares that give the
-- run-to-run variance of a step's drop rate, cost and reason shares. Every one adds up across
-- days exactly, as the counts and sums before them, so a baseline of whole days is read from here.
--
--   drop_sq_sum    sum over step rows of drop_rate^2
--   cost_sq_sum    sum of cost^2
--   reject_sq_sum  sum of t^2, t = the row's rejections added up over its reasons
--   reason_runs    per reason (aligned with reasons): rows that name it
--   reason_sq      per reason: sum of n^2, n = its count in a row
--   reason_cross   per reason: sum of n * t
ALTER TABLE pipeline_step_days
    ADD COLUMN input_sum     numeric,
    ADD COLUMN output_sum    numeric,
    ADD COLUMN drop_sq_sum   double precision,
    ADD COLUMN cost_sq_sum   double precision,
    ADD COLUMN reject_sq_sum double precision,
    ADD COLUMN reason_runs   bigint[],
    ADD COLUMN reason_sq     double precision[],
    ADD COLUMN reason_cross  double precision[];

-- A cache: days stored before lack the new figures, so they are forgotten and summarised again
-- by the next read that needs them.
DELETE FROM pipeline_step_days;
DELETE FROM pipeline_days;

-- Where a step's cost came from, so the API can say whether it is a figure the client sent or
-- an estimate: 'explicit' (xray.step.cost, llm.cost.total, gen_ai.usage.cost), 'price_table'
-- (model x tokens, xray_otel/pricing.py), 'none' (cost 0: nothing to price). NULL for rows
-- stored before this column existed and for the legacy /ingest API, which does not say.
ALTER TABLE steps ADD COLUMN cost_source text;

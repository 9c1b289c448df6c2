-- Each project's part of a trace is a run of its own (issue 16): spans written with a key bound
-- to a project get the run id mapping.project_run_id(project, trace id), so what one project
-- writes into a trace id can neither change, reveal nor swallow what another project wrote there.
-- runs.project: the project of the key that wrote the run (NULL: a key bound to no project, or
-- none configured; then the run id is the trace id, as before). runs.trace_id: the trace id of a
-- project's run, whose id is not it (NULL where the id is the trace id).
--
-- Existing rows were written before runs had a project: they keep id = trace id and NULL here,
-- and stay readable as before (a project-bound key sees their steps of its own service).
ALTER TABLE runs ADD COLUMN project text, ADD COLUMN trace_id uuid;
-- A trace id asked for by a key bound to no project finds the projects' parts of that trace.
-- Partial: only project runs have a trace_id, so single-tenant ingest pays nothing for it.
CREATE INDEX runs_trace_id_idx ON runs (trace_id) WHERE trace_id IS NOT NULL;

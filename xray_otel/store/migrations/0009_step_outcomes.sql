-- Candidate outcomes (issue 18): every candidate's fate at every step that sent them, exact. One row per
-- part a step sent (docs/conventions.md, "Candidate outcomes"), keyed by the step's (run, span) and the
-- part number, written in the same transaction as the steps (store/sql.py INSERT_OUTCOMES, ON CONFLICT
-- DO NOTHING: a re-sent part is stored once). No foreign key, as for steps: the run row (a placeholder
-- at least) is written by the same transaction.
--
-- The per-candidate arrays are packed (store/outcomes.py), so that an outcome costs a few bytes rather
-- than a JSON object: each is a zlib stream (RFC 1950), stored as is (STORAGE EXTERNAL: PostgreSQL's
-- own compression would try again and gain nothing). An outcome of an id of about ten characters takes
-- under 12 bytes, everything counted (tests/test_outcome_storage.py measures it).
CREATE TABLE step_outcomes (
    run_id      uuid     NOT NULL,
    span_id     text     NOT NULL,  -- the step's (a continuation span's parent)
    part        integer  NOT NULL,  -- 0-based; -1: a set refused before its part number could be read
    parts       integer  NOT NULL,  -- parts the step sends, as this part says
    total       integer,            -- candidates the step decided on over all parts, as this part says; NULL: not said
    n           integer  NOT NULL,  -- outcomes stored in this part
    ids         bytea    NOT NULL,  -- zlib: the ids in input order, UTF-8, separated by NUL bytes
    codes       bytea    NOT NULL,  -- zlib: per id one uint8 (uint16 little-endian past 255 reasons): 0 kept, r dropped for reasons[r]
    ranks       bytea,              -- zlib: per id one uint32 little-endian, its rank (1 = best), 0 unranked; NULL: no ranks sent
    reasons     text[]   NOT NULL,
    incomplete  text,               -- why this part does not hold every outcome sent for it; NULL when it does
    service     text,               -- service.name of the span that carried it: it counts for its step only
                                    -- when that is the step's own (store/read_sql.py), so another project
                                    -- writing into the trace can neither add to a step's outcomes nor read them
    PRIMARY KEY (run_id, span_id, part)
);
ALTER TABLE step_outcomes ALTER COLUMN ids SET STORAGE EXTERNAL, ALTER COLUMN codes SET STORAGE EXTERNAL,
    ALTER COLUMN ranks SET STORAGE EXTERNAL;

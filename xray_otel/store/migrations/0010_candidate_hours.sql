-- Where each candidate went in each run of a pipeline, by hour (issue 18: "one id's history across the
-- runs of a pipeline"). Outcomes are stored per step part (0009), so one id across 10,000 runs would
-- mean unpacking 30,000 parts; this index answers from one small row per hour.
--
-- A cache, like pipeline_days (0007): filled after reads by a background task, never by ingest, and used
-- by a read only while the hour's signature (its runs, their steps and their outcome parts) still matches.
-- store/candidate_hours.py has its SQL; store/candidate_index.py packs it.
CREATE TABLE candidate_hours (
    name        text          NOT NULL,   -- runs.name
    hour        bigint        NOT NULL,   -- floor(epoch of runs.started_at / 3600): a UTC hour
    runs        bigint        NOT NULL,
    signature   numeric       NOT NULL,   -- candidate_hours.py HOUR_SIGNATURE, summed over the hour's runs
    run_ids     uuid[]        NOT NULL,   -- the hour's runs, newest first; a run's place (1-based) is its ordinal
    run_started timestamptz[] NOT NULL,   -- their start times, in the same order
    per_run     integer[]     NOT NULL,   -- ordinals of runs answered from their own rows instead: a step's
                                          -- outcomes incomplete, or a step that recorded a sample only
    fate_steps  text[]        NOT NULL,   -- fate k (1-based): dropped by step fate_steps[k] for fate_reasons[k];
    fate_reasons text[]       NOT NULL,   -- fate 0: kept by every step that decided on it
    shards      integer       NOT NULL,   -- a candidate's shard: crc32 of its UTF-8 id modulo this
    computed_at timestamptz   NOT NULL DEFAULT now(),
    PRIMARY KEY (name, hour)
);

-- One row per shard of an hour: its candidates' ids, sorted, and per candidate its (ordinal, fate) pairs,
-- packed and deflated (candidate_index.py). An id stored once an hour and about two bytes a run it was in.
CREATE TABLE candidate_hour_shards (
    name      text     NOT NULL,
    hour      bigint   NOT NULL,
    shard     integer  NOT NULL,
    ids       bytea    NOT NULL,
    postings  bytea    NOT NULL,
    PRIMARY KEY (name, hour, shard)
);
ALTER TABLE candidate_hour_shards ALTER COLUMN ids SET STORAGE EXTERNAL, ALTER COLUMN postings SET STORAGE EXTERNAL;

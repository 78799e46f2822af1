-- Event de-duplication marks: the highest `count` of each event uid the
-- aggregator has acknowledged, per cluster, so re-lists after a restart or
-- a 410 Gone do not send events twice.
CREATE TABLE event_marks (
    cluster_id TEXT NOT NULL,
    uid TEXT NOT NULL,
    count BIGINT NOT NULL,
    seen_ms BIGINT NOT NULL,
    PRIMARY KEY (cluster_id, uid)
);
CREATE INDEX event_marks_seen ON event_marks (seen_ms);

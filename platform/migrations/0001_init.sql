-- Tidewatch platform metadata. Portable SQL: runs unchanged on SQLite and
-- PostgreSQL (TEXT ids, BIGINT numbers and flags, JSON kept as TEXT,
-- timestamps as RFC 3339 TEXT plus BIGINT milliseconds where ordered).

CREATE TABLE users (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    email TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    locked BIGINT NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL
);

CREATE TABLE groups_ (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    description TEXT NOT NULL,
    created_at TEXT NOT NULL
);

CREATE TABLE group_members (
    group_id TEXT NOT NULL REFERENCES groups_(id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    PRIMARY KEY (group_id, user_id)
);

CREATE TABLE policies (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    description TEXT NOT NULL,
    scope TEXT NOT NULL,
    effect TEXT NOT NULL,
    actions TEXT NOT NULL,
    resources TEXT NOT NULL,
    builtin BIGINT NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL
);

CREATE TABLE roles (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    description TEXT NOT NULL,
    scope TEXT NOT NULL,
    policies TEXT NOT NULL,
    builtin BIGINT NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL
);

-- A role granted to a user or group; business_id is NULL for platform roles.
CREATE TABLE role_bindings (
    id TEXT PRIMARY KEY,
    role_id TEXT NOT NULL REFERENCES roles(id) ON DELETE CASCADE,
    subject_kind TEXT NOT NULL,
    subject_id TEXT NOT NULL,
    business_id TEXT,
    created_at TEXT NOT NULL
);
CREATE INDEX role_bindings_subject ON role_bindings (subject_kind, subject_id);
CREATE INDEX role_bindings_business ON role_bindings (business_id);

CREATE TABLE api_tokens (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    prefix TEXT NOT NULL,
    expires_at_ms BIGINT,
    created_at TEXT NOT NULL,
    UNIQUE (user_id, name)
);

CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    expires_at_ms BIGINT NOT NULL
);

CREATE TABLE audit_log (
    id TEXT PRIMARY KEY,
    ts_ms BIGINT NOT NULL,
    ts TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    resource TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX audit_log_ts ON audit_log (ts_ms);

CREATE TABLE clusters (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    api_server TEXT NOT NULL,
    credential TEXT NOT NULL,
    version TEXT NOT NULL,
    phase TEXT NOT NULL,
    conditions TEXT NOT NULL,
    last_seen TEXT,
    created_at TEXT NOT NULL
);

CREATE TABLE businesses (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    description TEXT NOT NULL,
    parent_id TEXT REFERENCES businesses(id),
    quotas TEXT NOT NULL,
    created_at TEXT NOT NULL
);

CREATE TABLE namespaces (
    id TEXT PRIMARY KEY,
    business_id TEXT NOT NULL REFERENCES businesses(id),
    cluster_id TEXT NOT NULL REFERENCES clusters(id),
    name TEXT NOT NULL,
    hard TEXT NOT NULL,
    phase TEXT NOT NULL,
    message TEXT NOT NULL,
    created_at TEXT NOT NULL,
    UNIQUE (cluster_id, name)
);

CREATE TABLE ns_migrations (
    id TEXT PRIMARY KEY,
    namespace_id TEXT NOT NULL REFERENCES namespaces(id) ON DELETE CASCADE,
    source_business TEXT NOT NULL,
    destination_business TEXT NOT NULL,
    phase TEXT NOT NULL,
    message TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

//! The metadata store: one `sqlx` Any pool over SQLite (default, a file
//! under the data directory) or PostgreSQL, with the embedded migrations
//! applied at start-up. Queries are runtime queries with `$N` placeholders,
//! which both databases accept.

use std::borrow::Cow;
use std::path::Path;

use sqlx::AnyPool;
use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::migrate::{Migration, MigrationType, Migrator};

/// The embedded migrations, in order.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "init", include_str!("../migrations/0001_init.sql")),
    (
        2,
        "event marks",
        include_str!("../migrations/0002_event_marks.sql"),
    ),
];

/// Which database backs the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// SQLite.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

/// The store.
#[derive(Clone)]
pub struct Store {
    /// The pool; every module queries through it.
    pub pool: AnyPool,
    /// Which database it is.
    pub backend: Backend,
}

impl Store {
    /// Opens `url` (or the default SQLite file in `data_dir`) and migrates.
    pub async fn open(url: Option<&str>, data_dir: &Path) -> anyhow::Result<Store> {
        install_default_drivers();
        let url = match url {
            Some(u) => u.to_string(),
            None => format!(
                "sqlite://{}?mode=rwc",
                data_dir.join("platform.db").display()
            ),
        };
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            Backend::Postgres
        };
        let max = if backend == Backend::Sqlite { 4 } else { 10 };
        let pool = AnyPoolOptions::new()
            .max_connections(max)
            .connect(&url)
            .await
            .map_err(|e| anyhow::anyhow!("platform.database_url: cannot connect: {e}"))?;
        if backend == Backend::Sqlite {
            // WAL keeps readers and the single writer from blocking each other.
            sqlx::raw_sql("PRAGMA journal_mode=WAL; PRAGMA busy_timeout=5000;")
                .execute(&pool)
                .await?;
        }
        migrator()
            .run(&pool)
            .await
            .map_err(|e| anyhow::anyhow!("platform store migration failed: {e}"))?;
        Ok(Store { pool, backend })
    }

    /// Closes the pool.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

fn migrator() -> Migrator {
    let migrations: Vec<Migration> = MIGRATIONS
        .iter()
        .map(|(v, d, sql)| {
            Migration::new(
                *v,
                Cow::Borrowed(*d),
                MigrationType::Simple,
                Cow::Borrowed(*sql),
                false,
            )
        })
        .collect();
    Migrator {
        migrations: Cow::Owned(migrations),
        ..Migrator::DEFAULT
    }
}

/// Now as RFC 3339 (UTC, milliseconds).
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Now in Unix milliseconds.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A new random id.
pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

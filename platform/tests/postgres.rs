//! The store on a real PostgreSQL: the test starts its own throw-away
//! cluster (Debian's `initdb` + `pg_ctl`, as the `postgres` user when run
//! as root) on a free port, then runs the platform against it.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use reqwest::{Method, StatusCode};
use serde_json::json;
use tidewatch_platform::Config;

/// A PostgreSQL cluster in a temporary directory, stopped on drop.
struct Pg {
    bin: PathBuf,
    data: PathBuf,
    as_postgres: bool,
    port: u16,
    _dir: tempfile::TempDir,
}

fn pg_bin() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|b| b.join("initdb").exists())
        .collect();
    dirs.sort();
    dirs.pop()
}

fn run(as_postgres: bool, bin: &Path, tool: &str, args: &[&str]) -> Result<(), String> {
    let mut cmd = if as_postgres {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin.join(tool));
        c
    } else {
        Command::new(bin.join(tool))
    };
    let out = cmd
        .args(args)
        .output()
        .map_err(|e| format!("{tool}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{tool} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

impl Pg {
    fn start() -> Result<Pg, String> {
        let bin = pg_bin().ok_or("no /usr/lib/postgresql/*/bin/initdb")?;
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let as_postgres = is_root();
        if as_postgres {
            let st = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .map_err(|e| e.to_string())?;
            if !st.success() {
                return Err("cannot chown the temp dir to postgres".into());
            }
        }
        let data = dir.path().join("data");
        let d = data.to_str().unwrap();
        run(
            as_postgres,
            &bin,
            "initdb",
            &[
                "-D",
                d,
                "-A",
                "trust",
                "-U",
                "tidewatch",
                "--no-sync",
                "-E",
                "UTF8",
            ],
        )?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let opts = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -F",
            dir.path().display()
        );
        let log = dir.path().join("pg.log");
        run(
            as_postgres,
            &bin,
            "pg_ctl",
            &[
                "-D",
                d,
                "-o",
                &opts,
                "-l",
                log.to_str().unwrap(),
                "-w",
                "start",
            ],
        )?;
        Ok(Pg {
            bin,
            data,
            as_postgres,
            port,
            _dir: dir,
        })
    }

    fn url(&self) -> String {
        format!("postgres://tidewatch@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for Pg {
    fn drop(&mut self) {
        let _ = run(
            self.as_postgres,
            &self.bin,
            "pg_ctl",
            &["-D", self.data.to_str().unwrap(), "-m", "immediate", "stop"],
        );
    }
}

/// initdb refuses to run as root; then the cluster runs as `postgres`.
fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

#[tokio::test]
async fn platform_runs_on_postgresql_and_keeps_its_data_across_restarts() {
    let pg = match Pg::start() {
        Ok(pg) => pg,
        Err(e) => {
            eprintln!("SKIPPED: cannot start a PostgreSQL for this test: {e}");
            return;
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        database_url: Some(pg.url()),
        admin_password: Some("admin-pass".into()),
        ..Default::default()
    };
    let t = common::start_in(config.clone(), dir.path()).await;
    let tok = t.user_with_token("alice", json!(["platform-user"])).await;
    t.admin_ok(
        Method::POST,
        "/api/platform/v1/businesses",
        Some(json!({"name": "shop", "description": "on postgres"})),
        StatusCode::CREATED,
    )
    .await;
    let (st, v) = t
        .call(
            Method::POST,
            "/api/platform/v1/businesses",
            Some(&t.admin),
            Some(json!({"name": "shop"})),
        )
        .await;
    assert_eq!(
        (st, v["field"].as_str()),
        (StatusCode::CONFLICT, Some("name"))
    );
    t.admin_ok(
        Method::POST,
        "/api/platform/v1/businesses/shop/members",
        Some(json!({"user": "alice", "role": "business-owner"})),
        StatusCode::CREATED,
    )
    .await;
    t.platform.close().await.unwrap();
    drop(t);

    // Restart: migrations are not re-applied, everything is still there.
    let t = common::start_in(config, dir.path()).await;
    let (st, me) = t
        .call(Method::GET, "/api/platform/v1/me", Some(&tok), None)
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(me["user"]["name"], "alice");
    let b = t
        .admin_ok(
            Method::GET,
            "/api/platform/v1/businesses/shop",
            None,
            StatusCode::OK,
        )
        .await;
    assert_eq!(b["description"], "on postgres");
    let m = t
        .admin_ok(
            Method::GET,
            "/api/platform/v1/businesses/shop/members",
            None,
            StatusCode::OK,
        )
        .await;
    assert_eq!(m["items"][0]["role"], "business-owner");
    let audit = t
        .admin_ok(
            Method::GET,
            "/api/platform/v1/audit?resource=business",
            None,
            StatusCode::OK,
        )
        .await;
    assert_eq!(audit["items"].as_array().unwrap().len(), 2);
    // The event-mark upsert is portable too.
    for count in [1i64, 3, 2] {
        sqlx::query(
            "INSERT INTO event_marks (cluster_id, uid, count, seen_ms) VALUES ($1,$2,$3,$4) \
             ON CONFLICT (cluster_id, uid) DO UPDATE SET count = excluded.count, \
             seen_ms = excluded.seen_ms WHERE excluded.count > event_marks.count",
        )
        .bind("c")
        .bind("u")
        .bind(count)
        .bind(0i64)
        .execute(&t.platform.store.pool)
        .await
        .unwrap();
    }
    let (c,): (i64,) = sqlx::query_as("SELECT count FROM event_marks WHERE uid = 'u'")
        .fetch_one(&t.platform.store.pool)
        .await
        .unwrap();
    assert_eq!(c, 3);
    assert_eq!(
        t.platform.store.backend,
        tidewatch_platform::store::Backend::Postgres
    );
    t.platform.close().await.unwrap();
}

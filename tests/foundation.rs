//! End-to-end tests of the foundation: the `tidewatch` binary's subcommands,
//! health endpoints, config errors and clean shutdown.

mod support;

use std::process::Command;
use std::time::Duration;

use support::{Tidewatch, blocking_get, free_port, tidewatch_bin};

#[test]
fn up_serves_health_and_metrics_and_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let mut tw = Tidewatch::start("up", dir.path(), &[]);
    let (status, body) = blocking_get(&tw.url("/-/healthy"));
    assert_eq!(status, 200, "{body}");
    let (status, _) = blocking_get(&tw.url("/-/ready"));
    assert_eq!(status, 200);
    let (status, body) = blocking_get(&tw.url("/metrics"));
    assert_eq!(status, 200);
    assert!(body.contains("tidewatch_build_info"), "{body}");
    assert!(body.contains("role=\"all\""), "{body}");
    let (status, body) = blocking_get(&tw.url("/api/v1/query?query=up"));
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["status"], "success", "{body}");
    assert_eq!(v["data"]["resultType"], "vector", "{body}");
    assert!(v["data"]["result"].is_array(), "{body}");
    assert_eq!(tw.proc.terminate(Duration::from_secs(30)), Some(0));
}

#[test]
fn each_component_runs_alone() {
    for role in ["aggregator", "collector", "alertmanager", "platform"] {
        let dir = tempfile::tempdir().unwrap();
        let mut tw = Tidewatch::start(role, dir.path(), &[]);
        let (_, body) = blocking_get(&tw.url("/metrics"));
        assert!(body.contains(&format!("role=\"{role}\"")), "{role}: {body}");
        assert_eq!(
            tw.proc.terminate(Duration::from_secs(30)),
            Some(0),
            "{role}"
        );
    }
}

#[test]
fn port_in_use_is_a_clear_error() {
    let port = free_port();
    let _hold = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(tidewatch_bin())
        .args(["up", "--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("already in use"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn config_check_names_the_field_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yml");
    std::fs::write(
        &bad,
        "listen: 127.0.0.1:9800\naggregator:\n  no_such_field: 1\n",
    )
    .unwrap();
    let out = Command::new(tidewatch_bin())
        .args(["config", "check"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("aggregator"), "{err}");
    assert!(err.contains("no_such_field"), "{err}");
    assert!(err.contains("line 3"), "{err}");

    let bad_listen = dir.path().join("listen.yml");
    std::fs::write(&bad_listen, "listen: nowhere\n").unwrap();
    let out = Command::new(tidewatch_bin())
        .args(["config", "check"])
        .arg(&bad_listen)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("listen: invalid address \"nowhere\""), "{err}");

    let good = dir.path().join("good.yml");
    std::fs::write(&good, "listen: 127.0.0.1:9800\ndata_dir: /tmp/x\n").unwrap();
    let out = Command::new(tidewatch_bin())
        .args(["config", "check"])
        .arg(&good)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The chart's environment variables are read and validated too, naming
    // the variable (they override the file).
    for (var, value, want) in [
        (
            "TIDEWATCH_RETENTION",
            "forever",
            "TIDEWATCH_RETENTION: invalid duration",
        ),
        (
            "TIDEWATCH_SMTP_PORT",
            "smtp",
            "TIDEWATCH_SMTP_PORT: invalid port",
        ),
        (
            "TIDEWATCH_LEADER_ELECTION_LEASE",
            "no-slash",
            "TIDEWATCH_LEADER_ELECTION_LEASE: expected <namespace>/<name>",
        ),
    ] {
        let mut cmd = Command::new(tidewatch_bin());
        cmd.args(["config", "check"]).arg(&good).env(var, value);
        if var == "TIDEWATCH_SMTP_PORT" {
            cmd.env("TIDEWATCH_SMTP_HOST", "mail.example.com");
        }
        let out = cmd.output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{var}={value}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{var}={value}: {err}");
    }
    let out = Command::new(tidewatch_bin())
        .args(["config", "check"])
        .arg(&good)
        .env("TIDEWATCH_RETENTION", "30d")
        .env(
            "TIDEWATCH_LEADER_ELECTION_LEASE",
            "monitoring/tidewatch-collector",
        )
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Flags are validated too, naming the flag.
    let out = Command::new(tidewatch_bin())
        .args(["aggregator", "--retention", "forever"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("invalid value 'forever' for '--retention"),
        "{err}"
    );

    // A bad config also stops `up` with a non-zero exit before binding.
    let out = Command::new(tidewatch_bin())
        .args(["up", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no_such_field"));
}

#[test]
fn default_config_round_trips_through_config_check() {
    let out = Command::new(tidewatch_bin())
        .args(["config", "default"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for section in [
        "listen:",
        "aggregator:",
        "collector:",
        "alerting:",
        "platform:",
    ] {
        assert!(text.contains(section), "missing {section} in\n{text}");
    }
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("default.yml");
    std::fs::write(&f, &text).unwrap();
    let out = Command::new(tidewatch_bin())
        .args(["config", "check"])
        .arg(&f)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn configuration_doc_shows_the_current_defaults() {
    let out = Command::new(tidewatch_bin())
        .args(["config", "default"])
        .output()
        .unwrap();
    let current = String::from_utf8(out.stdout).unwrap();
    let doc = std::fs::read_to_string(support::repo_root().join("docs/configuration.md")).unwrap();
    let start = doc
        .rfind("```yaml\n")
        .expect("a yaml block in docs/configuration.md")
        + 8;
    let end = start + doc[start..].find("```").unwrap();
    assert_eq!(
        &doc[start..end],
        current,
        "docs/configuration.md is stale: regenerate its example with `tidewatch config default`"
    );
}

#[test]
fn a_collector_deployed_alone_ships_to_the_aggregator_named_in_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let agg = Tidewatch::start("aggregator", &dir.path().join("agg"), &[]);
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let mut cmd = Command::new(tidewatch_bin());
    cmd.args(["collector", "--listen", &addr, "--data-dir"])
        .arg(dir.path().join("col"))
        .env("TIDEWATCH_AGGREGATOR_URL", agg.url(""));
    let _collector = support::Proc::spawn("collector", cmd, dir.path());
    support::wait_until(
        "the collector's node metrics in the aggregator",
        Duration::from_secs(90),
        || {
            let (status, body) = blocking_get(&agg.url("/api/v1/query?query=k8s_node_cpu_usage"));
            status == 200 && body.contains("\"cluster_id\":\"local\"")
        },
    );
}

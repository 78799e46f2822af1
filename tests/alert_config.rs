//! `tidewatch config check` reports alerting mistakes by field path, and
//! `tidewatch alertmanager` refuses a broken rule file with a clear error.

mod support;

use std::process::Command;

use support::tidewatch_bin;

fn check(yaml: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("c.yml");
    std::fs::write(&f, yaml).unwrap();
    let out = Command::new(tidewatch_bin())
        .args(["config", "check"])
        .arg(&f)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn alerting_config_errors_name_the_field() {
    let (ok, err) = check(
        "alerting:\n  route:\n    receiver: hook\n    routes:\n      - receiver: nobody\n        matchers: ['a=~(']\n  receivers:\n    - name: hook\n      webhook_configs:\n        - url: 'not a url'\n      email_configs:\n        - to: a@b.c\n          from: x@y.z\n          smarthost: nohost\n",
    );
    assert!(!ok);
    for want in [
        "alerting.route.routes[0].receiver: undefined receiver \"nobody\"",
        "alerting.route.routes[0].matchers",
        "alerting.receivers[0].webhook_configs[0].url",
        "alerting.receivers[0].email_configs[0].smarthost",
    ] {
        assert!(err.contains(want), "missing {want:?} in:\n{err}");
    }
    let (ok, err) = check("alerting:\n  route:\n    receiver: x\n    group_wait: soon\n");
    assert!(!ok);
    assert!(err.contains("alerting.route.group_wait"), "{err}");
    let (ok, err) = check(
        "alerting:\n  route:\n    receiver: hook\n    group_wait: 10s\n  receivers:\n    - name: hook\n      webhook_configs:\n        - url: http://127.0.0.1:1/x\n          bot: dingtalk\n",
    );
    assert!(ok, "{err}");
}

#[test]
fn broken_rule_file_stops_startup_with_its_error() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("bad.yml");
    std::fs::write(
        &rules,
        "groups:\n  - name: g\n    rules:\n      - alert: X\n        expr: 'up +'\n",
    )
    .unwrap();
    let cfg = dir.path().join("c.yml");
    std::fs::write(
        &cfg,
        format!(
            "alerting:\n  query_url: http://127.0.0.1:1\n  rule_files: ['{}']\n",
            rules.display()
        ),
    )
    .unwrap();
    let out = Command::new(tidewatch_bin())
        .args(["alertmanager", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .arg("--config")
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("alerting.rule_files") && err.contains("could not parse expression"),
        "{err}"
    );
}

//! Tidewatch beside the real Prometheus: Prometheus sends its alerts to
//! `tidewatch alertmanager` (API v2), `amtool` lists and silences them; and
//! Tidewatch's own rule evaluation queries Prometheus and writes `ALERTS`
//! and recording-rule results back over remote-write.

mod alert_support;
mod support;

use std::process::Command;
use std::time::Duration;

use alert_support::{WebhookSink, call};
use support::{Tidewatch, start_prometheus, wait_until};

const WAIT: Duration = Duration::from_secs(60);

fn amtool(base: &str, args: &[&str]) -> String {
    let out = Command::new("amtool")
        .arg(format!("--alertmanager.url={base}"))
        .args(args)
        .output()
        .expect("amtool");
    assert!(
        out.status.success(),
        "amtool {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn webhook_config(dir: &std::path::Path, hook: &str, extra: &str) -> std::path::PathBuf {
    let p = dir.join("tidewatch.yml");
    std::fs::write(
        &p,
        format!(
            "alerting:\n  route:\n    receiver: hook\n    group_by: [alertname]\n    group_wait: 1s\n    group_interval: 1s\n  receivers:\n    - name: hook\n      webhook_configs:\n        - url: {hook}/hook\n{extra}"
        ),
    )
    .unwrap();
    p
}

#[test]
fn prometheus_sends_alerts_and_amtool_silences_them() {
    let hook = WebhookSink::start();
    let dir = tempfile::tempdir().unwrap();
    let cfg = webhook_config(dir.path(), &hook.url, "");
    let tw = Tidewatch::start(
        "alertmanager",
        dir.path(),
        &["--config", cfg.to_str().unwrap()],
    );
    let pdir = dir.path().join("prom");
    std::fs::create_dir_all(&pdir).unwrap();
    std::fs::write(
        pdir.join("rules.yml"),
        "groups:\n  - name: g\n    rules:\n      - alert: AlwaysFiring\n        expr: vector(1)\n        labels: {severity: page}\n        annotations: {summary: 'value is {{ $value }}'}\n",
    )
    .unwrap();
    let (_prom, _) = start_prometheus(
        &pdir,
        &format!(
            "global:\n  evaluation_interval: 1s\nrule_files: ['{}']\nalerting:\n  alertmanagers:\n    - api_version: v2\n      static_configs:\n        - targets: ['{}']\n",
            pdir.join("rules.yml").display(),
            tw.addr
        ),
        &["--rules.alert.resend-delay=1s"],
    );
    let got = hook.wait_for("AlwaysFiring", 1, WAIT);
    let a = &got[0].body["alerts"][0];
    assert_eq!(a["labels"]["severity"], "page");
    assert_eq!(a["annotations"]["summary"], "value is 1");
    assert!(
        a["generatorURL"]
            .as_str()
            .unwrap()
            .contains("/graph?g0.expr="),
        "{a}"
    );

    let base = tw.url("");
    let listed = amtool(&base, &["alert", "query"]);
    assert!(listed.contains("AlwaysFiring"), "{listed}");
    let id = amtool(
        &base,
        &[
            "silence",
            "add",
            "alertname=AlwaysFiring",
            "--comment=planned",
            "--author=ops",
            "--duration=1h",
        ],
    );
    let id = id.trim();
    assert_eq!(id.len(), 36, "{id}");
    let q = amtool(&base, &["silence", "query"]);
    assert!(q.contains(id) && q.contains("planned"), "{q}");
    // Silenced alerts drop out of the default query and show with -s.
    let listed = amtool(&base, &["alert", "query"]);
    assert!(!listed.contains("AlwaysFiring"), "{listed}");
    let listed = amtool(&base, &["alert", "query", "--silenced"]);
    assert!(listed.contains("AlwaysFiring"), "{listed}");
    amtool(&base, &["silence", "expire", id]);
    let q = amtool(&base, &["silence", "query", "--expired"]);
    assert!(q.contains(id), "{q}");
    // amtool reads the status endpoint too.
    let c = amtool(&base, &["config", "show"]);
    assert!(c.contains("receiver: hook"), "{c}");
    let routes = amtool(&base, &["config", "routes"]);
    assert!(routes.contains("default-route  receiver: hook"), "{routes}");
    // The served configuration is one Alertmanager itself accepts.
    let am = dir.path().join("am.yml");
    let (_, status) = call("GET", &format!("{base}/api/v2/status"), None);
    std::fs::write(&am, status["config"]["original"].as_str().unwrap()).unwrap();
    let out = Command::new("amtool")
        .arg("check-config")
        .arg(&am)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn rule_files_evaluate_against_prometheus_and_write_back() {
    let hook = WebhookSink::start();
    let dir = tempfile::tempdir().unwrap();
    let (_prom, port) = start_prometheus(
        &dir.path().join("prom"),
        "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: down\n    static_configs:\n      - targets: ['127.0.0.1:1']\n",
        &[],
    );
    let prom = format!("http://127.0.0.1:{port}");
    let rules = dir.path().join("rules.yml");
    std::fs::write(
        &rules,
        "groups:\n  - name: targets\n    interval: 1s\n    rules:\n      - record: job:up:sum\n        expr: sum by (job) (up)\n      - alert: TargetDown\n        expr: up == 0\n        for: 2s\n        labels: {severity: '{{ if eq $value 0.0 }}page{{ else }}info{{ end }}'}\n        annotations: {summary: '{{ $labels.instance }} of {{ $labels.job }} is down'}\n",
    )
    .unwrap();
    let cfg = webhook_config(
        dir.path(),
        &hook.url,
        &format!(
            "  rule_files: ['{}']\n  query_url: {prom}\n  remote_write_url: {prom}/api/v1/write\n  external_labels: {{replica: tw}}\n",
            rules.display()
        ),
    );
    let tw = Tidewatch::start(
        "alertmanager",
        dir.path(),
        &["--config", cfg.to_str().unwrap()],
    );
    let got = hook.wait_for("TargetDown", 1, WAIT);
    let a = &got[0].body["alerts"][0];
    assert_eq!(a["annotations"]["summary"], "127.0.0.1:1 of down is down");
    assert_eq!(a["labels"]["severity"], "page");
    assert_eq!(a["labels"]["replica"], "tw");

    let has = |q: &str| {
        let (_, v) = call("GET", &format!("{prom}/api/v1/query?query={q}"), None);
        v["data"]["result"]
            .as_array()
            .is_some_and(|r| !r.is_empty())
    };
    wait_until("ALERTS written back", WAIT, || {
        has(
            "ALERTS%7Balertname%3D%22TargetDown%22%2Calertstate%3D%22firing%22%2Creplica%3D%22tw%22%7D",
        )
    });
    wait_until("ALERTS_FOR_STATE written back", WAIT, || {
        has("ALERTS_FOR_STATE%7Balertname%3D%22TargetDown%22%7D")
    });
    wait_until("recording rule written back", WAIT, || {
        has("job%3Aup%3Asum%7Bjob%3D%22down%22%7D")
    });

    // The rule group status is visible through the platform API.
    // The built-in catalogue group (k8s_cluster_* recording rules) is listed
    // beside the file's group.
    let (_, groups) = call("GET", &tw.url("/api/platform/v1/rule-groups"), None);
    let items = groups["items"].as_array().expect("items");
    assert!(
        items
            .iter()
            .any(|g| g["name"] == "tidewatch-k8s-cluster-usage"),
        "{groups}"
    );
    let g = items
        .iter()
        .find(|g| g["name"] == "targets")
        .unwrap_or_else(|| panic!("no group `targets`: {groups}"));
    assert!(
        g["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["state"] == "firing"),
        "{groups}"
    );
}

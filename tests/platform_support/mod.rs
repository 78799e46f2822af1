//! Shared set-up of the platform's end-to-end tests: the `tidewatch` binary
//! with an admin token, the Kubernetes API stand-in, remote-write.

#![allow(dead_code)]

use std::path::Path;
use std::time::Duration;

use reqwest::blocking::Client;
use serde_json::{Value, json};
use tidewatch_platform::testing::kube_standin::KubeStandIn;

use crate::support::{Tidewatch, free_port};

/// The platform REST API prefix.
pub const P: &str = "/api/platform/v1";
/// The admin's password in every test config.
pub const ADMIN_PASSWORD: &str = "e2e-admin-password";

/// The binary plus an HTTP client and an admin token.
pub struct Api {
    /// The process.
    pub tw: Tidewatch,
    /// Client.
    pub http: Client,
    /// Admin token.
    pub admin: String,
}

/// Writes the test config (admin password plus `extra`).
pub fn config(dir: &Path, extra: &str) -> String {
    let path = dir.join("tidewatch.yml");
    std::fs::write(
        &path,
        format!("platform:\n  admin_password: {ADMIN_PASSWORD}\n{extra}"),
    )
    .unwrap();
    path.to_str().unwrap().to_string()
}

impl Api {
    /// Starts `tidewatch ROLE` on `port` with the test config plus `extra`.
    pub fn start(role: &str, dir: &Path, port: u16, extra: &str) -> Api {
        let cfg = config(dir, extra);
        let tw = Tidewatch::start_on(role, &dir.join("data"), port, &["--config", &cfg]);
        let http = Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        let mut api = Api {
            tw,
            http,
            admin: String::new(),
        };
        api.admin = api.login_token("admin", ADMIN_PASSWORD);
        api
    }

    /// Logs in with a password (cookie) and mints an API token with it.
    pub fn login_token(&self, user: &str, password: &str) -> String {
        let resp = self
            .http
            .post(self.tw.url(&format!("{P}/login")))
            .json(&json!({"username": user, "password": password}))
            .send()
            .unwrap();
        assert_eq!(resp.status(), 200);
        let cookie = resp.headers()["set-cookie"].to_str().unwrap().to_string();
        assert!(cookie.contains("HttpOnly"));
        let pair = cookie.split(';').next().unwrap().to_string();
        let resp = self
            .http
            .post(self.tw.url(&format!("{P}/tokens")))
            .header("cookie", pair)
            .json(&json!({"name": format!("t-{}", free_port())}))
            .send()
            .unwrap();
        assert_eq!(resp.status(), 201);
        resp.json::<Value>().unwrap()["token"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// One request; returns status and JSON body.
    pub fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self
            .http
            .request(method.parse().unwrap(), self.tw.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().unwrap_or(Value::Null))
    }

    /// A request as the admin, asserting the status.
    pub fn admin(&self, method: &str, path: &str, body: Option<Value>, want: u16) -> Value {
        let (st, v) = self.call(method, path, Some(&self.admin), body);
        assert_eq!(st, want, "{method} {path}: {v}");
        v
    }
}

/// A multi-threaded runtime hosting the Kubernetes API stand-in.
pub fn kube(rt: &tokio::runtime::Runtime) -> KubeStandIn {
    rt.block_on(KubeStandIn::start("cluster-admin-token"))
}

/// Remote-writes one sample now per label set (`__name__` included).
pub fn remote_write(api: &Api, series: &[&[(&str, &str)]]) {
    use tidewatch_common::remote_write::{
        Label, Sample, TimeSeries, WriteRequest, encode_write_request,
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let req = WriteRequest {
        timeseries: series
            .iter()
            .map(|labels| TimeSeries {
                labels: labels
                    .iter()
                    .map(|(n, v)| Label {
                        name: (*n).into(),
                        value: (*v).into(),
                    })
                    .collect(),
                samples: vec![Sample {
                    value: 1.0,
                    timestamp: now,
                }],
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    let resp = api
        .http
        .post(api.tw.url("/api/v1/write"))
        .header("content-type", "application/x-protobuf")
        .header("content-encoding", "snappy")
        .header("x-prometheus-remote-write-version", "0.1.0")
        .body(encode_write_request(&req))
        .send()
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
}

/// The sum of a metric's samples on `/metrics` (all label sets).
pub fn metric(api: &Api, name: &str) -> f64 {
    let text = api
        .http
        .get(api.tw.url("/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    text.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|r| r.starts_with(' ') || r.starts_with('{'))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Runs SQL on the aggregator as `token` (or anonymously); returns the rows.
pub fn sql(api: &Api, token: Option<&str>, query: &str) -> Vec<Value> {
    let mut req = api
        .http
        .post(api.tw.url("/api/v1/sql"))
        .header("content-type", "text/plain")
        .body(query.to_string());
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().unwrap();
    let status = resp.status();
    let v: Value = resp.json().unwrap();
    assert!(status.is_success(), "{query}: {v}");
    v["data"]["rows"].as_array().cloned().unwrap_or_default()
}

//! Helpers shared by the alerting end-to-end tests: a webhook receiver (a
//! small axum server recording every payload), JSON HTTP calls, and
//! Tidewatch configs.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use std::sync::Mutex;

use serde_json::Value;

/// One received webhook call.
#[derive(Clone, Debug)]
pub struct Hook {
    /// When it arrived.
    pub at: Instant,
    /// Request path.
    pub path: String,
    /// JSON body.
    pub body: Value,
}

/// A webhook receiver on a free port; `fail_first` calls answer 500.
pub struct WebhookSink {
    /// Base URL, `http://127.0.0.1:PORT`.
    pub url: String,
    hooks: Arc<Mutex<Vec<Hook>>>,
    _rt: tokio::runtime::Runtime,
}

impl WebhookSink {
    /// Starts the receiver.
    pub fn start() -> WebhookSink {
        Self::start_failing(0)
    }

    /// Starts a receiver whose first `fail_first` calls get HTTP 500.
    pub fn start_failing(fail_first: usize) -> WebhookSink {
        use axum::routing::post;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let hooks: Arc<Mutex<Vec<Hook>>> = Arc::default();
        let failures = Arc::new(std::sync::atomic::AtomicUsize::new(fail_first));
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let h = hooks.clone();
        let app = axum::Router::new().route(
            "/{*path}",
            post(move |uri: axum::http::Uri, body: axum::body::Bytes| {
                let h = h.clone();
                let failures = failures.clone();
                async move {
                    if failures
                        .fetch_update(
                            std::sync::atomic::Ordering::SeqCst,
                            std::sync::atomic::Ordering::SeqCst,
                            |n| n.checked_sub(1),
                        )
                        .is_ok()
                    {
                        return axum::http::StatusCode::INTERNAL_SERVER_ERROR;
                    }
                    let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    h.lock().unwrap().push(Hook {
                        at: Instant::now(),
                        path: uri.path().to_string(),
                        body,
                    });
                    axum::http::StatusCode::OK
                }
            }),
        );
        rt.spawn(async move { axum::serve(listener, app).await.unwrap() });
        WebhookSink {
            url: format!("http://{addr}"),
            hooks,
            _rt: rt,
        }
    }

    /// Every call so far.
    pub fn hooks(&self) -> Vec<Hook> {
        self.hooks.lock().unwrap().clone()
    }

    /// Calls whose `groupLabels.alertname` is `name`.
    pub fn for_alertname(&self, name: &str) -> Vec<Hook> {
        self.hooks()
            .into_iter()
            .filter(|h| h.body["groupLabels"]["alertname"] == name)
            .collect()
    }

    /// Waits until `n` calls to `path` arrived; returns them.
    pub fn wait_path(&self, path: &str, n: usize, timeout: Duration) -> Vec<Hook> {
        let deadline = Instant::now() + timeout;
        loop {
            let got: Vec<Hook> = self
                .hooks()
                .into_iter()
                .filter(|h| h.path == path)
                .collect();
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {n} calls to {path}: {:#?}",
                self.hooks()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until `n` calls for `alertname` arrived; returns them.
    pub fn wait_for(&self, name: &str, n: usize, timeout: Duration) -> Vec<Hook> {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.for_alertname(name);
            if got.len() >= n {
                return got;
            }
            if Instant::now() > deadline {
                panic!(
                    "timed out waiting for {n} notifications of {name}; got {}: {:#?}",
                    got.len(),
                    self.hooks().iter().map(|h| &h.body).collect::<Vec<_>>()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Fingerprint-free summary of a payload: (status, sorted `alert/instance` labels).
pub fn summary(h: &Hook) -> (String, Vec<String>) {
    let mut v: Vec<String> = h.body["alerts"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|x| {
                    format!(
                        "{}:{}:{}",
                        x["labels"]["alertname"].as_str().unwrap_or(""),
                        x["labels"]["instance"].as_str().unwrap_or(""),
                        x["status"].as_str().unwrap_or("")
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    (h.body["status"].as_str().unwrap_or("").to_string(), v)
}

/// A blocking HTTP client.
pub fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// Sends `method url` with a JSON body; returns status and JSON (or Null).
pub fn call(method: &str, url: &str, body: Option<Value>) -> (u16, Value) {
    let c = client();
    let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = c.request(m, url);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let status = r.status().as_u16();
    let text = r.text().unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Posts alerts to `/api/v2/alerts`, asserting 200.
pub fn post_alerts(base: &str, alerts: Value) {
    let (s, b) = call("POST", &format!("{base}/api/v2/alerts"), Some(alerts));
    assert_eq!(s, 200, "{b}");
}

/// Now as RFC 3339, shifted by `secs`.
pub fn rfc3339(secs: i64) -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
        + secs;
    // Format without chrono: civil-from-days.
    let days = t.div_euclid(86400);
    let sod = t.rem_euclid(86400);
    let (y, m, d) = civil(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        sod / 3600,
        sod / 60 % 60,
        sod % 60
    )
}

fn civil(z: i64) -> (i64, i64, i64) {
    let z = z + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

//! Shared set-up for the platform's integration tests: a platform on a free
//! loopback port with its own data directory, and an HTTP client.

#![allow(dead_code)]

use std::sync::Arc;

use prometheus_client::registry::Registry;
use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};
use tidewatch_platform::{Config, Platform};
use tokio_util::sync::CancellationToken;

/// A running platform.
pub struct TestPlatform {
    /// The platform.
    pub platform: Arc<Platform>,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// Client.
    pub http: Client,
    /// Admin bearer token.
    pub admin: String,
    stop: CancellationToken,
    _dir: Option<tempfile::TempDir>,
}

impl Drop for TestPlatform {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Starts a platform with `config` (admin password `admin-pass`).
pub async fn start(mut config: Config) -> TestPlatform {
    let dir = tempfile::tempdir().unwrap();
    config.admin_password = Some("admin-pass".into());
    start_in(config, dir.path()).await.with_dir(dir)
}

/// Starts a platform on an existing data directory.
pub async fn start_in(config: Config, dir: &std::path::Path) -> TestPlatform {
    let stop = CancellationToken::new();
    let mut registry = Registry::default();
    let platform = Platform::start(config, dir, &mut registry, stop.clone())
        .await
        .expect("platform starts");
    let app = platform.router();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let s = stop.clone();
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move { s.cancelled().await })
            .await
            .unwrap();
    });
    let http = Client::builder().build().unwrap();
    let mut t = TestPlatform {
        platform,
        base,
        http,
        admin: String::new(),
        stop,
        _dir: None,
    };
    let (st, body) = t
        .call(
            Method::POST,
            "/api/platform/v1/login",
            None,
            Some(json!({"username": "admin", "password": "admin-pass"})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    t.admin = t.token_for_session().await;
    t
}

impl TestPlatform {
    fn with_dir(mut self, dir: tempfile::TempDir) -> Self {
        self._dir = Some(dir);
        self
    }

    async fn token_for_session(&self) -> String {
        // Log in to get a cookie, then mint an API token with it.
        let resp = self
            .http
            .post(format!("{}/api/platform/v1/login", self.base))
            .json(&json!({"username": "admin", "password": "admin-pass"}))
            .send()
            .await
            .unwrap();
        let cookie = resp
            .headers()
            .get("set-cookie")
            .unwrap()
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_string();
        let resp = self
            .http
            .post(format!("{}/api/platform/v1/tokens", self.base))
            .header("cookie", cookie)
            .json(&json!({"name": format!("admin-{}", uuid_like())}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::CREATED);
        let v: Value = resp.json().await.unwrap();
        v["token"].as_str().unwrap().to_string()
    }

    /// Sends a request with an optional bearer token; returns status and JSON (or Null).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.http.request(method, format!("{}{}", self.base, path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// As admin; asserts the status.
    pub async fn admin_ok(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        want: StatusCode,
    ) -> Value {
        let (st, v) = self
            .call(method, path, Some(&self.admin.clone()), body)
            .await;
        assert_eq!(st, want, "{path}: {v}");
        v
    }

    /// Creates a user and an API token for them; returns the token.
    pub async fn user_with_token(&self, name: &str, roles: Value) -> String {
        self.admin_ok(
            Method::POST,
            "/api/platform/v1/users",
            Some(json!({"name": name, "password": "password-123", "roles": roles})),
            StatusCode::CREATED,
        )
        .await;
        let v = self
            .admin_ok(
                Method::POST,
                "/api/platform/v1/tokens",
                Some(json!({"name": "kubectl", "user": name})),
                StatusCode::CREATED,
            )
            .await;
        v["token"].as_str().unwrap().to_string()
    }
}

fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!("{}", N.fetch_add(1, Ordering::Relaxed))
}

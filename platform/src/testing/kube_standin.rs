//! A protocol-level **test stand-in** for a Kubernetes API server: serves
//! the handful of endpoints the platform uses with real-shaped JSON, checks
//! the bearer token, supports server-side-apply PATCH of Namespaces and
//! ResourceQuotas, and list + watch of core v1 Events with resourceVersion,
//! `allowWatchBookmarks` and `410 Gone` after [`KubeStandIn::expire_watches`].

// Handlers return ready-made error responses; boxing them would buy nothing.
#![allow(clippy::result_large_err)]

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::StreamExt;
use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// `gitVersion` the stand-in reports.
pub const VERSION: &str = "v1.32.0-tidewatch-standin";

#[derive(Default)]
struct Objects {
    rv: u64,
    /// Watches asking for a resourceVersion below this get 410 Gone.
    compacted: u64,
    /// Bumped by `expire_watches`: open watches end with 410.
    epoch: u64,
    namespaces: BTreeMap<String, Value>,
    quotas: BTreeMap<String, Value>,
    events: BTreeMap<String, Value>,
    /// (rv, type, object) of every event change, for watches.
    event_log: Vec<(u64, &'static str, Value)>,
    static_lists: BTreeMap<&'static str, Vec<Value>>,
    requests: Vec<String>,
}

struct Shared {
    token: String,
    objects: Mutex<Objects>,
    changed: Notify,
    bookmark_every: Duration,
}

/// A running stand-in; stops when dropped.
pub struct KubeStandIn {
    /// Listen address.
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    stop: CancellationToken,
}

impl Drop for KubeStandIn {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": message, "reason": reason, "code": code})
}

fn list(kind: &str, api_version: &str, rv: u64, items: Vec<Value>) -> Value {
    json!({"kind": format!("{kind}List"), "apiVersion": api_version,
           "metadata": {"resourceVersion": rv.to_string()}, "items": items})
}

impl KubeStandIn {
    /// Starts on a free loopback port accepting `Bearer {token}`.
    pub async fn start(token: &str) -> KubeStandIn {
        let shared = Arc::new(Shared {
            token: token.to_string(),
            objects: Mutex::new(Objects {
                rv: 100,
                ..Default::default()
            }),
            changed: Notify::new(),
            bookmark_every: Duration::from_millis(200),
        });
        {
            let mut o = shared.objects.lock();
            o.static_lists.insert(
                "nodes",
                vec![json!({"apiVersion": "v1", "kind": "Node",
                    "metadata": {"name": "node-1", "uid": "node-1-uid", "resourceVersion": "1",
                                 "labels": {"kubernetes.io/hostname": "node-1"}},
                    "status": {"capacity": {"cpu": "8", "memory": "32Gi", "pods": "110"},
                               "conditions": [{"type": "Ready", "status": "True"}],
                               "nodeInfo": {"kubeletVersion": VERSION}}})],
            );
            let ns = KubeStandIn::ns_json("default", BTreeMap::new(), 1);
            o.namespaces.insert("default".into(), ns);
        }
        let stop = CancellationToken::new();
        let app = Router::new()
            .route("/version", get(version))
            .route("/api/v1/nodes", get(nodes))
            .route("/api/v1/namespaces", get(list_namespaces))
            .route(
                "/api/v1/namespaces/{name}",
                get(get_namespace)
                    .patch(patch_namespace)
                    .delete(delete_namespace),
            )
            .route(
                "/api/v1/namespaces/{ns}/resourcequotas/{name}",
                get(get_quota).patch(patch_quota),
            )
            .route("/api/v1/events", get(events_all))
            .route("/api/v1/namespaces/{ns}/events", get(events_ns))
            .route("/api/v1/pods", get(pods_all))
            .route("/api/v1/namespaces/{ns}/pods", get(pods_ns))
            .route("/apis/apps/v1/{kind}", get(apps_all))
            .route("/apis/apps/v1/namespaces/{ns}/{kind}", get(apps_ns))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let s = stop.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move { s.cancelled().await })
                .await;
        });
        KubeStandIn { addr, shared, stop }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn ns_json(name: &str, labels: BTreeMap<String, String>, rv: u64) -> Value {
        json!({"apiVersion": "v1", "kind": "Namespace",
               "metadata": {"name": name, "uid": format!("ns-{name}-uid"), "labels": labels,
                            "resourceVersion": rv.to_string(),
                            "creationTimestamp": "2026-01-01T00:00:00Z"},
               "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}})
    }

    /// Adds or updates an Event (`count` bumps make it a new occurrence),
    /// last seen now.
    pub fn put_event(&self, namespace: &str, name: &str, reason: &str, count: i64) {
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        self.put_event_at(namespace, name, reason, count, &now)
    }

    /// Like [`KubeStandIn::put_event`] with an explicit `lastTimestamp`
    /// (RFC 3339).
    pub fn put_event_at(
        &self,
        namespace: &str,
        name: &str,
        reason: &str,
        count: i64,
        last_timestamp: &str,
    ) {
        let mut o = self.shared.objects.lock();
        o.rv += 1;
        let rv = o.rv;
        let key = format!("{namespace}/{name}");
        let kind = if o.events.contains_key(&key) {
            "MODIFIED"
        } else {
            "ADDED"
        };
        let ev = json!({
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": name, "namespace": namespace, "uid": format!("uid-{namespace}-{name}"),
                         "resourceVersion": rv.to_string(), "creationTimestamp": "2026-01-01T00:00:00Z"},
            "involvedObject": {"kind": "Pod", "name": format!("{name}-pod"), "namespace": namespace,
                               "uid": format!("pod-{name}-uid"), "apiVersion": "v1"},
            "reason": reason, "message": format!("{reason} happened {count} times"),
            "type": "Warning", "count": count,
            "firstTimestamp": "2026-01-01T00:00:00Z", "lastTimestamp": last_timestamp,
            "source": {"component": "kubelet", "host": "node-1"},
            "reportingComponent": "kubelet", "reportingInstance": "node-1"
        });
        o.events.insert(key, ev.clone());
        o.event_log.push((rv, kind, ev));
        drop(o);
        self.shared.changed.notify_waiters();
    }

    /// Deletes an Event (as Kubernetes does when its TTL, 1h by default,
    /// runs out).
    pub fn delete_event(&self, namespace: &str, name: &str) {
        let mut o = self.shared.objects.lock();
        let Some(mut ev) = o.events.remove(&format!("{namespace}/{name}")) else {
            return;
        };
        o.rv += 1;
        let rv = o.rv;
        ev["metadata"]["resourceVersion"] = json!(rv.to_string());
        o.event_log.push((rv, "DELETED", ev));
        drop(o);
        self.shared.changed.notify_waiters();
    }

    /// Simulates etcd compaction: open watches end with an in-stream 410
    /// `Expired` error, and watching from any earlier resourceVersion gets
    /// 410 until the client re-lists.
    pub fn expire_watches(&self) {
        let mut o = self.shared.objects.lock();
        o.rv += 1;
        o.compacted = o.rv;
        o.epoch += 1;
        o.event_log.clear();
        drop(o);
        self.shared.changed.notify_waiters();
    }

    /// Sets `status.used` of a namespace's ResourceQuota.
    pub fn set_quota_used(&self, namespace: &str, used: BTreeMap<String, String>) {
        let mut o = self.shared.objects.lock();
        for (k, q) in o.quotas.iter_mut() {
            if k.starts_with(&format!("{namespace}/")) {
                q["status"]["used"] = json!(used);
            }
        }
    }

    /// The namespace object, if it exists.
    pub fn namespace(&self, name: &str) -> Option<Value> {
        self.shared.objects.lock().namespaces.get(name).cloned()
    }

    /// The ResourceQuota `name` in `namespace`, if it exists.
    pub fn quota(&self, namespace: &str, name: &str) -> Option<Value> {
        self.shared
            .objects
            .lock()
            .quotas
            .get(&format!("{namespace}/{name}"))
            .cloned()
    }

    /// Replaces a static list (`pods`, `deployments`, `statefulsets`, `daemonsets`, `nodes`).
    pub fn set_list(&self, kind: &'static str, items: Vec<Value>) {
        self.shared.objects.lock().static_lists.insert(kind, items);
    }

    /// Request lines seen (`GET /api/v1/events?watch=…`), for assertions.
    pub fn requests(&self) -> Vec<String> {
        self.shared.objects.lock().requests.clone()
    }
}

type Q = Query<BTreeMap<String, String>>;

fn check(shared: &Shared, headers: &HeaderMap, line: String) -> Result<(), Response> {
    shared.objects.lock().requests.push(line);
    let ok = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == format!("Bearer {}", shared.token));
    if ok {
        Ok(())
    } else {
        Err((
            StatusCode::UNAUTHORIZED,
            axum::Json(status(401, "Unauthorized", "Unauthorized")),
        )
            .into_response())
    }
}

fn json_resp(code: StatusCode, v: Value) -> Response {
    (code, axum::Json(v)).into_response()
}

async fn version(State(s): State<Arc<Shared>>, h: HeaderMap) -> Response {
    if let Err(r) = check(&s, &h, "GET /version".into()) {
        return r;
    }
    json_resp(
        StatusCode::OK,
        json!({"major": "1", "minor": "32", "gitVersion": VERSION, "gitCommit": "standin",
               "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z",
               "goVersion": "go1.23", "compiler": "gc", "platform": "linux/amd64"}),
    )
}

fn static_list(s: &Shared, key: &'static str, kind: &str, av: &str, ns: Option<&str>) -> Response {
    let o = s.objects.lock();
    let items: Vec<Value> = o
        .static_lists
        .get(key)
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|i| ns.is_none_or(|n| i["metadata"]["namespace"] == n))
        .collect();
    json_resp(StatusCode::OK, list(kind, av, o.rv, items))
}

async fn nodes(State(s): State<Arc<Shared>>, h: HeaderMap) -> Response {
    if let Err(r) = check(&s, &h, "GET /api/v1/nodes".into()) {
        return r;
    }
    static_list(&s, "nodes", "Node", "v1", None)
}

async fn pods_all(State(s): State<Arc<Shared>>, h: HeaderMap) -> Response {
    if let Err(r) = check(&s, &h, "GET /api/v1/pods".into()) {
        return r;
    }
    static_list(&s, "pods", "Pod", "v1", None)
}

async fn pods_ns(State(s): State<Arc<Shared>>, h: HeaderMap, Path(ns): Path<String>) -> Response {
    if let Err(r) = check(&s, &h, format!("GET /api/v1/namespaces/{ns}/pods")) {
        return r;
    }
    static_list(&s, "pods", "Pod", "v1", Some(&ns))
}

fn apps_key(kind: &str) -> Option<(&'static str, &'static str)> {
    match kind {
        "deployments" => Some(("deployments", "Deployment")),
        "statefulsets" => Some(("statefulsets", "StatefulSet")),
        "daemonsets" => Some(("daemonsets", "DaemonSet")),
        _ => None,
    }
}

async fn apps_all(
    State(s): State<Arc<Shared>>,
    h: HeaderMap,
    Path(kind): Path<String>,
) -> Response {
    if let Err(r) = check(&s, &h, format!("GET /apis/apps/v1/{kind}")) {
        return r;
    }
    match apps_key(&kind) {
        Some((k, kk)) => static_list(&s, k, kk, "apps/v1", None),
        None => json_resp(StatusCode::NOT_FOUND, status(404, "NotFound", "not found")),
    }
}

async fn apps_ns(
    State(s): State<Arc<Shared>>,
    h: HeaderMap,
    Path((ns, kind)): Path<(String, String)>,
) -> Response {
    if let Err(r) = check(&s, &h, format!("GET /apis/apps/v1/namespaces/{ns}/{kind}")) {
        return r;
    }
    match apps_key(&kind) {
        Some((k, kk)) => static_list(&s, k, kk, "apps/v1", Some(&ns)),
        None => json_resp(StatusCode::NOT_FOUND, status(404, "NotFound", "not found")),
    }
}

async fn list_namespaces(State(s): State<Arc<Shared>>, h: HeaderMap) -> Response {
    if let Err(r) = check(&s, &h, "GET /api/v1/namespaces".into()) {
        return r;
    }
    let o = s.objects.lock();
    json_resp(
        StatusCode::OK,
        list(
            "Namespace",
            "v1",
            o.rv,
            o.namespaces.values().cloned().collect(),
        ),
    )
}

async fn get_namespace(
    State(s): State<Arc<Shared>>,
    h: HeaderMap,
    Path(n): Path<String>,
) -> Response {
    if let Err(r) = check(&s, &h, format!("GET /api/v1/namespaces/{n}")) {
        return r;
    }
    match s.objects.lock().namespaces.get(&n) {
        Some(v) => json_resp(StatusCode::OK, v.clone()),
        None => json_resp(
            StatusCode::NOT_FOUND,
            status(404, "NotFound", &format!("namespaces \"{n}\" not found")),
        ),
    }
}

fn apply_body(h: &HeaderMap, body: &Bytes) -> Result<Value, Response> {
    let ct = h
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if ct != "application/apply-patch+yaml" {
        return Err(json_resp(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            status(
                415,
                "UnsupportedMediaType",
                &format!("stand-in supports only server-side apply, got {ct}"),
            ),
        ));
    }
    serde_json::from_slice(body).map_err(|e| {
        json_resp(
            StatusCode::BAD_REQUEST,
            status(400, "BadRequest", &e.to_string()),
        )
    })
}

async fn patch_namespace(
    State(s): State<Arc<Shared>>,
    h: HeaderMap,
    Path(n): Path<String>,
    q: Q,
    body: Bytes,
) -> Response {
    if let Err(r) = check(&s, &h, format!("PATCH /api/v1/namespaces/{n}")) {
        return r;
    }
    if !q.0.contains_key("fieldManager") {
        return json_resp(
            StatusCode::BAD_REQUEST,
            status(400, "BadRequest", "fieldManager is required for apply"),
        );
    }
    let v = match apply_body(&h, &body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let labels: BTreeMap<String, String> =
        serde_json::from_value(v["metadata"]["labels"].clone()).unwrap_or_default();
    let mut o = s.objects.lock();
    o.rv += 1;
    let ns = KubeStandIn::ns_json(&n, labels, o.rv);
    o.namespaces.insert(n, ns.clone());
    json_resp(StatusCode::OK, ns)
}

async fn delete_namespace(
    State(s): State<Arc<Shared>>,
    h: HeaderMap,
    Path(n): Path<String>,
) -> Response {
    if let Err(r) = check(&s, &h, format!("DELETE /api/v1/namespaces/{n}")) {
        return r;
    }
    let mut o = s.objects.lock();
    match o.namespaces.remove(&n) {
        Some(mut v) => {
            o.quotas.retain(|k, _| !k.starts_with(&format!("{n}/")));
            v["status"]["phase"] = json!("Terminating");
            json_resp(StatusCode::OK, v)
        }
        None => json_resp(
            StatusCode::NOT_FOUND,
            status(404, "NotFound", &format!("namespaces \"{n}\" not found")),
        ),
    }
}

async fn get_quota(
    State(s): State<Arc<Shared>>,
    h: HeaderMap,
    Path((ns, name)): Path<(String, String)>,
) -> Response {
    if let Err(r) = check(
        &s,
        &h,
        format!("GET /api/v1/namespaces/{ns}/resourcequotas/{name}"),
    ) {
        return r;
    }
    match s.objects.lock().quotas.get(&format!("{ns}/{name}")) {
        Some(v) => json_resp(StatusCode::OK, v.clone()),
        None => json_resp(
            StatusCode::NOT_FOUND,
            status(
                404,
                "NotFound",
                &format!("resourcequotas \"{name}\" not found"),
            ),
        ),
    }
}

async fn patch_quota(
    State(s): State<Arc<Shared>>,
    h: HeaderMap,
    Path((ns, name)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    if let Err(r) = check(
        &s,
        &h,
        format!("PATCH /api/v1/namespaces/{ns}/resourcequotas/{name}"),
    ) {
        return r;
    }
    let v = match apply_body(&h, &body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let mut o = s.objects.lock();
    if !o.namespaces.contains_key(&ns) {
        return json_resp(
            StatusCode::NOT_FOUND,
            status(404, "NotFound", &format!("namespaces \"{ns}\" not found")),
        );
    }
    o.rv += 1;
    let key = format!("{ns}/{name}");
    let hard = v["spec"]["hard"].clone();
    let used = o
        .quotas
        .get(&key)
        .map(|q| q["status"]["used"].clone())
        .filter(|u| u.is_object())
        .unwrap_or_else(|| {
            let zero: BTreeMap<String, String> = hard
                .as_object()
                .map(|m| m.keys().map(|k| (k.clone(), "0".to_string())).collect())
                .unwrap_or_default();
            json!(zero)
        });
    let q = json!({"apiVersion": "v1", "kind": "ResourceQuota",
        "metadata": {"name": name, "namespace": ns, "uid": format!("rq-{ns}-{name}"),
                     "resourceVersion": o.rv.to_string()},
        "spec": {"hard": hard}, "status": {"hard": hard, "used": used}});
    o.quotas.insert(key, q.clone());
    json_resp(StatusCode::OK, q)
}

async fn events_all(State(s): State<Arc<Shared>>, h: HeaderMap, q: Q) -> Response {
    events(s, h, q.0, None).await
}

async fn events_ns(
    State(s): State<Arc<Shared>>,
    h: HeaderMap,
    Path(ns): Path<String>,
    q: Q,
) -> Response {
    events(s, h, q.0, Some(ns)).await
}

async fn events(
    s: Arc<Shared>,
    h: HeaderMap,
    q: BTreeMap<String, String>,
    ns: Option<String>,
) -> Response {
    let line = format!(
        "GET /api/v1/events?{}",
        q.iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&")
    );
    if let Err(r) = check(&s, &h, line) {
        return r;
    }
    let in_ns = move |v: &Value| {
        ns.as_deref()
            .is_none_or(|n| v["metadata"]["namespace"] == n)
    };
    if q.get("watch").map(String::as_str) != Some("true")
        && q.get("watch").map(String::as_str) != Some("1")
    {
        let o = s.objects.lock();
        let items = o.events.values().filter(|v| in_ns(v)).cloned().collect();
        return json_resp(StatusCode::OK, list("Event", "v1", o.rv, items));
    }
    let from: u64 = q
        .get("resourceVersion")
        .and_then(|r| r.parse().ok())
        .unwrap_or(0);
    let bookmarks = q.get("allowWatchBookmarks").map(String::as_str) == Some("true");
    let timeout = q
        .get("timeoutSeconds")
        .and_then(|t| t.parse().ok())
        .map(Duration::from_secs)
        .unwrap_or(Duration::from_secs(300));
    let (tx, rx) = futures::channel::mpsc::channel::<Result<Bytes, Infallible>>(64);
    tokio::spawn(async move {
        let mut tx = tx;
        let deadline = tokio::time::Instant::now() + timeout;
        let (start_epoch, compacted) = {
            let o = s.objects.lock();
            (o.epoch, o.compacted)
        };
        let line = |v: Value| Ok(Bytes::from(format!("{v}\n")));
        use futures::SinkExt;
        if from != 0 && from < compacted {
            let e = json!({"type": "ERROR", "object": status(410, "Expired",
                &format!("too old resource version: {from} ({compacted})"))});
            let _ = tx.send(line(e)).await;
            return;
        }
        let mut pos = from;
        loop {
            let notified = s.changed.notified();
            let (batch, epoch, rv) = {
                let o = s.objects.lock();
                let batch: Vec<(u64, &'static str, Value)> = o
                    .event_log
                    .iter()
                    .filter(|(r, _, v)| *r > pos && in_ns(v))
                    .cloned()
                    .collect();
                (batch, o.epoch, o.rv)
            };
            if epoch != start_epoch {
                let e = json!({"type": "ERROR", "object": status(410, "Expired",
                    "too old resource version: watch cache compacted")});
                let _ = tx.send(line(e)).await;
                return;
            }
            for (r, kind, v) in batch {
                pos = r;
                if tx
                    .send(line(json!({"type": kind, "object": v})))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            tokio::select! {
                _ = notified => {}
                _ = tokio::time::sleep(s.bookmark_every) => {
                    if bookmarks && rv > pos {
                        pos = rv;
                        let b = json!({"type": "BOOKMARK", "object": {"kind": "Event", "apiVersion": "v1",
                            "metadata": {"resourceVersion": rv.to_string(),
                                         "annotations": {"k8s.io/initial-events-end": "true"}}}});
                        if tx.send(line(b)).await.is_err() {
                            return;
                        }
                    }
                }
                _ = tokio::time::sleep_until(deadline) => return,
            }
        }
    });
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/json")
        .body(Body::from_stream(rx.map(|b| b)))
        .unwrap()
}

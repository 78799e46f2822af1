#![allow(dead_code)] // each test binary uses a subset of the stand-in
//! A protocol-level test API server: NOT Kubernetes, a stand-in speaking
//! the parts of the Kubernetes API the collector's watchers use, with
//! real-shaped JSON objects: list (`…List` with `metadata.resourceVersion`),
//! watch streams (`?watch=true&resourceVersion=N`, newline-delimited
//! `ADDED`/`MODIFIED`/`DELETED`/`BOOKMARK` events), `spec.nodeName` field
//! selectors, and `410 Gone` (`ERROR` event with an expired `Status`) for
//! watches from a compacted resourceVersion, and Leases (get, create,
//! replace with resourceVersion conflicts) for leader election. No Kubernetes API server can
//! run on these machines; production uses a real one through the same code.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio::sync::broadcast;

/// Resource collections served: (URL path, list kind, item kind, apiVersion).
const RESOURCES: [(&str, &str, &str); 11] = [
    ("api/v1/services", "Service", "v1"),
    ("api/v1/endpoints", "Endpoints", "v1"),
    ("api/v1/pods", "Pod", "v1"),
    ("api/v1/nodes", "Node", "v1"),
    ("api/v1/namespaces", "Namespace", "v1"),
    ("apis/apps/v1/deployments", "Deployment", "apps/v1"),
    ("apis/apps/v1/replicasets", "ReplicaSet", "apps/v1"),
    ("apis/apps/v1/statefulsets", "StatefulSet", "apps/v1"),
    ("apis/apps/v1/daemonsets", "DaemonSet", "apps/v1"),
    ("apis/batch/v1/jobs", "Job", "batch/v1"),
    ("apis/batch/v1/cronjobs", "CronJob", "batch/v1"),
];

#[derive(Clone, Debug)]
enum Signal {
    Event {
        path: String,
        rv: u64,
        kind: &'static str,
        object: Value,
    },
    Expire,
}

#[derive(Default)]
struct Inner {
    rv: u64,
    /// Oldest resourceVersion a watch may start from.
    min_rv: u64,
    objects: HashMap<String, BTreeMap<(String, String), Value>>,
    history: Vec<(String, u64, &'static str, Value)>,
    lists: HashMap<String, usize>,
    watches: Vec<String>,
    /// Leases by (namespace, name).
    leases: HashMap<(String, String), Value>,
    /// `/readyz/etcd` fails when set.
    etcd_down: bool,
    /// `/readyz` answers 403 Forbidden when set (RBAC without the grant).
    readyz_forbidden: bool,
    /// Scrapes of `/metrics` so far (each adds 10 requests of 50 ms).
    apiserver_scrapes: u64,
    /// Scrapes of the scheduler's metrics through the pod proxy (each adds
    /// 4 scheduling attempts of 20 ms).
    scheduler_scrapes: u64,
}

/// The server handle; dropping it does not stop the server.
#[derive(Clone)]
pub struct TestApiServer {
    inner: Arc<Mutex<Inner>>,
    tx: broadcast::Sender<Signal>,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
}

fn key(o: &Value) -> (String, String) {
    let m = &o["metadata"];
    (
        m["namespace"].as_str().unwrap_or("").to_string(),
        m["name"].as_str().unwrap_or("").to_string(),
    )
}

fn matches_selector(o: &Value, field_selector: Option<&str>) -> bool {
    match field_selector.and_then(|s| s.strip_prefix("spec.nodeName=")) {
        Some(node) => o["spec"]["nodeName"].as_str() == Some(node),
        None => true,
    }
}

impl TestApiServer {
    /// Starts the server on a free port.
    pub async fn start() -> TestApiServer {
        let (tx, _) = broadcast::channel(1024);
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let s = TestApiServer {
            inner: Arc::default(),
            tx,
            url: format!("http://{}", l.local_addr().unwrap()),
        };
        let app = axum::Router::new()
            .route("/api/v1/{res}", get(handle_core))
            .route("/apis/{group}/{version}/{res}", get(handle_group))
            .route(
                "/apis/coordination.k8s.io/v1/namespaces/{ns}/leases",
                axum::routing::post(lease_create),
            )
            .route(
                "/apis/coordination.k8s.io/v1/namespaces/{ns}/leases/{name}",
                get(lease_get).put(lease_replace),
            )
            .route("/readyz", get(readyz))
            .route("/readyz/etcd", get(readyz_etcd))
            .route(
                "/version",
                get(|| async {
                    axum::Json(json!({"major": "1", "minor": "32", "gitVersion": "v1.32.0"}))
                }),
            )
            .route("/metrics", get(apiserver_metrics))
            .route(
                "/api/v1/namespaces/{ns}/pods/{pod}/proxy/metrics",
                get(pod_proxy_metrics),
            )
            .with_state(s.clone());
        tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
        s
    }

    /// Creates or replaces an object in collection `path` (e.g.
    /// `api/v1/pods`), bumping the resourceVersion.
    pub fn apply(&self, path: &str, mut object: Value) {
        let mut g = self.inner.lock();
        g.rv += 1;
        let rv = g.rv;
        object["metadata"]["resourceVersion"] = json!(rv.to_string());
        let (_, kind, api) = RESOURCES.iter().find(|r| r.0 == path).expect("known path");
        object["kind"] = json!(kind);
        object["apiVersion"] = json!(api);
        let k = key(&object);
        let existed = g
            .objects
            .entry(path.to_string())
            .or_default()
            .insert(k, object.clone())
            .is_some();
        let ev = if existed { "MODIFIED" } else { "ADDED" };
        g.history.push((path.to_string(), rv, ev, object.clone()));
        let _ = self.tx.send(Signal::Event {
            path: path.into(),
            rv,
            kind: ev,
            object,
        });
    }

    /// Deletes an object.
    pub fn delete(&self, path: &str, namespace: &str, name: &str) {
        let mut g = self.inner.lock();
        let Some(mut object) = g
            .objects
            .get_mut(path)
            .and_then(|m| m.remove(&(namespace.into(), name.into())))
        else {
            return;
        };
        g.rv += 1;
        let rv = g.rv;
        object["metadata"]["resourceVersion"] = json!(rv.to_string());
        g.history
            .push((path.to_string(), rv, "DELETED", object.clone()));
        let _ = self.tx.send(Signal::Event {
            path: path.into(),
            rv,
            kind: "DELETED",
            object,
        });
    }

    /// Compacts history: open watches end with `410 Gone` and watches from
    /// older resourceVersions are refused, forcing clients to re-list.
    pub fn expire_watches(&self) {
        let mut g = self.inner.lock();
        g.min_rv = g.rv + 1;
        g.history.clear();
        let _ = self.tx.send(Signal::Expire);
    }

    /// How many list requests `path` received.
    pub fn lists(&self, path: &str) -> usize {
        self.inner.lock().lists.get(path).copied().unwrap_or(0)
    }

    /// Query strings of every watch request so far.
    pub fn watch_requests(&self) -> Vec<String> {
        self.inner.lock().watches.clone()
    }
}

async fn readyz(State(s): State<TestApiServer>) -> Response {
    if s.inner.lock().readyz_forbidden {
        status(
            403,
            "Forbidden",
            "forbidden: User \"system:serviceaccount:tw:collector\" cannot get path \"/readyz\"",
        )
    } else {
        "ok".into_response()
    }
}

async fn readyz_etcd(State(s): State<TestApiServer>) -> Response {
    if s.inner.lock().etcd_down {
        (
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            "[-]etcd failed: reason withheld\nreadyz check failed",
        )
            .into_response()
    } else {
        "ok".into_response()
    }
}

/// The API server's own metrics: a request-duration histogram growing by
/// 10 GET requests of 50 ms per scrape, plus WATCHes that must be ignored.
async fn apiserver_metrics(State(s): State<TestApiServer>) -> String {
    let n = {
        let mut g = s.inner.lock();
        g.apiserver_scrapes += 1;
        g.apiserver_scrapes as f64
    };
    format!(
        "# TYPE apiserver_request_duration_seconds histogram\n\
         apiserver_request_duration_seconds_bucket{{verb=\"GET\",le=\"+Inf\"}} {c}\n\
         apiserver_request_duration_seconds_sum{{verb=\"GET\"}} {s}\n\
         apiserver_request_duration_seconds_count{{verb=\"GET\"}} {c}\n\
         apiserver_request_duration_seconds_bucket{{verb=\"WATCH\",le=\"+Inf\"}} {n}\n\
         apiserver_request_duration_seconds_sum{{verb=\"WATCH\"}} {w}\n\
         apiserver_request_duration_seconds_count{{verb=\"WATCH\"}} {n}\n",
        c = n * 10.0,
        s = n * 0.5,
        w = n * 300.0,
    )
}

/// The pod proxy (`/api/v1/namespaces/NS/pods/[https:]POD[:PORT]/proxy/metrics`),
/// serving the scheduler's metrics for a `kube-scheduler-*` pod.
async fn pod_proxy_metrics(
    State(s): State<TestApiServer>,
    Path((ns, pod)): Path<(String, String)>,
) -> Response {
    let name = pod
        .trim_start_matches("https:")
        .split(':')
        .next()
        .unwrap_or("");
    if ns != "kube-system" || !name.starts_with("kube-scheduler") {
        return status(404, "NotFound", &format!("pods \"{name}\" not found"));
    }
    let n = {
        let mut g = s.inner.lock();
        g.scheduler_scrapes += 1;
        g.scheduler_scrapes as f64
    };
    format!(
        "scheduler_scheduling_attempt_duration_seconds_sum{{result=\"scheduled\"}} {}\n\
         scheduler_scheduling_attempt_duration_seconds_count{{result=\"scheduled\"}} {}\n",
        n * 0.08,
        n * 4.0
    )
    .into_response()
}

impl TestApiServer {
    /// Makes `/readyz` answer 403 (`true`) or 200.
    pub fn set_readyz_forbidden(&self, forbidden: bool) {
        self.inner.lock().readyz_forbidden = forbidden;
    }

    /// Makes `/readyz/etcd` fail (`true`) or pass.
    pub fn set_etcd_down(&self, down: bool) {
        self.inner.lock().etcd_down = down;
    }

    /// Stores a Lease held by `holder`, renewed now for `seconds`.
    pub fn put_lease(&self, ns: &str, name: &str, holder: &str, seconds: i64) {
        let mut g = self.inner.lock();
        g.rv += 1;
        let now = chrono::Utc::now()
            .format("%Y-%m-%dT%H:%M:%S%.6fZ")
            .to_string();
        let lease = json!({"kind": "Lease", "apiVersion": "coordination.k8s.io/v1",
            "metadata": {"name": name, "namespace": ns, "resourceVersion": g.rv.to_string()},
            "spec": {"holderIdentity": holder, "leaseDurationSeconds": seconds,
                "acquireTime": now, "renewTime": now}});
        g.leases.insert((ns.to_string(), name.to_string()), lease);
    }
}

fn status(code: u16, reason: &str, message: &str) -> Response {
    let body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code});
    (
        axum::http::StatusCode::from_u16(code).unwrap(),
        axum::Json(body),
    )
        .into_response()
}

async fn lease_get(
    State(s): State<TestApiServer>,
    Path((ns, name)): Path<(String, String)>,
) -> Response {
    match s.inner.lock().leases.get(&(ns, name.clone())) {
        Some(l) => axum::Json(l.clone()).into_response(),
        None => status(404, "NotFound", &format!("leases \"{name}\" not found")),
    }
}

async fn lease_create(
    State(s): State<TestApiServer>,
    Path(ns): Path<String>,
    axum::Json(mut lease): axum::Json<Value>,
) -> Response {
    let mut g = s.inner.lock();
    let name = lease["metadata"]["name"].as_str().unwrap_or("").to_string();
    if g.leases.contains_key(&(ns.clone(), name.clone())) {
        return status(
            409,
            "AlreadyExists",
            &format!("leases \"{name}\" already exists"),
        );
    }
    g.rv += 1;
    lease["metadata"]["resourceVersion"] = json!(g.rv.to_string());
    lease["metadata"]["namespace"] = json!(ns);
    lease["kind"] = json!("Lease");
    lease["apiVersion"] = json!("coordination.k8s.io/v1");
    g.leases.insert((ns, name), lease.clone());
    (axum::http::StatusCode::CREATED, axum::Json(lease)).into_response()
}

/// Replace with optimistic concurrency: the body's resourceVersion must
/// match the stored one (409 Conflict otherwise), as the API server does.
async fn lease_replace(
    State(s): State<TestApiServer>,
    Path((ns, name)): Path<(String, String)>,
    axum::Json(mut lease): axum::Json<Value>,
) -> Response {
    let mut g = s.inner.lock();
    let key = (ns, name.clone());
    let Some(current) = g.leases.get(&key) else {
        return status(404, "NotFound", &format!("leases \"{name}\" not found"));
    };
    if current["metadata"]["resourceVersion"] != lease["metadata"]["resourceVersion"] {
        return status(
            409,
            "Conflict",
            "the object has been modified; please apply your changes to the latest version",
        );
    }
    g.rv += 1;
    lease["metadata"]["resourceVersion"] = json!(g.rv.to_string());
    g.leases.insert(key, lease.clone());
    axum::Json(lease).into_response()
}

impl TestApiServer {
    /// The current holder of a Lease, if any.
    pub fn lease_holder(&self, ns: &str, name: &str) -> Option<String> {
        self.inner
            .lock()
            .leases
            .get(&(ns.to_string(), name.to_string()))
            .and_then(|l| l["spec"]["holderIdentity"].as_str().map(str::to_string))
    }
}

async fn handle_core(
    State(s): State<TestApiServer>,
    Path(res): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    handle(s, format!("api/v1/{res}"), q).await
}

async fn handle_group(
    State(s): State<TestApiServer>,
    Path((group, version, res)): Path<(String, String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    handle(s, format!("apis/{group}/{version}/{res}"), q).await
}

fn status_410() -> Value {
    json!({"type": "ERROR", "object": {"kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "message": "too old resource version", "reason": "Expired", "code": 410}})
}

async fn handle(s: TestApiServer, path: String, q: HashMap<String, String>) -> Response {
    let Some((_, kind, api)) = RESOURCES.iter().find(|r| r.0 == path) else {
        return (
            axum::http::StatusCode::NOT_FOUND,
            "not served by the test API server",
        )
            .into_response();
    };
    let selector = q.get("fieldSelector").cloned();
    if q.get("watch").map(|w| w == "true" || w == "1") != Some(true) {
        let mut g = s.inner.lock();
        *g.lists.entry(path.clone()).or_default() += 1;
        let items: Vec<Value> = g
            .objects
            .get(&path)
            .map(|m| {
                m.values()
                    .filter(|o| matches_selector(o, selector.as_deref()))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        let body = json!({"kind": format!("{kind}List"), "apiVersion": api,
            "metadata": {"resourceVersion": g.rv.to_string()}, "items": items});
        return axum::Json(body).into_response();
    }
    // Watch.
    let from: u64 = q
        .get("resourceVersion")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let bookmarks = q
        .get("allowWatchBookmarks")
        .map(|v| v == "true")
        .unwrap_or(false);
    let timeout = q
        .get("timeoutSeconds")
        .and_then(|v| v.parse().ok())
        .unwrap_or(290u64)
        .min(30);
    let mut rx = s.tx.subscribe();
    let (replay, expired, current) = {
        let mut g = s.inner.lock();
        g.watches
            .push(format!("{path}?{}", serde_urlencoded_like(&q)));
        let expired = from != 0 && from < g.min_rv;
        let replay: Vec<Value> = g
            .history
            .iter()
            .filter(|(p, rv, _, o)| {
                *p == path && *rv > from && matches_selector(o, selector.as_deref())
            })
            .map(|(_, _, t, o)| json!({"type": t, "object": o}))
            .collect();
        (replay, expired, g.rv)
    };
    let (tx, body_rx) = tokio::sync::mpsc::channel::<Result<String, std::io::Error>>(64);
    let kind = kind.to_string();
    let api = api.to_string();
    tokio::spawn(async move {
        let line = |v: Value| Ok(format!("{v}\n"));
        if expired {
            let _ = tx.send(line(status_410())).await;
            return;
        }
        for ev in replay {
            if tx.send(line(ev)).await.is_err() {
                return;
            }
        }
        let bookmark = |rv: u64| json!({"type": "BOOKMARK", "object": {"kind": kind, "apiVersion": api, "metadata": {"resourceVersion": rv.to_string()}}});
        if bookmarks && tx.send(line(bookmark(current))).await.is_err() {
            return;
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(timeout);
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        let mut last_rv = current;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => return,
                _ = tick.tick() => {
                    if bookmarks && tx.send(line(bookmark(last_rv))).await.is_err() { return; }
                }
                sig = rx.recv() => match sig {
                    Ok(Signal::Event { path: p, rv, kind: t, object }) => {
                        if p == path && matches_selector(&object, selector.as_deref()) {
                            last_rv = rv;
                            if tx.send(line(json!({"type": t, "object": object}))).await.is_err() { return; }
                        }
                    }
                    Ok(Signal::Expire) => { let _ = tx.send(line(status_410())).await; return; }
                    Err(_) => return,
                }
            }
        }
    });
    let stream = tokio_stream_from(body_rx);
    Response::builder()
        .header("content-type", "application/json")
        .body(Body::from_stream(stream))
        .unwrap()
}

fn serde_urlencoded_like(q: &HashMap<String, String>) -> String {
    let mut v: Vec<String> = q.iter().map(|(k, v)| format!("{k}={v}")).collect();
    v.sort();
    v.join("&")
}

fn tokio_stream_from(
    mut rx: tokio::sync::mpsc::Receiver<Result<String, std::io::Error>>,
) -> impl futures::Stream<Item = Result<String, std::io::Error>> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// Real-shaped objects.
pub mod objects {
    use serde_json::{Value, json};

    /// A Ready node.
    pub fn node(name: &str, cpu: &str, memory: &str) -> Value {
        json!({"metadata": {"name": name, "uid": format!("uid-{name}"), "labels": {"kubernetes.io/hostname": name}},
            "spec": {},
            "status": {"capacity": {"cpu": cpu, "memory": memory, "pods": "110"},
                "allocatable": {"cpu": cpu, "memory": memory, "pods": "110"},
                "conditions": [{"type": "Ready", "status": "True"}],
                "nodeInfo": {"architecture": "amd64", "bootID": "b", "containerRuntimeVersion": "containerd://1.7.0",
                    "kernelVersion": "6.1.0", "kubeProxyVersion": "v1.32.0", "kubeletVersion": "v1.32.0",
                    "machineID": "m", "operatingSystem": "linux", "osImage": "Debian GNU/Linux 12", "systemUUID": "s"}}})
    }

    /// A namespace.
    pub fn namespace(name: &str) -> Value {
        json!({"metadata": {"name": name, "uid": format!("uid-ns-{name}"), "labels": {"project_name": "shop-project"}}, "status": {"phase": "Active"}})
    }

    /// An owner reference.
    pub fn owner(kind: &str, api: &str, name: &str) -> Value {
        json!([{"apiVersion": api, "kind": kind, "name": name, "uid": format!("uid-{name}"), "controller": true}])
    }

    /// A pod with one container.
    #[allow(clippy::too_many_arguments)]
    pub fn pod(
        ns: &str,
        name: &str,
        uid: &str,
        node: &str,
        owners: Value,
        phase: &str,
        container: &str,
        container_id: &str,
        restarts: i32,
    ) -> Value {
        json!({"metadata": {"name": name, "namespace": ns, "uid": uid, "ownerReferences": owners},
            "spec": {"nodeName": node, "containers": [{"name": container, "image": "nginx:1.27",
                "resources": {"requests": {"cpu": "250m", "memory": "64Mi"}, "limits": {"cpu": "500m", "memory": "128Mi"}}}]},
            "status": {"phase": phase, "podIP": "10.0.0.7", "hostIP": "192.168.1.10",
                "conditions": [{"type": "Ready", "status": if phase == "Running" { "True" } else { "False" }}],
                "containerStatuses": [{"name": container, "ready": phase == "Running", "restartCount": restarts,
                    "image": "nginx:1.27", "imageID": "sha256:abc", "containerID": format!("containerd://{container_id}")}]}})
    }

    /// A Deployment.
    pub fn deployment(ns: &str, name: &str, replicas: i32, available: i32) -> Value {
        json!({"metadata": {"name": name, "namespace": ns, "uid": format!("uid-{name}")},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": "c"}]}}},
            "status": {"replicas": replicas, "availableReplicas": available, "readyReplicas": available,
                "updatedReplicas": replicas, "unavailableReplicas": replicas - available}})
    }

    /// A ReplicaSet owned by a Deployment.
    pub fn replicaset(ns: &str, name: &str, deployment: &str) -> Value {
        json!({"metadata": {"name": name, "namespace": ns, "uid": format!("uid-{name}"), "ownerReferences": owner("Deployment", "apps/v1", deployment)},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": deployment}}},
            "status": {"replicas": 2}})
    }

    /// A CronJob.
    pub fn cronjob(ns: &str, name: &str) -> Value {
        json!({"metadata": {"name": name, "namespace": ns, "uid": format!("uid-{name}")},
            "spec": {"schedule": "0 3 * * *", "jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "c"}]}}}}},
            "status": {}})
    }

    /// A Job owned by a CronJob.
    pub fn job(ns: &str, name: &str, cronjob: &str) -> Value {
        json!({"metadata": {"name": name, "namespace": ns, "uid": format!("uid-{name}"), "ownerReferences": owner("CronJob", "batch/v1", cronjob)},
            "spec": {"template": {"spec": {"containers": [{"name": "c"}]}}},
            "status": {"succeeded": 1}})
    }
}

//! HTTP server plumbing every component shares: binding with a clear error,
//! the `/-/healthy`, `/-/ready` and `/metrics` endpoints, graceful shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Readiness flag: `/-/ready` answers 200 only once every component set it.
#[derive(Clone, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    /// A flag that starts not ready.
    pub fn new() -> Self {
        Self::default()
    }
    /// Marks ready (or not).
    pub fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::SeqCst)
    }
    /// Whether ready.
    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// Binds a TCP listener, turning "address in use" and friends into a message
/// that names the flag and the address.
pub async fn bind(addr: &str) -> anyhow::Result<TcpListener> {
    let parsed: SocketAddr = addr
        .parse()
        .map_err(|e| anyhow::anyhow!("--listen: invalid address {addr:?}: {e}"))?;
    TcpListener::bind(parsed).await.map_err(|e| match e.kind() {
        std::io::ErrorKind::AddrInUse => {
            anyhow::anyhow!("--listen: address {addr} is already in use by another process")
        }
        std::io::ErrorKind::PermissionDenied => {
            anyhow::anyhow!("--listen: permission denied binding {addr}")
        }
        _ => anyhow::anyhow!("--listen: cannot bind {addr}: {e}"),
    })
}

/// `/-/healthy`, `/-/ready` and `/metrics`.
pub fn ops_routes(ready: Readiness, registry: Arc<Registry>) -> Router {
    Router::new()
        .route("/-/healthy", get(|| async { "Tidewatch is Healthy.\n" }))
        .route(
            "/-/ready",
            get(|State(r): State<Readiness>| async move {
                if r.is_ready() {
                    (StatusCode::OK, "Tidewatch is Ready.\n")
                } else {
                    (
                        StatusCode::SERVICE_UNAVAILABLE,
                        "Tidewatch is not ready yet.\n",
                    )
                }
            })
            .with_state(ready),
        )
        .route(
            "/metrics",
            get(|State(reg): State<Arc<Registry>>| async move {
                let mut body = String::new();
                match prometheus_client::encoding::text::encode(&mut body, &reg) {
                    Ok(()) => (
                        [(
                            header::CONTENT_TYPE,
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        )],
                        body,
                    )
                        .into_response(),
                    Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
                }
            })
            .with_state(registry),
        )
}

/// Resolves on Ctrl-C or SIGTERM, or when `token` is cancelled.
pub async fn shutdown_signal(token: CancellationToken) {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => tracing::info!("received Ctrl-C, shutting down"),
        _ = term => tracing::info!("received SIGTERM, shutting down"),
        _ = token.cancelled() => {},
    }
    token.cancel();
}

/// Serves `router` on `listener` until `token` is cancelled.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    token: CancellationToken,
) -> anyhow::Result<()> {
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move { token.cancelled().await })
    .await?;
    Ok(())
}

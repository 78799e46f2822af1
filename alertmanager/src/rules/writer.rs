//! Where rule results go back: recording-rule samples and
//! `ALERTS`/`ALERTS_FOR_STATE`. Over Prometheus remote-write to any
//! compatible receiver in the distributed deployment, or straight into
//! the aggregator's store in `up` (an implementation the stack provides,
//! so this crate does not depend on the aggregator).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tidewatch_common::Labels;
use tidewatch_common::remote_write::{Label, Sample, TimeSeries, WriteRequest};

use crate::rules::querier::Querier;

/// Boxed future of a write.
pub type WriteFuture<'a> = Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>>;

/// Stores one evaluation's output series, every sample at `ts` (ms).
/// Labels already carry the external labels.
pub trait ResultWriter: Send + Sync {
    /// Writes `series` at `ts`.
    fn write<'a>(&'a self, series: &'a [(Labels, f64)], ts: i64) -> WriteFuture<'a>;
}

/// Writes through `POST {url}` in Prometheus remote-write 1.0.
pub struct RemoteWriter {
    client: reqwest::Client,
    url: String,
}

impl RemoteWriter {
    /// A writer to the remote-write endpoint `url`.
    pub fn new(url: &str, timeout: Duration) -> RemoteWriter {
        RemoteWriter {
            client: reqwest::Client::builder()
                .timeout(timeout)
                .build()
                .expect("reqwest client"),
            url: url.to_string(),
        }
    }
}

impl ResultWriter for RemoteWriter {
    fn write<'a>(&'a self, series: &'a [(Labels, f64)], ts: i64) -> WriteFuture<'a> {
        Box::pin(async move {
            let r = self
                .client
                .post(&self.url)
                .header("Content-Encoding", "snappy")
                .header("Content-Type", "application/x-protobuf")
                .header("X-Prometheus-Remote-Write-Version", "0.1.0")
                .body(encode(series, ts))
                .send()
                .await
                .map_err(|e| format!("remote-write to {}: {e}", self.url))?;
            if r.status().is_success() {
                Ok(())
            } else {
                Err(format!("remote-write to {}: {}", self.url, r.status()))
            }
        })
    }
}

/// A snappy-compressed remote-write request of `series` at `ts`.
pub fn encode(series: &[(Labels, f64)], ts: i64) -> Vec<u8> {
    let req = WriteRequest {
        timeseries: series
            .iter()
            .map(|(l, v)| TimeSeries {
                labels: l
                    .iter()
                    .map(|x| Label {
                        name: x.name.clone(),
                        value: x.value.clone(),
                    })
                    .collect(),
                samples: vec![Sample {
                    value: *v,
                    timestamp: ts,
                }],
                exemplars: Vec::new(),
                histograms: Vec::new(),
            })
            .collect(),
        metadata: Vec::new(),
    };
    tidewatch_common::remote_write::encode_write_request(&req)
}

/// What rules are evaluated against: a querier and, optionally, where
/// their results are written back.
#[derive(Clone)]
pub struct RuleBackend {
    /// Evaluates rule expressions.
    pub querier: Arc<dyn Querier>,
    /// Stores recording results and `ALERTS`; `None` drops them.
    pub writer: Option<Arc<dyn ResultWriter>>,
}

impl RuleBackend {
    /// The Prometheus HTTP API at `query_url` and remote-write at
    /// `remote_write_url`: any Prometheus-compatible server.
    pub fn http(query_url: &str, remote_write_url: Option<&str>, timeout: Duration) -> RuleBackend {
        RuleBackend {
            querier: Arc::new(crate::rules::querier::HttpQuerier::new(query_url, timeout)),
            writer: remote_write_url
                .map(|u| Arc::new(RemoteWriter::new(u, timeout)) as Arc<dyn ResultWriter>),
        }
    }
}

/// A [`ResultWriter`] from a closure returning a future, for in-process
/// sinks (`up` writes into the aggregator's store this way).
pub struct FnWriter<F>(pub F);

impl<F, Fut> ResultWriter for FnWriter<F>
where
    F: Fn(Vec<(Labels, f64)>, i64) -> Fut + Send + Sync,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    fn write<'a>(&'a self, series: &'a [(Labels, f64)], ts: i64) -> WriteFuture<'a> {
        Box::pin((self.0)(series.to_vec(), ts))
    }
}

//! Where rule expressions are evaluated: the Prometheus HTTP API of any
//! compatible server (Tidewatch's aggregator, Prometheus itself), or the
//! in-process PromQL engine over a storage (rule unit tests).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde::Deserialize;
use tidewatch_common::Labels;
use tidewatch_promql::native::FloatHistogram;
use tidewatch_promql::{Engine, Storage, Value};

/// One instant-vector element of a rule's result.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// Labels, `__name__` included when the expression keeps it.
    pub labels: Labels,
    /// Value (0 for a histogram sample).
    pub value: f64,
    /// The native histogram of a histogram sample (in-process engine only).
    pub histogram: Option<Box<FloatHistogram>>,
}

/// Boxed future of a query.
pub type QueryFuture<'a> = Pin<Box<dyn Future<Output = Result<Vec<Sample>, String>> + Send + 'a>>;

/// Evaluates instant queries; scalars become one sample without labels.
pub trait Querier: Send + Sync {
    /// Evaluates `expr` at `time_ms`.
    fn query<'a>(&'a self, expr: &'a str, time_ms: i64) -> QueryFuture<'a>;
}

/// Queries `GET {base}/api/v1/query`.
pub struct HttpQuerier {
    client: reqwest::Client,
    base: String,
}

impl HttpQuerier {
    /// A querier of the Prometheus API at `base` (no trailing `/api/v1`).
    pub fn new(base: &str, timeout: std::time::Duration) -> HttpQuerier {
        HttpQuerier {
            client: reqwest::Client::builder()
                .timeout(timeout)
                .build()
                .expect("reqwest client"),
            base: base.trim_end_matches('/').to_string(),
        }
    }
}

#[derive(Deserialize)]
struct ApiResponse {
    status: String,
    #[serde(default)]
    data: Option<ApiData>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ApiData {
    result_type: String,
    result: serde_json::Value,
}

#[derive(Deserialize)]
struct ApiSample {
    metric: std::collections::BTreeMap<String, String>,
    /// Absent for a native-histogram sample (`histogram` instead).
    #[serde(default)]
    value: Option<(f64, String)>,
}

fn parse_value(s: &str) -> f64 {
    match s {
        "+Inf" | "Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        s => s.parse().unwrap_or(f64::NAN),
    }
}

impl Querier for HttpQuerier {
    fn query<'a>(&'a self, expr: &'a str, time_ms: i64) -> QueryFuture<'a> {
        Box::pin(async move {
            let time = format!("{:.3}", time_ms as f64 / 1000.0);
            let resp = self
                .client
                .post(format!("{}/api/v1/query", self.base))
                .form(&[("query", expr), ("time", time.as_str())])
                .send()
                .await
                .map_err(|e| format!("query {expr:?}: {e}"))?;
            let body: ApiResponse = resp
                .json()
                .await
                .map_err(|e| format!("query {expr:?}: bad response: {e}"))?;
            if body.status != "success" {
                return Err(body.error.unwrap_or_else(|| "query failed".into()));
            }
            let data = body.data.ok_or("query: response without data")?;
            match data.result_type.as_str() {
                "vector" => {
                    let v: Vec<ApiSample> = serde_json::from_value(data.result)
                        .map_err(|e| format!("query: bad vector: {e}"))?;
                    v.into_iter()
                        .map(|s| {
                            let value = s.value.ok_or(
                                "query: native histogram samples in rule results are not supported over HTTP",
                            )?;
                            Ok(Sample {
                                labels: Labels::from_pairs(s.metric),
                                value: parse_value(&value.1),
                                histogram: None,
                            })
                        })
                        .collect()
                }
                "scalar" => {
                    let (_, v): (f64, String) = serde_json::from_value(data.result)
                        .map_err(|e| format!("query: bad scalar: {e}"))?;
                    Ok(vec![Sample {
                        labels: Labels::empty(),
                        value: parse_value(&v),
                        histogram: None,
                    }])
                }
                t => Err(format!(
                    "rule expression returned a {t}, not a vector or scalar"
                )),
            }
        })
    }
}

/// Evaluates with the in-process engine over a storage.
pub struct EngineQuerier {
    /// The engine.
    pub engine: Engine,
    /// The storage.
    pub storage: Arc<dyn Storage>,
}

impl Querier for EngineQuerier {
    fn query<'a>(&'a self, expr: &'a str, time_ms: i64) -> QueryFuture<'a> {
        Box::pin(async move {
            let r = self
                .engine
                .instant_query(self.storage.as_ref(), expr, time_ms)
                .await
                .map_err(|e| e.to_string())?;
            match r.value {
                Value::Vector(v) => Ok(v
                    .into_iter()
                    .map(|s| Sample {
                        labels: s.labels,
                        value: s.value,
                        histogram: s.histogram,
                    })
                    .collect()),
                Value::Scalar { value, .. } => Ok(vec![Sample {
                    labels: Labels::empty(),
                    value,
                    histogram: None,
                }]),
                _ => Err("rule expression must return a vector or scalar".into()),
            }
        })
    }
}

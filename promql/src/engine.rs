//! The query engine's public interface.

use std::sync::Once;
use std::time::{Duration, Instant};

use promql_parser::parser::Expr;
use tidewatch_common::Labels;

use crate::eval::plan::{self, Planner};
use crate::eval::{Ctx, Evaluator, Val, finish_names};
use crate::storage::{Series, Storage, StorageError};
use crate::value::{Sample, Value};

/// Most steps a range query may have (Prometheus's API limit).
pub const MAX_POINTS_PER_SERIES: i64 = 11_000;

/// Engine limits and defaults.
#[derive(Clone, Debug)]
pub struct EngineOptions {
    /// How far back an instant selector looks for a sample (Prometheus: 5m).
    pub lookback_delta: Duration,
    /// Maximum samples a query may hold in memory at once.
    pub max_samples: usize,
    /// Wall-clock limit of one query.
    pub timeout: Duration,
    /// Resolution of subqueries written without a step (`x[5m:]`).
    pub default_subquery_step: Duration,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            lookback_delta: Duration::from_secs(300),
            max_samples: 50_000_000,
            timeout: Duration::from_secs(120),
            default_subquery_step: Duration::from_secs(60),
        }
    }
}

/// The result of a query with its annotations.
#[derive(Clone, Debug, PartialEq)]
pub struct QueryResult {
    /// The value (a matrix for range queries).
    pub value: Value,
    /// Warnings (Prometheus `warnings`).
    pub warnings: Vec<String>,
    /// Informational annotations (Prometheus `infos`).
    pub infos: Vec<String>,
}

/// Query failures, mapped to the Prometheus API's error types.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The query does not parse or is invalid (`bad_data`, HTTP 400).
    #[error("{0}")]
    BadData(String),
    /// Evaluation failed (`execution`, HTTP 422).
    #[error("{0}")]
    Execution(String),
    /// The query ran past its timeout (`timeout`, HTTP 503).
    #[error("query timed out in {0}")]
    Timeout(String),
    /// The storage failed (`execution`, HTTP 422).
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl QueryError {
    /// Prometheus API `errorType`.
    pub fn error_type(&self) -> &'static str {
        match self {
            QueryError::BadData(_) => "bad_data",
            QueryError::Execution(_) | QueryError::Storage(_) => "execution",
            QueryError::Timeout(_) => "timeout",
        }
    }

    /// HTTP status the Prometheus API uses for this error.
    pub fn http_status(&self) -> u16 {
        match self {
            QueryError::BadData(_) => 400,
            QueryError::Execution(_) | QueryError::Storage(_) => 422,
            QueryError::Timeout(_) => 503,
        }
    }
}

/// Evaluates PromQL over a [`Storage`].
#[derive(Clone, Debug, Default)]
pub struct Engine {
    opts: EngineOptions,
}

impl Engine {
    /// An engine with the given options.
    pub fn new(opts: EngineOptions) -> Self {
        Engine { opts }
    }

    /// The engine's options.
    pub fn options(&self) -> &EngineOptions {
        &self.opts
    }

    /// Evaluates `query` at `time_ms`.
    pub async fn instant_query(
        &self,
        storage: &dyn Storage,
        query: &str,
        time_ms: i64,
    ) -> Result<QueryResult, QueryError> {
        self.run(storage, query, time_ms, time_ms, 0, true).await
    }

    /// Evaluates `query` at every step in `[start_ms, end_ms]`; the value is a
    /// [`Value::Matrix`].
    pub async fn range_query(
        &self,
        storage: &dyn Storage,
        query: &str,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
    ) -> Result<QueryResult, QueryError> {
        if step_ms <= 0 {
            return Err(QueryError::BadData(
                "zero or negative query resolution step widths are not accepted. Try a positive integer".into(),
            ));
        }
        if end_ms < start_ms {
            return Err(QueryError::BadData(
                "end timestamp must not be before start time".into(),
            ));
        }
        if (end_ms - start_ms) / step_ms >= MAX_POINTS_PER_SERIES {
            return Err(QueryError::BadData(format!(
                "exceeded maximum resolution of {MAX_POINTS_PER_SERIES} points per timeseries. Try decreasing the query resolution (?step=XX)"
            )));
        }
        self.run(storage, query, start_ms, end_ms, step_ms, false)
            .await
    }

    async fn run(
        &self,
        storage: &dyn Storage,
        query: &str,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
        instant: bool,
    ) -> Result<QueryResult, QueryError> {
        let started = Instant::now();
        let text = crate::preprocess::rewrite(
            query,
            crate::preprocess::QueryTimes {
                step_ms: if instant { 0 } else { step_ms },
                range_ms: end_ms - start_ms,
            },
        )?;
        let expr = parse(&text)?;
        if storage.has_histograms() {
            let q = crate::native::eval::Query {
                opts: &self.opts,
                start_ms,
                end_ms,
                step_ms,
                instant,
            };
            if let Some(r) = q.evaluate(storage, &expr).await? {
                return Ok(r);
            }
        }
        let ctx = Ctx::new(start_ms, end_ms, step_ms);
        let mut planner = Planner::new(&self.opts, start_ms, end_ms);
        planner.walk(&expr, &ctx);
        let fetch = plan::fetch(storage, &planner.needs, self.opts.max_samples);
        let data = match tokio::time::timeout(self.opts.timeout, fetch).await {
            Ok(r) => r?,
            Err(_) => return Err(QueryError::Timeout(format!("{:?}", started.elapsed()))),
        };
        let evaluate = || -> Result<QueryResult, QueryError> {
            let mut ev = Evaluator {
                opts: &self.opts,
                data: &data,
                query_start: start_ms,
                query_end: end_ms,
                query_step: if instant { 0 } else { step_ms },
                deadline: started + self.opts.timeout,
                started,
                warnings: Vec::new(),
                infos: Vec::new(),
            };
            let val = ev.eval(&expr, &ctx)?;
            if let Val::Vector(v) = &val {
                ev.check_samples(v.iter().map(|s| s.vals.iter().flatten().count()).sum())?;
            }
            let value = output(val, &ctx, instant)?;
            Ok(QueryResult {
                value,
                warnings: ev.warnings,
                infos: ev.infos,
            })
        };
        // Evaluation is CPU-bound: on a multi-threaded runtime let the
        // other tasks of this worker move elsewhere meanwhile.
        match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
            Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(evaluate),
            _ => evaluate(),
        }
    }
}

/// Pretty-prints a query (Prometheus's `/api/v1/format_query`).
pub fn format_query(query: &str) -> Result<String, QueryError> {
    Ok(parse(query)?.prettify())
}

/// Parses a query, mapping parser errors to `bad_data`.
pub fn parse(query: &str) -> Result<Expr, QueryError> {
    register_extra_functions();
    promql_parser::parser::parse(query).map_err(QueryError::BadData)
}

fn register_extra_functions() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        use promql_parser::parser::value::ValueType;
        let _ = promql_parser::parser::register_extra_functions(vec![
            promql_parser::parser::Function::new(
                "holt_winters",
                vec![ValueType::Matrix, ValueType::Scalar, ValueType::Scalar],
                0,
                ValueType::Vector,
                false,
            ),
        ]);
    });
}

/// Converts the evaluated value into the API value.
fn output(val: Val, ctx: &Ctx, instant: bool) -> Result<Value, QueryError> {
    Ok(match val {
        Val::Scalar(v) if instant => Value::Scalar {
            timestamp: ctx.start,
            value: v[0],
        },
        Val::Scalar(v) => Value::Matrix(vec![Series {
            labels: Labels::empty(),
            timestamps: (0..ctx.n).map(|i| ctx.ts(i)).collect(),
            values: v,
        }]),
        Val::String(s) if instant => Value::String {
            timestamp: ctx.start,
            value: s,
        },
        Val::String(_) => {
            return Err(QueryError::BadData(
                "invalid expression type \"string\" for range query, must be Scalar or instant Vector".into(),
            ));
        }
        Val::Matrix(m) => {
            if !instant {
                return Err(QueryError::BadData(
                    "invalid expression type \"range vector\" for range query, must be Scalar or instant Vector".into(),
                ));
            }
            let mut out = Vec::with_capacity(m.len());
            for mut s in m {
                if s.drop_name {
                    s.labels.remove(tidewatch_common::labels::METRIC_NAME);
                }
                out.push(Series {
                    labels: s.labels,
                    timestamps: s.ts.into_owned(),
                    values: s.vals.into_owned(),
                });
            }
            let mut seen = std::collections::HashSet::new();
            for s in &out {
                if !seen.insert(&s.labels) {
                    return Err(QueryError::Execution(
                        "vector cannot contain metrics with the same labelset".into(),
                    ));
                }
            }
            Value::Matrix(out)
        }
        Val::Vector(v) => {
            let v = finish_names(v)?;
            if instant {
                Value::Vector(
                    v.into_iter()
                        .filter_map(|s| {
                            s.vals[0].map(|value| Sample {
                                labels: s.labels,
                                timestamp: ctx.start,
                                value,
                                histogram: None,
                            })
                        })
                        .collect(),
                )
            } else {
                let mut out: Vec<Series> = v
                    .into_iter()
                    .filter_map(|s| {
                        let len = s.vals.iter().filter(|x| x.is_some()).count();
                        let mut ts = Vec::with_capacity(len);
                        let mut vals = Vec::with_capacity(len);
                        for (i, x) in s.vals.iter().enumerate() {
                            if let Some(x) = x {
                                ts.push(ctx.ts(i));
                                vals.push(*x);
                            }
                        }
                        (!ts.is_empty()).then_some(Series {
                            labels: s.labels,
                            timestamps: ts,
                            values: vals,
                        })
                    })
                    .collect();
                out.sort_by(|a, b| a.labels.cmp(&b.labels));
                Value::Matrix(out)
            }
        }
    })
}

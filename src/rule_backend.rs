//! The alert engine's rule backend in `up`: rules are evaluated by the
//! aggregator's PromQL engine over its store, and their results
//! (recording rules, `ALERTS`, `ALERTS_FOR_STATE`) are appended to that
//! store, all in-process — no HTTP loopback. Components deployed alone use
//! the HTTP backend (`alerting.query_url`, `remote_write_url`) instead.

use std::sync::Arc;

use tidewatch_aggregator::{Aggregator, IngestSeries};
use tidewatch_alertmanager::RuleBackend;
use tidewatch_alertmanager::rules::querier::EngineQuerier;
use tidewatch_alertmanager::rules::writer::FnWriter;
use tidewatch_common::Labels;

/// The in-process backend over `aggregator`.
pub fn in_process(aggregator: &Arc<Aggregator>) -> RuleBackend {
    let agg = Arc::clone(aggregator);
    let writer = FnWriter(move |series: Vec<(Labels, f64)>, ts: i64| {
        let agg = Arc::clone(&agg);
        async move {
            let batch = series
                .into_iter()
                .map(|(l, v)| IngestSeries::new(l, vec![ts], vec![v]))
                .collect();
            agg.append(batch)
                .await
                .map(|_| ())
                .map_err(|e| format!("appending rule results: {e}"))
        }
    });
    RuleBackend {
        querier: Arc::new(EngineQuerier {
            engine: aggregator.engine(),
            storage: aggregator.storage(),
        }),
        writer: Some(Arc::new(writer)),
    }
}

//! Prometheus's PromQL corpus through the aggregator's real ingest and query
//! path: every `load` block is appended through the aggregator's ingest
//! (validation, WAL, head), flushed into Parquet blocks, and every `eval` is
//! answered by the PromQL engine reading the store through DataFusion.
//! Fails if any file's pass count drops below the baseline recorded for the
//! engine (`promql/tests/corpus_baseline.tsv`), so storage can never lose
//! what the engine gets right.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use prometheus_client::registry::Registry;
use tidewatch_aggregator::{Aggregator, Config, IngestSeries};
use tidewatch_promql::Engine;
use tidewatch_promql::promqltest::{LoadSeries, Target, TargetFuture, run_corpus};
use tidewatch_promql::storage::{SelectFuture, SelectRequest, Storage};
use tokio_util::sync::CancellationToken;

/// Forwards to the storage of the aggregator currently loaded.
struct Current(Mutex<Arc<dyn Storage>>);

impl Storage for Current {
    fn select(&self, req: SelectRequest) -> SelectFuture<'_> {
        let s = self.0.lock().clone();
        Box::pin(async move { s.select(req).await })
    }
}

struct AggregatorTarget {
    root: tempfile::TempDir,
    generation: Mutex<u32>,
    aggregator: Mutex<Option<Arc<Aggregator>>>,
    current: Current,
}

fn config() -> Config {
    Config {
        // The corpus loads samples from 1970 onwards: keep everything.
        retention_time: Duration::ZERO,
        out_of_order_window: Duration::from_secs(100 * 365 * 24 * 3600),
        ..Config::default()
    }
}

impl AggregatorTarget {
    async fn new() -> AggregatorTarget {
        let root = tempfile::tempdir().unwrap();
        let t = AggregatorTarget {
            current: Current(Mutex::new(Arc::new(
                tidewatch_promql::memory::MemStorage::default(),
            ))),
            root,
            generation: Mutex::new(0),
            aggregator: Mutex::new(None),
        };
        t.reopen().await.unwrap();
        t
    }

    async fn reopen(&self) -> Result<(), String> {
        let old = self.aggregator.lock().take();
        if let Some(a) = old {
            a.close().await.map_err(|e| e.to_string())?;
        }
        let dir = {
            let mut g = self.generation.lock();
            *g += 1;
            self.root.path().join(format!("gen-{g}"))
        };
        let mut registry = Registry::default();
        let a = Aggregator::open(config(), &dir, &mut registry, CancellationToken::new())
            .await
            .map_err(|e| e.to_string())?;
        *self.current.0.lock() = a.storage();
        *self.aggregator.lock() = Some(a);
        Ok(())
    }
}

impl Target for AggregatorTarget {
    fn load<'a>(&'a self, series: &'a [LoadSeries]) -> TargetFuture<'a> {
        Box::pin(async move {
            let a = self.aggregator.lock().clone().expect("open aggregator");
            let batch: Vec<IngestSeries> = series
                .iter()
                .map(|s| {
                    let (ts, vs): (Vec<i64>, Vec<f64>) = s.samples.iter().copied().unzip();
                    IngestSeries::new(s.labels.clone(), ts, vs)
                })
                .collect();
            a.append(batch).await.map_err(|e| e.to_string())?;
            // Move everything into Parquet blocks so queries read through
            // DataFusion, not only the head.
            a.flush().await.map_err(|e| e.to_string())?;
            Ok(())
        })
    }

    fn clear(&self) -> TargetFuture<'_> {
        Box::pin(self.reopen())
    }

    fn storage(&self) -> &dyn Storage {
        &self.current
    }
}

fn shared_dir() -> PathBuf {
    std::env::var_os("TIDEWATCH_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(
                std::env::var_os("CARGO_MANIFEST_DIR")
                    .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()),
            )
            .join("../shared")
        })
}

fn baseline() -> BTreeMap<String, usize> {
    let text = include_str!("../promql/tests/corpus_baseline.tsv");
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (f[0].to_string(), f[1].parse().unwrap())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promql_corpus_through_the_aggregator_meets_the_engine_baseline() {
    let dir = shared_dir().join("promqltest");
    let target = AggregatorTarget::new().await;
    let engine = Engine::default();
    let reports = run_corpus(&dir, &target, &engine)
        .await
        .unwrap_or_else(|e| panic!("corpus at {}: {e}", dir.display()));
    assert!(!reports.is_empty());
    let base = baseline();
    let (mut passed, mut total) = (0, 0);
    let mut regressions = Vec::new();
    println!("file\tpassed\tfloat_cases");
    for (name, report) in &reports {
        println!("{name}\t{}\t{}", report.passed(), report.total());
        passed += report.passed();
        total += report.total();
        let min = base.get(name).copied().unwrap_or(usize::MAX);
        if report.passed() < min {
            let fails: Vec<String> = report
                .failures()
                .take(5)
                .map(|c| format!("    line {}: {}", c.line, c.query))
                .collect();
            regressions.push(format!(
                "{name}: {} < baseline {min}\n{}",
                report.passed(),
                fails.join("\n")
            ));
        }
    }
    println!("TOTAL\t{passed}\t{total}");
    assert!(
        regressions.is_empty(),
        "regressions:\n{}",
        regressions.join("\n")
    );
}

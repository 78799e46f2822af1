//! Log collection: tails container logs, node files and files inside pods
//! (TKEStack's `container-log`, `host-log`, `pod-log` inputs), and ships
//! the records through a bounded disk buffer per output to the aggregator
//! (Loki push), Kafka and Elasticsearch, exactly once across crashes (see
//! [`pipeline`] for the protocol).

pub mod assemble;
pub mod checkpoint;
pub mod config;
pub mod discover;
pub mod es;
pub mod format;
pub mod kafka;
pub mod loki;
pub mod pipeline;
pub mod record;
pub mod sink;
pub mod tailer;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::registry::Registry;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

use crate::buffer::{BufferOptions, DiskBuffer, OverflowPolicy};
pub use config::LogsConfig;
use config::OutputConfig;
use pipeline::{Output, PipelineMetrics, TailLoop};
use sink::{DeadLetter, Sink, SinkMetrics};

/// The running log shipper.
pub struct LogShipper {
    stop_tail: CancellationToken,
    stop_sinks: CancellationToken,
    tail: parking_lot::Mutex<Option<tokio::task::JoinHandle<()>>>,
    sinks: parking_lot::Mutex<Vec<tokio::task::JoinHandle<()>>>,
    _watcher: Option<notify::RecommendedWatcher>,
}

impl LogShipper {
    /// Starts tailing and shipping under `dir` (checkpoints, buffers);
    /// `None` when no input or no output is configured.
    pub async fn start(
        config: LogsConfig,
        aggregator_url: &str,
        dir: &Path,
        registry: &mut Registry,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Option<LogShipper>> {
        if config.inputs.is_empty() || config.outputs.is_empty() {
            return Ok(None);
        }
        std::fs::create_dir_all(dir)?;
        let node = match &config.node {
            Some(n) => n.clone(),
            None => hostname::get()
                .map(|h| h.to_string_lossy().into_owned())
                .unwrap_or_default(),
        };
        let cf = checkpoint::CheckpointFile::new(dir)?;
        let metrics = PipelineMetrics::default();
        registry.register(
            "log_records_read",
            "Log records read from files",
            metrics.records_read.clone(),
        );
        registry.register(
            "log_bytes_read",
            "Bytes of log records read",
            metrics.bytes_read.clone(),
        );
        registry.register(
            "log_stale_records_dropped",
            "Buffered records discarded at start because their offsets were not checkpointed (they are re-read)",
            metrics.stale_dropped.clone(),
        );
        let stop_tail = shutdown.child_token();
        let stop_sinks = shutdown.child_token();
        let mut outputs = Vec::new();
        let mut pending = Vec::new();
        for o in &config.outputs {
            let odir = dir.join("outputs").join(o.name());
            std::fs::create_dir_all(&odir)?;
            let b = o.buffer();
            let buffer = Arc::new(DiskBuffer::open(
                &odir.join("buffer"),
                BufferOptions {
                    max_bytes: b.max_bytes,
                    segment_bytes: (b.max_bytes / 16).clamp(1 << 20, 64 << 20),
                    overflow: OverflowPolicy::Block,
                },
            )?);
            let sm = SinkMetrics::default();
            let reg =
                registry.sub_registry_with_label(("output".into(), o.name().to_string().into()));
            reg.register(
                "log_records_sent",
                "Log records acknowledged by the sink",
                sm.sent.clone(),
            );
            reg.register(
                "log_records_dead_lettered",
                "Log records refused by the sink for good",
                sm.dead_lettered.clone(),
            );
            reg.register(
                "log_sink_failures",
                "Failed sink requests (retried)",
                sm.failures.clone(),
            );
            reg.register(
                "log_item_retries",
                "Bulk items retried after 429/5xx",
                sm.item_retries.clone(),
            );
            let dead = DeadLetter::new(&odir, sm.clone());
            let sink = match o {
                OutputConfig::Loki { url, .. } => Sink::Loki(Box::new(loki::LokiSink::new(
                    url.as_deref().unwrap_or(aggregator_url),
                    dead,
                    sm,
                )?)),
                OutputConfig::Kafka {
                    brokers,
                    topic,
                    compression,
                    properties,
                    ..
                } => Sink::Kafka(Box::new(kafka::KafkaSink::new(
                    brokers,
                    topic,
                    compression,
                    properties,
                    &format!("{node}/{}", o.name()),
                    sm,
                )?)),
                OutputConfig::Elasticsearch {
                    hosts,
                    index,
                    user,
                    password,
                    max_item_retries,
                    ..
                } => {
                    let pw = password
                        .clone()
                        .or_else(|| std::env::var("TIDEWATCH_ES_PASSWORD").ok());
                    Sink::Es(Box::new(es::EsSink::new(
                        hosts,
                        index,
                        user.as_deref(),
                        pw.as_deref(),
                        *max_item_retries,
                        dead,
                        sm,
                    )?))
                }
            };
            let out = Arc::new(Output {
                name: o.name().to_string(),
                buffer,
                batch_records: b.batch_records,
                batch_bytes: b.batch_bytes,
                push_bytes: (b.max_bytes / 4).min(64 << 20) as usize,
            });
            pending.push((out.clone(), sink));
            outputs.push(out);
        }
        // The stale ranges to keep depend on what the buffers still hold.
        let oldest = outputs
            .iter()
            .filter_map(|o| pipeline::oldest_pending(&o.buffer))
            .min();
        let (saved, stale) = pipeline::begin_epoch(&cf, oldest)?;
        tracing::info!(
            epoch = saved.epoch,
            files = saved.files.len(),
            stale_ranges = saved.stale.len(),
            "log tailing resumes"
        );
        let (persisted_tx, persisted_rx) = watch::channel(saved.persisted_rid);
        let sinks = pending
            .into_iter()
            .map(|(out, sink)| {
                tokio::spawn(pipeline::deliver(
                    out,
                    sink,
                    persisted_rx.clone(),
                    stale.clone(),
                    metrics.clone(),
                    stop_sinks.clone(),
                ))
            })
            .collect();
        let inputs: Vec<discover::Input> = config
            .inputs
            .iter()
            .map(|i| discover::Input::new(i.clone(), &config.cluster_id, &node))
            .collect();
        let wake = Arc::new(Notify::new());
        let watcher = watch_roots(&inputs, wake.clone());
        let tailer = tailer::Tailer::new(
            tailer::TailOptions {
                max_open_files: config.max_open_files,
                max_record_bytes: config.max_record_bytes,
                flush_timeout: config.flush_timeout,
                read_chunk_bytes: config.read_chunk_bytes,
                rotate_wait: Duration::from_secs(5).max(config.poll_interval * 4),
            },
            saved.files,
        );
        let tail = TailLoop {
            inputs,
            tailer,
            checkpoints: cf,
            epoch: saved.epoch,
            stale: saved.stale,
            outputs,
            persisted: persisted_tx,
            wake,
            poll: config.poll_interval,
            metrics,
        };
        let tail = tokio::spawn(tail.run(stop_tail.clone()));
        Ok(Some(LogShipper {
            stop_tail,
            stop_sinks,
            tail: parking_lot::Mutex::new(Some(tail)),
            sinks: parking_lot::Mutex::new(sinks),
            _watcher: watcher,
        }))
    }

    /// Stops tailing (pending records are flushed into the buffers and a
    /// last checkpoint written), then stops the sinks; what they did not
    /// deliver stays in the buffers for the next start.
    pub async fn close(&self) {
        self.stop_tail.cancel();
        let tail = self.tail.lock().take();
        if let Some(t) = tail {
            let _ = t.await;
        }
        self.stop_sinks.cancel();
        let sinks: Vec<_> = std::mem::take(&mut *self.sinks.lock());
        for s in sinks {
            let _ = s.await;
        }
    }
}

fn watch_roots(
    inputs: &[discover::Input],
    wake: Arc<Notify>,
) -> Option<notify::RecommendedWatcher> {
    use notify::Watcher;
    let mut w = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        // Opens and reads (the tailer's own included) change nothing to
        // read: waking on them would make every pass (whose discovery
        // opens directories) trigger the next one.
        use notify::event::{AccessKind, AccessMode, EventKind};
        if let Ok(e) = res
            && let EventKind::Access(k) = e.kind
            && k != AccessKind::Close(AccessMode::Write)
        {
            return;
        }
        wake.notify_one();
    })
    .map_err(|e| tracing::warn!(error = %e, "file notifications unavailable; polling only"))
    .ok()?;
    for i in inputs {
        for root in i.watch_roots() {
            if let Err(e) = w.watch(&root, notify::RecursiveMode::Recursive) {
                tracing::debug!(root = %root.display(), error = %e, "not watching; polling covers it");
            }
        }
    }
    Some(w)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::config::{BufferConfig, InputConfig, MultilineConfig};
    use std::sync::Mutex as StdMutex;
    use std::time::Instant;

    const N: usize = 50;
    const HALF: usize = N / 2;
    /// Bytes of each input line (`line-NNN\n`).
    const LINE: usize = 9;

    /// A Loki push endpoint recording every line it receives.
    async fn recording_endpoint() -> (String, Arc<StdMutex<Vec<String>>>) {
        let got = Arc::new(StdMutex::new(Vec::new()));
        let g = got.clone();
        let app = axum::Router::new().route(
            "/loki/api/v1/push",
            axum::routing::post(move |body: axum::body::Bytes| {
                let g = g.clone();
                async move {
                    let req = tidewatch_common::loki::decode_push_request(&body, 1 << 30).unwrap();
                    let mut g = g.lock().unwrap();
                    for s in req.streams {
                        g.extend(s.entries.into_iter().map(|e| e.line));
                    }
                    axum::http::StatusCode::NO_CONTENT
                }
            }),
        );
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
        (url, got)
    }

    fn config(input: &Path, url: &str) -> LogsConfig {
        LogsConfig {
            inputs: vec![InputConfig::HostLog {
                path: format!("{}/*.log", input.display()),
                labels: [("job".to_string(), "t".to_string())].into(),
                multiline: MultilineConfig::default(),
            }],
            outputs: vec![OutputConfig::Loki {
                name: "agg".into(),
                url: Some(url.into()),
                buffer: BufferConfig {
                    batch_records: 10,
                    ..BufferConfig::default()
                },
            }],
            node: Some("n".into()),
            poll_interval: Duration::from_millis(20),
            ..LogsConfig::default()
        }
    }

    fn counter(registry: &Registry, name: &str) -> u64 {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, registry).unwrap();
        text.lines()
            .filter(|l| l.starts_with(name))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    }

    async fn until(what: &str, mut f: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !f() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Runs the shipper until the input file is checkpointed to its end.
    async fn run_until_checkpointed(cfg: LogsConfig, state: &Path, size: u64) {
        let mut registry = Registry::default();
        let s = LogShipper::start(cfg, "", state, &mut registry, CancellationToken::new())
            .await
            .unwrap()
            .unwrap();
        let cf = checkpoint::CheckpointFile::new(state).unwrap();
        until("the file checkpointed", || {
            cf.load()
                .is_ok_and(|c| c.files.iter().any(|f| f.offset == size))
        })
        .await;
        s.close().await;
    }

    /// The root cause of the duplicates once seen in Kafka and
    /// Elasticsearch: a crash between pushing into the buffers and writing
    /// the checkpoint leaves records the tailer re-reads under new ids; if
    /// the sink stays down through a second restart, the first copies must
    /// still be recognised as stale.
    #[tokio::test]
    async fn stale_records_stay_stale_across_two_restarts_with_the_sink_down() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in");
        let state = dir.path().join("state");
        std::fs::create_dir_all(&input).unwrap();
        let text: String = (0..N).map(|i| format!("line-{i:03}\n")).collect();
        std::fs::write(input.join("a.log"), &text).unwrap();
        let size = text.len() as u64;
        let down = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            format!("http://{}", l.local_addr().unwrap())
        };
        // Epoch 1: every line pushed into the buffer; the sink is down.
        run_until_checkpointed(config(&input, &down), &state, size).await;
        // As if killed after pushing the second half and before its
        // checkpoint: the checkpoint covers lines 0..HALF (ids 1..=HALF).
        let cf = checkpoint::CheckpointFile::new(&state).unwrap();
        let mut c = cf.load().unwrap();
        assert_eq!(c.epoch, 1);
        assert_eq!(c.files.len(), 1);
        c.files[0].offset = (HALF * LINE) as u64;
        c.persisted_rid = 1 << 40 | HALF as u64;
        cf.store(&c).unwrap();
        // Epoch 2: the lines are read again (new ids); the sink still down.
        run_until_checkpointed(config(&input, &down), &state, size).await;
        // Epoch 3: the sink is back.
        let (url, got) = recording_endpoint().await;
        let mut registry = Registry::default();
        let s = LogShipper::start(
            config(&input, &url),
            "",
            &state,
            &mut registry,
            CancellationToken::new(),
        )
        .await
        .unwrap()
        .unwrap();
        // The buffer holds epoch 1's lines (the second half stale) and
        // epoch 2's second half: each is sent or dropped as stale.
        until("every buffered record sent or dropped", || {
            got.lock().unwrap().len() as u64 + counter(&registry, "log_stale_records_dropped")
                >= (N + HALF) as u64
        })
        .await;
        s.close().await;
        let mut lines = got.lock().unwrap().clone();
        lines.sort();
        let want: Vec<String> = (0..N).map(|i| format!("line-{i:03}")).collect();
        assert_eq!(lines, want, "every line exactly once");
        assert_eq!(counter(&registry, "log_stale_records_dropped"), HALF as u64);
    }
}

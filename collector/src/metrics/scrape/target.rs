//! One scrape target's loop: fetch, parse, relabel, report, staleness.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::RwLock;
use serde::Serialize;
use tidewatch_common::exposition::{Format, ParseOptions, parse_with};
use tidewatch_common::labels::{Label, Labels, METRIC_NAME};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::relabel;
use super::{Job, ScrapeConfig};
use crate::metrics::sample::Sample;

/// Bit pattern of Prometheus's staleness marker (a special NaN).
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// What `/collector/targets` reports per target.
#[derive(Clone, Debug, Serialize)]
pub struct TargetHealth {
    /// Job name.
    pub job: String,
    /// Scrape URL.
    pub url: String,
    /// Target labels.
    pub labels: BTreeMap<String, String>,
    /// `up`, `down` or `unknown`.
    pub health: String,
    /// Last error, empty when healthy.
    pub last_error: String,
    /// Samples sent by the last scrape.
    pub last_samples: usize,
}

/// A relabelled target.
pub(crate) struct Target {
    /// Final target labels (`job`, `instance`, …; no `__` labels).
    pub labels: Labels,
    url: String,
}

impl Target {
    /// Applies target relabelling; `None` when dropped or without address.
    pub fn from_discovered(
        cfg: &ScrapeConfig,
        rules: &[relabel::Rule],
        d: Labels,
    ) -> Option<Target> {
        let mut l = d;
        if l.get("job").is_none() {
            l.set("job", &cfg.job_name);
        }
        if l.get("__scheme__").is_none() {
            l.set("__scheme__", &cfg.scheme);
        }
        if l.get("__metrics_path__").is_none() {
            l.set("__metrics_path__", &cfg.metrics_path);
        }
        let l = relabel::apply(rules, l)?;
        let addr = l.get("__address__")?.to_string();
        let url = format!(
            "{}://{}{}",
            l.get("__scheme__").unwrap_or("http"),
            addr,
            l.get("__metrics_path__").unwrap_or("/metrics")
        );
        let mut fin: Vec<Label> = l
            .iter()
            .filter(|x| !x.name.starts_with("__"))
            .cloned()
            .collect();
        if !fin.iter().any(|x| x.name == "instance") {
            fin.push(Label::new("instance", addr));
        }
        Some(Target {
            labels: Labels::from_vec(fin),
            url,
        })
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as i64
}

const ACCEPT: &str =
    "application/openmetrics-text;version=1.0.0;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

/// Fetches one exposition body and its format.
async fn fetch(
    client: &reqwest::Client,
    url: &str,
    timeout: Duration,
) -> Result<(String, Format), String> {
    let resp = client
        .get(url)
        .header("Accept", ACCEPT)
        .header(
            "X-Prometheus-Scrape-Timeout-Seconds",
            timeout.as_secs_f64().to_string(),
        )
        .timeout(timeout)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if !resp.status().is_success() {
        return Err(format!("server returned HTTP status {}", resp.status()));
    }
    let format = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(Format::from_content_type)
        .unwrap_or(Format::PrometheusText);
    let body = resp.text().await.map_err(|e| e.to_string())?;
    Ok((body, format))
}

/// Merges target labels into a scraped series (Prometheus `honor_labels`).
fn merge(target: &Labels, scraped: Labels, honor: bool) -> Labels {
    let mut out = scraped;
    for t in target.iter() {
        match out.get(&t.name) {
            Some(_) if honor => {}
            Some(v) => {
                let v = v.to_string();
                out.set(&format!("exported_{}", t.name), &v);
                out.set(&t.name, &t.value);
            }
            None => out.set(&t.name, &t.value),
        }
    }
    out
}

fn report(target: &Labels, name: &str, v: f64, ts: i64) -> Sample {
    let mut l = target.clone();
    l.set(METRIC_NAME, name);
    Sample {
        labels: l,
        value: v,
        timestamp_ms: ts,
    }
}

/// The loop: scrape every interval until cancelled; then mark every series
/// of the last scrape stale.
pub(crate) async fn run(
    t: Target,
    job: Arc<Job>,
    client: reqwest::Client,
    out: mpsc::Sender<Vec<Sample>>,
    health: Arc<RwLock<BTreeMap<String, TargetHealth>>>,
    stop: CancellationToken,
    shutdown: CancellationToken,
) {
    let cfg = &job.cfg;
    // Spread targets over the interval by a stable offset.
    let offset = Duration::from_millis(
        t.labels.stable_hash() % cfg.scrape_interval.as_millis().max(1) as u64,
    );
    let start = tokio::time::Instant::now() + offset.min(cfg.scrape_interval / 2);
    let mut ticker = tokio::time::interval_at(start, cfg.scrape_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut last: HashMap<u64, Labels> = HashMap::new();
    let stale = f64::from_bits(STALE_NAN_BITS);
    // Each loop has its own entry: after a reload the old loop of a target
    // may still be finishing while the new one starts.
    static LOOP_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let key = format!(
        "{}\u{0}{}\u{0}{}",
        cfg.job_name,
        t.url,
        LOOP_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    health.write().insert(
        key.clone(),
        TargetHealth {
            job: cfg.job_name.clone(),
            url: t.url.clone(),
            labels: t
                .labels
                .iter()
                .map(|l| (l.name.clone(), l.value.clone()))
                .collect(),
            health: "unknown".into(),
            last_error: String::new(),
            last_samples: 0,
        },
    );
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = ticker.tick() => {}
        }
        let ts = now_ms();
        let started = Instant::now();
        let mut batch: Vec<Sample> = Vec::with_capacity(last.len() + 8);
        let mut scraped = 0usize;
        let result = match fetch(&client, &t.url, cfg.scrape_timeout).await {
            Err(e) => Err(e),
            Ok((body, format)) => match parse_with(&body, format, ParseOptions { strict: false }) {
                Err(e) => Err(format!("parse error: {e}")),
                Ok(expo) => {
                    scraped = expo.samples.len();
                    for s in expo.samples {
                        let labels = merge(&t.labels, s.labels, cfg.honor_labels);
                        let Some(labels) = relabel::apply(&job.metric_relabel, labels) else {
                            continue;
                        };
                        let ts = match s.timestamp_ms {
                            Some(x) if cfg.honor_timestamps => x,
                            _ => ts,
                        };
                        batch.push(Sample {
                            labels,
                            value: s.value,
                            timestamp_ms: ts,
                        });
                    }
                    if cfg.sample_limit > 0 && batch.len() > cfg.sample_limit {
                        let n = batch.len();
                        batch.clear();
                        Err(format!(
                            "sample_limit exceeded: {n} samples > {}",
                            cfg.sample_limit
                        ))
                    } else {
                        Ok(())
                    }
                }
            },
        };
        let post_relabel = batch.len();
        let up = if result.is_ok() { 1.0 } else { 0.0 };
        let dur = started.elapsed().as_secs_f64();
        batch.push(report(&t.labels, "up", up, ts));
        batch.push(report(&t.labels, "scrape_duration_seconds", dur, ts));
        batch.push(report(
            &t.labels,
            "scrape_samples_scraped",
            scraped as f64,
            ts,
        ));
        batch.push(report(
            &t.labels,
            "scrape_samples_post_metric_relabeling",
            post_relabel as f64,
            ts,
        ));
        // Staleness: series of the previous scrape missing from this one.
        let mut current: HashMap<u64, Labels> = HashMap::with_capacity(batch.len());
        for s in &batch {
            current.insert(s.labels.stable_hash(), s.labels.clone());
        }
        for (h, l) in last.drain() {
            if !current.contains_key(&h) {
                batch.push(Sample {
                    labels: l,
                    value: stale,
                    timestamp_ms: ts,
                });
            }
        }
        last = current;
        if let Some(h) = health.write().get_mut(&key) {
            h.health = if up == 1.0 {
                "up".into()
            } else {
                "down".into()
            };
            h.last_error = result.err().unwrap_or_default();
            h.last_samples = post_relabel;
        }
        if out.send(batch).await.is_err() {
            return;
        }
    }
    // Target gone: every series it reported goes stale (not on shutdown,
    // as in Prometheus: the series may continue after a restart).
    health.write().remove(&key);
    if !last.is_empty() && !shutdown.is_cancelled() {
        let ts = now_ms();
        let batch = last
            .into_values()
            .map(|labels| Sample {
                labels,
                value: stale,
                timestamp_ms: ts,
            })
            .collect();
        let _ = out.send(batch).await;
    }
}

//! The query replica's [`Storage`]: every consumer replica's data read by
//! remote-read (heads and blocks not yet uploaded) merged with the blocks
//! in object storage. Overlaps (a block both uploaded and still held by its
//! replica, a compacted block next to the blocks it replaces, a batch
//! re-consumed after a crash) are removed per (series, timestamp), so the
//! answer equals the single-node one. Every replica must answer: a partial
//! answer would silently differ, so a failed replica fails the query.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use promql_parser::label::Matcher;
use tidewatch_common::Labels;
use tidewatch_promql::storage::{SelectFuture, SelectRequest, Series, Storage, StorageError};

use super::block_cache::BlockCache;
use super::remote_read::RemoteReadClient;

/// Fan-out storage over replicas and the bucket.
pub struct FanoutStorage {
    replicas: Vec<RemoteReadClient>,
    blocks: Option<Arc<BlockCache>>,
    max_samples: usize,
}

impl FanoutStorage {
    /// Reads `replicas` and `blocks`, refusing selections of more than
    /// `max_samples` samples.
    pub fn new(
        replicas: Vec<RemoteReadClient>,
        blocks: Option<Arc<BlockCache>>,
        max_samples: usize,
    ) -> Self {
        FanoutStorage {
            replicas,
            blocks,
            max_samples,
        }
    }

    async fn select_impl(&self, req: SelectRequest) -> Result<Vec<Series>, StorageError> {
        let reads = self
            .replicas
            .iter()
            .map(|c| c.read(&req.matchers, req.start_ms, req.end_ms));
        let mut parts: Vec<Series> = Vec::new();
        for r in futures::future::join_all(reads).await {
            parts.extend(r.map_err(StorageError)?);
        }
        if let Some(b) = &self.blocks {
            parts.extend(b.select(&req.matchers, req.start_ms, req.end_ms));
        }
        merge(parts, self.max_samples)
    }
}

impl FanoutStorage {
    /// The distinct series matching any of `selectors` (the `match[]`
    /// strings, parsed into `sets`): every replica's index through its
    /// series API, plus the bucket's blocks with a sample in the range.
    /// Labels only: no samples travel.
    pub async fn series(
        &self,
        selectors: &[&str],
        sets: &[Vec<Matcher>],
        start: (i64, Option<&str>),
        end: (i64, Option<&str>),
    ) -> Result<BTreeSet<Labels>, StorageError> {
        let reads = self
            .replicas
            .iter()
            .map(|c| c.series(selectors, start.1, end.1));
        let mut out = BTreeSet::new();
        for r in futures::future::join_all(reads).await {
            out.extend(r.map_err(StorageError)?);
        }
        if let Some(b) = &self.blocks {
            for ms in sets {
                out.extend(b.series_labels(ms, start.0, end.0));
            }
        }
        Ok(out)
    }
}

/// Merges parts of series: grouped by labels, samples sorted by time, one
/// sample per timestamp.
pub fn merge(parts: Vec<Series>, max_samples: usize) -> Result<Vec<Series>, StorageError> {
    let mut by: BTreeMap<Labels, Vec<Series>> = BTreeMap::new();
    for s in parts {
        by.entry(s.labels.clone()).or_default().push(s);
    }
    let mut total = 0usize;
    let mut out = Vec::with_capacity(by.len());
    for (labels, group) in by {
        let s = if group.len() == 1 {
            group.into_iter().next().expect("one")
        } else {
            let mut pairs: Vec<(i64, f64)> = group
                .iter()
                .flat_map(|s| s.timestamps.iter().copied().zip(s.values.iter().copied()))
                .collect();
            pairs.sort_by_key(|p| p.0);
            pairs.dedup_by_key(|p| p.0);
            Series {
                labels,
                timestamps: pairs.iter().map(|p| p.0).collect(),
                values: pairs.iter().map(|p| p.1).collect(),
            }
        };
        total += s.timestamps.len();
        if total > max_samples {
            return Err(StorageError(
                "query processing would load too many samples into memory in query execution"
                    .into(),
            ));
        }
        if !s.timestamps.is_empty() {
            out.push(s);
        }
    }
    Ok(out)
}

impl Storage for FanoutStorage {
    fn select(&self, req: SelectRequest) -> SelectFuture<'_> {
        Box::pin(self.select_impl(req))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str, ts: &[i64], vs: &[f64]) -> Series {
        Series {
            labels: Labels::from_pairs([("__name__", "m"), ("v", v)]),
            timestamps: ts.to_vec(),
            values: vs.to_vec(),
        }
    }

    #[test]
    fn merges_overlaps_once() {
        let out = merge(
            vec![
                s("a", &[3, 4], &[3.0, 4.0]),
                s("b", &[1], &[1.0]),
                s("a", &[1, 2, 3], &[1.0, 2.0, 3.0]),
            ],
            100,
        )
        .unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].timestamps, vec![1, 2, 3, 4]);
        assert_eq!(out[0].values, vec![1.0, 2.0, 3.0, 4.0]);
        assert!(merge(vec![s("a", &[1, 2], &[0.0, 0.0])], 1).is_err());
    }
}

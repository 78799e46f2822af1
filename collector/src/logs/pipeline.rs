//! Moves records from the tailer into every output's disk buffer and from
//! each buffer to its sink, so that every line reaches every sink exactly
//! once across crashes.
//!
//! Protocol:
//! 1. Each record gets an id `rid = epoch << 40 | n`; the epoch is bumped
//!    and persisted at every start, so ids grow across restarts.
//! 2. The tailer's records are pushed (fsynced) into every buffer, *then*
//!    the checkpoint file is replaced with the new offsets and
//!    `persisted_rid` = the last id pushed.
//! 3. A sink sends a record only once its id is ≤ the persisted id: if the
//!    collector dies between 2's push and 2's checkpoint, the records in
//!    the buffers were never sent, and they are discarded at the next start
//!    (ids above the old `persisted_rid` from an older epoch), because the
//!    tailer re-reads those bytes from the checkpointed offsets. These stale
//!    ranges are persisted in the checkpoint file and kept across further
//!    restarts until no buffer holds such an id: a sink that stays down
//!    through several crashes must still never send them.
//! 4. A buffer batch is acknowledged only after the sink acknowledged it;
//!    a crash in between re-sends it, which the sinks make idempotent
//!    (aggregator: same stream+timestamp+line dropped; Elasticsearch:
//!    `create` with `_id` = rid, a 409 conflict means already stored; Kafka: the partition tails are read back at start and
//!    after errors, and ids already there are skipped).

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

use super::checkpoint::{CheckpointFile, Checkpoints, StaleRange};
use super::discover::{Discovered, Input};
use super::record::{self, BlockEncoder, Record};
use super::sink::Sink;
use super::tailer::{Read, Tailer};
use crate::buffer::DiskBuffer;

/// The stale id ranges of every earlier process whose records a buffer
/// may still hold (see [`StaleRange`]).
#[derive(Clone, Debug, Default)]
pub struct Stale(Vec<StaleRange>);

impl Stale {
    /// Whether `rid` must be discarded.
    pub fn contains(&self, rid: u64) -> bool {
        self.0.iter().any(|r| r.contains(rid))
    }
}

/// Self-metrics of the log pipeline.
#[derive(Default, Clone)]
pub struct PipelineMetrics {
    /// Records read from files.
    pub records_read: Counter,
    /// Bytes of records read.
    pub bytes_read: Counter,
    /// Stale records discarded at start.
    pub stale_dropped: Counter,
}

/// One output: its buffer and sink.
pub struct Output {
    /// Name.
    pub name: String,
    /// The buffer.
    pub buffer: Arc<DiskBuffer>,
    /// Records per request.
    pub batch_records: usize,
    /// Bytes per request.
    pub batch_bytes: usize,
    /// Bytes per buffer write (and fsync); under half the buffer bound.
    pub push_bytes: usize,
}

/// Loads the checkpoints and starts a new epoch (persisted before use).
///
/// The ids the previous process pushed but never checkpointed become a
/// stale range; ranges are kept across restarts until no buffer holds an id
/// in them any more. `oldest_pending` is the lowest id any buffer still
/// holds unacknowledged (`None`: every buffer is empty).
pub fn begin_epoch(
    cf: &CheckpointFile,
    oldest_pending: Option<u64>,
) -> anyhow::Result<(Checkpoints, Stale)> {
    let mut c = cf.load()?;
    c.epoch += 1;
    if c.epoch > 1 {
        c.stale.push(StaleRange {
            above: c.persisted_rid,
            below: c.epoch << 40,
        });
    }
    match oldest_pending {
        None => c.stale.clear(),
        Some(o) => c.stale.retain(|r| r.below > o && r.above + 1 < r.below),
    }
    c.stale.sort_by_key(|r| r.above);
    c.stale.dedup_by(|later, earlier| {
        // Overlapping or touching ranges merge into the earlier one.
        if later.above < earlier.below {
            earlier.below = earlier.below.max(later.below);
            true
        } else {
            false
        }
    });
    cf.store(&c)?;
    let stale = Stale(c.stale.clone());
    Ok((c, stale))
}

/// The lowest record id `buffer` holds unacknowledged (`Some(0)` when it
/// cannot be told; `None` when the buffer is empty). Call before reading.
pub fn oldest_pending(buffer: &DiskBuffer) -> Option<u64> {
    let first = match buffer.try_read_batch(1, 1) {
        Ok(Some(b)) => b.records.first().and_then(|r| record::peek_rid(r)),
        Ok(None) => return None,
        Err(_) => None,
    };
    buffer.rewind();
    Some(first.unwrap_or(0))
}

/// Settings of the tailing loop.
pub struct TailLoop {
    /// Inputs.
    pub inputs: Vec<Input>,
    /// The tailer (resumed from checkpoints).
    pub tailer: Tailer,
    /// Checkpoint file.
    pub checkpoints: CheckpointFile,
    /// Current epoch.
    pub epoch: u64,
    /// Stale ranges, carried into every checkpoint written.
    pub stale: Vec<StaleRange>,
    /// Outputs.
    pub outputs: Vec<Arc<Output>>,
    /// Publishes the persisted rid.
    pub persisted: watch::Sender<u64>,
    /// Wakes the loop early (file change events).
    pub wake: Arc<Notify>,
    /// Poll interval.
    pub poll: Duration,
    /// Metrics.
    pub metrics: PipelineMetrics,
}

fn discover(inputs: &[Input]) -> Vec<Discovered> {
    let mut d = Vec::new();
    for i in inputs {
        i.discover(&mut d);
    }
    d
}

impl TailLoop {
    /// Runs until `stop` is cancelled; then flushes and writes a last
    /// checkpoint.
    ///
    /// Reading is pipelined with the durable writes: while a committer task
    /// pushes one pass's blocks into the buffers (fsync) and then writes
    /// that pass's checkpoint, this loop reads and encodes the next pass.
    /// Commits are applied in order, each checkpoint only after its blocks
    /// are in every buffer, so the protocol above is unchanged.
    pub async fn run(mut self, stop: CancellationToken) {
        let mut next = (self.epoch << 40) | 1;
        let first = discover(&self.inputs);
        self.tailer.adopt_rotated(&first);
        let mut reads: Vec<Read> = Vec::new();
        let mut enc = BlockEncoder::new();
        let mut last_sent: Option<Checkpoints> = None;
        let (tx, rx) = tokio::sync::mpsc::channel::<Commit>(2);
        let committer = tokio::spawn(commit_loop(
            rx,
            self.outputs.clone(),
            self.checkpoints,
            self.persisted,
            stop.clone(),
        ));
        loop {
            let stopping = stop.is_cancelled();
            let discovered = discover(&self.inputs);
            let read_any = {
                let t = &mut self.tailer;
                let any = t.pass(&discovered, &mut reads);
                if stopping {
                    t.flush_all(&mut reads);
                }
                any
            };
            let blocks = if reads.is_empty() {
                Vec::new()
            } else {
                encode_blocks(
                    &self.outputs,
                    &self.metrics,
                    &mut reads,
                    &mut enc,
                    &mut next,
                )
            };
            let snapshot = Checkpoints {
                epoch: self.epoch,
                persisted_rid: next - 1,
                stale: self.stale.clone(),
                files: self.tailer.checkpoints(),
            };
            if !blocks.is_empty() || last_sent.as_ref() != Some(&snapshot) {
                let commit = Commit {
                    blocks,
                    snapshot: snapshot.clone(),
                };
                if tx.send(commit).await.is_err() {
                    // The committer gave up (stopping with a buffer
                    // refusing writes): nothing more may be checkpointed.
                    break;
                }
                last_sent = Some(snapshot);
            }
            if stopping {
                break;
            }
            if !read_any {
                tokio::select! {
                    _ = stop.cancelled() => {}
                    _ = self.wake.notified() => {}
                    _ = tokio::time::sleep(self.poll) => {}
                }
            }
        }
        drop(tx);
        let _ = committer.await;
    }
}

/// One pass's blocks and the checkpoint that accounts for them.
struct Commit {
    blocks: Vec<Vec<u8>>,
    snapshot: Checkpoints,
}

/// Applies commits in order: blocks into every buffer, then the checkpoint,
/// then publishes the persisted id. Returns early (dropping later commits,
/// whose bytes are re-read after the restart) when stopping with a buffer
/// refusing writes.
async fn commit_loop(
    mut rx: tokio::sync::mpsc::Receiver<Commit>,
    outputs: Vec<Arc<Output>>,
    checkpoints: CheckpointFile,
    persisted: watch::Sender<u64>,
    stop: CancellationToken,
) {
    while let Some(mut c) = rx.recv().await {
        // Behind the reader: fold what is queued into one write and fsync
        // per buffer and one checkpoint.
        while let Ok(more) = rx.try_recv() {
            c.blocks.extend(more.blocks);
            c.snapshot = more.snapshot;
        }
        if !push_blocks(&outputs, &c.blocks, &stop).await {
            return;
        }
        let mut delay = Duration::from_millis(100);
        loop {
            match checkpoints.store(&c.snapshot) {
                Ok(()) => {
                    persisted.send_replace(c.snapshot.persisted_rid);
                    break;
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot write log checkpoints; retrying");
                    if stop.is_cancelled() && delay > Duration::from_secs(2) {
                        return;
                    }
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
    }
}

/// Encodes `reads` as blocks of consecutive ids from `next` (advanced),
/// each at most one request of every output.
fn encode_blocks(
    outputs: &[Arc<Output>],
    metrics: &PipelineMetrics,
    reads: &mut Vec<Read>,
    enc: &mut BlockEncoder,
    next: &mut u64,
) -> Vec<Vec<u8>> {
    let max_records = outputs.iter().map(|o| o.batch_records).min();
    let max_records = max_records.unwrap_or(usize::MAX).max(1);
    let max_bytes = outputs.iter().map(|o| o.batch_bytes).min();
    let max_bytes = max_bytes.unwrap_or(usize::MAX).max(1);
    let mut blocks: Vec<Vec<u8>> = Vec::new();
    let mut bytes = 0u64;
    let records = reads.len() as u64;
    enc.start(*next);
    for r in reads.drain(..) {
        if !enc.is_empty() && (enc.len() >= max_records || enc.bytes() + r.line.len() > max_bytes) {
            blocks.push(enc.finish().to_vec());
            enc.start(*next);
        }
        enc.push(r.ts, &r.labels, &r.line);
        bytes += r.line.len() as u64;
        *next += 1;
    }
    if !enc.is_empty() {
        blocks.push(enc.finish().to_vec());
    }
    metrics.records_read.inc_by(records);
    metrics.bytes_read.inc_by(bytes);
    blocks
}

/// Pushes `blocks` into every buffer, retrying until each has them; false
/// when stopping before every buffer has them.
async fn push_blocks(
    outputs: &[Arc<Output>],
    blocks: &[Vec<u8>],
    stop: &CancellationToken,
) -> bool {
    for out in outputs {
        let mut start = 0;
        while start < blocks.len() {
            // One write and fsync per `push_bytes` or so.
            let mut end = start;
            let mut size = 0usize;
            while end < blocks.len() && (end == start || size + blocks[end].len() < out.push_bytes)
            {
                size += blocks[end].len() + 8;
                end += 1;
            }
            let mut delay = Duration::from_millis(100);
            loop {
                match out.buffer.push_batch(&blocks[start..end]).await {
                    Ok(_) => break,
                    Err(e) => {
                        tracing::error!(output = %out.name, error = %e, "cannot write to the output buffer; retrying");
                        if stop.is_cancelled() && delay > Duration::from_secs(2) {
                            // Not checkpointed: re-read after restart.
                            return false;
                        }
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(Duration::from_secs(5));
                    }
                }
            }
            start = end;
        }
    }
    true
}

/// Splits `records` into requests of at most `max_records` records and
/// about `max_bytes` bytes of lines (at least one record each); returns
/// their index ranges.
fn requests(
    records: &[Record],
    max_records: usize,
    max_bytes: usize,
) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    while start < records.len() {
        let mut end = start;
        let mut bytes = 0;
        while end < records.len()
            && end - start < max_records.max(1)
            && (end == start || bytes < max_bytes)
        {
            bytes += records[end].line.len();
            end += 1;
        }
        out.push(start..end);
        start = end;
    }
    out
}

/// Delivers one output's buffer to its sink until `stop` is cancelled.
pub async fn deliver(
    out: Arc<Output>,
    mut sink: Sink,
    mut persisted: watch::Receiver<u64>,
    stale: Stale,
    metrics: PipelineMetrics,
    stop: CancellationToken,
) {
    let mut records: Vec<Record> = Vec::new();
    loop {
        let batch = tokio::select! {
            _ = stop.cancelled() => return,
            b = out.buffer.read_batch(out.batch_records, out.batch_bytes) => b,
        };
        let batch = match batch {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(output = %out.name, error = %e, "cannot read the output buffer");
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                }
            }
        };
        records.clear();
        for p in &batch.records {
            if record::decode_payload(p, &mut records).is_none() {
                tracing::error!(output = %out.name, "corrupt block in the output buffer; skipped");
            }
        }
        let before = records.len();
        records.retain(|r| !stale.contains(r.rid));
        metrics
            .stale_dropped
            .inc_by((before - records.len()) as u64);
        let max_rid = records.iter().map(|r| r.rid).max().unwrap_or(0);
        // Send only what the checkpoint file accounts for.
        tokio::select! {
            _ = stop.cancelled() => return,
            r = persisted.wait_for(|p| *p >= max_rid) => if r.is_err() { return },
        }
        for range in requests(&records, out.batch_records, out.batch_bytes) {
            let request = &mut records[range];
            let mut delay = Duration::from_millis(200);
            loop {
                match sink.send(request).await {
                    Ok(()) => break,
                    Err(e) => {
                        tracing::warn!(output = %out.name, error = %e, records = request.len(), "sink failed; retrying");
                        sink.note_failure();
                        tokio::select! {
                            _ = stop.cancelled() => return,
                            _ = tokio::time::sleep(delay) => {}
                        }
                        delay = (delay * 2).min(Duration::from_secs(10));
                    }
                }
            }
        }
        if let Err(e) = out.buffer.ack(&batch) {
            tracing::error!(output = %out.name, error = %e, "cannot acknowledge the output buffer");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rid(epoch: u64, n: u64) -> u64 {
        epoch << 40 | n
    }

    /// A sink down through two crashes: the ids the first process pushed
    /// but never checkpointed must stay stale after the second restart,
    /// since the buffer still holds them (they were re-read under new ids).
    #[test]
    fn stale_ranges_survive_restarts_until_the_buffers_pass_them() {
        let dir = tempfile::tempdir().unwrap();
        let cf = CheckpointFile::new(dir.path()).unwrap();
        let (c, stale) = begin_epoch(&cf, None).unwrap();
        assert_eq!(c.epoch, 1);
        assert!(!stale.contains(rid(1, 5)));
        // Epoch 1 checkpointed up to 100, pushed up to 150, then died; the
        // buffer still holds everything from 50 on.
        let mut c1 = cf.load().unwrap();
        c1.persisted_rid = rid(1, 100);
        cf.store(&c1).unwrap();
        let (c2, stale) = begin_epoch(&cf, Some(rid(1, 50))).unwrap();
        assert_eq!(c2.epoch, 2);
        assert!(stale.contains(rid(1, 120)));
        assert!(!stale.contains(rid(1, 100)));
        assert!(!stale.contains(rid(2, 1)));
        // Epoch 2 checkpoints (carrying the ranges) and dies with its own
        // unchecked tail; the sink never got anything.
        let mut c2 = cf.load().unwrap();
        c2.persisted_rid = rid(2, 10);
        cf.store(&c2).unwrap();
        let (_, stale) = begin_epoch(&cf, Some(rid(1, 50))).unwrap();
        assert!(stale.contains(rid(1, 120)), "epoch 1's stale ids forgotten");
        assert!(stale.contains(rid(2, 20)));
        assert!(!stale.contains(rid(2, 5)));
        assert!(!stale.contains(rid(1, 60)));
        // The buffer has acknowledged past epoch 1: its range goes.
        let (c4, stale) = begin_epoch(&cf, Some(rid(2, 5))).unwrap();
        assert!(!stale.contains(rid(1, 120)));
        assert!(stale.contains(rid(2, 20)));
        assert!(c4.stale.iter().all(|r| r.below > rid(2, 5)));
        // Every buffer empty: nothing can be stale.
        let (c5, stale) = begin_epoch(&cf, None).unwrap();
        assert!(c5.stale.is_empty());
        assert!(!stale.contains(rid(2, 20)));
        assert!(cf.load().unwrap().stale.is_empty());
    }

    #[tokio::test]
    async fn oldest_pending_peeks_without_consuming() {
        let dir = tempfile::tempdir().unwrap();
        let b = DiskBuffer::open(dir.path(), Default::default()).unwrap();
        assert_eq!(oldest_pending(&b), None);
        let labels = Arc::new(tidewatch_common::Labels::from_pairs([("a", "b")]));
        let mut e = BlockEncoder::new();
        e.start(rid(3, 7));
        e.push(1, &labels, "x");
        let enc = e.finish().to_vec();
        b.push_batch(std::slice::from_ref(&enc)).await.unwrap();
        assert_eq!(oldest_pending(&b), Some(rid(3, 7)));
        let batch = b.read_batch(10, 1 << 20).await.unwrap();
        assert_eq!(batch.records, vec![enc]);
    }

    #[test]
    fn requests_respect_both_bounds() {
        let labels = Arc::new(tidewatch_common::Labels::from_pairs([("a", "b")]));
        let recs: Vec<Record> = (0..10)
            .map(|i| Record {
                rid: i,
                ts: 0,
                labels: labels.clone(),
                line: "x".repeat(10),
            })
            .collect();
        let sizes = |r, b| {
            requests(&recs, r, b)
                .into_iter()
                .map(|c| c.len())
                .collect::<Vec<_>>()
        };
        assert_eq!(sizes(4, 1 << 20), vec![4, 4, 2]);
        assert_eq!(sizes(100, 25), vec![3, 3, 3, 1]);
        assert_eq!(sizes(100, 1), vec![1; 10]);
        assert!(requests(&[], 5, 5).is_empty());
    }
}

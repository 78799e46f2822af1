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
//!    tailer re-reads those bytes from the checkpointed offsets.
//! 4. A buffer batch is acknowledged only after the sink acknowledged it;
//!    a crash in between re-sends it, which the sinks make idempotent
//!    (aggregator: same stream+timestamp+line dropped; Elasticsearch:
//!    `_id` = rid; Kafka: the partition tails are read back at start and
//!    after errors, and ids already there are skipped).

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

use super::checkpoint::{CheckpointFile, Checkpoints};
use super::discover::{Discovered, Input};
use super::record::{self, Record};
use super::sink::Sink;
use super::tailer::{Read, Tailer};
use crate::buffer::DiskBuffer;

/// Rids of an older epoch above this were pushed but never checkpointed.
#[derive(Clone, Copy, Debug)]
pub struct StaleRange {
    /// `persisted_rid` at start (exclusive lower bound).
    pub above: u64,
    /// First rid of the current epoch (exclusive upper bound).
    pub below: u64,
}

impl StaleRange {
    /// Whether `rid` must be discarded.
    pub fn contains(&self, rid: u64) -> bool {
        rid > self.above && rid < self.below
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
}

/// Loads the checkpoints and starts a new epoch (persisted before use).
pub fn begin_epoch(cf: &CheckpointFile) -> anyhow::Result<(Checkpoints, StaleRange)> {
    let mut c = cf.load()?;
    c.epoch += 1;
    cf.store(&c)?;
    Ok((
        c.clone(),
        StaleRange {
            above: c.persisted_rid,
            below: c.epoch << 40,
        },
    ))
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

impl TailLoop {
    fn discover(&self) -> Vec<Discovered> {
        let mut d = Vec::new();
        for i in &self.inputs {
            i.discover(&mut d);
        }
        d
    }

    /// Runs until `stop` is cancelled; then flushes and writes a last checkpoint.
    pub async fn run(mut self, stop: CancellationToken) {
        let mut next = (self.epoch << 40) | 1;
        let first = self.discover();
        self.tailer.adopt_rotated(&first);
        let mut reads: Vec<Read> = Vec::new();
        let mut last_saved = None;
        loop {
            let stopping = stop.is_cancelled();
            let discovered = self.discover();
            let read_any = {
                let t = &mut self.tailer;
                let any = t.pass(&discovered, &mut reads);
                if stopping {
                    t.flush_all(&mut reads);
                }
                any
            };
            if !reads.is_empty() {
                next = self.push(&mut reads, next, &stop).await;
            }
            let cps = self.tailer.checkpoints();
            let snapshot = Checkpoints {
                epoch: self.epoch,
                persisted_rid: next - 1,
                files: cps,
            };
            if last_saved.as_ref() != Some(&snapshot) {
                let cf = &self.checkpoints;
                match cf.store(&snapshot) {
                    Ok(()) => {
                        self.persisted.send_replace(next - 1);
                        last_saved = Some(snapshot);
                    }
                    Err(e) => tracing::error!(error = %e, "cannot write log checkpoints"),
                }
            }
            if stopping {
                return;
            }
            if !read_any {
                tokio::select! {
                    _ = stop.cancelled() => {}
                    _ = self.wake.notified() => {}
                    _ = tokio::time::sleep(self.poll) => {}
                }
            }
        }
    }

    /// Pushes `reads` into every buffer (retrying until each has them);
    /// returns the next rid.
    async fn push(&self, reads: &mut Vec<Read>, mut next: u64, stop: &CancellationToken) -> u64 {
        let mut encoded: Vec<Vec<u8>> = Vec::with_capacity(reads.len());
        let mut bytes = 0u64;
        for r in reads.drain(..) {
            let mut buf = Vec::with_capacity(r.line.len() + 64);
            record::encode_parts(next, r.ts, &r.labels, &r.line, &mut buf);
            bytes += r.line.len() as u64;
            next += 1;
            encoded.push(buf);
        }
        self.metrics.records_read.inc_by(encoded.len() as u64);
        self.metrics.bytes_read.inc_by(bytes);
        for out in &self.outputs {
            let mut start = 0;
            while start < encoded.len() {
                // Chunks well under half the buffer bound.
                let mut end = start;
                let mut size = 0usize;
                while end < encoded.len()
                    && (end == start || size + encoded[end].len() < out.batch_bytes)
                {
                    size += encoded[end].len() + 8;
                    end += 1;
                }
                let mut delay = Duration::from_millis(100);
                loop {
                    match out.buffer.push_batch(&encoded[start..end]).await {
                        Ok(_) => break,
                        Err(e) => {
                            tracing::error!(output = %out.name, error = %e, "cannot write to the output buffer; retrying");
                            if stop.is_cancelled() && delay > Duration::from_secs(2) {
                                // Not checkpointed: re-read after restart.
                                return next;
                            }
                            tokio::time::sleep(delay).await;
                            delay = (delay * 2).min(Duration::from_secs(5));
                        }
                    }
                }
                start = end;
            }
        }
        next
    }
}

/// Delivers one output's buffer to its sink until `stop` is cancelled.
pub async fn deliver(
    out: Arc<Output>,
    mut sink: Sink,
    mut persisted: watch::Receiver<u64>,
    stale: StaleRange,
    metrics: PipelineMetrics,
    stop: CancellationToken,
) {
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
        let mut records: Vec<Record> = Vec::with_capacity(batch.records.len());
        let mut max_rid = 0;
        let mut cache = std::collections::HashMap::new();
        for p in &batch.records {
            match record::decode_cached(p, &mut cache) {
                Some(r) if stale.contains(r.rid) => {
                    metrics.stale_dropped.inc();
                }
                Some(r) => {
                    max_rid = max_rid.max(r.rid);
                    records.push(r);
                }
                None => {
                    tracing::error!(output = %out.name, "corrupt record in the output buffer; skipped")
                }
            }
        }
        // Send only what the checkpoint file accounts for.
        tokio::select! {
            _ = stop.cancelled() => return,
            r = persisted.wait_for(|p| *p >= max_rid) => if r.is_err() { return },
        }
        let mut delay = Duration::from_millis(200);
        loop {
            match sink.send(&records).await {
                Ok(()) => break,
                Err(e) => {
                    tracing::warn!(output = %out.name, error = %e, records = records.len(), "sink failed; retrying");
                    sink.note_failure();
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(delay) => {}
                    }
                    delay = (delay * 2).min(Duration::from_secs(10));
                }
            }
        }
        if let Err(e) = out.buffer.ack(&batch) {
            tracing::error!(output = %out.name, error = %e, "cannot acknowledge the output buffer");
        }
    }
}

//! The log store: WAL-backed in-memory head plus time-partitioned Parquet
//! files under `parts/<partition start, unix seconds>/<first>-<last WAL segment>.parquet`.
//!
//! Write path: validate → drop exact re-deliveries → WAL append + fdatasync
//! → head (→ live tails). Flush: rotate the WAL, write the head's rows per
//! partition, then delete the WAL segments they came from. On open, WAL
//! records whose partition already has a file covering their segment (a
//! crash between writing Parquet and deleting the WAL) are skipped, so
//! nothing is stored twice.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use tidewatch_common::Labels;
use tidewatch_common::loki::parse_labels;
use tokio::sync::broadcast;

use super::config::LogsConfig;
use super::dedupe::{Dedupe, fingerprint};
use super::model::{Batch, Row, Stream, decode_rows, encode_rows};
use super::parquet;
use super::wal::Wal;

/// One Parquet file of a partition, with the WAL segments it covers.
#[derive(Clone, Debug)]
pub struct PartFile {
    /// Path.
    pub path: PathBuf,
    /// First WAL segment covered.
    pub first_seq: u64,
    /// Last WAL segment covered.
    pub last_seq: u64,
}

/// Receives `(stream, timestamp, line)` of selected rows.
pub type RowSink<'a> = &'a mut dyn FnMut(&Arc<Stream>, i64, &Arc<str>);

/// Result of an append.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// Entries stored.
    pub accepted: usize,
    /// Entries dropped as exact re-deliveries.
    pub duplicates: usize,
    /// Bytes of the stored lines.
    pub bytes: u64,
}

struct Head {
    rows: Vec<Row>,
    bytes: u64,
    first_seq: u64,
}

struct State {
    wal: Wal,
    head: Head,
    /// Rows being written to Parquet; still visible to queries.
    flushing: Arc<Vec<Row>>,
    streams: HashMap<String, Arc<Stream>>,
    dedupe: Dedupe,
    label_names: BTreeSet<String>,
    encode_buf: Vec<u8>,
}

/// Counters exposed as self-metrics.
#[derive(Default)]
pub struct StoreMetrics {
    /// Lines stored.
    pub lines: prometheus_client::metrics::counter::Counter,
    /// Bytes of lines stored.
    pub bytes: prometheus_client::metrics::counter::Counter,
    /// Lines dropped as re-deliveries.
    pub duplicates: prometheus_client::metrics::counter::Counter,
    /// Head flushes to Parquet.
    pub flushes: prometheus_client::metrics::counter::Counter,
}

/// The log store.
pub struct Store {
    dir: PathBuf,
    config: LogsConfig,
    state: Mutex<State>,
    flush_lock: Mutex<()>,
    parts: RwLock<BTreeMap<i64, Vec<PartFile>>>,
    tail: broadcast::Sender<Arc<Vec<Row>>>,
    /// Self-metrics.
    pub metrics: StoreMetrics,
}

/// Errors of an append that the client caused.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// A stream or entry is invalid; the message names it.
    #[error("{0}")]
    Invalid(String),
    /// Storage failed.
    #[error("storage error: {0}")]
    Io(#[from] std::io::Error),
}

impl Store {
    /// Opens the store in `dir`, loading the partition list and replaying the WAL.
    pub fn open(dir: &Path, config: LogsConfig) -> anyhow::Result<Store> {
        std::fs::create_dir_all(dir.join("parts"))?;
        let mut parts: BTreeMap<i64, Vec<PartFile>> = BTreeMap::new();
        let mut label_names = BTreeSet::new();
        for d in std::fs::read_dir(dir.join("parts"))? {
            let d = d?;
            let Some(start) = d.file_name().to_str().and_then(|s| s.parse::<i64>().ok()) else {
                continue;
            };
            for f in std::fs::read_dir(d.path())? {
                let path = f?.path();
                let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
                if name.ends_with(".tmp") {
                    let _ = std::fs::remove_file(&path);
                    continue;
                }
                let Some((a, b)) = name
                    .strip_suffix(".parquet")
                    .and_then(|s| s.split_once('-'))
                else {
                    continue;
                };
                let (Ok(first_seq), Ok(last_seq)) = (a.parse(), b.parse()) else {
                    continue;
                };
                label_names.extend(parquet::label_names(&path)?);
                parts
                    .entry(start * 1_000_000_000)
                    .or_default()
                    .push(PartFile {
                        path,
                        first_seq,
                        last_seq,
                    });
            }
        }
        let (wal, replayed) = Wal::open(&dir.join("wal"))?;
        let partition_ns = config.partition.as_nanos() as i64;
        let mut state = State {
            head: Head {
                rows: Vec::new(),
                bytes: 0,
                first_seq: wal.seq(),
            },
            wal,
            flushing: Arc::new(Vec::new()),
            streams: HashMap::new(),
            dedupe: Dedupe::new(config.dedupe_entries),
            label_names,
            encode_buf: Vec::new(),
        };
        let mut skipped = 0usize;
        for rec in replayed {
            let rows = decode_rows(&rec.payload).ok_or_else(|| {
                anyhow::anyhow!("undecodable log WAL record in segment {}", rec.seq)
            })?;
            state.head.first_seq = state.head.first_seq.min(rec.seq);
            for (key, ts, line) in rows {
                let part = ts.div_euclid(partition_ns) * partition_ns;
                let covered = parts.get(&part).is_some_and(|files| {
                    files
                        .iter()
                        .any(|f| f.first_seq <= rec.seq && rec.seq <= f.last_seq)
                });
                if covered {
                    skipped += 1;
                    continue;
                }
                let stream = match state.streams.get(&key) {
                    Some(s) => s.clone(),
                    None => {
                        let labels = parse_labels(&key).map_err(anyhow::Error::msg)?;
                        intern(&mut state, labels)
                    }
                };
                state.dedupe.insert(fingerprint(&stream.key, ts, &line));
                state.head.bytes += line.len() as u64;
                state.head.rows.push(Row {
                    stream,
                    ts,
                    line: line.into(),
                });
            }
        }
        tracing::info!(
            rows = state.head.rows.len(),
            skipped,
            "replayed the log WAL"
        );
        let (tail, _) = broadcast::channel(1024);
        Ok(Store {
            dir: dir.to_path_buf(),
            config,
            state: Mutex::new(state),
            flush_lock: Mutex::new(()),
            parts: RwLock::new(parts),
            tail,
            metrics: StoreMetrics::default(),
        })
    }

    /// The settings.
    pub fn config(&self) -> &LogsConfig {
        &self.config
    }

    /// Stores a batch durably; returns once it is in the fsynced WAL.
    pub fn append(&self, batch: Batch) -> Result<Appended, AppendError> {
        for (i, (labels, entries)) in batch.streams.iter().enumerate() {
            if labels.is_empty() {
                return Err(AppendError::Invalid(format!(
                    "streams[{i}]: a stream needs at least one label"
                )));
            }
            for (j, (_, line)) in entries.iter().enumerate() {
                if line.len() > self.config.max_line_bytes {
                    return Err(AppendError::Invalid(format!(
                        "streams[{i}].values[{j}]: line of {} bytes exceeds max_line_bytes {}",
                        line.len(),
                        self.config.max_line_bytes
                    )));
                }
            }
        }
        let mut st = self.state.lock();
        let st = &mut *st;
        let mut new_names: Vec<&str> = Vec::new();
        for (labels, _) in &batch.streams {
            for l in labels.iter() {
                if !st.label_names.contains(&l.name) && !new_names.contains(&l.name.as_str()) {
                    new_names.push(&l.name);
                }
            }
        }
        if st.label_names.len() + new_names.len() > self.config.max_label_names {
            return Err(AppendError::Invalid(format!(
                "labels: {} new label names ({}) would exceed max_label_names {}",
                new_names.len(),
                new_names.join(", "),
                self.config.max_label_names
            )));
        }
        let mut out = Appended::default();
        let mut rows = Vec::with_capacity(batch.entries());
        for (labels, entries) in batch.streams {
            let stream = intern(st, labels);
            for (ts, line) in entries {
                if !st.dedupe.insert(fingerprint(&stream.key, ts, &line)) {
                    out.duplicates += 1;
                    continue;
                }
                out.bytes += line.len() as u64;
                rows.push(Row {
                    stream: stream.clone(),
                    ts,
                    line: line.into(),
                });
            }
        }
        out.accepted = rows.len();
        if !rows.is_empty() {
            encode_rows(&rows, &mut st.encode_buf);
            st.wal.append(&st.encode_buf)?;
            st.head.bytes += out.bytes;
            st.head.rows.extend(rows.iter().cloned());
            if self.tail.receiver_count() > 0 {
                let _ = self.tail.send(Arc::new(rows));
            }
        }
        self.metrics.lines.inc_by(out.accepted as u64);
        self.metrics.bytes.inc_by(out.bytes);
        self.metrics.duplicates.inc_by(out.duplicates as u64);
        Ok(out)
    }

    /// Whether the head is over its size bound.
    pub fn head_full(&self) -> bool {
        self.state.lock().head.bytes >= self.config.max_head_bytes
    }

    /// Writes the head to Parquet and deletes the WAL segments it covered.
    pub fn flush(&self) -> anyhow::Result<()> {
        let _guard = self.flush_lock.lock();
        let (rows, first_seq, last_seq) = {
            let mut st = self.state.lock();
            if st.head.rows.is_empty() {
                return Ok(());
            }
            let last = st.wal.rotate()?;
            let next = st.wal.seq();
            let head = std::mem::replace(
                &mut st.head,
                Head {
                    rows: Vec::new(),
                    bytes: 0,
                    first_seq: next,
                },
            );
            let rows = Arc::new(head.rows);
            st.flushing = rows.clone();
            (rows, head.first_seq, last)
        };
        let partition_ns = self.config.partition.as_nanos() as i64;
        let mut by_part: BTreeMap<i64, Vec<&Row>> = BTreeMap::new();
        for r in rows.iter() {
            by_part
                .entry(r.ts.div_euclid(partition_ns) * partition_ns)
                .or_default()
                .push(r);
        }
        let mut written = Vec::new();
        for (part, mut prow) in by_part {
            let path = self
                .dir
                .join("parts")
                .join((part / 1_000_000_000).to_string())
                .join(format!("{first_seq:020}-{last_seq:020}.parquet"));
            parquet::write_file(&path, &mut prow)?;
            written.push((
                part,
                PartFile {
                    path,
                    first_seq,
                    last_seq,
                },
            ));
        }
        {
            let mut parts = self.parts.write();
            for (part, f) in written {
                parts.entry(part).or_default().push(f);
            }
        }
        let mut st = self.state.lock();
        st.flushing = Arc::new(Vec::new());
        st.wal.remove_through(last_seq)?;
        self.metrics.flushes.inc();
        Ok(())
    }

    /// Deletes partitions that ended before `now - retention`.
    pub fn apply_retention(&self, now_ns: i64) -> anyhow::Result<usize> {
        let partition_ns = self.config.partition.as_nanos() as i64;
        let cutoff = now_ns - self.config.retention.as_nanos() as i64;
        let old: Vec<i64> = self
            .parts
            .read()
            .keys()
            .copied()
            .filter(|&p| p + partition_ns <= cutoff)
            .collect();
        for p in &old {
            self.parts.write().remove(p);
            let dir = self.dir.join("parts").join((p / 1_000_000_000).to_string());
            std::fs::remove_dir_all(&dir)?;
            tracing::info!(partition = %dir.display(), "deleted log partition past retention");
        }
        Ok(old.len())
    }

    /// Subscribes to rows as they are stored.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Vec<Row>>> {
        self.tail.subscribe()
    }

    /// Every label name stored.
    pub fn label_names(&self) -> BTreeSet<String> {
        self.state.lock().label_names.clone()
    }

    /// Calls `f` for every row in `[start, end]` whose stream `matches`.
    pub fn select(
        &self,
        start: i64,
        end: i64,
        matches: &dyn Fn(&Stream) -> bool,
        f: RowSink<'_>,
    ) -> anyhow::Result<()> {
        let partition_ns = self.config.partition.as_nanos() as i64;
        let files = files_in(&self.parts.read(), start, end, partition_ns);
        let mut cache: HashMap<String, Option<Arc<Stream>>> = HashMap::new();
        for path in files {
            let mut err = None;
            parquet::scan_file(&path, start, end, |key, ts, line| {
                if err.is_some() {
                    return;
                }
                let s = match cache.get(key) {
                    Some(s) => s.clone(),
                    None => {
                        let s = match parse_labels(key) {
                            Ok(l) => {
                                let s = Arc::new(Stream::new(l));
                                matches(&s).then_some(s)
                            }
                            Err(e) => {
                                err = Some(anyhow::anyhow!("{}: {e}", path.display()));
                                None
                            }
                        };
                        cache.insert(key.to_string(), s.clone());
                        s
                    }
                };
                if let Some(s) = s {
                    f(&s, ts, &Arc::from(line));
                }
            })?;
            if let Some(e) = err {
                return Err(e);
            }
        }
        let (head, flushing) = {
            let st = self.state.lock();
            (
                st.head
                    .rows
                    .iter()
                    .filter(|r| r.ts >= start && r.ts <= end)
                    .cloned()
                    .collect::<Vec<_>>(),
                st.flushing.clone(),
            )
        };
        let mut verdict: HashMap<*const Stream, bool> = HashMap::new();
        for r in flushing
            .iter()
            .filter(|r| r.ts >= start && r.ts <= end)
            .chain(head.iter())
        {
            let ok = *verdict
                .entry(Arc::as_ptr(&r.stream))
                .or_insert_with(|| matches(&r.stream));
            if ok {
                f(&r.stream, r.ts, &r.line);
            }
        }
        Ok(())
    }

    /// Calls `f` once for every stream with at least one row in
    /// `[start, end]` (reads no log lines).
    pub fn streams_in(
        &self,
        start: i64,
        end: i64,
        f: &mut dyn FnMut(&Stream),
    ) -> anyhow::Result<()> {
        let partition_ns = self.config.partition.as_nanos() as i64;
        let files = files_in(&self.parts.read(), start, end, partition_ns);
        let mut seen: HashSet<String> = HashSet::new();
        for path in files {
            let mut err = None;
            parquet::scan_streams(&path, start, end, |key| {
                if err.is_some() || seen.contains(key) {
                    return;
                }
                seen.insert(key.to_string());
                match parse_labels(key) {
                    Ok(l) => f(&Stream::new(l)),
                    Err(e) => err = Some(anyhow::anyhow!("{}: {e}", path.display())),
                }
            })?;
            if let Some(e) = err {
                return Err(e);
            }
        }
        let unflushed: Vec<Arc<Stream>> = {
            let st = self.state.lock();
            let mut ptrs = HashSet::new();
            st.flushing
                .iter()
                .chain(st.head.rows.iter())
                .filter(|r| r.ts >= start && r.ts <= end)
                .filter(|r| ptrs.insert(Arc::as_ptr(&r.stream)))
                .map(|r| r.stream.clone())
                .collect()
        };
        for s in unflushed {
            if !seen.contains(&s.key) {
                seen.insert(s.key.clone());
                f(&s);
            }
        }
        Ok(())
    }

    /// Files of the partitions overlapping `[start, end]` (all when `None`)
    /// and a copy of the unflushed rows, for the SQL table.
    pub fn snapshot(&self, range: Option<(i64, i64)>) -> (Vec<PathBuf>, Vec<Row>) {
        let partition_ns = self.config.partition.as_nanos() as i64;
        let parts = self.parts.read();
        let files = match range {
            Some((s, e)) => files_in(&parts, s, e, partition_ns),
            None => parts
                .values()
                .flat_map(|f| f.iter().map(|f| f.path.clone()))
                .collect(),
        };
        let st = self.state.lock();
        let rows = st
            .flushing
            .iter()
            .chain(st.head.rows.iter())
            .cloned()
            .collect();
        (files, rows)
    }
}

/// Files of the partitions overlapping `[start, end]`.
fn files_in(
    parts: &BTreeMap<i64, Vec<PartFile>>,
    start: i64,
    end: i64,
    partition_ns: i64,
) -> Vec<PathBuf> {
    let first = start.div_euclid(partition_ns).saturating_mul(partition_ns);
    if end < first {
        return Vec::new();
    }
    parts
        .range(first..=end)
        .flat_map(|(_, fs)| fs.iter().map(|f| f.path.clone()))
        .collect()
}

fn intern(st: &mut State, labels: Labels) -> Arc<Stream> {
    let stream = Stream::new(labels);
    if let Some(s) = st.streams.get(&stream.key) {
        return s.clone();
    }
    for l in stream.labels.iter() {
        if !st.label_names.contains(&l.name) {
            st.label_names.insert(l.name.clone());
        }
    }
    let s = Arc::new(stream);
    st.streams.insert(s.key.clone(), s.clone());
    s
}

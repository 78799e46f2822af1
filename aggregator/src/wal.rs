//! Write-ahead log with group commit.
//!
//! A single writer thread owns the active segment (`wal/<seq>.wal`). Ingest
//! requests send encoded payloads to it; it writes every payload waiting in
//! its queue, calls `fdatasync` once for the whole group, applies the group
//! to the head through [`WalSink`], and only then acknowledges each request.
//! Concurrent requests therefore share one fsync.
//!
//! Record framing: `u32 length | u32 crc32(payload) | payload`, little
//! endian. On replay a torn or corrupt record ends its segment (it can only
//! be an unacknowledged tail). Segments start with [`MAGIC_V2`]; their
//! records ([`batch::encode_v2`]) carry a series' labels only the first time
//! the series appears in the segment, later records just its id (so a
//! segment replays on its own). The writer encodes records itself, since it
//! knows which series the segment has. Segments without the magic (older
//! versions) hold v1 records with labels in every record.
//!
//! Flushing the head starts with [`Wal::rotate`]: the writer closes the
//! segment, opens the next one and freezes the head in the same step, so every
//! sample in segments up to the returned sequence number is in the frozen
//! head; once that head is in blocks, [`Wal::remove_up_to`] deletes them.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc;

use tokio::sync::oneshot;

use crate::batch::{self, Batch};
use tidewatch_common::Labels;

/// First bytes of a v2 segment.
pub const MAGIC_V2: &[u8; 8] = b"TWWAL\x002\n";

/// Receives what the writer thread commits.
pub trait WalSink: Send + Sync + 'static {
    /// Applies durable batches to the head (called on the writer thread).
    fn apply(&self, batches: &[Batch]);
    /// Freezes the head (called on the writer thread at rotation).
    fn freeze(&self);
    /// Labels of a known series (for a batch that left them out).
    fn labels_of(&self, id: u64) -> Option<Labels>;
    /// Forgets series with no data at or after `floor` (retention; called
    /// on the writer thread, so no batch is between encoding and apply).
    fn truncate(&self, floor: i64);
}

enum Cmd {
    Append(Batch, oneshot::Sender<Result<(), String>>),
    Rotate(oneshot::Sender<Result<u64, String>>),
    Truncate(i64, oneshot::Sender<()>),
}

/// Handle to the log's writer thread.
pub struct Wal {
    tx: parking_lot::Mutex<Option<mpsc::Sender<Cmd>>>,
    dir: PathBuf,
    thread: parking_lot::Mutex<Option<std::thread::JoinHandle<()>>>,
}

fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:010}.wal"))
}

/// Sequence numbers of the segments in `dir`, ascending.
pub fn segments(dir: &Path) -> std::io::Result<Vec<u64>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let name = e?.file_name();
        let name = name.to_string_lossy();
        if let Some(seq) = name.strip_suffix(".wal").and_then(|s| s.parse().ok()) {
            out.push(seq);
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// Reads every intact record of every segment, oldest first.
pub fn replay(dir: &Path, mut f: impl FnMut(Batch)) -> std::io::Result<usize> {
    let mut records = 0;
    for seq in segments(dir)? {
        let path = segment_path(dir, seq);
        let data = std::fs::read(&path)?;
        let v2 = data.starts_with(MAGIC_V2);
        let mut pos = if v2 { MAGIC_V2.len() } else { 0 };
        while pos + 8 <= data.len() {
            let len = u32::from_le_bytes(data[pos..pos + 4].try_into().expect("4")) as usize;
            let crc = u32::from_le_bytes(data[pos + 4..pos + 8].try_into().expect("4"));
            let Some(payload) = data.get(pos + 8..pos + 8 + len) else {
                break;
            };
            if crc32fast::hash(payload) != crc {
                break;
            }
            let decoded = if v2 {
                batch::decode_v2(payload)
            } else {
                batch::decode(payload).map(Batch::from_series)
            };
            match decoded {
                Ok(b) => f(b),
                Err(_) => break,
            }
            records += 1;
            pos += 8 + len;
        }
        if pos < data.len() {
            tracing::warn!(
                segment = %path.display(),
                offset = pos,
                "WAL segment ends with a torn or corrupt record (unacknowledged); ignoring the rest"
            );
        }
    }
    Ok(records)
}

fn open_segment(dir: &Path, seq: u64) -> std::io::Result<File> {
    let mut f = OpenOptions::new()
        .create_new(true)
        .append(true)
        .open(segment_path(dir, seq))?;
    f.write_all(MAGIC_V2)?;
    f.sync_data()?;
    File::open(dir)?.sync_all()?;
    Ok(f)
}

/// The writer thread's state.
struct Writer {
    dir: PathBuf,
    seq: u64,
    file: File,
    /// Series whose labels the active segment holds.
    logged: HashSet<u64>,
    sink: Arc<dyn WalSink>,
    buf: Vec<u8>,
}

impl Writer {
    /// Switches to the next segment; returns the closed one's number.
    fn next_segment(&mut self) -> std::io::Result<u64> {
        let closed = self.seq;
        self.file = open_segment(&self.dir, self.seq + 1)?;
        self.seq += 1;
        self.logged.clear();
        Ok(closed)
    }

    /// Encodes the batch as one record into `buf`, or says why not.
    fn encode(&mut self, batch: &mut Batch) -> Result<(), String> {
        let mut fresh = Vec::with_capacity(batch.series.len());
        for s in &mut batch.series {
            let new = !self.logged.contains(&s.id);
            if new && s.labels.is_none() {
                // Known when the request was decoded, but retention may have
                // forgotten it since: the sender retries with labels.
                s.labels = Some(self.sink.labels_of(s.id).ok_or_else(|| {
                    format!("series {:016x} was forgotten during the write; retry", s.id)
                })?);
            }
            fresh.push(new);
        }
        for (s, &new) in batch.series.iter().zip(&fresh) {
            if new {
                self.logged.insert(s.id);
            }
        }
        let start = self.buf.len();
        self.buf.extend_from_slice(&[0; 8]);
        batch::encode_v2(
            batch,
            |i| fresh[i].then(|| batch.series[i].labels.as_ref()).flatten(),
            &mut self.buf,
        );
        let len = (self.buf.len() - start - 8) as u32;
        let crc = crc32fast::hash(&self.buf[start + 8..]);
        self.buf[start..start + 4].copy_from_slice(&len.to_le_bytes());
        self.buf[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
        Ok(())
    }

    /// Logs a group durably (one fdatasync), applies it, acknowledges it.
    fn commit(&mut self, group: Vec<(Batch, oneshot::Sender<Result<(), String>>)>) {
        self.buf.clear();
        let mut ok = Vec::with_capacity(group.len());
        for (mut batch, done) in group {
            match self.encode(&mut batch) {
                Ok(()) => ok.push((batch, done)),
                Err(e) => {
                    let _ = done.send(Err(e));
                }
            }
        }
        if ok.is_empty() {
            return;
        }
        let res = self
            .file
            .write_all(&self.buf)
            .and_then(|()| self.file.sync_data())
            .map_err(|e| format!("WAL write failed: {e}"));
        let (batches, dones): (Vec<_>, Vec<_>) = ok.into_iter().unzip();
        if res.is_ok() {
            self.sink.apply(&batches);
        } else if let Err(e) = self.next_segment() {
            // What follows the failed write is unknown: continue in a new
            // segment (its data is in the head like the old one's).
            tracing::error!("WAL: cannot switch segments after a failed write: {e}");
        }
        for d in dones {
            let _ = d.send(res.clone());
        }
    }
}

impl Wal {
    /// Starts the writer thread on a fresh segment after the existing ones.
    pub fn start(dir: &Path, sink: Arc<dyn WalSink>) -> std::io::Result<Wal> {
        std::fs::create_dir_all(dir)?;
        let seq = segments(dir)?.last().map_or(1, |s| s + 1);
        let mut w = Writer {
            dir: dir.to_path_buf(),
            seq,
            file: open_segment(dir, seq)?,
            logged: HashSet::new(),
            sink,
            buf: Vec::new(),
        };
        let (tx, rx) = mpsc::channel::<Cmd>();
        let thread = std::thread::Builder::new()
            .name("tidewatch-wal".into())
            .spawn(move || {
                while let Ok(first) = rx.recv() {
                    let mut group = Vec::new();
                    let mut after = None;
                    let mut group_samples = 0;
                    let mut next = Some(first);
                    while let Some(cmd) = next {
                        match cmd {
                            Cmd::Append(b, done) => {
                                group_samples += b.len();
                                group.push((b, done));
                            }
                            // Rotation and truncation close the group.
                            other => {
                                after = Some(other);
                                break;
                            }
                        }
                        // About 64 MiB of records.
                        if group_samples > 2 << 20 {
                            break;
                        }
                        next = rx.try_recv().ok();
                    }
                    if !group.is_empty() {
                        w.commit(group);
                    }
                    match after {
                        Some(Cmd::Rotate(done)) => {
                            let res = w
                                .next_segment()
                                .inspect(|_| w.sink.freeze())
                                .map_err(|e| format!("WAL rotation failed: {e}"));
                            let _ = done.send(res);
                        }
                        Some(Cmd::Truncate(floor, done)) => {
                            w.sink.truncate(floor);
                            // Series forgotten must be logged with labels
                            // again (and fail if a batch left them out).
                            w.logged.clear();
                            let _ = done.send(());
                        }
                        _ => {}
                    }
                }
            })?;
        Ok(Wal {
            tx: parking_lot::Mutex::new(Some(tx)),
            dir: dir.to_path_buf(),
            thread: parking_lot::Mutex::new(Some(thread)),
        })
    }

    fn send(&self, cmd: Cmd) -> Result<(), String> {
        match &*self.tx.lock() {
            Some(tx) => tx.send(cmd).map_err(|_| "WAL writer stopped".to_string()),
            None => Err("WAL is closed".into()),
        }
    }

    /// Logs a batch durably, applies it to the head, then returns.
    pub async fn append(&self, b: Batch) -> Result<(), String> {
        let (done, rx) = oneshot::channel();
        self.send(Cmd::Append(b, done))?;
        rx.await.map_err(|_| "WAL writer stopped".to_string())?
    }

    /// Runs [`WalSink::truncate`] on the writer thread between groups.
    pub async fn truncate(&self, floor: i64) -> Result<(), String> {
        let (done, rx) = oneshot::channel();
        self.send(Cmd::Truncate(floor, done))?;
        rx.await.map_err(|_| "WAL writer stopped".to_string())
    }

    /// Closes the active segment and freezes the head; returns the closed
    /// segment's sequence number.
    pub async fn rotate(&self) -> Result<u64, String> {
        let (done, rx) = oneshot::channel();
        self.send(Cmd::Rotate(done))?;
        rx.await.map_err(|_| "WAL writer stopped".to_string())?
    }

    /// Deletes segments with sequence number `<= seq`.
    pub fn remove_up_to(&self, seq: u64) -> std::io::Result<()> {
        for s in segments(&self.dir)? {
            if s <= seq {
                std::fs::remove_file(segment_path(&self.dir, s))?;
            }
        }
        Ok(())
    }

    /// Stops the writer thread after it committed everything queued.
    pub fn close(&self) {
        self.tx.lock().take();
        if let Some(t) = self.thread.lock().take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::batch::IngestSeries;

    #[derive(Default)]
    struct Count {
        series: AtomicUsize,
        groups: AtomicUsize,
        freezes: AtomicUsize,
        /// The first `apply` blocks until this receives (to queue requests).
        gate: parking_lot::Mutex<Option<mpsc::Receiver<()>>>,
    }

    impl WalSink for Count {
        fn apply(&self, batches: &[Batch]) {
            if let Some(gate) = self.gate.lock().take() {
                let _ = gate.recv();
            }
            self.groups.fetch_add(1, Ordering::SeqCst);
            let n: usize = batches.iter().map(|b| b.series.len()).sum();
            self.series.fetch_add(n, Ordering::SeqCst);
        }
        fn freeze(&self) {
            self.freezes.fetch_add(1, Ordering::SeqCst);
        }
        fn labels_of(&self, _id: u64) -> Option<Labels> {
            None
        }
        fn truncate(&self, _floor: i64) {}
    }

    fn one(i: i64) -> Batch {
        Batch::from_series(vec![IngestSeries::new(
            Labels::from_pairs([("__name__", "x")]),
            vec![i],
            vec![i as f64],
        )])
    }

    /// A batch of series 7 without its labels.
    fn bare(i: i64) -> Batch {
        let mut b = Batch::default();
        b.push(7, None, &[i], &[i as f64]);
        b
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn group_commit_rotation_and_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let (open_gate, gate) = mpsc::channel();
        let sink = Arc::new(Count {
            gate: parking_lot::Mutex::new(Some(gate)),
            ..Count::default()
        });
        let wal = Arc::new(Wal::start(dir.path(), sink.clone()).unwrap());
        // The first request occupies the writer (its apply waits at the
        // gate); the 63 sent meanwhile must then commit as one group.
        let first = {
            let wal = wal.clone();
            tokio::spawn(async move { wal.append(one(0)).await })
        };
        let mut waiting = Vec::new();
        for i in 1..64 {
            let (done, rx) = oneshot::channel();
            wal.send(Cmd::Append(one(i), done)).unwrap();
            waiting.push(rx);
        }
        open_gate.send(()).unwrap();
        first.await.unwrap().unwrap();
        for rx in waiting {
            rx.await.unwrap().unwrap();
        }
        assert_eq!(sink.series.load(Ordering::SeqCst), 64);
        // Either the first request was alone (2 groups) or, if the writer
        // had not taken it before the others were queued, all were one.
        assert!(sink.groups.load(Ordering::SeqCst) <= 2, "{:?}", sink.groups);
        let closed = wal.rotate().await.unwrap();
        assert_eq!(sink.freezes.load(Ordering::SeqCst), 1);
        wal.append(one(100)).await.unwrap();
        // A series the sink cannot name is refused (not logged, not acked).
        assert!(wal.append(bare(101)).await.unwrap_err().contains("retry"));
        wal.close();
        assert_eq!(segments(dir.path()).unwrap(), vec![closed, closed + 1]);

        // A torn record at the end of the last segment is ignored.
        let last = segment_path(dir.path(), closed + 1);
        let mut f = OpenOptions::new().append(true).open(&last).unwrap();
        f.write_all(&[200, 0, 0, 0, 1, 2, 3, 4, 5]).unwrap();
        // A segment of an older version (v1 records, no magic) replays too.
        let mut v1 = Vec::new();
        batch::encode(
            &[IngestSeries::new(
                Labels::from_pairs([("__name__", "old")]),
                vec![200],
                vec![2.0],
            )],
            &mut v1,
        );
        let mut rec = (v1.len() as u32).to_le_bytes().to_vec();
        rec.extend_from_slice(&crc32fast::hash(&v1).to_le_bytes());
        rec.extend_from_slice(&v1);
        std::fs::write(segment_path(dir.path(), closed + 2), rec).unwrap();
        let (mut seen, mut with_labels) = (Vec::new(), 0);
        let records = replay(dir.path(), |b| {
            with_labels += usize::from(b.series[0].labels.is_some());
            seen.push(b.timestamps[0])
        })
        .unwrap();
        assert_eq!(records, 66);
        assert_eq!(seen.len(), 66);
        assert_eq!(seen[64..], [100, 200]);
        // Labels are logged once per segment (v1: in every record).
        assert_eq!(with_labels, 3);

        let wal = Wal::start(dir.path(), sink).unwrap();
        wal.remove_up_to(closed).unwrap();
        assert_eq!(
            segments(dir.path()).unwrap(),
            vec![closed + 1, closed + 2, closed + 3]
        );
        wal.close();
    }
}

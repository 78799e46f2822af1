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
//! be an unacknowledged tail).
//!
//! Flushing the head starts with [`Wal::rotate`]: the writer closes the
//! segment, opens the next one and freezes the head in the same step, so every
//! sample in segments up to the returned sequence number is in the frozen
//! head; once that head is in blocks, [`Wal::remove_up_to`] deletes them.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc;

use tokio::sync::oneshot;

use crate::batch::{self, IngestSeries};

/// Receives what the writer thread commits.
pub trait WalSink: Send + Sync + 'static {
    /// Applies durable batches to the head (called on the writer thread).
    fn apply(&self, batches: &[Vec<IngestSeries>]);
    /// Freezes the head (called on the writer thread at rotation).
    fn freeze(&self);
}

/// A payload on its way to the log.
pub struct Pending {
    payload: Vec<u8>,
    batch: Vec<IngestSeries>,
}

impl Pending {
    /// Encodes `batch` (done on the caller's thread).
    pub fn new(batch: Vec<IngestSeries>) -> Self {
        let mut payload = Vec::with_capacity(64 * batch.len() + 8);
        batch::encode(&batch, &mut payload);
        Pending { payload, batch }
    }
}

enum Cmd {
    Append(Pending, oneshot::Sender<Result<(), String>>),
    Rotate(oneshot::Sender<Result<u64, String>>),
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
pub fn replay(dir: &Path, mut f: impl FnMut(Vec<IngestSeries>)) -> std::io::Result<usize> {
    let mut records = 0;
    for seq in segments(dir)? {
        let path = segment_path(dir, seq);
        let data = std::fs::read(&path)?;
        let mut pos = 0;
        while pos + 8 <= data.len() {
            let len = u32::from_le_bytes(data[pos..pos + 4].try_into().expect("4")) as usize;
            let crc = u32::from_le_bytes(data[pos + 4..pos + 8].try_into().expect("4"));
            let Some(payload) = data.get(pos + 8..pos + 8 + len) else {
                break;
            };
            if crc32fast::hash(payload) != crc {
                break;
            }
            match batch::decode(payload) {
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
    let f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(segment_path(dir, seq))?;
    File::open(dir)?.sync_all()?;
    Ok(f)
}

impl Wal {
    /// Starts the writer thread on a fresh segment after the existing ones.
    pub fn start(dir: &Path, sink: Arc<dyn WalSink>) -> std::io::Result<Wal> {
        std::fs::create_dir_all(dir)?;
        let mut seq = segments(dir)?.last().map_or(1, |s| s + 1);
        let mut file = open_segment(dir, seq)?;
        let (tx, rx) = mpsc::channel::<Cmd>();
        let wdir = dir.to_path_buf();
        let thread = std::thread::Builder::new()
            .name("tidewatch-wal".into())
            .spawn(move || {
                let mut buf = Vec::new();
                while let Ok(first) = rx.recv() {
                    let mut group = Vec::new();
                    let mut rotate = Vec::new();
                    let mut group_bytes = 0;
                    let mut next = Some(first);
                    while let Some(cmd) = next {
                        match cmd {
                            Cmd::Append(p, done) => {
                                group_bytes += p.payload.len();
                                group.push((p, done));
                            }
                            Cmd::Rotate(done) => {
                                // Rotation closes the group: later appends go
                                // to the next segment.
                                rotate.push(done);
                                break;
                            }
                        }
                        if group_bytes > 64 << 20 {
                            break;
                        }
                        next = rx.try_recv().ok();
                    }
                    if !group.is_empty() {
                        buf.clear();
                        for (p, _) in &group {
                            buf.extend_from_slice(&(p.payload.len() as u32).to_le_bytes());
                            buf.extend_from_slice(&crc32fast::hash(&p.payload).to_le_bytes());
                            buf.extend_from_slice(&p.payload);
                        }
                        let res = file
                            .write_all(&buf)
                            .and_then(|()| file.sync_data())
                            .map_err(|e| format!("WAL write failed: {e}"));
                        let (pendings, dones): (Vec<_>, Vec<_>) = group.into_iter().unzip();
                        if res.is_ok() {
                            let batches: Vec<Vec<IngestSeries>> =
                                pendings.into_iter().map(|p| p.batch).collect();
                            sink.apply(&batches);
                        }
                        for d in dones {
                            let _ = d.send(res.clone());
                        }
                    }
                    for done in rotate {
                        let closed = seq;
                        let res = open_segment(&wdir, seq + 1)
                            .map(|f| {
                                file = f;
                                seq += 1;
                                sink.freeze();
                                closed
                            })
                            .map_err(|e| format!("WAL rotation failed: {e}"));
                        let _ = done.send(res);
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
    pub async fn append(&self, p: Pending) -> Result<(), String> {
        let (done, rx) = oneshot::channel();
        self.send(Cmd::Append(p, done))?;
        rx.await.map_err(|_| "WAL writer stopped".to_string())?
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

    use tidewatch_common::Labels;

    use super::*;

    #[derive(Default)]
    struct Count {
        series: AtomicUsize,
        groups: AtomicUsize,
        freezes: AtomicUsize,
    }

    impl WalSink for Count {
        fn apply(&self, batches: &[Vec<IngestSeries>]) {
            self.groups.fetch_add(1, Ordering::SeqCst);
            let n: usize = batches.iter().map(Vec::len).sum();
            self.series.fetch_add(n, Ordering::SeqCst);
        }
        fn freeze(&self) {
            self.freezes.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn one(i: i64) -> Vec<IngestSeries> {
        vec![IngestSeries::new(
            Labels::from_pairs([("__name__", "x")]),
            vec![i],
            vec![i as f64],
        )]
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn group_commit_rotation_and_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let sink = Arc::new(Count::default());
        let wal = Arc::new(Wal::start(dir.path(), sink.clone()).unwrap());
        let tasks: Vec<_> = (0..64)
            .map(|i| {
                let wal = wal.clone();
                tokio::spawn(async move { wal.append(Pending::new(one(i))).await })
            })
            .collect();
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        assert_eq!(sink.series.load(Ordering::SeqCst), 64);
        // Concurrent appends were grouped (fewer groups than requests is
        // likely but not guaranteed; never more).
        assert!(sink.groups.load(Ordering::SeqCst) <= 64);
        let closed = wal.rotate().await.unwrap();
        assert_eq!(sink.freezes.load(Ordering::SeqCst), 1);
        wal.append(Pending::new(one(100))).await.unwrap();
        wal.close();
        assert_eq!(segments(dir.path()).unwrap(), vec![closed, closed + 1]);

        // A torn record at the end of the last segment is ignored.
        let last = segment_path(dir.path(), closed + 1);
        let mut f = OpenOptions::new().append(true).open(&last).unwrap();
        f.write_all(&[200, 0, 0, 0, 1, 2, 3, 4, 5]).unwrap();
        let mut seen = Vec::new();
        let records = replay(dir.path(), |b| seen.push(b[0].timestamps[0])).unwrap();
        assert_eq!(records, 65);
        assert_eq!(seen.len(), 65);
        assert_eq!(*seen.last().unwrap(), 100);

        let wal = Wal::start(dir.path(), sink).unwrap();
        wal.remove_up_to(closed).unwrap();
        assert_eq!(segments(dir.path()).unwrap(), vec![closed + 1, closed + 2]);
        wal.close();
    }
}

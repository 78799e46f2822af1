//! A bounded, durable, on-disk FIFO of byte records: the buffer between a
//! collector's producers (tailers, metric collection) and a sink.
//!
//! Layout: a directory of segment files `<id>.seg`, each a sequence of
//! records `[len: u32 LE][crc32: u32 LE][payload]`, and an `ack` file holding
//! the position (segment id, offset) up to which the sink has acknowledged.
//!
//! Guarantees:
//! - [`DiskBuffer::push_batch`] returns only after the records are written and
//!   `fdatasync`ed: a pushed record survives `kill -9` and power loss.
//! - Records are delivered in order, at least once: after a restart reading
//!   resumes at the last acknowledged position, so anything read but not
//!   acknowledged is delivered again.
//! - A torn record at the tail (crash mid-write) is detected by its length or
//!   CRC and cut off at open; everything before it is kept.
//! - The total size on disk is bounded by [`BufferOptions::max_bytes`]; when a
//!   push would exceed it the buffer either drops the oldest segments (and
//!   counts the records dropped) or makes the producer wait for the sink
//!   ([`OverflowPolicy`]).
//!
//! One batch costs one `write` and one `fdatasync`; there is no per-record
//! syscall or lock.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use parking_lot::Mutex;
use tokio::sync::Notify;

const HEADER: usize = 8;
const ACK_FILE: &str = "ack";

/// What to do when a push would exceed the size bound.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OverflowPolicy {
    /// Drop the oldest segments and count the records lost (metrics: the
    /// newest data matters most).
    DropOldest,
    /// Make the producer wait until the sink acknowledges enough (logs:
    /// backpressure reaches the tailers, nothing is lost).
    Block,
}

/// Buffer sizing.
#[derive(Clone, Debug)]
pub struct BufferOptions {
    /// Upper bound of the bytes on disk.
    pub max_bytes: u64,
    /// Target size of one segment file (clamped to a quarter of `max_bytes`).
    pub segment_bytes: u64,
    /// Behaviour at the bound.
    pub overflow: OverflowPolicy,
}

impl Default for BufferOptions {
    fn default() -> Self {
        BufferOptions {
            max_bytes: 256 << 20,
            segment_bytes: 16 << 20,
            overflow: OverflowPolicy::Block,
        }
    }
}

/// A position in the buffer: segment id and byte offset inside it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    segment: u64,
    offset: u64,
}

/// Records read together; acknowledge with [`DiskBuffer::ack`].
#[derive(Debug)]
pub struct Batch {
    /// The payloads, oldest first.
    pub records: Vec<Vec<u8>>,
    end: Position,
}

impl Batch {
    /// Total payload bytes.
    pub fn bytes(&self) -> usize {
        self.records.iter().map(Vec::len).sum()
    }
}

/// Counters for self-metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BufferStats {
    /// Records not yet acknowledged (including those read and in flight).
    pub records: u64,
    /// Bytes on disk.
    pub bytes: u64,
    /// Records dropped by [`OverflowPolicy::DropOldest`] since open.
    pub dropped_records: u64,
}

struct Segment {
    id: u64,
    bytes: u64,
    records: u64,
}

struct Inner {
    dir: PathBuf,
    opts: BufferOptions,
    segments: VecDeque<Segment>,
    writer: File,
    read: Position,
    read_file: Option<(u64, File)>,
    ack: Position,
    unacked_records: u64,
    read_records_in_flight: u64,
    dropped: u64,
}

/// The durable buffer. Cheap to share behind an `Arc`.
pub struct DiskBuffer {
    inner: Mutex<Inner>,
    data: Notify,
    space: Notify,
}

fn seg_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:020}.seg"))
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Scans a segment; returns (valid bytes, records).
fn scan(file: &File, len: u64) -> io::Result<(u64, u64)> {
    let mut off = 0u64;
    let mut records = 0u64;
    let mut header = [0u8; HEADER];
    let mut payload = Vec::new();
    while off + HEADER as u64 <= len {
        file.read_exact_at(&mut header, off)?;
        let n = u32::from_le_bytes(header[0..4].try_into().unwrap()) as u64;
        let crc = u32::from_le_bytes(header[4..8].try_into().unwrap());
        if off + HEADER as u64 + n > len {
            break;
        }
        payload.resize(n as usize, 0);
        file.read_exact_at(&mut payload, off + HEADER as u64)?;
        if crc32fast::hash(&payload) != crc {
            break;
        }
        off += HEADER as u64 + n;
        records += 1;
    }
    Ok((off, records))
}

impl DiskBuffer {
    /// Opens (or creates) the buffer in `dir`, repairing a torn tail.
    pub fn open(dir: &Path, mut opts: BufferOptions) -> io::Result<DiskBuffer> {
        fs::create_dir_all(dir)?;
        opts.max_bytes = opts.max_bytes.max(4096);
        opts.segment_bytes = opts
            .segment_bytes
            .clamp(1024, (opts.max_bytes / 4).max(1024));
        let mut ids: Vec<u64> = fs::read_dir(dir)?
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().to_str()?.strip_suffix(".seg")?.parse().ok())
            .collect();
        ids.sort_unstable();
        let ack = read_ack(dir)?;
        let mut segments = VecDeque::new();
        let mut unacked = 0u64;
        for id in ids {
            let path = seg_path(dir, id);
            if id < ack.segment {
                fs::remove_file(&path)?;
                continue;
            }
            let f = OpenOptions::new().read(true).write(true).open(&path)?;
            let len = f.metadata()?.len();
            let (valid, records) = scan(&f, len)?;
            if valid < len {
                tracing::warn!(segment = %path.display(), valid, len, "truncating torn tail of buffer segment");
                f.set_len(valid)?;
                f.sync_all()?;
            }
            let acked_here = if id == ack.segment {
                let (_, r) = scan(&f, ack.offset.min(valid))?;
                r
            } else {
                0
            };
            unacked += records - acked_here;
            segments.push_back(Segment {
                id,
                bytes: valid,
                records,
            });
        }
        if segments.is_empty() {
            let id = ack.segment.max(1);
            File::create(seg_path(dir, id))?;
            sync_dir(dir)?;
            segments.push_back(Segment {
                id,
                bytes: 0,
                records: 0,
            });
        }
        let first = segments.front().unwrap().id;
        let ack = if ack.segment < first {
            Position {
                segment: first,
                offset: 0,
            }
        } else {
            ack
        };
        let last = segments.back().unwrap().id;
        let writer = OpenOptions::new().append(true).open(seg_path(dir, last))?;
        Ok(DiskBuffer {
            inner: Mutex::new(Inner {
                dir: dir.to_path_buf(),
                opts,
                segments,
                writer,
                read: ack,
                read_file: None,
                ack,
                unacked_records: unacked,
                read_records_in_flight: 0,
                dropped: 0,
            }),
            data: Notify::new(),
            space: Notify::new(),
        })
    }

    /// Appends records durably (one write, one fdatasync). With
    /// [`OverflowPolicy::Block`] waits while the buffer is full; with
    /// [`OverflowPolicy::DropOldest`] makes room by dropping old segments.
    /// Returns how many old records were dropped to make room.
    pub async fn push_batch<R: AsRef<[u8]>>(&self, records: &[R]) -> io::Result<u64> {
        if records.is_empty() {
            return Ok(0);
        }
        let mut frame = Vec::with_capacity(
            records
                .iter()
                .map(|r| r.as_ref().len() + HEADER)
                .sum::<usize>(),
        );
        for r in records {
            let r = r.as_ref();
            frame.extend_from_slice(&(r.len() as u32).to_le_bytes());
            frame.extend_from_slice(&crc32fast::hash(r).to_le_bytes());
            frame.extend_from_slice(r);
        }
        let incoming = frame.len() as u64;
        loop {
            let notified = self.space.notified();
            {
                let mut inner = self.inner.lock();
                if incoming > inner.opts.max_bytes / 2 {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!(
                            "batch of {incoming} bytes exceeds half the buffer bound of {} bytes",
                            inner.opts.max_bytes
                        ),
                    ));
                }
                let fits = inner.total_bytes() + incoming <= inner.opts.max_bytes;
                if fits || inner.opts.overflow == OverflowPolicy::DropOldest {
                    let dropped = if fits { 0 } else { inner.make_room(incoming)? };
                    inner.append(&frame, records.len() as u64)?;
                    drop(inner);
                    self.data.notify_waiters();
                    return Ok(dropped);
                }
            }
            notified.await;
        }
    }

    /// Reads up to `max_records` / about `max_bytes` of the oldest unread
    /// records, waiting until at least one is available.
    pub async fn read_batch(&self, max_records: usize, max_bytes: usize) -> io::Result<Batch> {
        loop {
            let notified = self.data.notified();
            if let Some(b) = self.try_read_batch(max_records, max_bytes)? {
                return Ok(b);
            }
            notified.await;
        }
    }

    /// Like [`DiskBuffer::read_batch`] but returns `None` when nothing is unread.
    pub fn try_read_batch(
        &self,
        max_records: usize,
        max_bytes: usize,
    ) -> io::Result<Option<Batch>> {
        let mut inner = self.inner.lock();
        inner.read_batch(max_records.max(1), max_bytes.max(1))
    }

    /// Acknowledges everything up to the end of `batch` (batches must be
    /// acknowledged in the order they were read). Persists the position and
    /// deletes fully acknowledged segments.
    pub fn ack(&self, batch: &Batch) -> io::Result<()> {
        {
            let mut inner = self.inner.lock();
            inner.ack_to(batch.end, batch.records.len() as u64)?;
        }
        self.space.notify_waiters();
        Ok(())
    }

    /// Forgets reads not yet acknowledged, so they are delivered again
    /// (for a sink that gave up on a batch).
    pub fn rewind(&self) {
        let mut inner = self.inner.lock();
        inner.read = inner.ack;
        inner.read_records_in_flight = 0;
    }

    /// Current counters.
    pub fn stats(&self) -> BufferStats {
        let inner = self.inner.lock();
        BufferStats {
            records: inner.unacked_records,
            bytes: inner.total_bytes(),
            dropped_records: inner.dropped,
        }
    }
}

impl Inner {
    fn total_bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.bytes).sum()
    }

    fn write_end(&self) -> Position {
        let last = self.segments.back().unwrap();
        Position {
            segment: last.id,
            offset: last.bytes,
        }
    }

    fn append(&mut self, frame: &[u8], records: u64) -> io::Result<()> {
        if self.segments.back().unwrap().bytes >= self.opts.segment_bytes {
            self.roll()?;
        }
        self.writer.write_all(frame)?;
        self.writer.sync_data()?;
        let last = self.segments.back_mut().unwrap();
        last.bytes += frame.len() as u64;
        last.records += records;
        self.unacked_records += records;
        Ok(())
    }

    fn roll(&mut self) -> io::Result<()> {
        let id = self.segments.back().unwrap().id + 1;
        let path = seg_path(&self.dir, id);
        self.writer = OpenOptions::new().create(true).append(true).open(&path)?;
        sync_dir(&self.dir)?;
        self.segments.push_back(Segment {
            id,
            bytes: 0,
            records: 0,
        });
        Ok(())
    }

    /// Drops oldest segments until `incoming` fits; returns records dropped.
    fn make_room(&mut self, incoming: u64) -> io::Result<u64> {
        let mut dropped = 0;
        while self.total_bytes() + incoming > self.opts.max_bytes {
            if self.segments.len() == 1 {
                self.roll()?;
            }
            let old = self.segments.pop_front().unwrap();
            let acked_in_old = if self.ack.segment == old.id {
                let f = File::open(seg_path(&self.dir, old.id))?;
                scan(&f, self.ack.offset)?.1
            } else {
                0
            };
            let lost = old.records - acked_in_old;
            dropped += lost;
            self.unacked_records -= lost;
            fs::remove_file(seg_path(&self.dir, old.id))?;
            let first = Position {
                segment: self.segments.front().unwrap().id,
                offset: 0,
            };
            if self.ack < first {
                self.ack = first;
                write_ack(&self.dir, self.ack)?;
            }
            if self.read < first {
                self.read = first;
                self.read_records_in_flight = 0;
            }
        }
        self.dropped += dropped;
        if dropped > 0 {
            tracing::warn!(dropped, "disk buffer full: dropped oldest records");
        }
        Ok(dropped)
    }

    fn read_batch(&mut self, max_records: usize, max_bytes: usize) -> io::Result<Option<Batch>> {
        let mut records = Vec::new();
        let mut bytes = 0usize;
        let end = self.write_end();
        while records.len() < max_records && bytes < max_bytes && self.read < end {
            let seg = self
                .segments
                .iter()
                .find(|s| s.id == self.read.segment)
                .map(|s| (s.id, s.bytes));
            let Some((seg_id, seg_bytes)) = seg else {
                // The read segment was dropped; move to the oldest one left.
                self.read = Position {
                    segment: self.segments.front().unwrap().id,
                    offset: 0,
                };
                continue;
            };
            if self.read.offset >= seg_bytes {
                let next = self.segments.iter().find(|s| s.id > seg_id).map(|s| s.id);
                match next {
                    Some(n) => {
                        self.read = Position {
                            segment: n,
                            offset: 0,
                        };
                        continue;
                    }
                    None => break,
                }
            }
            if self.read_file.as_ref().map(|(id, _)| *id) != Some(seg_id) {
                self.read_file = Some((seg_id, File::open(seg_path(&self.dir, seg_id))?));
            }
            let file = &self.read_file.as_ref().unwrap().1;
            let mut header = [0u8; HEADER];
            file.read_exact_at(&mut header, self.read.offset)?;
            let n = u32::from_le_bytes(header[0..4].try_into().unwrap()) as usize;
            let mut payload = vec![0u8; n];
            file.read_exact_at(&mut payload, self.read.offset + HEADER as u64)?;
            self.read.offset += (HEADER + n) as u64;
            bytes += n;
            records.push(payload);
        }
        if records.is_empty() {
            return Ok(None);
        }
        self.read_records_in_flight += records.len() as u64;
        Ok(Some(Batch {
            records,
            end: self.read,
        }))
    }

    fn ack_to(&mut self, end: Position, records: u64) -> io::Result<()> {
        if end <= self.ack {
            // Already acknowledged, or dropped meanwhile.
            return Ok(());
        }
        self.ack = end;
        self.unacked_records = self.unacked_records.saturating_sub(records);
        self.read_records_in_flight = self.read_records_in_flight.saturating_sub(records);
        // Caught up with the writer: start a fresh segment so the old one can go.
        if self.ack == self.write_end() && self.write_end().offset > 0 {
            self.roll()?;
            self.ack = self.write_end();
            if self.read < self.ack {
                self.read = self.ack;
            }
        }
        write_ack(&self.dir, self.ack)?;
        while self.segments.len() > 1 && self.segments.front().unwrap().id < self.ack.segment {
            let old = self.segments.pop_front().unwrap();
            if self.read_file.as_ref().map(|(id, _)| *id) == Some(old.id) {
                self.read_file = None;
            }
            fs::remove_file(seg_path(&self.dir, old.id))?;
        }
        Ok(())
    }
}

fn read_ack(dir: &Path) -> io::Result<Position> {
    match fs::read(dir.join(ACK_FILE)) {
        Ok(b) if b.len() == 20 => {
            let segment = u64::from_le_bytes(b[0..8].try_into().unwrap());
            let offset = u64::from_le_bytes(b[8..16].try_into().unwrap());
            let crc = u32::from_le_bytes(b[16..20].try_into().unwrap());
            if crc32fast::hash(&b[0..16]) != crc {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{}: corrupt ack file", dir.join(ACK_FILE).display()),
                ));
            }
            Ok(Position { segment, offset })
        }
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: corrupt ack file", dir.join(ACK_FILE).display()),
        )),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Position::default()),
        Err(e) => Err(e),
    }
}

/// Writes the ack position atomically (temp file, fsync, rename, fsync dir).
fn write_ack(dir: &Path, pos: Position) -> io::Result<()> {
    let mut b = Vec::with_capacity(20);
    b.extend_from_slice(&pos.segment.to_le_bytes());
    b.extend_from_slice(&pos.offset.to_le_bytes());
    let crc = crc32fast::hash(&b);
    b.extend_from_slice(&crc.to_le_bytes());
    let tmp = dir.join("ack.tmp");
    {
        let mut f = File::create(&tmp)?;
        f.write_all(&b)?;
        f.sync_data()?;
    }
    fs::rename(&tmp, dir.join(ACK_FILE))?;
    sync_dir(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(max: u64, seg: u64, overflow: OverflowPolicy) -> BufferOptions {
        BufferOptions {
            max_bytes: max,
            segment_bytes: seg,
            overflow,
        }
    }

    fn rec(i: u32) -> Vec<u8> {
        format!("record-{i:06}").into_bytes()
    }

    #[tokio::test]
    async fn fifo_ack_and_redelivery_after_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let b = DiskBuffer::open(dir.path(), BufferOptions::default()).unwrap();
            b.push_batch(&(0..10).map(rec).collect::<Vec<_>>())
                .await
                .unwrap();
            let first = b.read_batch(4, 1 << 20).await.unwrap();
            assert_eq!(first.records, (0..4).map(rec).collect::<Vec<_>>());
            b.ack(&first).unwrap();
            // Read but never acknowledged: must come back after a restart.
            let second = b.read_batch(3, 1 << 20).await.unwrap();
            assert_eq!(second.records[0], rec(4));
            assert_eq!(b.stats().records, 6);
        }
        let b = DiskBuffer::open(dir.path(), BufferOptions::default()).unwrap();
        assert_eq!(b.stats().records, 6);
        let all = b.read_batch(100, 1 << 20).await.unwrap();
        assert_eq!(all.records, (4..10).map(rec).collect::<Vec<_>>());
        b.ack(&all).unwrap();
        assert!(b.try_read_batch(10, 1 << 20).unwrap().is_none());
        assert_eq!(b.stats().records, 0);
    }

    #[tokio::test]
    async fn torn_tail_is_cut_and_earlier_records_kept() {
        let dir = tempfile::tempdir().unwrap();
        {
            let b = DiskBuffer::open(dir.path(), BufferOptions::default()).unwrap();
            b.push_batch(&[rec(1), rec(2)]).await.unwrap();
        }
        // Simulate a crash mid-write: half a record at the end.
        let seg = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|e| e == "seg"))
            .unwrap();
        let mut f = OpenOptions::new().append(true).open(&seg).unwrap();
        f.write_all(&[200, 0, 0, 0, 1, 2, 3, 4, b'x']).unwrap();
        drop(f);
        let b = DiskBuffer::open(dir.path(), BufferOptions::default()).unwrap();
        let got = b.read_batch(10, 1 << 20).await.unwrap();
        assert_eq!(got.records, vec![rec(1), rec(2)]);
        b.push_batch(&[rec(3)]).await.unwrap();
        let got2 = b.read_batch(10, 1 << 20).await.unwrap();
        assert_eq!(got2.records, vec![rec(3)]);
    }

    #[tokio::test]
    async fn drop_oldest_bounds_disk_and_counts() {
        let dir = tempfile::tempdir().unwrap();
        let b = DiskBuffer::open(dir.path(), opts(8192, 1024, OverflowPolicy::DropOldest)).unwrap();
        let mut dropped = 0;
        for i in 0..2000 {
            dropped += b.push_batch(&[rec(i)]).await.unwrap();
            assert!(b.stats().bytes <= 8192, "bound exceeded: {:?}", b.stats());
        }
        assert!(dropped > 0);
        assert_eq!(b.stats().dropped_records, dropped);
        let mut seen = Vec::new();
        while let Some(batch) = b.try_read_batch(100, 1 << 20).unwrap() {
            seen.extend(batch.records.iter().cloned());
            b.ack(&batch).unwrap();
        }
        assert_eq!(seen.len() as u64 + dropped, 2000);
        // What survives is the newest data, in order.
        assert_eq!(seen.last().unwrap(), &rec(1999));
        assert!(seen.windows(2).all(|w| w[0] < w[1]));
    }

    #[tokio::test]
    async fn block_waits_for_the_sink() {
        let dir = tempfile::tempdir().unwrap();
        let b = std::sync::Arc::new(
            DiskBuffer::open(dir.path(), opts(8192, 1024, OverflowPolicy::Block)).unwrap(),
        );
        let producer = {
            let b = b.clone();
            tokio::spawn(async move {
                for i in 0..1000 {
                    b.push_batch(&[rec(i)]).await.unwrap();
                }
            })
        };
        let mut seen = Vec::new();
        while seen.len() < 1000 {
            let batch = b.read_batch(7, 1 << 20).await.unwrap();
            seen.extend(batch.records.iter().cloned());
            assert!(b.stats().bytes <= 8192);
            b.ack(&batch).unwrap();
        }
        producer.await.unwrap();
        assert_eq!(seen, (0..1000).map(rec).collect::<Vec<_>>());
        assert_eq!(b.stats().dropped_records, 0);
    }

    #[tokio::test]
    async fn oversize_batch_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let b = DiskBuffer::open(dir.path(), opts(8192, 1024, OverflowPolicy::Block)).unwrap();
        let big = vec![0u8; 5000];
        assert!(b.push_batch(&[big]).await.is_err());
        assert_eq!(b.stats().records, 0);
    }
}

//! Follows files: reads new bytes, splits lines, feeds each file's
//! [`Assembler`], and survives rotation.
//!
//! - rename + create: the old file is tracked by device and inode, read to
//!   its end through the open descriptor, and dropped once it is no longer
//!   discovered and stayed idle for `rotate_wait`; the new file is picked up
//!   by discovery.
//! - copytruncate: a size below the read offset, or a changed fingerprint
//!   of the first bytes, restarts the file at offset 0.
//! - deletion while open: the descriptor is read to the end, then closed.
//! - late files: discovery runs on every pass.
//! - many files: at most `max_open_files` descriptors; idle files still at
//!   their path are closed first and reopened (inode checked) when needed.
//!
//! Invalid UTF-8 is replaced with U+FFFD and counted.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tidewatch_common::Labels;

use super::assemble::{Assembled, Assembler};
use super::checkpoint::{FileCheckpoint, FileId, fingerprint};
use super::discover::Discovered;

/// Bytes of the fingerprint.
pub const FP_BYTES: u64 = 1024;

/// A record read from a file, before ids are attached.
pub struct Read {
    /// Timestamp (from the line, or the read time made unique per file).
    pub ts: i64,
    /// Labels.
    pub labels: Arc<Labels>,
    /// Text.
    pub line: String,
}

struct Tracked {
    id: FileId,
    path: PathBuf,
    file: Option<File>,
    fp: u64,
    fp_len: u64,
    /// Offset of the next byte to read.
    read_off: u64,
    /// Bytes after the last newline.
    carry: Vec<u8>,
    asm: Assembler,
    labels: Arc<Labels>,
    stdout: Arc<Labels>,
    stderr: Arc<Labels>,
    last_ts: i64,
    seen: bool,
    idle_since: Option<Instant>,
}

/// Counters of the tailer.
#[derive(Default, Debug, Clone, Copy)]
pub struct TailStats {
    /// Lines with invalid UTF-8 (replaced).
    pub invalid_utf8: u64,
    /// Records cut at the size limit.
    pub truncated: u64,
    /// Truncations (copytruncate) detected.
    pub truncations: u64,
    /// Files opened.
    pub opened: u64,
}

/// Tailer settings.
#[derive(Clone, Debug)]
pub struct TailOptions {
    /// Descriptor bound.
    pub max_open_files: usize,
    /// Record size bound.
    pub max_record_bytes: usize,
    /// Partial/multiline wait.
    pub flush_timeout: Duration,
    /// Bytes per file per pass.
    pub read_chunk_bytes: usize,
    /// How long an undiscovered file stays tracked after its last byte.
    pub rotate_wait: Duration,
}

/// All tracked files.
pub struct Tailer {
    opts: TailOptions,
    files: HashMap<FileId, Tracked>,
    saved: HashMap<FileId, FileCheckpoint>,
    open: usize,
    buf: Vec<u8>,
    /// Counters.
    pub stats: TailStats,
}

fn now_ns() -> i64 {
    chrono::Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX)
}

impl Tailer {
    /// A tailer resuming from `checkpoints`.
    pub fn new(opts: TailOptions, checkpoints: Vec<FileCheckpoint>) -> Tailer {
        Tailer {
            buf: vec![0; opts.read_chunk_bytes.max(4096)],
            opts,
            files: HashMap::new(),
            saved: checkpoints.into_iter().map(|c| (c.id, c)).collect(),
            open: 0,
            stats: TailStats::default(),
        }
    }

    /// Number of tracked files.
    pub fn tracked(&self) -> usize {
        self.files.len()
    }

    /// Checkpoints of every tracked file (plus saved ones not found yet).
    pub fn checkpoints(&self) -> Vec<FileCheckpoint> {
        let mut out: Vec<FileCheckpoint> = self
            .files
            .values()
            .map(|t| FileCheckpoint {
                id: t.id,
                fingerprint: t.fp,
                fp_len: t.fp_len,
                path: t.path.clone(),
                offset: t.asm.safe_offset(),
            })
            .collect();
        out.extend(self.saved.values().cloned());
        out
    }

    /// Recovers files rotated away while the collector was down: a saved
    /// checkpoint whose path no longer holds its inode is looked up among
    /// its directory's files, and read to the end if found.
    pub fn adopt_rotated(&mut self, discovered: &[Discovered]) {
        let saved: Vec<FileCheckpoint> = self.saved.values().cloned().collect();
        for c in saved {
            let Some(dir) = c.path.parent() else { continue };
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            for e in entries.flatten() {
                let Ok(m) = e.metadata() else { continue };
                if m.dev() == c.id.dev && m.ino() == c.id.ino && m.is_file() {
                    let labels = discovered
                        .iter()
                        .find(|d| d.path == c.path)
                        .map(|d| (d.labels.clone(), d.container, d.multiline.clone()));
                    let (labels, container, ml) = labels.unwrap_or_else(|| {
                        let container = c.path.extension().is_some_and(|x| x == "log")
                            && c.path.to_string_lossy().contains("/pods/");
                        (
                            Labels::from_pairs([("filename", c.path.display().to_string())]),
                            container,
                            None,
                        )
                    });
                    let d = Discovered {
                        path: e.path(),
                        labels,
                        container,
                        multiline: ml,
                    };
                    self.track(&d, c.id);
                    break;
                }
            }
        }
    }

    fn track(&mut self, d: &Discovered, id: FileId) {
        if self.files.contains_key(&id) {
            return;
        }
        let Ok(file) = File::open(&d.path) else {
            return;
        };
        let Ok((fp, fp_len)) = fingerprint(&file, FP_BYTES) else {
            return;
        };
        // Resume only if the saved fingerprint still matches.
        let start = match self.saved.remove(&id) {
            Some(c) => {
                let same = fingerprint(&file, c.fp_len)
                    .map(|(f, _)| f == c.fingerprint)
                    .unwrap_or(false);
                if same { c.offset } else { 0 }
            }
            None => 0,
        };
        self.stats.opened += 1;
        self.open += 1;
        let with_stream = |s: &str| {
            let mut l = d.labels.clone();
            l.set("stream", s);
            Arc::new(l)
        };
        self.files.insert(
            id,
            Tracked {
                id,
                path: d.path.clone(),
                file: Some(file),
                fp,
                fp_len,
                read_off: start,
                carry: Vec::new(),
                asm: Assembler::new(
                    d.container,
                    d.multiline.as_deref().cloned(),
                    self.opts.max_record_bytes,
                    self.opts.flush_timeout,
                    start,
                ),
                stdout: with_stream("stdout"),
                stderr: with_stream("stderr"),
                labels: Arc::new(d.labels.clone()),
                last_ts: 0,
                seen: true,
                idle_since: None,
            },
        );
    }

    /// One pass: reconciles with `discovered`, reads every file, and
    /// appends finished records to `out`. Returns true if any bytes were read.
    pub fn pass(&mut self, discovered: &[Discovered], out: &mut Vec<Read>) -> bool {
        for t in self.files.values_mut() {
            t.seen = false;
        }
        for d in discovered {
            let Ok(m) = std::fs::metadata(&d.path) else {
                continue;
            };
            let id = FileId {
                dev: m.dev(),
                ino: m.ino(),
            };
            match self.files.get_mut(&id) {
                Some(t) => {
                    t.seen = true;
                    t.path = d.path.clone();
                }
                None => {
                    if self.open >= self.opts.max_open_files {
                        self.close_idle();
                    }
                    if self.open < self.opts.max_open_files {
                        self.track(d, id);
                    }
                }
            }
        }
        let now = Instant::now();
        let mut any = false;
        let ids: Vec<FileId> = self.files.keys().copied().collect();
        for id in ids {
            let mut t = self.files.remove(&id).unwrap();
            let read = self.read_file(&mut t, now, out);
            any |= read;
            if read {
                t.idle_since = None;
            } else if t.idle_since.is_none() {
                t.idle_since = Some(now);
            }
            let gone = !t.seen
                && t.idle_since
                    .is_some_and(|s| now.duration_since(s) >= self.opts.rotate_wait);
            if gone {
                // Rotated away or deleted, and fully read: finish and forget.
                let mut done = Vec::new();
                t.asm.flush(now, true, t.read_off, &mut done);
                emit(&mut t, done, out);
                if t.file.is_some() {
                    self.open -= 1;
                }
                continue;
            }
            self.files.insert(id, t);
        }
        any
    }

    /// Forces out pending partial/multiline records (shutdown).
    pub fn flush_all(&mut self, out: &mut Vec<Read>) {
        let now = Instant::now();
        for t in self.files.values_mut() {
            let mut done = Vec::new();
            let off = t.read_off - t.carry.len() as u64;
            t.asm.flush(now, true, off, &mut done);
            emit(t, done, out);
        }
    }

    fn close_idle(&mut self) {
        let mut victims: Vec<(Instant, FileId)> = self
            .files
            .values()
            .filter(|t| t.file.is_some() && t.seen && t.carry.is_empty())
            .filter_map(|t| t.idle_since.map(|s| (s, t.id)))
            .collect();
        victims.sort();
        for (_, id) in victims
            .into_iter()
            .take((self.opts.max_open_files / 8).max(1))
        {
            if let Some(t) = self.files.get_mut(&id) {
                t.file = None;
                self.open -= 1;
            }
        }
    }

    fn read_file(&mut self, t: &mut Tracked, now: Instant, out: &mut Vec<Read>) -> bool {
        if t.file.is_none() {
            // Closed for the descriptor bound: reopen by path if it grew.
            let Ok(m) = std::fs::metadata(&t.path) else {
                return false;
            };
            if m.dev() != t.id.dev || m.ino() != t.id.ino || m.len() == t.read_off {
                return false;
            }
            if self.open >= self.opts.max_open_files {
                self.close_idle();
                if self.open >= self.opts.max_open_files {
                    return false;
                }
            }
            match File::open(&t.path) {
                Ok(f) => {
                    t.file = Some(f);
                    self.open += 1;
                }
                Err(_) => return false,
            }
        }
        let f = t.file.as_ref().unwrap();
        let Ok(m) = f.metadata() else { return false };
        let size = m.len();
        let mut truncated = size < t.read_off;
        if !truncated && t.fp_len > 0 && size >= t.fp_len {
            // Same size or longer, but rewritten from the start?
            if let Ok((fp, _)) = fingerprint(f, t.fp_len) {
                truncated = fp != t.fp;
            }
        }
        if truncated {
            self.stats.truncations += 1;
            t.read_off = 0;
            t.carry.clear();
            t.asm.reset(0);
            t.fp_len = 0;
        }
        if t.fp_len < FP_BYTES
            && size > t.fp_len
            && let Ok((fp, n)) = fingerprint(f, FP_BYTES)
        {
            t.fp = fp;
            t.fp_len = n;
        }
        let mut read_any = false;
        if size > t.read_off {
            let want = ((size - t.read_off) as usize).min(self.buf.len());
            let n = f
                .read_at(&mut self.buf[..want], t.read_off)
                .unwrap_or_default();
            if n > 0 {
                read_any = true;
                let data = &self.buf[..n];
                let mut done = Vec::new();
                let mut line_start = t.read_off - t.carry.len() as u64;
                let mut pos = 0usize;
                while let Some(i) = memchr(b'\n', &data[pos..]) {
                    let end = pos + i;
                    let bytes: std::borrow::Cow<'_, [u8]> = if t.carry.is_empty() {
                        std::borrow::Cow::Borrowed(&data[pos..end])
                    } else {
                        let mut v = std::mem::take(&mut t.carry);
                        v.extend_from_slice(&data[pos..end]);
                        std::borrow::Cow::Owned(v)
                    };
                    let line_end = t.read_off + end as u64 + 1;
                    let text = match std::str::from_utf8(&bytes) {
                        Ok(s) => std::borrow::Cow::Borrowed(s),
                        Err(_) => {
                            self.stats.invalid_utf8 += 1;
                            String::from_utf8_lossy(&bytes).into_owned().into()
                        }
                    };
                    let text = text.strip_suffix('\r').unwrap_or(&text);
                    t.asm.push_line(text, line_start, line_end, now, &mut done);
                    line_start = line_end;
                    pos = end + 1;
                }
                t.carry.extend_from_slice(&data[pos..]);
                t.read_off += n as u64;
                if t.carry.len() > self.opts.max_record_bytes {
                    // A line without newline beyond the bound: emit it cut.
                    let bytes = std::mem::take(&mut t.carry);
                    let text = String::from_utf8_lossy(&bytes).into_owned();
                    t.asm
                        .push_line(&text, line_start, t.read_off, now, &mut done);
                }
                self.stats.truncated = self.stats.truncated.max(t.asm.stats.truncated);
                emit(t, done, out);
            }
        }
        let mut done = Vec::new();
        let consumed = t.read_off - t.carry.len() as u64;
        t.asm.flush(now, false, consumed, &mut done);
        emit(t, done, out);
        read_any
    }
}

fn emit(t: &mut Tracked, done: Vec<Assembled>, out: &mut Vec<Read>) {
    if done.is_empty() {
        return;
    }
    // One clock read per batch; lines without their own time get the read
    // time, made unique (and increasing) per file.
    let now = now_ns();
    for a in done {
        let ts = match a.ts {
            Some(ts) => ts,
            None => {
                let n = now.max(t.last_ts + 1);
                t.last_ts = n;
                n
            }
        };
        let labels = match a.stream {
            Some("stderr") => t.stderr.clone(),
            Some(_) => t.stdout.clone(),
            None => t.labels.clone(),
        };
        out.push(Read {
            ts,
            labels,
            line: a.text,
        });
    }
}

fn memchr(needle: u8, hay: &[u8]) -> Option<usize> {
    hay.iter().position(|&b| b == needle)
}

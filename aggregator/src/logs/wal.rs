//! The log write-ahead log: numbered segment files of CRC-framed records.
//!
//! A push is acknowledged only after its record is written and
//! `fdatasync`ed, so an acknowledged line survives `kill -9`. When the head
//! is flushed to Parquet, the WAL rotates to a new segment and the segments
//! the flush covered are deleted afterwards.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

const HEADER: usize = 8;

/// An open WAL.
pub struct Wal {
    dir: PathBuf,
    file: File,
    seq: u64,
    buf: Vec<u8>,
}

/// One replayed record: the segment it came from and its payload.
pub struct Replayed {
    /// Segment number.
    pub seq: u64,
    /// Record payload.
    pub payload: Vec<u8>,
}

fn seg_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:020}.wal"))
}

fn segments(dir: &Path) -> io::Result<Vec<u64>> {
    let mut ids: Vec<u64> = fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.strip_suffix(".wal")?.parse().ok())
        .collect();
    ids.sort_unstable();
    Ok(ids)
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

impl Wal {
    /// Opens the WAL in `dir`, returning every intact record of the existing
    /// segments (a torn tail is cut off) and starting a fresh segment.
    pub fn open(dir: &Path) -> io::Result<(Wal, Vec<Replayed>)> {
        fs::create_dir_all(dir)?;
        let ids = segments(dir)?;
        let mut out = Vec::new();
        for &seq in &ids {
            let path = seg_path(dir, seq);
            let mut data = Vec::new();
            File::open(&path)?.read_to_end(&mut data)?;
            let mut off = 0usize;
            while off + HEADER <= data.len() {
                let n = u32::from_le_bytes(data[off..off + 4].try_into().unwrap()) as usize;
                let crc = u32::from_le_bytes(data[off + 4..off + 8].try_into().unwrap());
                let end = off + HEADER + n;
                if end > data.len() || crc32fast::hash(&data[off + HEADER..end]) != crc {
                    break;
                }
                out.push(Replayed {
                    seq,
                    payload: data[off + HEADER..end].to_vec(),
                });
                off = end;
            }
            if off < data.len() {
                tracing::warn!(segment = %path.display(), valid = off, len = data.len(), "truncating torn tail of log WAL segment");
                let f = OpenOptions::new().write(true).open(&path)?;
                f.set_len(off as u64)?;
                f.sync_all()?;
            }
        }
        let seq = ids.last().copied().unwrap_or(0) + 1;
        let file = Self::create(dir, seq)?;
        Ok((
            Wal {
                dir: dir.to_path_buf(),
                file,
                seq,
                buf: Vec::new(),
            },
            out,
        ))
    }

    fn create(dir: &Path, seq: u64) -> io::Result<File> {
        let f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(seg_path(dir, seq))?;
        sync_dir(dir)?;
        Ok(f)
    }

    /// Number of the segment being written.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Appends one record durably (one write, one `fdatasync`).
    pub fn append(&mut self, payload: &[u8]) -> io::Result<()> {
        self.buf.clear();
        self.buf
            .extend_from_slice(&(payload.len() as u32).to_le_bytes());
        self.buf
            .extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
        self.buf.extend_from_slice(payload);
        self.file.write_all(&self.buf)?;
        self.file.sync_data()
    }

    /// Closes the current segment and starts the next; returns the number of
    /// the closed one.
    pub fn rotate(&mut self) -> io::Result<u64> {
        let closed = self.seq;
        self.file = Self::create(&self.dir, closed + 1)?;
        self.seq = closed + 1;
        Ok(closed)
    }

    /// Deletes every segment numbered `seq` or lower (their content is in
    /// Parquet now).
    pub fn remove_through(&self, seq: u64) -> io::Result<()> {
        for id in segments(&self.dir)? {
            if id <= seq && id != self.seq {
                fs::remove_file(seg_path(&self.dir, id))?;
            }
        }
        sync_dir(&self.dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replays_and_cuts_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut w, r) = Wal::open(dir.path()).unwrap();
            assert!(r.is_empty());
            w.append(b"one").unwrap();
            w.append(b"two").unwrap();
        }
        // A torn record at the end.
        let seg = seg_path(dir.path(), 1);
        let mut f = OpenOptions::new().append(true).open(&seg).unwrap();
        f.write_all(&[9, 0, 0, 0, 1, 2]).unwrap();
        let (mut w, r) = Wal::open(dir.path()).unwrap();
        let got: Vec<_> = r.iter().map(|r| (r.seq, r.payload.clone())).collect();
        assert_eq!(got, vec![(1, b"one".to_vec()), (1, b"two".to_vec())]);
        assert_eq!(w.seq(), 2);
        w.append(b"three").unwrap();
        let closed = w.rotate().unwrap();
        assert_eq!(closed, 2);
        w.remove_through(2).unwrap();
        let (_, r) = Wal::open(dir.path()).unwrap();
        assert!(r.is_empty());
    }
}

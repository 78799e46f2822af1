//! Durable state on disk: append-only JSON-lines journals (one fsync per
//! batch, compacted by an atomic rewrite) and atomically replaced snapshot
//! files.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use parking_lot::Mutex;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// An append-only journal of JSON records.
pub struct Journal {
    path: PathBuf,
    file: Mutex<(File, usize)>,
}

impl Journal {
    /// Opens (creating) the journal and returns its records in order. A
    /// torn last line (crash mid-write) is dropped.
    pub fn open<T: DeserializeOwned>(path: &Path) -> io::Result<(Journal, Vec<T>)> {
        let mut records = Vec::new();
        if path.exists() {
            let reader = BufReader::new(File::open(path)?);
            for (i, line) in reader.lines().enumerate() {
                let line = line?;
                if line.trim().is_empty() {
                    continue;
                }
                match serde_json::from_str(&line) {
                    Ok(r) => records.push(r),
                    Err(e) => tracing::warn!(
                        path = %path.display(), line = i + 1, error = %e,
                        "skipping unreadable journal record"
                    ),
                }
            }
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let n = records.len();
        Ok((
            Journal {
                path: path.to_path_buf(),
                file: Mutex::new((file, n)),
            },
            records,
        ))
    }

    /// Appends records durably (one write, one fsync).
    pub fn append<T: Serialize>(&self, recs: &[T]) -> io::Result<()> {
        if recs.is_empty() {
            return Ok(());
        }
        let mut buf = Vec::with_capacity(256 * recs.len());
        for r in recs {
            serde_json::to_writer(&mut buf, r)?;
            buf.push(b'\n');
        }
        let mut g = self.file.lock();
        g.0.write_all(&buf)?;
        g.0.sync_data()?;
        g.1 += recs.len();
        Ok(())
    }

    /// Number of records written since the last rewrite.
    pub fn len(&self) -> usize {
        self.file.lock().1
    }

    /// Whether the journal holds no records.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Replaces the journal's content with `recs` atomically (compaction).
    pub fn rewrite<T: Serialize>(&self, recs: &[T]) -> io::Result<()> {
        let mut buf = Vec::with_capacity(256 * recs.len());
        for r in recs {
            serde_json::to_writer(&mut buf, r)?;
            buf.push(b'\n');
        }
        let mut g = self.file.lock();
        write_atomic(&self.path, &buf)?;
        g.0 = OpenOptions::new().append(true).open(&self.path)?;
        g.1 = recs.len();
        Ok(())
    }
}

/// Writes `bytes` to `path` atomically: temp file, fsync, rename, fsync dir.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent()
        && let Ok(d) = File::open(dir)
    {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Reads a JSON snapshot, `None` when the file does not exist.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> io::Result<Option<T>> {
    match std::fs::read(path) {
        Ok(b) => serde_json::from_slice(&b).map(Some).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: {e}", path.display()),
            )
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Writes a JSON snapshot atomically.
pub fn write_json<T: Serialize>(path: &Path, v: &T) -> io::Result<()> {
    write_atomic(path, &serde_json::to_vec_pretty(v)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_survives_torn_tail_and_rewrite() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("j.jsonl");
        {
            let (j, r) = Journal::open::<u32>(&p).unwrap();
            assert!(r.is_empty());
            j.append(&[1u32, 2]).unwrap();
        }
        std::fs::OpenOptions::new()
            .append(true)
            .open(&p)
            .unwrap()
            .write_all(b"3")
            .unwrap_or(());
        std::fs::OpenOptions::new()
            .append(true)
            .open(&p)
            .unwrap()
            .write_all(b"{\"torn")
            .unwrap();
        let (j, r) = Journal::open::<u32>(&p).unwrap();
        assert_eq!(r, vec![1, 2]);
        j.rewrite(&[7u32]).unwrap();
        j.append(&[8u32]).unwrap();
        let (_, r) = Journal::open::<u32>(&p).unwrap();
        assert_eq!(r, vec![7, 8]);
    }
}

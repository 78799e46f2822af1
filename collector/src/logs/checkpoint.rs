//! Per-file read positions, written atomically (temporary file, fsync,
//! rename, directory fsync).
//!
//! A file is identified by device, inode and a fingerprint (xxh3) of its
//! first bytes, so a reused inode or a truncated-and-rewritten file is not
//! mistaken for the old one. The file also holds the delivery bookkeeping
//! of the pipeline: the process `epoch` (incremented at every start) and
//! `persisted_rid`, the highest record id whose read position is recorded
//! here, and the `stale` id ranges: records pushed into the buffers by an
//! earlier process but never checkpointed, which must never be sent (see
//! [`super::pipeline`]).

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Identity of a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FileId {
    /// Device.
    pub dev: u64,
    /// Inode.
    pub ino: u64,
}

/// One file's checkpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FileCheckpoint {
    /// Device and inode.
    pub id: FileId,
    /// xxh3 of the first `fp_len` bytes.
    pub fingerprint: u64,
    /// Bytes covered by the fingerprint.
    pub fp_len: u64,
    /// Last known path.
    pub path: PathBuf,
    /// Everything before this offset is in every output's buffer.
    pub offset: u64,
}

/// Record ids pushed into the buffers by one earlier process but never
/// checkpointed: the tailer re-reads their bytes under new ids, so these
/// must be discarded wherever a buffer still holds them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaleRange {
    /// `persisted_rid` when that process died (exclusive lower bound).
    pub above: u64,
    /// First rid of the next process (exclusive upper bound).
    pub below: u64,
}

impl StaleRange {
    /// Whether `rid` must be discarded.
    pub fn contains(&self, rid: u64) -> bool {
        rid > self.above && rid < self.below
    }
}

/// The checkpoint file's content.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Checkpoints {
    /// Process generation.
    pub epoch: u64,
    /// Highest record id covered by the offsets below.
    pub persisted_rid: u64,
    /// Stale id ranges that some buffer may still hold (kept until every
    /// buffer has acknowledged past them, across any number of restarts).
    #[serde(default)]
    pub stale: Vec<StaleRange>,
    /// Files.
    pub files: Vec<FileCheckpoint>,
}

/// Reads and writes the checkpoint file.
pub struct CheckpointFile {
    path: PathBuf,
}

impl CheckpointFile {
    /// The file `dir/checkpoints.json`.
    pub fn new(dir: &Path) -> std::io::Result<CheckpointFile> {
        fs::create_dir_all(dir)?;
        Ok(CheckpointFile {
            path: dir.join("checkpoints.json"),
        })
    }

    /// Loads the checkpoints (empty when the file does not exist).
    pub fn load(&self) -> anyhow::Result<Checkpoints> {
        match fs::read(&self.path) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| {
                anyhow::anyhow!("{}: corrupt checkpoint file: {e}", self.path.display())
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Checkpoints::default()),
            Err(e) => Err(e.into()),
        }
    }

    /// Replaces the file atomically and durably.
    pub fn store(&self, c: &Checkpoints) -> std::io::Result<()> {
        let tmp = self.path.with_extension("json.tmp");
        let mut f = File::create(&tmp)?;
        f.write_all(&serde_json::to_vec(c).map_err(std::io::Error::other)?)?;
        f.sync_all()?;
        fs::rename(&tmp, &self.path)?;
        if let Some(d) = self.path.parent() {
            File::open(d)?.sync_all()?;
        }
        Ok(())
    }
}

/// Fingerprint of the first `len` bytes of `f` (fewer if the file is shorter).
pub fn fingerprint(f: &File, len: u64) -> std::io::Result<(u64, u64)> {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0u8; len as usize];
    let mut got = 0usize;
    while got < buf.len() {
        let n = f.read_at(&mut buf[got..], got as u64)?;
        if n == 0 {
            break;
        }
        got += n;
    }
    Ok((xxhash_rust::xxh3::xxh3_64(&buf[..got]), got as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_and_load() {
        let dir = tempfile::tempdir().unwrap();
        let cf = CheckpointFile::new(dir.path()).unwrap();
        assert_eq!(cf.load().unwrap(), Checkpoints::default());
        let c = Checkpoints {
            epoch: 3,
            persisted_rid: 42,
            stale: vec![StaleRange {
                above: 7,
                below: 3 << 40,
            }],
            files: vec![FileCheckpoint {
                id: FileId { dev: 1, ino: 2 },
                fingerprint: 9,
                fp_len: 4,
                path: "/x".into(),
                offset: 100,
            }],
        };
        cf.store(&c).unwrap();
        assert_eq!(cf.load().unwrap(), c);
        std::fs::write(dir.path().join("checkpoints.json"), b"{").unwrap();
        assert!(cf.load().unwrap_err().to_string().contains("corrupt"));
    }
}

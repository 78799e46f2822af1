//! `statvfs(3)` through the C library the standard library already links
//! (no extra crate): filesystem size, free space and inodes.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// glibc/musl `struct statvfs` on 64-bit Linux.
#[repr(C)]
#[derive(Default)]
struct RawStatvfs {
    f_bsize: u64,
    f_frsize: u64,
    f_blocks: u64,
    f_bfree: u64,
    f_bavail: u64,
    f_files: u64,
    f_ffree: u64,
    f_favail: u64,
    f_fsid: u64,
    f_flag: u64,
    f_namemax: u64,
    f_spare: [i32; 6],
}

unsafe extern "C" {
    fn statvfs(path: *const std::ffi::c_char, buf: *mut RawStatvfs) -> i32;
}

/// `ST_RDONLY` in `f_flag`.
const ST_RDONLY: u64 = 1;

/// Sizes of one mounted filesystem.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct FsStats {
    /// Total bytes.
    pub size: f64,
    /// Free bytes (including those reserved for root).
    pub free: f64,
    /// Bytes available to unprivileged users.
    pub avail: f64,
    /// Inodes.
    pub files: f64,
    /// Free inodes.
    pub files_free: f64,
    /// Mounted read-only.
    pub readonly: bool,
}

/// Stats of the filesystem holding `path`.
#[cfg(all(target_os = "linux", target_pointer_width = "64"))]
pub fn stat(path: &Path) -> std::io::Result<FsStats> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::other("path contains NUL"))?;
    let mut raw = RawStatvfs::default();
    // SAFETY: `c` is a valid NUL-terminated string and `raw` matches the C
    // layout of `struct statvfs` on 64-bit Linux; the call writes only `raw`.
    let rc = unsafe { statvfs(c.as_ptr(), &mut raw) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let bs = if raw.f_frsize > 0 {
        raw.f_frsize
    } else {
        raw.f_bsize
    } as f64;
    Ok(FsStats {
        size: raw.f_blocks as f64 * bs,
        free: raw.f_bfree as f64 * bs,
        avail: raw.f_bavail as f64 * bs,
        files: raw.f_files as f64,
        files_free: raw.f_ffree as f64,
        readonly: raw.f_flag & ST_RDONLY != 0,
    })
}

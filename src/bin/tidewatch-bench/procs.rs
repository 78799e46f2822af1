//! Starting servers under test and measuring them through `/proc`.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Linux clock ticks per second (`_SC_CLK_TCK`, 100 on every mainstream
/// Linux build).
const CLK_TCK: f64 = 100.0;

/// A child process killed on drop.
pub struct Server {
    /// The child.
    pub child: Child,
    /// Base URL.
    pub url: String,
    /// Name for messages.
    pub name: String,
}

impl Server {
    /// Spawns `cmd` (stdout/stderr to `<log_dir>/<name>.log`).
    pub fn spawn(
        name: &str,
        mut cmd: Command,
        port: u16,
        log_dir: &Path,
    ) -> anyhow::Result<Server> {
        std::fs::create_dir_all(log_dir)?;
        let log = std::fs::File::create(log_dir.join(format!("{name}.log")))?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .map_err(|e| anyhow::anyhow!("cannot start {name}: {e}"))?;
        Ok(Server {
            child,
            url: format!("http://127.0.0.1:{port}"),
            name: name.to_string(),
        })
    }

    /// Waits for `/-/ready`.
    pub async fn wait_ready(&mut self, client: &reqwest::Client) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Ok(r) = client.get(format!("{}/-/ready", self.url)).send().await
                && r.status().is_success()
            {
                return Ok(());
            }
            if let Some(st) = self.child.try_wait()? {
                anyhow::bail!("{} exited with {st} (see its log)", self.name);
            }
            if Instant::now() > deadline {
                anyhow::bail!("{} not ready after 120s", self.name);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// User + system CPU seconds used so far.
    pub fn cpu_seconds(&self) -> f64 {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        // Fields after the parenthesised command name; utime and stime are
        // fields 14 and 15 (1-based) of the whole line.
        let rest = stat.rsplit_once(") ").map(|(_, r)| r).unwrap_or("");
        let f: Vec<&str> = rest.split_whitespace().collect();
        let tick = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        (tick(11) + tick(12)) / CLK_TCK
    }

    /// Peak resident set size in bytes (`VmHWM`).
    pub fn peak_rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    }

    /// SIGTERM, then waits up to `timeout` for the exit.
    pub fn terminate(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.child.try_wait()?.is_some() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        anyhow::bail!("{} did not stop within {timeout:?}", self.name)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free loopback port.
pub fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Total size of the files under `dir` (whose path contains `filter`).
pub fn dir_bytes(dir: &Path, filter: &dyn Fn(&Path) -> bool) -> u64 {
    let mut total = 0;
    let mut stack: Vec<PathBuf> = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            match e.metadata() {
                Ok(m) if m.is_dir() => stack.push(p),
                Ok(m) if filter(&p) => total += m.len(),
                _ => {}
            }
        }
    }
    total
}

/// The `tidewatch` binary next to this one.
pub fn tidewatch_bin() -> anyhow::Result<PathBuf> {
    let me = std::env::current_exe()?;
    let bin = me
        .parent()
        .map(|d| d.join("tidewatch"))
        .ok_or_else(|| anyhow::anyhow!("no parent directory of {}", me.display()))?;
    anyhow::ensure!(
        bin.exists(),
        "{} not found: build it with `cargo build --release --bin tidewatch`",
        bin.display()
    );
    Ok(bin)
}

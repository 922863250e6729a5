//! A private `redis-server` for tests.
//!
//! Tests of the Redis backends (feeds, leases, district streams) need a real Redis they can
//! stop, kill, restart and pause without touching anybody else's: [`RedisServer::start`] runs
//! `redis-server` on a free loopback port (never 6379) with its own temporary data directory,
//! and waits until it answers `PING`. Dropping the handle kills the server and removes the
//! directory.
//!
//! The calls block the calling thread (for at most [`Options::start_timeout`] while a server
//! starts): fine inside a test, even an async one, since a start takes milliseconds.
//!
//! ```no_run
//! let mut redis = dispatch_redis_test::RedisServer::start()?;
//! let url = redis.url(); // redis://127.0.0.1:<port>/
//! redis.restart()?; // same port and directory: what the AOF held is back
//! # Ok::<(), dispatch_redis_test::Error>(())
//! ```

use std::ffi::OsString;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// What can go wrong running a test Redis.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `redis-server` is not on `PATH`.
    #[error(
        "redis-server not found: install it with `apt-get install redis-server` (Debian/Ubuntu)"
    )]
    NotFound,
    /// Creating the data directory, spawning or signalling the process failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The server exited, or did not answer `PING`, while starting.
    #[error("redis-server on port {port} did not start: {reason}; log tail: {log_tail}")]
    NotReady {
        /// The port it was given.
        port: u16,
        /// Why it is not ready (exited with a status, or no `PONG` within the time limit).
        reason: String,
        /// The last lines of its log file.
        log_tail: String,
    },
    /// A call that needs a running server found none (after `stop` or `kill`).
    #[error("redis-server on port {port} is not running")]
    NotRunning {
        /// Its port.
        port: u16,
    },
}

/// Result of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How to run the server.
#[derive(Debug, Clone)]
pub struct Options {
    /// `--appendonly yes|no`: keep an append-only file, so data survives a stop (and a kill,
    /// up to the fsync policy). Default `true`.
    pub append_only: bool,
    /// `--appendfsync always` instead of Redis's default `everysec`: every acknowledged write
    /// is on disk before the reply, so a `kill` loses nothing acknowledged (Redis manual,
    /// "Persistence", fsync policies). Default `false`.
    pub fsync_always: bool,
    /// How long to wait for the first `PONG` (also the limit for a stop). Default 10 s: a cold
    /// start takes milliseconds, a large AOF to replay takes longer.
    pub start_timeout: Duration,
    /// The program to run: `redis-server`, looked up on `PATH`, unless a test needs a
    /// particular build (a path). Missing, it gives [`Error::NotFound`].
    pub program: OsString,
    /// Addresses to listen on besides `127.0.0.1` (`--bind`), e.g. the host end of a veth pair
    /// for a test that runs a node in a network namespace. Default none. With any, protected
    /// mode is off (these servers have no password and serve only the test's own addresses).
    pub also_bind: Vec<std::net::IpAddr>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            append_only: true,
            fsync_always: false,
            start_timeout: Duration::from_secs(10),
            program: "redis-server".into(),
            also_bind: Vec::new(),
        }
    }
}

/// A running (or stopped) private `redis-server`. Killed, and its directory removed, on drop.
#[derive(Debug)]
pub struct RedisServer {
    options: Options,
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

/// How many times to try a fresh port when another process takes the one picked.
const PORT_ATTEMPTS: usize = 5;

impl RedisServer {
    /// Starts a server with the default [`Options`] (AOF on, `fsync everysec`).
    ///
    /// Errors: [`Error::NotFound`] without `redis-server` on `PATH`; [`Error::Io`] when the
    /// directory cannot be created; [`Error::NotReady`] when it exits or does not answer
    /// within [`Options::start_timeout`].
    pub fn start() -> Result<Self> {
        Self::start_with(Options::default())
    }

    /// Starts a server with `options`. Errors: as [`RedisServer::start`].
    pub fn start_with(options: Options) -> Result<Self> {
        let dir = fresh_dir()?;
        let mut server = Self {
            options,
            port: 0,
            dir,
            child: None,
        };
        let mut last = None;
        for _ in 0..PORT_ATTEMPTS {
            server.port = free_port()?;
            match server.spawn() {
                Ok(()) => return Ok(server),
                // Between picking the port and Redis binding it, another process may take it;
                // Redis then exits at once, and another port is worth a try.
                Err(e @ Error::NotReady { .. }) if server.log_says_address_in_use() => {
                    last = Some(e)
                }
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or(Error::NotRunning { port: server.port }))
    }

    /// `redis://127.0.0.1:<port>/`, for `redis::Client::open`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// The loopback port it listens on (kept across restarts).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its data directory (AOF, log file `redis.log`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether the process is running (it may be paused).
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// Stops the server with SIGTERM and waits for it to exit: Redis flushes its AOF first,
    /// so everything acknowledged survives a [`RedisServer::restart`]. A paused server is
    /// resumed first (a stopped process does not handle SIGTERM). Waits at most
    /// [`Options::start_timeout`], then kills it.
    ///
    /// Errors: [`Error::NotRunning`] when not running; [`Error::Io`] when the signal fails.
    pub fn stop(&mut self) -> Result<ExitStatus> {
        self.signal("CONT")?;
        self.signal("TERM")?;
        let deadline = Instant::now() + self.options.start_timeout;
        let mut child = self.take_child()?;
        loop {
            match child.try_wait() {
                Ok(Some(status)) => return Ok(status),
                Ok(None) if Instant::now() < deadline => std::thread::sleep(POLL),
                Ok(None) => {
                    let _ = child.kill();
                    return child.wait().map_err(io("waiting for redis-server"));
                }
                Err(e) => return Err(io("waiting for redis-server")(e)),
            }
        }
    }

    /// Kills the server with SIGKILL (a crash: no AOF flush beyond the fsync policy) and
    /// waits for it to exit.
    ///
    /// Errors: [`Error::NotRunning`] when not running; [`Error::Io`] when the kill fails.
    pub fn kill(&mut self) -> Result<()> {
        let mut child = self.take_child()?;
        child.kill().map_err(io("killing redis-server"))?;
        child.wait().map_err(io("waiting for redis-server"))?;
        Ok(())
    }

    /// Starts the server again on the same port and directory, so what its AOF held is
    /// back; stops it first (SIGTERM) if it is running. Waits for `PONG`, which Redis only
    /// answers once the AOF is loaded.
    ///
    /// Errors: as [`RedisServer::start`] (the port may have been taken meanwhile).
    pub fn restart(&mut self) -> Result<()> {
        if self.child.is_some() {
            self.stop()?;
        }
        self.spawn()
    }

    /// Freezes the server with SIGSTOP: connections stay open but nothing is answered, like
    /// a stalled host.
    ///
    /// Errors: [`Error::NotRunning`] when not running; [`Error::Io`] when the signal fails.
    pub fn pause(&mut self) -> Result<()> {
        self.signal("STOP")
    }

    /// Lets a paused server run again (SIGCONT).
    ///
    /// Errors: [`Error::NotRunning`] when not running; [`Error::Io`] when the signal fails.
    pub fn resume(&mut self) -> Result<()> {
        self.signal("CONT")
    }

    /// Whether the server answers `PING` with `PONG` within `timeout`.
    pub fn ping(&self, timeout: Duration) -> bool {
        ping(self.port, timeout)
    }

    fn spawn(&mut self) -> Result<()> {
        let log = self.dir.join("redis.log");
        let mut cmd = Command::new(&self.options.program);
        cmd.arg("--port")
            .arg(self.port.to_string())
            .arg("--bind")
            .arg("127.0.0.1")
            .args(self.options.also_bind.iter().map(ToString::to_string))
            .arg("--dir")
            .arg(&self.dir)
            .arg("--logfile")
            .arg(&log)
            .args(["--save", ""])
            .args(["--daemonize", "no"])
            .arg("--appendonly")
            .arg(if self.options.append_only {
                "yes"
            } else {
                "no"
            })
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if !self.options.also_bind.is_empty() {
            cmd.args(["--protected-mode", "no"]);
        }
        if self.options.fsync_always {
            cmd.args(["--appendfsync", "always"]);
        }
        let child = match cmd.spawn() {
            Ok(child) => child,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Error::NotFound),
            Err(e) => return Err(io("spawning redis-server")(e)),
        };
        self.child = Some(child);
        self.wait_ready()
    }

    fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + self.options.start_timeout;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                return Err(self.not_ready(format!("exited with {status}")));
            }
            let pid = self.child.as_ref().map_or(0, Child::id);
            if ready_as(self.port, pid, POLL * 10) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let _ = self.kill();
                let limit = self.options.start_timeout;
                return Err(self.not_ready(format!("no PONG within {limit:?}")));
            }
            std::thread::sleep(POLL);
        }
    }

    fn not_ready(&self, reason: String) -> Error {
        Error::NotReady {
            port: self.port,
            reason,
            log_tail: self.log_tail(),
        }
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("redis.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(5)..].join(" | ")
    }

    fn log_says_address_in_use(&self) -> bool {
        self.log_tail().contains("Address already in use")
    }

    fn take_child(&mut self) -> Result<Child> {
        self.child
            .take()
            .ok_or(Error::NotRunning { port: self.port })
    }

    /// Sends `SIG{name}` with `kill(1)`: std has no signal API and this crate forbids `unsafe`.
    fn signal(&mut self, name: &str) -> Result<()> {
        let pid = self
            .child
            .as_ref()
            .ok_or(Error::NotRunning { port: self.port })?
            .id();
        let what = || format!("sending SIG{name} to redis-server (pid {pid})");
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(pid.to_string())
            .status()
            .map_err(|e| io(what())(e))?;
        if status.success() {
            Ok(())
        } else {
            Err(io(what())(std::io::Error::other(format!(
                "kill exited with {status}"
            ))))
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SIGKILL ends a stopped (paused) process too.
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Pause between readiness checks.
const POLL: Duration = Duration::from_millis(10);

/// Whether 127.0.0.1:`port` answers `PING` with `+PONG` within `timeout` (a `-LOADING` reply
/// while the AOF is replayed counts as not ready).
fn ping(port: u16, timeout: Duration) -> bool {
    let reply = ask(port, timeout, b"*1\r\n$4\r\nPING\r\n", |r| {
        line_end(r).is_some()
    });
    reply.is_some_and(|r| r == b"+PONG\r\n")
}

/// Whether the server answering on 127.0.0.1:`port` is ready (`PONG`) and is process `pid`:
/// when another test's server took the port first, ours exits but theirs answers `PING`.
fn ready_as(port: u16, pid: u32, timeout: Duration) -> bool {
    let request = b"*1\r\n$4\r\nPING\r\n*2\r\n$4\r\nINFO\r\n$6\r\nserver\r\n";
    let Some(reply) = ask(port, timeout, request, |r| {
        line_end(r).is_some_and(|end| bulk_complete(&r[end..]))
    }) else {
        return false;
    };
    let Some(info) = reply.strip_prefix(b"+PONG\r\n") else {
        return false;
    };
    let needle = format!("\r\nprocess_id:{pid}\r\n");
    info.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// Sends `request` (RESP) and reads until `done` says the replies are all in, the server
/// closes, or `timeout` passes without a byte.
fn ask(
    port: u16,
    timeout: Duration,
    request: &[u8],
    done: impl Fn(&[u8]) -> bool,
) -> Option<Vec<u8>> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = TcpStream::connect_timeout(&addr, timeout).ok()?;
    stream.set_read_timeout(Some(timeout)).ok()?;
    stream.write_all(request).ok()?;
    let mut reply = Vec::new();
    let mut buf = [0u8; 4096];
    while !done(&reply) {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return None,
            Ok(n) => reply.extend_from_slice(&buf[..n]),
        }
    }
    Some(reply)
}

/// Where the first line of `reply` ends (just past its `\r\n`), if it is in.
fn line_end(reply: &[u8]) -> Option<usize> {
    reply.windows(2).position(|w| w == b"\r\n").map(|i| i + 2)
}

/// Whether `reply` holds a whole reply that is a bulk string (`$<len>\r\n<data>\r\n`) or
/// a one-line reply (an error).
fn bulk_complete(reply: &[u8]) -> bool {
    let Some(end) = line_end(reply) else {
        return false;
    };
    if reply.first() != Some(&b'$') {
        return true;
    }
    let len = std::str::from_utf8(&reply[1..end - 2])
        .ok()
        .and_then(|n| n.parse::<usize>().ok());
    len.is_some_and(|len| reply.len() >= end + len + 2)
}

/// A port the OS just handed out on loopback (and that is free again once the probe closes).
fn free_port() -> Result<u16> {
    let probe = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(io("picking a free port"))?;
    let port = probe
        .local_addr()
        .map_err(io("picking a free port"))?
        .port();
    Ok(port)
}

/// A new empty directory under the system temp dir, unique to this process and call.
fn fresh_dir() -> Result<PathBuf> {
    static COUNT: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let dir = std::env::temp_dir().join(format!(
        "dispatch-redis-test-{}-{}-{nanos}",
        std::process::id(),
        COUNT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).map_err(io(format!("creating {}", dir.display())))?;
    Ok(dir)
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let what = what.into();
    move |source| Error::Io { what, source }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;

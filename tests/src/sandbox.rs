//! Separate processes on loopback: one `dispatch-server run <service>` per service, each of
//! which a test may kill (`SIGKILL`), stop gracefully (`SIGTERM`), pause (`SIGSTOP`/`SIGCONT`)
//! and start again on the same address. A test may add replicas (a second intake or
//! notification process, more district nodes) beside the five. Each child's stdout and stderr
//! go to its own log file ([`ProcessCluster::log`]); a test that panics prints their tails.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::Endpoints;

/// The services, by the name `dispatch-server run` takes, with their health service names.
pub const SERVICES: [(&str, &str); 5] = [
    ("intake", dispatch_proto::service_names::INTAKE),
    ("geo-router", dispatch_proto::service_names::GEO_ROUTER),
    ("district", dispatch_proto::service_names::DISTRICT),
    ("case-squad", dispatch_proto::service_names::CASE_SQUAD),
    ("notification", dispatch_proto::service_names::NOTIFICATION),
];

/// How long a service may take to report SERVING (the district and case squad first fetch the
/// directory; the district rebuilds its journals).
const READY_WITHIN: Duration = Duration::from_secs(60);

#[derive(Debug)]
struct Service {
    name: &'static str,
    health_name: &'static str,
    addr: SocketAddr,
    args: Vec<String>,
    child: Option<Child>,
}

/// The five services, each its own child process, and any replicas added; killed on drop.
#[derive(Debug)]
pub struct ProcessCluster {
    bin: PathBuf,
    services: Vec<Service>,
    /// Where the children's logs go (`{name}.log`, appended across restarts); removed on drop
    /// unless the test panicked.
    log_dir: PathBuf,
    /// Where each service answers.
    pub endpoints: Endpoints,
}

/// A free loopback port (bound, then released for the child to take).
fn free_port() -> std::io::Result<SocketAddr> {
    TcpListener::bind("127.0.0.1:0")?.local_addr()
}

/// Sends `signal` (`TERM`, `STOP`, `CONT`, ...) to `pid` with the `kill` command (the
/// workspace forbids `unsafe`, so no libc call).
fn signal(pid: u32, signal: &str) -> anyhow::Result<()> {
    let status = Command::new("kill")
        .args([format!("-{signal}"), pid.to_string()])
        .status()?;
    anyhow::ensure!(status.success(), "kill -{signal} {pid} failed: {status}");
    Ok(())
}

impl ProcessCluster {
    /// Starts the five services from the `dispatch-server` binary at `bin`, with extra
    /// arguments `extra` for every process (e.g. `--map`, `--redis`), and waits until every one
    /// reports SERVING (at most 60 s each).
    ///
    /// Errors: a port cannot be reserved, a process cannot start or exits, or health never
    /// reports SERVING.
    pub async fn start(bin: &Path, extra: &[&str]) -> anyhow::Result<Self> {
        let mut addrs = Vec::new();
        for _ in &SERVICES {
            addrs.push(free_port()?);
        }
        let peer_flags: Vec<String> = SERVICES
            .iter()
            .zip(&addrs)
            .flat_map(|((name, _), addr)| [format!("--{name}"), addr.to_string()])
            .collect();
        let services = SERVICES
            .iter()
            .zip(&addrs)
            .map(|((name, health_name), addr)| {
                let mut args: Vec<String> = vec![
                    "run".into(),
                    (*name).into(),
                    "--listen".into(),
                    addr.to_string(),
                ];
                args.extend(peer_flags.iter().cloned());
                args.extend(extra.iter().map(|s| (*s).to_owned()));
                Service {
                    name,
                    health_name,
                    addr: *addr,
                    args,
                    child: None,
                }
            })
            .collect();
        let url = |i: usize| format!("http://{}", addrs[i]);
        let log_dir = std::env::temp_dir().join(format!(
            "dispatch-sandbox-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos()
        ));
        std::fs::create_dir_all(&log_dir)?;
        let mut cluster = Self {
            bin: bin.to_owned(),
            services,
            log_dir,
            endpoints: Endpoints {
                intake: url(0),
                geo_router: url(1),
                district: url(2),
                case_squad: url(3),
                notification: url(4),
            },
        };
        for i in 0..cluster.services.len() {
            cluster.spawn(i)?;
        }
        for i in 0..cluster.services.len() {
            cluster.wait_serving(i).await?;
        }
        Ok(cluster)
    }

    /// Starts one more district node named `name` (also its cluster node id, `--node-id`) on
    /// a free loopback port, with the flags of `district`, and waits until it reports SERVING.
    /// For a cluster started with `--redis`: the nodes then share the districts.
    ///
    /// Errors: a port cannot be reserved, the process cannot start, or it never serves.
    pub async fn add_district_node(&mut self, name: &'static str) -> anyhow::Result<SocketAddr> {
        self.add_replica("district", name).await
    }

    /// Starts a replica of `service` (`intake`, `notification`, `district`, ...) named `name`
    /// on a free loopback port, with the flags of the first `service` process (same peers, same
    /// `--redis`), and waits until it reports SERVING; answers its address. A district replica
    /// also gets `--node-id {name}` (in place of the first node's, if `start` was given one), so
    /// it joins the cluster of district nodes under that id
    /// (and keeps it across [`restart`](Self::restart)). The other services keep talking to
    /// the first process; the replica serves whoever calls it. `name` then addresses it in
    /// [`kill`](Self::kill), [`pause`](Self::pause), [`log`](Self::log)...
    ///
    /// Errors: no such service, `name` already taken, a port cannot be reserved, the process
    /// cannot start, or it never serves.
    pub async fn add_replica(
        &mut self,
        service: &str,
        name: &'static str,
    ) -> anyhow::Result<SocketAddr> {
        let first = self.index(service)?;
        anyhow::ensure!(
            self.index(name).is_err(),
            "a service {name:?} is running already"
        );
        let addr = free_port()?;
        let mut args = self.services[first].args.clone();
        // `run {service} --listen {addr} ...`
        args[3] = addr.to_string();
        if service == "district" {
            match args.iter().position(|a| a == "--node-id") {
                // The first node's own id, given in `start`'s extra flags.
                Some(flag) if flag + 1 < args.len() => args[flag + 1] = name.to_owned(),
                _ => args.extend(["--node-id".to_owned(), name.to_owned()]),
            }
        }
        self.services.push(Service {
            name,
            health_name: self.services[first].health_name,
            addr,
            args,
            child: None,
        });
        let i = self.services.len() - 1;
        self.spawn(i)?;
        self.wait_serving(i).await?;
        Ok(addr)
    }

    /// Where service `name` answers (`http://host:port`).
    ///
    /// Errors: no such service.
    pub fn endpoint(&self, name: &str) -> anyhow::Result<String> {
        Ok(format!("http://{}", self.services[self.index(name)?].addr))
    }

    /// What service `name` wrote to stdout and stderr so far, across its restarts (it runs
    /// with `RUST_LOG=warn`).
    ///
    /// Errors: no such service, or its log cannot be read.
    pub fn log(&self, name: &str) -> anyhow::Result<String> {
        self.index(name)?;
        let path = self.log_path(name);
        std::fs::read_to_string(&path)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))
    }

    fn log_path(&self, name: &str) -> PathBuf {
        self.log_dir.join(format!("{name}.log"))
    }

    fn index(&self, name: &str) -> anyhow::Result<usize> {
        self.services
            .iter()
            .position(|s| s.name == name)
            .ok_or_else(|| anyhow::anyhow!("no service {name:?}"))
    }

    fn spawn(&mut self, i: usize) -> anyhow::Result<()> {
        let log_path = self.log_path(self.services[i].name);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| anyhow::anyhow!("cannot open {}: {e}", log_path.display()))?;
        let s = &mut self.services[i];
        let child = Command::new(&self.bin)
            .args(&s.args)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .spawn()
            .map_err(|e| anyhow::anyhow!("cannot start {} {}: {e}", self.bin.display(), s.name))?;
        s.child = Some(child);
        Ok(())
    }

    async fn wait_serving(&self, i: usize) -> anyhow::Result<()> {
        let s = &self.services[i];
        crate::serving(&format!("http://{}", s.addr), s.health_name, READY_WITHIN)
            .await
            .with_context(|| format!("{} not serving", s.name))
    }

    fn pid(&self, name: &str) -> anyhow::Result<u32> {
        let i = self.index(name)?;
        self.services[i]
            .child
            .as_ref()
            .map(Child::id)
            .ok_or_else(|| anyhow::anyhow!("{name} is not running"))
    }

    /// `kill -9` of service `name`; returns once it is gone.
    ///
    /// Errors: no such service, or it is not running.
    pub fn kill(&mut self, name: &str) -> anyhow::Result<()> {
        let i = self.index(name)?;
        let mut child = self.services[i]
            .child
            .take()
            .ok_or_else(|| anyhow::anyhow!("{name} is not running"))?;
        child.kill()?;
        child.wait()?;
        Ok(())
    }

    /// Starts service `name` again on its address and waits until it reports SERVING.
    ///
    /// Errors: no such service, it is still running, or it does not come up.
    pub async fn restart(&mut self, name: &str) -> anyhow::Result<()> {
        let i = self.index(name)?;
        anyhow::ensure!(self.services[i].child.is_none(), "{name} is still running");
        self.spawn(i)?;
        self.wait_serving(i).await
    }

    /// `SIGTERM` to service `name`, then waits at most `within` for it to exit; returns its
    /// exit status and how long it took.
    ///
    /// Errors: no such service, not running, or still running after `within` (then killed).
    pub async fn terminate(
        &mut self,
        name: &str,
        within: Duration,
    ) -> anyhow::Result<(ExitStatus, Duration)> {
        let pid = self.pid(name)?;
        let i = self.index(name)?;
        let started = Instant::now();
        signal(pid, "TERM")?;
        let mut child = self.services[i]
            .child
            .take()
            .ok_or_else(|| anyhow::anyhow!("{name} is not running"))?;
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok((status, started.elapsed()));
            }
            if started.elapsed() > within {
                let _ = child.kill();
                let _ = child.wait();
                anyhow::bail!("{name} still running {within:?} after SIGTERM");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `SIGSTOP` to service `name`: it holds its sockets but answers nothing.
    ///
    /// Errors: no such service, or not running.
    pub fn pause(&self, name: &str) -> anyhow::Result<()> {
        signal(self.pid(name)?, "STOP")
    }

    /// `SIGCONT` to service `name`.
    ///
    /// Errors: no such service, or not running.
    pub fn resume(&self, name: &str) -> anyhow::Result<()> {
        signal(self.pid(name)?, "CONT")
    }

    /// Resident memory of service `name` now, bytes (`VmRSS` of `/proc/<pid>/status`; Linux).
    ///
    /// Errors: no such service, not running, or no `/proc`.
    pub fn rss_bytes(&self, name: &str) -> anyhow::Result<u64> {
        let pid = self.pid(name)?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        let kib = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .ok_or_else(|| anyhow::anyhow!("no VmRSS for {name} (pid {pid})"))?;
        Ok(kib * 1024)
    }

    /// Whether every service is running (none exited by itself).
    pub fn all_running(&mut self) -> bool {
        self.services.iter_mut().all(|s| {
            s.child
                .as_mut()
                .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
        })
    }
}

/// How much of each child's log a panicking test prints.
const LOG_TAIL_BYTES: usize = 4_000;

impl Drop for ProcessCluster {
    fn drop(&mut self) {
        for s in &mut self.services {
            if let Some(child) = &mut s.child {
                // A paused child would not die of SIGKILL until continued on some kernels.
                let _ = signal(child.id(), "CONT");
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        if std::thread::panicking() {
            for s in &self.services {
                let log = std::fs::read_to_string(self.log_path(s.name)).unwrap_or_default();
                let mut from = log.len().saturating_sub(LOG_TAIL_BYTES);
                while !log.is_char_boundary(from) {
                    from += 1;
                }
                eprintln!("--- {} (end of its log) ---\n{}", s.name, &log[from..]);
            }
            eprintln!("logs kept in {}", self.log_dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.log_dir);
        }
    }
}

//! Separate processes on loopback: one `dispatch-server run <service>` per service.

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::{Endpoints, eventually};

/// The five services, each its own child process; killed on drop.
#[derive(Debug)]
pub struct ProcessCluster {
    children: Vec<(String, Child)>,
    /// Where each service answers.
    pub endpoints: Endpoints,
}

/// A free loopback port (bound, then released for the child to take).
fn free_port() -> std::io::Result<SocketAddr> {
    TcpListener::bind("127.0.0.1:0")?.local_addr()
}

impl ProcessCluster {
    /// Starts the five services from the `dispatch-server` binary at `bin`, with extra
    /// arguments `extra` for every process (e.g. `--map`), and waits until every one reports
    /// SERVING (at most 60 s; the district and case squad first fetch the directory).
    ///
    /// Errors: a port cannot be reserved, a process cannot start or exits, or health never
    /// reports SERVING.
    pub async fn start(bin: &Path, extra: &[&str]) -> anyhow::Result<Self> {
        let names = [
            ("intake", dispatch_proto::service_names::INTAKE),
            ("geo-router", dispatch_proto::service_names::GEO_ROUTER),
            ("district", dispatch_proto::service_names::DISTRICT),
            ("case-squad", dispatch_proto::service_names::CASE_SQUAD),
            ("notification", dispatch_proto::service_names::NOTIFICATION),
        ];
        let mut addrs = Vec::new();
        for _ in &names {
            addrs.push(free_port()?);
        }
        let peer_flags: Vec<String> = names
            .iter()
            .zip(&addrs)
            .flat_map(|((name, _), addr)| [format!("--{name}"), addr.to_string()])
            .collect();
        let mut children = Vec::new();
        for ((name, _), addr) in names.iter().zip(&addrs) {
            let child = Command::new(bin)
                .args(["run", name, "--listen", &addr.to_string()])
                .args(&peer_flags)
                .args(extra)
                .env("RUST_LOG", "warn")
                .stdin(Stdio::null())
                .spawn()
                .map_err(|e| anyhow::anyhow!("cannot start {} {name}: {e}", bin.display()))?;
            children.push((name.to_string(), child));
        }
        let url = |i: usize| format!("http://{}", addrs[i]);
        let cluster = Self {
            children,
            endpoints: Endpoints {
                intake: url(0),
                geo_router: url(1),
                district: url(2),
                case_squad: url(3),
                notification: url(4),
            },
        };
        for (i, (name, service)) in names.iter().enumerate() {
            let endpoint = url(i);
            eventually(Duration::from_secs(60), || {
                let endpoint = endpoint.clone();
                async move {
                    let channel = tonic::transport::Channel::from_shared(endpoint)?
                        .connect()
                        .await?;
                    let mut client = HealthClient::new(channel);
                    let status = client
                        .check(HealthCheckRequest {
                            service: service.to_string(),
                        })
                        .await?
                        .into_inner()
                        .status;
                    anyhow::ensure!(
                        status == ServingStatus::Serving as i32,
                        "{name} not serving yet"
                    );
                    Ok(())
                }
            })
            .await?;
        }
        Ok(cluster)
    }

    /// Whether every child is still running.
    pub fn all_running(&mut self) -> bool {
        self.children
            .iter_mut()
            .all(|(_, c)| matches!(c.try_wait(), Ok(None)))
    }
}

impl Drop for ProcessCluster {
    fn drop(&mut self) {
        for (_, child) in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

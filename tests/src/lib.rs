//! What the cross-service tests share:
//! - [`sandbox`]: starts the five services as separate processes on free loopback ports, waits
//!   until each reports SERVING on the gRPC health service, and kills them when dropped;
//! - [`flow`]: the call flows a test runs against any cluster, given its service addresses, so
//!   the embedded and the separate-process modes pass exactly the same checks;
//! - [`leases`]: the district leases in Redis, and waiting until they settle;
//! - [`netns`]: a network namespace on a veth pair, to run a process as another host and
//!   partition it with `tc`;
//! - [`steady`]: a steady flow of calls and terminals that keeps running through faults and
//!   tells at the end whether every call was served once;
//! - [`eventually`]: retries a check of state that settles over time; [`serving`] waits for a
//!   service's health to report SERVING.

pub mod flow;
pub mod leases;
pub mod netns;
pub mod sandbox;
pub mod steady;

use std::future::Future;
use std::time::Duration;

/// Retries `check` every 20 ms until it returns `Ok`, for at most `within`; returns the last
/// error when time runs out. For state that settles asynchronously (an update fanned out over
/// the notification feed), never for timing assertions.
pub async fn eventually<T, F, Fut>(within: Duration, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<T>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match check().await {
            Ok(v) => return Ok(v),
            Err(e) if tokio::time::Instant::now() >= deadline => {
                return Err(e.context(format!("still failing after {within:?}")));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

/// Addresses of the five services (`http://host:port`); in the embedded mode all are equal.
#[derive(Debug, Clone)]
pub struct Endpoints {
    /// Intake.
    pub intake: String,
    /// Geo-router.
    pub geo_router: String,
    /// District service.
    pub district: String,
    /// Case squad.
    pub case_squad: String,
    /// Notification.
    pub notification: String,
}

impl Endpoints {
    /// Every service at one address (the embedded cluster).
    pub fn all_at(addr: std::net::SocketAddr) -> Self {
        let a = format!("http://{addr}");
        Self {
            intake: a.clone(),
            geo_router: a.clone(),
            district: a.clone(),
            case_squad: a.clone(),
            notification: a,
        }
    }
}

/// Waits until the gRPC health service at `endpoint` (`http://host:port`) reports
/// `health_name` SERVING, for at most `within`.
///
/// Errors: the last failure (no connection, not serving yet) when time runs out.
pub async fn serving(endpoint: &str, health_name: &str, within: Duration) -> anyhow::Result<()> {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    eventually(within, || async move {
        let channel = tonic::transport::Channel::from_shared(endpoint.to_owned())?
            .connect()
            .await?;
        let status = HealthClient::new(channel)
            .check(HealthCheckRequest {
                service: health_name.to_owned(),
            })
            .await?
            .into_inner()
            .status;
        anyhow::ensure!(
            status == ServingStatus::Serving as i32,
            "{health_name} at {endpoint} not serving yet"
        );
        Ok(())
    })
    .await
}

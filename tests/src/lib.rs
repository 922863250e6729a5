//! What the cross-service tests share:
//! - [`sandbox`]: starts the five services as separate processes on free loopback ports, waits
//!   until each reports SERVING on the gRPC health service, and kills them when dropped;
//! - [`flow`]: the call flows a test runs against any cluster, given its service addresses, so
//!   the embedded and the separate-process modes pass exactly the same checks;
//! - [`steady`]: a steady flow of calls and terminals that keeps running through faults and
//!   tells at the end whether every call was served once;
//! - [`eventually`]: retries a check of state that settles over time.

pub mod flow;
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

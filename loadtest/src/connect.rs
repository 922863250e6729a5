//! Connections to the cluster: the five service addresses and pools of gRPC channels.
//!
//! One tonic `Channel` (and its clones) is one HTTP/2 connection, which caps at about 50k
//! unary calls/s on this class of machine (STACK.md); unary RPCs therefore go round-robin over a
//! few channels per service, and the terminals' long-lived streams are spread over their own
//! channels, [`TERMINALS_PER_CHANNEL`] terminals each, so no connection carries more than a
//! couple of hundred concurrent streams.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use dispatch_proto::v1::case_squad_client::CaseSquadClient;
use dispatch_proto::v1::district_service_client::DistrictServiceClient;
use dispatch_proto::v1::geo_router_client::GeoRouterClient;
use dispatch_proto::v1::intake_client::IntakeClient;
use dispatch_proto::v1::notification_client::NotificationClient;
use tonic::transport::{Channel, Endpoint};

use crate::{Error, Result};

/// Channels per service for unary RPCs.
pub const UNARY_CHANNELS: usize = 4;

/// Terminals sharing one stream channel (each has a `Subscribe` stream and, while driving, a
/// `ReportLocation` stream). 100 keeps a connection under hyper's common default limit of 200
/// concurrent streams even if a server sets it.
pub const TERMINALS_PER_CHANNEL: usize = 100;

/// Deadline of a unary RPC, real time.
pub const UNARY_TIMEOUT: Duration = Duration::from_secs(30);

/// Where the five services are, `host:port` or `http://host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Addresses {
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

impl Addresses {
    /// All five services on one address (the embedded cluster, the all-in-one server).
    pub fn all(addr: impl Into<String>) -> Self {
        let a = addr.into();
        Self {
            intake: a.clone(),
            geo_router: a.clone(),
            district: a.clone(),
            case_squad: a.clone(),
            notification: a,
        }
    }
}

/// The URI of `addr` (`http://` added when it has no scheme).
pub fn uri(addr: &str) -> String {
    if addr.contains("://") {
        addr.to_string()
    } else {
        format!("http://{addr}")
    }
}

/// A few channels to one service, handed out round-robin.
#[derive(Debug, Clone)]
pub struct Pool {
    channels: Arc<Vec<Channel>>,
    next: Arc<AtomicUsize>,
}

impl Pool {
    /// Opens `n` (at least 1) connections to `service` at `addr`; `unary` sets the RPC deadline
    /// [`UNARY_TIMEOUT`] (streams must not have one: a drive or a subscription outlives it).
    ///
    /// Errors: [`Error::Connect`] when the address is malformed or does not answer.
    pub async fn connect(service: &'static str, addr: &str, n: usize, unary: bool) -> Result<Self> {
        let err = |message: String| Error::Connect {
            service,
            addr: addr.to_string(),
            message,
        };
        let mut endpoint = Endpoint::from_shared(uri(addr))
            .map_err(|e| err(e.to_string()))?
            .connect_timeout(Duration::from_secs(5))
            .tcp_nodelay(true);
        if unary {
            endpoint = endpoint.timeout(UNARY_TIMEOUT);
        }
        let channels = futures::future::try_join_all((0..n.max(1)).map(|_| endpoint.connect()))
            .await
            .map_err(|e| err(format!("{e} ({e:?})")))?;
        Ok(Self {
            channels: Arc::new(channels),
            next: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// The next channel, round-robin.
    pub fn pick(&self) -> Channel {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.channels.len();
        self.channels[i].clone()
    }

    /// Channel `i` modulo the pool size (to pin a terminal to one connection).
    pub fn get(&self, i: usize) -> Channel {
        self.channels[i % self.channels.len()].clone()
    }

    /// Number of connections.
    pub fn len(&self) -> usize {
        self.channels.len()
    }

    /// Never true (a pool has at least one connection); for clippy's `len` convention.
    pub fn is_empty(&self) -> bool {
        self.channels.is_empty()
    }
}

/// Unary clients of the five services.
#[derive(Debug, Clone)]
pub struct Clients {
    intake: Pool,
    geo_router: Pool,
    district: Pool,
    case_squad: Pool,
    /// The addresses, for opening stream pools later.
    pub addresses: Addresses,
}

impl Clients {
    /// Connects [`UNARY_CHANNELS`] channels to each service.
    ///
    /// Errors: [`Error::Connect`] naming the service that does not answer.
    pub async fn connect(addresses: &Addresses) -> Result<Self> {
        let (intake, geo_router, district, case_squad) = tokio::try_join!(
            Pool::connect("intake", &addresses.intake, UNARY_CHANNELS, true),
            Pool::connect("geo-router", &addresses.geo_router, 1, true),
            Pool::connect("district", &addresses.district, UNARY_CHANNELS, true),
            Pool::connect("case-squad", &addresses.case_squad, 1, true),
        )?;
        Ok(Self {
            intake,
            geo_router,
            district,
            case_squad,
            addresses: addresses.clone(),
        })
    }

    /// An intake client on the next channel.
    pub fn intake(&self) -> IntakeClient<Channel> {
        IntakeClient::new(self.intake.pick())
    }

    /// A geo-router client.
    pub fn geo_router(&self) -> GeoRouterClient<Channel> {
        GeoRouterClient::new(self.geo_router.pick())
    }

    /// A district-service client on the next channel.
    pub fn district(&self) -> DistrictServiceClient<Channel> {
        DistrictServiceClient::new(self.district.pick())
    }

    /// A case-squad client.
    pub fn case_squad(&self) -> CaseSquadClient<Channel> {
        CaseSquadClient::new(self.case_squad.pick())
    }
}

/// Channels for the terminals' streams: `Subscribe` (notification) and `ReportLocation`
/// (district), [`TERMINALS_PER_CHANNEL`] terminals per connection.
#[derive(Debug, Clone)]
pub struct StreamPools {
    notification: Pool,
    district: Pool,
}

impl StreamPools {
    /// Opens enough connections for `terminals` terminals.
    ///
    /// Errors: [`Error::Connect`].
    pub async fn connect(addresses: &Addresses, terminals: usize) -> Result<Self> {
        let n = terminals.div_ceil(TERMINALS_PER_CHANNEL).max(1);
        let (notification, district) = tokio::try_join!(
            Pool::connect("notification", &addresses.notification, n, false),
            Pool::connect("district", &addresses.district, n, false),
        )?;
        Ok(Self {
            notification,
            district,
        })
    }

    /// The notification client of terminal `i`.
    pub fn notification(&self, i: usize) -> NotificationClient<Channel> {
        NotificationClient::new(self.notification.get(i))
    }

    /// The district client for terminal `i`'s GPS stream.
    pub fn district(&self, i: usize) -> DistrictServiceClient<Channel> {
        DistrictServiceClient::new(self.district.get(i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_adds_a_scheme_only_when_missing() {
        assert_eq!(uri("127.0.0.1:50051"), "http://127.0.0.1:50051");
        assert_eq!(uri("http://[::1]:7"), "http://[::1]:7");
    }

    #[tokio::test]
    async fn refused_connection_names_the_service() {
        // Port 1 on loopback: nothing listens there (privileged, never bound by tests).
        let e = Pool::connect("intake", "127.0.0.1:1", 1, true)
            .await
            .expect_err("must fail");
        assert!(e.to_string().contains("intake at 127.0.0.1:1"), "{e}");
        assert_eq!(e.exit_code(), 1);
        let e = Pool::connect("intake", "not an address", 1, true)
            .await
            .expect_err("must fail");
        assert!(matches!(e, Error::Connect { .. }), "{e}");
    }
}

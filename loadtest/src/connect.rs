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

/// Where the five services are: each `host:port` or `http://host:port`, or a comma-separated
/// list of the service's replicas.
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

/// The replica addresses of a comma-separated list of one service's flag (`--intake a,b`).
///
/// Errors: [`Error::Usage`] naming `flag` for an empty item or an item that is not an address.
pub fn replicas(flag: &str, list: &str) -> Result<Vec<String>> {
    dispatch_bus::ports::replicas(list).map_err(|e| Error::Usage(format!("{flag}: {e}")))
}

/// A few channels to each replica of one service: unary calls go round-robin over all of them
/// (so over the replicas), a terminal's stream is pinned to one replica and moves to the next
/// one ([`Pool::stream`]) when it breaks.
#[derive(Debug, Clone)]
pub struct Pool {
    /// The replicas that answered at start, in the order given; each with at least one channel.
    replicas: Arc<Vec<Vec<Channel>>>,
    /// Every channel, replicas interleaved (`r0c0, r1c0, r0c1, ...`), for round-robin.
    flat: Arc<Vec<Channel>>,
    next: Arc<AtomicUsize>,
}

impl Pool {
    /// Opens `n` (at least 1) connections to each replica of `service` in `addrs` (one
    /// address or a comma-separated list); `unary` sets the RPC deadline [`UNARY_TIMEOUT`]
    /// (streams must not have one: a drive or a subscription outlives it). A replica that does
    /// not answer is left out of the run with a warning, as long as one does.
    ///
    /// Errors: [`Error::Connect`] naming the service when an address is malformed or no
    /// replica answers.
    pub async fn connect(
        service: &'static str,
        addrs: &str,
        n: usize,
        unary: bool,
    ) -> Result<Self> {
        let err = |addr: &str, message: String| Error::Connect {
            service,
            addr: addr.to_string(),
            message,
        };
        let list = dispatch_bus::ports::replicas(addrs).map_err(|e| err(addrs, e.to_string()))?;
        let mut endpoints = Vec::with_capacity(list.len());
        for addr in &list {
            let mut endpoint = Endpoint::from_shared(uri(addr))
                .map_err(|e| err(addr, e.to_string()))?
                .connect_timeout(Duration::from_secs(5))
                .tcp_nodelay(true);
            if unary {
                endpoint = endpoint.timeout(UNARY_TIMEOUT);
            }
            endpoints.push(endpoint);
        }
        let opened = futures::future::join_all(endpoints.iter().map(|endpoint| {
            futures::future::try_join_all((0..n.max(1)).map(|_| endpoint.connect()))
        }))
        .await;
        let mut replicas = Vec::with_capacity(list.len());
        let mut last_error = String::new();
        for (addr, result) in list.iter().zip(opened) {
            match result {
                Ok(channels) => replicas.push(channels),
                Err(e) => {
                    last_error = format!("{e} ({e:?})");
                    tracing::warn!(service, replica = %addr, error = %last_error,
                        "a replica does not answer; the run goes on without it");
                }
            }
        }
        if replicas.is_empty() {
            return Err(err(addrs, last_error));
        }
        let longest = replicas.iter().map(Vec::len).max().unwrap_or(0);
        let flat = (0..longest)
            .flat_map(|c| replicas.iter().filter_map(move |r| r.get(c).cloned()))
            .collect();
        Ok(Self {
            replicas: Arc::new(replicas),
            flat: Arc::new(flat),
            next: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// The next channel, round-robin over all replicas.
    pub fn pick(&self) -> Channel {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.flat.len();
        self.flat[i].clone()
    }

    /// The channel of stream `i` (a terminal's index) after it moved `hops` times: replica
    /// `(i + hops) mod replicas`, so terminals start spread over the replicas and each break
    /// moves a terminal to the next replica, never back to the one that just failed (with two
    /// or more); within the replica, channel `i / replicas` modulo its channels.
    pub fn stream(&self, i: usize, hops: usize) -> Channel {
        let r = self.replicas.len();
        let replica = &self.replicas[(i % r + hops % r) % r];
        replica[(i / r) % replica.len()].clone()
    }

    /// Channel `i` modulo the pool size.
    pub fn get(&self, i: usize) -> Channel {
        self.flat[i % self.flat.len()].clone()
    }

    /// Number of replicas that answered at start.
    pub fn replica_count(&self) -> usize {
        self.replicas.len()
    }

    /// Number of connections over all replicas.
    pub fn len(&self) -> usize {
        self.flat.len()
    }

    /// Never true (a pool has at least one connection); for clippy's `len` convention.
    pub fn is_empty(&self) -> bool {
        self.flat.is_empty()
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
/// (district), [`TERMINALS_PER_CHANNEL`] terminals per connection, spread over the replicas.
#[derive(Debug, Clone)]
pub struct StreamPools {
    notification: Pool,
    district: Pool,
}

impl StreamPools {
    /// Opens enough connections for `terminals` terminals, on each replica.
    ///
    /// Errors: [`Error::Connect`].
    pub async fn connect(addresses: &Addresses, terminals: usize) -> Result<Self> {
        let (notification, district) = tokio::try_join!(
            Self::pool("notification", &addresses.notification, terminals),
            Self::pool("district", &addresses.district, terminals),
        )?;
        Ok(Self::new(notification, district))
    }

    async fn pool(service: &'static str, addrs: &str, terminals: usize) -> Result<Pool> {
        let replicas = dispatch_bus::ports::replicas(addrs).map_or(1, |r| r.len());
        let per_replica = terminals.div_ceil(replicas * TERMINALS_PER_CHANNEL).max(1);
        Pool::connect(service, addrs, per_replica, false).await
    }

    /// Stream pools over given pools.
    pub fn new(notification: Pool, district: Pool) -> Self {
        Self {
            notification,
            district,
        }
    }

    /// The notification client of terminal `i` after its order stream broke `hops` times
    /// ([`Pool::stream`]).
    pub fn notification(&self, i: usize, hops: usize) -> NotificationClient<Channel> {
        NotificationClient::new(self.notification.stream(i, hops))
    }

    /// The district client for terminal `i`'s GPS stream after it broke `hops` times.
    pub fn district(&self, i: usize, hops: usize) -> DistrictServiceClient<Channel> {
        DistrictServiceClient::new(self.district.stream(i, hops))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
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
        let e = Pool::connect("intake", "127.0.0.1:1,127.0.0.1:1", 1, true)
            .await
            .expect_err("must fail");
        assert!(
            e.to_string().contains("intake at 127.0.0.1:1,127.0.0.1:1"),
            "{e}"
        );
    }

    #[test]
    fn a_replica_list_names_its_flag() {
        assert_eq!(
            replicas("--intake", "a:1, b:2").unwrap(),
            vec!["a:1".to_owned(), "b:2".to_owned()]
        );
        let e = replicas("--notification", "a:1,").unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert_eq!(
            e.to_string(),
            "--notification: replica 1 of \"a:1,\" is empty",
        );
        let e = replicas("--district", "a:1,not an address").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("--district: replica \"not an address\""),
            "{e}"
        );
    }

    /// Serves nothing but HTTP/2 on a free loopback port (a gRPC server without services).
    async fn listener() -> (String, tokio::task::JoinHandle<()>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let server = tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_routes(tonic::service::Routes::default())
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
                .await
                .unwrap();
        });
        (addr, server)
    }

    #[tokio::test]
    async fn a_replica_that_does_not_answer_is_left_out() {
        let (live, server) = listener().await;
        let pool = Pool::connect("notification", &format!("127.0.0.1:1,{live}"), 2, false)
            .await
            .unwrap();
        assert_eq!(pool.replica_count(), 1);
        assert_eq!(pool.len(), 2);
        server.abort();
    }

    #[tokio::test]
    async fn unary_channels_interleave_the_replicas_and_streams_hop_to_the_next() {
        let (a, server_a) = listener().await;
        let (b, server_b) = listener().await;
        let (c, server_c) = listener().await;
        let pool = Pool::connect("district", &format!("{a},{b},{c}"), 2, false)
            .await
            .unwrap();
        assert_eq!((pool.replica_count(), pool.len()), (3, 6));
        // Replica of stream i after h hops: (i + h) mod 3; channel i / 3 mod 2 within it.
        let same = |x: &Channel, y: &Channel| format!("{x:?}") == format!("{y:?}");
        let r = |replica: usize, channel: usize| pool.replicas[replica][channel].clone();
        assert!(same(&pool.stream(0, 0), &r(0, 0)));
        assert!(same(&pool.stream(0, 1), &r(1, 0)));
        assert!(same(&pool.stream(4, 0), &r(1, 1)));
        assert!(same(&pool.stream(4, 2), &r(0, 1)));
        assert!(same(&pool.stream(5, 7), &r(0, 1)));
        assert!(same(&pool.get(1), &r(1, 0)));
        assert!(same(&pool.get(3), &r(0, 1)));
        for server in [server_a, server_b, server_c] {
            server.abort();
        }
    }
}

//! Latency of one call, one at a time, measured side by side in one run:
//! - a bare tonic unary round trip (the gRPC health `Check` of a server serving nothing else):
//!   the floor any gRPC call pays on this machine;
//! - a Redis round trip (`PING`) on the private Redis of this run;
//! - call -> order on the terminal: `ReportIncident` sent until the dispatch order arrives on
//!   the officer's `Subscribe` stream, against the embedded cluster with its state in memory,
//!   and again with its state in Redis (intake's records, the district journals).
//!
//! Each sample is one call on otherwise idle connections (concurrency 1), 2 ms after the last
//! one ended; the order and the `ReportIncident` answer are each timed as they arrive. Between
//! samples the officer acknowledges, arrives and clears, untimed, so every call finds them free.
//!
//! Run: `cargo bench -p dispatch-server --bench call_latency` (needs `redis-server`; set
//! `CALLS=N` for another sample count, default 400).

#![allow(clippy::unwrap_used, missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use dispatch_map::CityMap;
use dispatch_proto::v1;
use dispatch_redis_test::RedisServer;
use dispatch_server::{ClusterConfig, EmbeddedCluster};
use dispatch_tests::Endpoints;
use dispatch_tests::flow::{self, Clients};
use hdrhistogram::Histogram;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

/// Quiet time before each timed call (and each idle `PING`): 2 ms.
const PAUSE: Duration = Duration::from_millis(2);

struct Figures {
    name: &'static str,
    hist: Histogram<u64>,
}

impl Figures {
    fn new(name: &'static str) -> Self {
        Self {
            name,
            hist: Histogram::new_with_bounds(1, 60_000_000, 3).unwrap(),
        }
    }
    fn record(&mut self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1);
        self.hist.saturating_record(us);
    }
    fn p(&self, q: f64) -> f64 {
        self.hist.value_at_quantile(q) as f64 / 1000.0
    }
}

async fn bare_tonic(calls: usize) -> Figures {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (_reporter, health) = tonic_health::server::health_reporter();
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(health)
            .serve_with_incoming(incoming),
    );
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .tcp_nodelay(true)
        .connect()
        .await
        .unwrap();
    let mut client = HealthClient::new(channel);
    let mut f = Figures::new("bare tonic unary round trip");
    for i in 0..calls + 20 {
        let t = Instant::now();
        let _ = client
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await;
        if i >= 20 {
            f.record(t.elapsed());
        }
    }
    server.abort();
    f
}

/// `PING` round trips on one connection, back to back, or with `pause` before each (as the
/// calls have, so every process involved has gone idle when it comes).
async fn redis_ping(url: &str, calls: usize, pause: Option<Duration>) -> Figures {
    let client = redis::Client::open(url).unwrap();
    let mut con = client.get_multiplexed_async_connection().await.unwrap();
    let mut f = Figures::new(if pause.is_some() {
        "redis PING, idle 2 ms before each"
    } else {
        "redis PING round trip"
    });
    for i in 0..calls + 20 {
        if let Some(pause) = pause {
            tokio::time::sleep(pause).await;
        }
        let t = Instant::now();
        let _: String = redis::cmd("PING").query_async(&mut con).await.unwrap();
        if i >= 20 {
            f.record(t.elapsed());
        }
    }
    f
}

/// One Redis step of a call alone, at concurrency 1: `PING` on a connection made the way the
/// services make theirs ([`dispatch_bus::redis_conn`]: a `ConnectionManager` with timeouts),
/// and one feed append (the notification step: the append script through that connection).
async fn redis_steps(url: &str, calls: usize) -> (Figures, Figures) {
    use dispatch_bus::feed::{AudienceKey, FeedStore, Publication, RedisConfig, RedisFeedStore};
    let con = dispatch_bus::redis_conn::connect(url).unwrap();
    let mut ping = Figures::new("redis PING, services' connection");
    for i in 0..calls + 20 {
        let t = Instant::now();
        assert!(dispatch_bus::redis_conn::ping(&con).await);
        if i >= 20 {
            ping.record(t.elapsed());
        }
    }
    let store = RedisFeedStore::connect(
        url,
        Arc::new(dispatch_core::clock::WallClock),
        RedisConfig::default(),
    )
    .await
    .unwrap();
    let mut append = Figures::new("redis feed append, one order");
    let audience = AudienceKey::Officer("bench-officer".into());
    for i in 0..calls + 20 {
        let p = Publication {
            audience: audience.clone(),
            body: v1::NoticeBody {
                kind: Some(v1::notice_body::Kind::DispatchOrder(v1::DispatchOrder {
                    dispatch_id: format!("bench-d/inc-{i}/1"),
                    ..Default::default()
                })),
            },
            id: Some(format!("bench-{i}")),
        };
        let t = Instant::now();
        store.append(vec![p]).await.unwrap();
        if i >= 20 {
            append.record(t.elapsed());
        }
    }
    (ping, append)
}

async fn call_to_order(
    name: &'static str,
    map: Arc<CityMap>,
    redis_url: Option<String>,
    calls: usize,
) -> (Figures, Figures) {
    let redis_url_set = redis_url.is_some();
    let cluster = EmbeddedCluster::start(
        map,
        ClusterConfig {
            redis_url,
            ..ClusterConfig::default()
        },
    )
    .await
    .unwrap();
    let mut c = Clients::connect(&Endpoints::all_at(cluster.addr()))
        .await
        .unwrap();
    let stage = flow::stage(&mut c, 1).await.unwrap();
    let center = stage.district.center.unwrap();
    let officer = stage.officers[0].clone();
    let mut orders = flow::subscribe(&mut c, &officer).await.unwrap();
    flow::sign_on(&mut c, &officer, center).await.unwrap();
    let mut f = Figures::new(name);
    let mut answered = Figures::new(if redis_url_set {
        "ReportIncident answered, Redis"
    } else {
        "ReportIncident answered, in memory"
    });
    let run = format!(
        "{:x}",
        Instant::now().elapsed().as_nanos() ^ std::process::id() as u128
    );
    for i in 0..calls + 20 {
        tokio::time::sleep(PAUSE).await;
        let t = Instant::now();
        // The order and the answer race: each is timed when it arrives.
        let call_id = format!("bench-{run}-{name:.3}-{i}");
        let report = async {
            flow::report(&mut c, &call_id, v1::IncidentCategory::Theft, center)
                .await
                .unwrap();
            t.elapsed()
        };
        let order = async {
            let order = flow::next_order(&mut orders).await.unwrap();
            (order, t.elapsed())
        };
        let (report_took, (order, order_took)) = tokio::join!(report, order);
        if i >= 20 {
            f.record(order_took);
            answered.record(report_took);
        }
        flow::work_order(&mut c, &order, v1::Disposition::Resolved)
            .await
            .unwrap();
    }
    cluster.shutdown().await;
    (f, answered)
}

fn main() {
    let calls: usize = std::env::var("CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(400);
    let redis = RedisServer::start().unwrap_or_else(|e| panic!("{e}"));
    let map = Arc::new(CityMap::builtin().unwrap());
    let system = actix_rt::System::with_tokio_rt(|| {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap()
    });
    let url = redis.url();
    let figures = system.block_on(async move {
        let bare = bare_tonic(calls).await;
        let ping = redis_ping(&url, calls, None).await;
        let idle_ping = redis_ping(&url, calls, Some(PAUSE)).await;
        let (managed_ping, feed_append) = redis_steps(&url, calls).await;
        let (mem, mem_answered) =
            call_to_order("call -> order, in memory", map.clone(), None, calls).await;
        reset_command_stats(&url).await;
        // MONITOR=file: every command of the Redis run, with Redis's timestamps, to see where
        // a call's time goes (slows the run down; not for the figures).
        let _monitor = std::env::var_os("MONITOR").map(|file| {
            let port = url
                .rsplit(':')
                .next()
                .unwrap()
                .trim_end_matches('/')
                .to_owned();
            std::process::Command::new("redis-cli")
                .args(["-p", &port, "monitor"])
                .stdout(std::fs::File::create(file).unwrap())
                .spawn()
                .unwrap()
        });
        let (red, red_answered) =
            call_to_order("call -> order, Redis", map, Some(url.clone()), calls).await;
        let stats = command_stats(&url).await;
        (
            vec![
                bare,
                ping,
                mem,
                red,
                mem_answered,
                red_answered,
                managed_ping,
                feed_append,
                idle_ping,
            ],
            stats,
        )
    });
    let (figures, stats) = figures;
    println!("\n{calls} samples each, one at a time, loopback, this machine");
    println!("{:<34} {:>9} {:>9}", "what", "p50 ms", "p99 ms");
    for f in &figures {
        println!("{:<34} {:>9.3} {:>9.3}", f.name, f.p(0.5), f.p(0.99));
    }
    let (bare, rtt, mem, red) = (&figures[0], &figures[1], &figures[2], &figures[3]);
    println!(
        "\nin memory / bare tonic p50: {:.2}x;  Redis / in memory p50: {:.2}x",
        mem.p(0.5) / bare.p(0.5),
        red.p(0.5) / mem.p(0.5)
    );
    // Where the Redis run spent Redis's time: every command the cluster sent, per call (a call
    // includes its untimed acknowledge, arrive and clear, and the 20 warm-up calls).
    println!(
        "\nRedis commands of the Redis run, per call (incl. its ack/arrive/clear), busiest first"
    );
    println!(
        "{:<28} {:>10} {:>14}",
        "command", "per call", "usec per cmd"
    );
    let per = (calls + 20) as f64;
    for (cmd, n, usec) in &stats {
        println!("{cmd:<28} {:>10.2} {usec:>14.2}", *n as f64 / per);
    }
    // The target in two readings of "a Redis round trip": measured as the calls meet Redis
    // (every process idle for 2 ms before each), and back to back (every thread awake).
    let idle_rtt = &figures[8];
    for (reading, rtt) in [
        ("idle 2 ms before each, as the calls", idle_rtt),
        ("back to back", rtt),
    ] {
        let budget = mem.p(0.5) + 3.0 * rtt.p(0.5);
        println!(
            "target Redis p50 <= in-memory p50 + 3 Redis round trips ({reading}: {:.3} ms) = {:.3} ms: {} ({:.3} ms, {:.1} round trips over in memory)",
            rtt.p(0.5),
            budget,
            if red.p(0.5) <= budget {
                "met"
            } else {
                "NOT met"
            },
            red.p(0.5),
            (red.p(0.5) - mem.p(0.5)) / rtt.p(0.5)
        );
    }
}

/// Clears Redis's per-command counters (`CONFIG RESETSTAT`).
async fn reset_command_stats(url: &str) {
    let client = redis::Client::open(url).unwrap();
    let mut con = client.get_multiplexed_async_connection().await.unwrap();
    let () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async(&mut con)
        .await
        .unwrap();
}

/// `(command, calls, usec per call)` from `INFO commandstats`, most calls first.
async fn command_stats(url: &str) -> Vec<(String, u64, f64)> {
    let client = redis::Client::open(url).unwrap();
    let mut con = client.get_multiplexed_async_connection().await.unwrap();
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut con)
        .await
        .unwrap();
    // Lines like `cmdstat_xadd:calls=12,usec=34,usec_per_call=2.83,...`.
    let mut rows: Vec<(String, u64, f64)> = info
        .lines()
        .filter_map(|l| {
            let (name, rest) = l.strip_prefix("cmdstat_")?.split_once(':')?;
            let field = |k: &str| {
                rest.split(',')
                    .find_map(|kv| kv.strip_prefix(k)?.strip_prefix('='))
                    .map(str::to_owned)
            };
            Some((
                name.to_owned(),
                field("calls")?.parse().ok()?,
                field("usec_per_call")?.parse().ok()?,
            ))
        })
        .collect();
    rows.sort_by_key(|r| std::cmp::Reverse(r.1));
    rows
}

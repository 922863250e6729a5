//! A district node cut off by a network partition, as separate processes: node `district-ns`
//! runs in its own network namespace (as if on another host, joined by a veth pair), node
//! `district-host`, the geo-router, notification, case squad and a private Redis run in the
//! test's namespace. A `tc` qdisc on both ends of the pair drops every packet either way
//! (`netem loss 100%`, or a 1-byte token bucket on a kernel without netem; see
//! `dispatch_tests::netns`): connections hang, as when a link dies, rather than fail at once.
//!
//! What it shows: while cut off, the partitioned node's districts are taken over by the other
//! node at a higher epoch with their state (an officer signed on through the partitioned node
//! before the cut is there), and the partitioned node drops them itself within a lease of its
//! last renewal (its log says so); after the link heals it joins again and takes back what
//! rendezvous gives it at a still higher epoch, with what the other node wrote meanwhile. Lease
//! 3 s, renewal 1 s, node TTL 3 s (the defaults).
//!
//! Needs root (or `CAP_NET_ADMIN`) and iproute2 (`ip`, `tc`) with the `veth` and `sch_netem`
//! or `sch_tbf` kernel modules: fails saying which is missing. Slow (about 20 s).

#![allow(clippy::unwrap_used)]

use std::net::{IpAddr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dispatch_proto::service_names;
use dispatch_proto::v1;
use dispatch_proto::v1::district_service_client::DistrictServiceClient;
use dispatch_redis_test::{Options, RedisServer};
use dispatch_tests::leases::{leases, settled};
use dispatch_tests::netns::Link;
use dispatch_tests::{eventually, serving};
use tonic::transport::Channel;

/// A `dispatch-server` child process, killed on drop, its stderr in a file.
struct Proc {
    child: Child,
    log: PathBuf,
}

impl Proc {
    fn spawn(mut cmd: Command, log: PathBuf) -> Proc {
        let file = std::fs::File::create(&log).unwrap();
        let child = cmd
            // The ownership loop's takes and drops, with their times (RFC 3339, UTC, fixed
            // width: they compare as strings).
            .env("RUST_LOG", "warn,dispatch_district::ownership=info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .unwrap();
        Proc { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// (district, time) of each line of `log` with `message`: the time is the line's first word
/// (RFC 3339 UTC), the district its `district=` field.
fn logged(log: &str, message: &str) -> Vec<(String, String)> {
    log.lines()
        .filter(|line| line.contains(message))
        .filter_map(|line| {
            let at = line.split_whitespace().next()?;
            let district = line.split("district=").nth(1)?.split_whitespace().next()?;
            Some((district.to_owned(), at.to_owned()))
        })
        .collect()
}

/// A free port on `ip` (bound, then released for the child to take).
fn free_port(ip: IpAddr) -> SocketAddr {
    TcpListener::bind((ip, 0)).unwrap().local_addr().unwrap()
}

/// `run {service} --listen {addr}` with the peers and Redis every process shares.
fn args(service: &str, addr: SocketAddr, shared: &[String]) -> Vec<String> {
    let mut args = vec![
        "run".to_owned(),
        service.to_owned(),
        "--listen".to_owned(),
        addr.to_string(),
    ];
    args.extend(shared.iter().cloned());
    args
}

async fn officer_status(
    client: &mut DistrictServiceClient<Channel>,
    district: &str,
    officer: &str,
) -> anyhow::Result<i32> {
    let snapshot = client
        .get_district(v1::GetDistrictRequest {
            district_id: district.to_owned(),
        })
        .await?
        .into_inner();
    snapshot
        .officers
        .iter()
        .find(|o| o.officer_id == officer)
        .map(|o| o.status)
        .ok_or_else(|| anyhow::anyhow!("{officer} not on the roster of {district}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_nodes_districts_are_taken_over_and_given_back_after_the_heal() {
    // Declared first, dropped last: the processes in the namespace are gone by then.
    let mut link = Link::create()
        .expect("a network namespace and a veth pair (needs root or CAP_NET_ADMIN, and iproute2)");
    let host = IpAddr::V4(link.host_ip);
    let redis = RedisServer::start_with(Options {
        also_bind: vec![host],
        ..Options::default()
    })
    .unwrap();
    let url = format!("redis://{}:{}", link.host_ip, redis.port());
    let bin = Path::new(env!("CARGO_BIN_EXE_dispatch-server"));
    let logs = redis.dir().to_owned();

    // Every host-side service listens on the host end of the pair, so the node in the
    // namespace reaches them (and the test reaches every process).
    let (geo, notification, case_squad, district_host) = (
        free_port(host),
        free_port(host),
        free_port(host),
        free_port(host),
    );
    let district_ns = SocketAddr::new(IpAddr::V4(link.ns_ip), 50053);
    let shared: Vec<String> = [
        ("--redis", url.clone()),
        ("--geo-router", geo.to_string()),
        ("--notification", notification.to_string()),
        ("--case-squad", case_squad.to_string()),
        ("--district", district_host.to_string()),
        // No intake runs: the district nodes never call it.
        ("--intake", free_port(host).to_string()),
    ]
    .into_iter()
    .flat_map(|(flag, value)| [flag.to_owned(), value])
    .collect();
    let on_host = |service: &str, addr: SocketAddr, extra: &[&str]| {
        let mut cmd = Command::new(bin);
        cmd.args(args(service, addr, &shared)).args(extra);
        Proc::spawn(cmd, logs.join(format!("{service}-{}.log", addr.port())))
    };
    let _geo = on_host("geo-router", geo, &[]);
    let _notification = on_host("notification", notification, &[]);
    let _case_squad = on_host("case-squad", case_squad, &[]);
    for (addr, name) in [
        (geo, service_names::GEO_ROUTER),
        (notification, service_names::NOTIFICATION),
        (case_squad, service_names::CASE_SQUAD),
    ] {
        serving(&format!("http://{addr}"), name, Duration::from_secs(60))
            .await
            .unwrap();
    }
    let host_node = on_host("district", district_host, &["--node-id", "district-host"]);
    let mut ns_cmd = link.command(bin);
    ns_cmd
        .args(args("district", district_ns, &shared))
        .args(["--node-id", "district-ns"]);
    let ns_node = Proc::spawn(ns_cmd, logs.join("district-ns.log"));
    for addr in [district_host, district_ns] {
        serving(
            &format!("http://{addr}"),
            service_names::DISTRICT,
            Duration::from_secs(60),
        )
        .await
        .unwrap_or_else(|e| panic!("{e:#}\nnamespace node log:\n{}", ns_node.log()));
    }

    let channel = |addr: SocketAddr| {
        Channel::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect_lazy()
    };
    let mut via_host = DistrictServiceClient::new(channel(district_host));
    let con = redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let geo_channel = channel(geo);
    let directory = v1::geo_router_client::GeoRouterClient::new(geo_channel)
        .list_districts(v1::ListDistrictsRequest {})
        .await
        .unwrap()
        .into_inner();
    let ids: Vec<String> = directory
        .districts
        .iter()
        .map(|d| d.district_id.clone())
        .collect();

    // Settled: both nodes hold what rendezvous gives them.
    let before = settled(&con, &ids, 2, Duration::from_secs(20))
        .await
        .unwrap();
    let cut_off: Vec<String> = before
        .iter()
        .filter(|(_, l)| l.node == "district-ns")
        .map(|(d, _)| d.clone())
        .collect();
    assert!(
        !cut_off.is_empty(),
        "rendezvous gives the namespace node some districts"
    );
    let district = cut_off[0].clone();
    let center = directory
        .districts
        .iter()
        .find(|d| d.district_id == district)
        .and_then(|d| d.center)
        .unwrap();
    let roster = eventually(Duration::from_secs(10), || {
        let (mut client, district) = (via_host.clone(), district.clone());
        async move {
            Ok(client
                .get_district(v1::GetDistrictRequest {
                    district_id: district,
                })
                .await?
                .into_inner()
                .officers)
        }
    })
    .await
    .unwrap();
    let officer = roster[0].officer_id.clone();
    // Signed on through the host node, which forwards to the owner in the namespace.
    via_host
        .update_officer_status(v1::UpdateOfficerStatusRequest {
            officer_id: officer.clone(),
            status: v1::OfficerStatus::Available as i32,
            location: Some(center),
        })
        .await
        .unwrap();

    // The cut.
    let how = link.partition().unwrap();
    let cut = Instant::now();
    let taken = eventually(Duration::from_secs(20), || {
        let (ids, cut_off, mut con) = (ids.clone(), cut_off.clone(), con.clone());
        async move {
            let held = leases(&mut con, &ids).await?;
            let moved = cut_off
                .iter()
                .all(|d| held.get(d).is_some_and(|l| l.node == "district-host"));
            anyhow::ensure!(moved, "not taken over yet: {held:?}");
            Ok(held)
        }
    })
    .await
    .unwrap();
    println!(
        "partition ({how}): {} district(s) taken over {:?} after the cut",
        cut_off.len(),
        cut.elapsed()
    );
    for d in &cut_off {
        assert!(
            taken[d].epoch > before[d].epoch,
            "{d}: epoch {} after the takeover, {} before",
            taken[d].epoch,
            before[d].epoch
        );
    }
    // The state survived: the officer signed on before the cut is available; a change now is
    // written by the new owner.
    let status = eventually(Duration::from_secs(10), || {
        let (mut client, district, officer) = (via_host.clone(), district.clone(), officer.clone());
        async move { officer_status(&mut client, &district, &officer).await }
    })
    .await
    .unwrap();
    assert_eq!(status, v1::OfficerStatus::Available as i32);
    via_host
        .update_officer_status(v1::UpdateOfficerStatusRequest {
            officer_id: officer.clone(),
            status: v1::OfficerStatus::Busy as i32,
            location: None,
        })
        .await
        .unwrap();

    // The partitioned node, unable to renew, dropped the districts itself (it cannot be asked
    // across the cut; its log is read instead), each before the other node took it: never two
    // owners at once.
    let drops = eventually(Duration::from_secs(10), || {
        let (log, n) = (ns_node.log(), cut_off.len());
        async move {
            let drops = logged(&log, "district lease lost; district dropped");
            anyhow::ensure!(drops.len() >= n, "{} of {n} drops logged", drops.len());
            Ok(drops)
        }
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#}\nnamespace node log:\n{}", ns_node.log()));
    let takes = logged(&host_node.log(), "district taken");
    for d in &cut_off {
        let dropped: Vec<&String> = drops
            .iter()
            .filter(|(x, _)| x == d)
            .map(|(_, t)| t)
            .collect();
        assert_eq!(dropped.len(), 1, "{d} dropped once: {drops:?}");
        let taken = takes
            .iter()
            .filter(|(x, _)| x == d)
            .map(|(_, t)| t)
            .max()
            .unwrap_or_else(|| panic!("{d}: no take logged by the host node"));
        assert!(
            dropped[0] < taken,
            "{d} dropped at {} by the cut-off node, taken at {taken} by the other",
            dropped[0]
        );
    }

    // The heal: the node joins again and takes its share back, one epoch up, with the change
    // the host node made while it was away.
    link.heal().unwrap();
    let healed = Instant::now();
    let back = settled(&con, &ids, 2, Duration::from_secs(30))
        .await
        .unwrap();
    println!("heal: districts back {:?} after the heal", healed.elapsed());
    for d in &cut_off {
        assert!(back[d].epoch > taken[d].epoch, "{d}: epoch went back");
    }
    let status = eventually(Duration::from_secs(10), || {
        let (mut client, district, officer) = (via_host.clone(), district.clone(), officer.clone());
        async move { officer_status(&mut client, &district, &officer).await }
    })
    .await
    .unwrap();
    assert_eq!(status, v1::OfficerStatus::Busy as i32);
    // Asked directly, the namespace node answers for its district again.
    let mut via_ns = DistrictServiceClient::new(channel(district_ns));
    assert_eq!(
        officer_status(&mut via_ns, &district, &officer)
            .await
            .unwrap(),
        v1::OfficerStatus::Busy as i32
    );
}

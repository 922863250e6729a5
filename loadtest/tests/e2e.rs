//! A tiny scenario against an embedded cluster: every incident accounted for, the report's
//! figures consistent with each other, and the binary's exit code matching the verdict.

#![allow(clippy::unwrap_used)]

mod common;

use std::process::Command;
use std::sync::Arc;

use dispatch_loadtest::block_on_actix;
use dispatch_loadtest::geography::load_map;
use dispatch_loadtest::report::{EndState, Verdict};
use dispatch_loadtest::run::{RunInput, Target, run};
use dispatch_loadtest::scenario::{MapSource, Scenario};

#[test]
fn tiny_scenario_loses_nothing_and_adds_up() {
    let scenario = Scenario::parse(common::TINY).unwrap();
    let map = Arc::new(load_map(&MapSource::Builtin).unwrap());
    let input = RunInput {
        scenario,
        map,
        map_desc: "builtin".into(),
        target: Target::Embedded,
        redis: None,
    };
    let out = block_on_actix(run(input)).unwrap().unwrap();
    let r = &out.report;
    let i = &r.incidents;
    println!("{}", r.summary_text());

    assert!(
        r.calls.sent > 5,
        "too few calls to say anything: {}",
        r.calls.sent
    );
    assert_eq!(r.calls.sent, r.calls.planned);
    assert_eq!(r.calls.failed, 0);
    assert_eq!(r.calls.accepted, i.received);
    assert_eq!(
        i.lost,
        0,
        "{:?}",
        out.incidents
            .iter()
            .filter(|x| matches!(x.end, EndState::Lost(_)))
            .collect::<Vec<_>>()
    );
    assert_eq!(i.received, i.cleared + i.open_at_end + i.lost);
    assert!(i.dispatched >= i.on_scene && i.on_scene >= i.cleared);
    // Short on-scene times and a long drain: everything is cleared.
    assert_eq!(i.cleared, i.received, "drain should clear every incident");
    // Terminals saw an order for every dispatched incident, and cleared each one.
    assert!(r.terminal.orders >= i.dispatched);
    let clearances: u64 = r.terminal.clearances.values().sum();
    assert_eq!(clearances, i.cleared);
    assert!(r.terminal.errors.is_empty(), "{:?}", r.terminal.errors);
    // Each criminal or administrative clearance opened exactly one case.
    assert_eq!(r.cases_opened, r.case_clearances);
    // 13 districts x 4 officers, half on duty.
    assert_eq!(r.officers_rostered, 13 * 4);
    assert_eq!(r.officers_on_duty, 13 * 2);

    let rt = &r.response_time_s;
    let all = &rt.overall;
    assert_eq!((all.received, all.on_scene), (i.received, i.on_scene));
    let (p50, p90, p99) = (all.p50.unwrap(), all.p90.unwrap(), all.p99.unwrap());
    assert!(0.0 < p50 && p50 <= p90 && p90 <= p99 && p99 <= all.max.unwrap() + 1.0);
    // No response can beat the shortest acknowledgement delay (5 s).
    assert!(
        out.incidents
            .iter()
            .filter_map(|x| x.response_s())
            .all(|s| s >= 5.0)
    );
    let by_priority: u64 = rt.by_priority.values().map(|g| g.received).sum();
    assert_eq!(by_priority, i.received);
    let by_sub: u64 = rt.by_sub_bureau.values().map(|g| g.stats.received).sum();
    assert_eq!(by_sub, i.received);
    assert!(rt.by_sub_bureau.values().all(|g| !g.name.is_empty()));
    assert!((0.0..=1.0).contains(&r.within_target_share));
    assert!(r.system_latency_ms.count + i.waited_for_officer >= i.dispatched);
    assert!(r.system_latency_ms.p50.unwrap() > 0.0);
    let pass = r.within_target_share >= r.target_share && i.lost == 0;
    assert_eq!(r.verdict == Verdict::Pass, pass, "{:?}", r.verdict_reasons);
}

#[test]
fn binary_writes_reports_and_exits_with_the_verdict() {
    let dir = common::temp_dir("e2e-binary");
    let scenario = dir.join("tiny.toml");
    std::fs::write(&scenario, common::TINY).unwrap();
    let (json, html) = (dir.join("report.json"), dir.join("report.html"));
    let out = Command::new(env!("CARGO_BIN_EXE_loadtest"))
        .arg("run")
        .arg(&scenario)
        .arg("--json")
        .arg(&json)
        .arg("--html")
        .arg(&html)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let verdict = report["verdict"].as_str().unwrap();
    let expected = if verdict == "pass" { 0 } else { 1 };
    assert_eq!(
        out.status.code(),
        Some(expected),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout
            .trim_end()
            .lines()
            .last()
            .unwrap()
            .starts_with("verdict"),
        "{stdout}"
    );
    assert_eq!(report["incidents"]["lost"], 0);
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("<svg") && page.contains("tiny"));
}

#[test]
fn drives_a_running_cluster_by_address() {
    use dispatch_core::ScaledClock;
    use dispatch_loadtest::connect::Addresses;
    use dispatch_server::{ClusterConfig, EmbeddedCluster};

    let scenario = Scenario::parse(common::TINY).unwrap();
    let map = Arc::new(load_map(&MapSource::Builtin).unwrap());
    let out = block_on_actix(async move {
        // A cluster started on its own, with its own clock of the scenario's scale and its own
        // roster size (3 per district, where the scenario would start 4).
        let cluster = EmbeddedCluster::start(
            map.clone(),
            ClusterConfig {
                clock: Arc::new(ScaledClock::new(scenario.clock.scale).unwrap()),
                officers_per_district: 3,
                ..ClusterConfig::default()
            },
        )
        .await
        .unwrap();
        let input = || RunInput {
            scenario: scenario.clone(),
            map: map.clone(),
            map_desc: "builtin".into(),
            target: Target::Remote(Addresses::all(cluster.addr().to_string())),
            redis: None,
        };
        // Twice against the same cluster: the second run must not see the first one's orders,
        // incidents or cases.
        let first = run(input()).await;
        let second = run(input()).await;
        cluster.shutdown().await;
        (first, second)
    })
    .unwrap();
    for out in [out.0.unwrap(), out.1.unwrap()] {
        let r = &out.report;
        // The roster is the running cluster's: 13 districts x 3, of which round(1.5) = 2 on duty.
        assert_eq!(r.officers_rostered, 13 * 3);
        assert_eq!(r.officers_on_duty, 13 * 2);
        assert!(r.calls.accepted > 5);
        assert_eq!(r.incidents.lost, 0);
        assert_eq!(r.incidents.cleared, r.incidents.received);
        // One order per incident of this run, and nothing else.
        assert_eq!(r.terminal.orders, r.incidents.dispatched);
        assert_eq!(r.terminal.duplicate_orders, 0);
        assert_eq!(r.cases_opened, r.case_clearances);
    }
}

#[test]
fn a_cluster_on_another_clock_scale_is_bad_input() {
    use dispatch_loadtest::connect::Addresses;
    use dispatch_server::{ClusterConfig, EmbeddedCluster};

    let scenario = Scenario::parse(common::TINY).unwrap();
    let map = Arc::new(load_map(&MapSource::Builtin).unwrap());
    let result = block_on_actix(async move {
        // The wall clock (scale 1), while the scenario runs faster.
        let cluster = EmbeddedCluster::start(map.clone(), ClusterConfig::default())
            .await
            .unwrap();
        let input = RunInput {
            scenario,
            map,
            map_desc: "builtin".into(),
            target: Target::Remote(Addresses::all(cluster.addr().to_string())),
            redis: None,
        };
        let out = run(input).await;
        cluster.shutdown().await;
        out
    })
    .unwrap();
    let Err(err) = result else {
        panic!("a clock mismatch must stop the run")
    };
    assert_eq!(err.exit_code(), 2, "{err}");
    assert!(err.to_string().contains("--clock-scale"), "{err}");
}

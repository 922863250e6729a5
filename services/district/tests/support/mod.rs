//! What the Redis-backed district tests share: a notification service that records orders, a
//! case squad that is not there, a private Redis, directory entries and routed incidents.

#![allow(dead_code)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use dispatch_bus::ports::{
    Call, Case, CasePort, Cursor, Directory, DistrictEntry, NoticeBody, NoticeStream, NotifyPort,
    PortError, Publication, Subscription,
};
use dispatch_core::{Category, Incident, IncidentState, LatLng, Timestamp};
use dispatch_redis_test::{Options, RedisServer};
use parking_lot::Mutex;
use tonic::Status;

pub const T0: Timestamp = Timestamp(1_700_000_000_000);

/// The bound of a liveness check for what takes milliseconds to a few seconds: generous for a
/// loaded 2-core test machine, and far below the minute-long leases that tests set when only a
/// handoff may explain what they see.
pub const SETTLE: Duration = Duration::from_secs(10);

/// A notification service that records what it was given, or refuses everything while down.
#[derive(Default)]
pub struct Terminals {
    pub down: AtomicBool,
    pub publications: Mutex<Vec<Publication>>,
}

impl Terminals {
    /// The dispatch ids of the orders published, in order.
    pub fn orders(&self) -> Vec<String> {
        self.publications
            .lock()
            .iter()
            .filter_map(|p| match &p.body {
                NoticeBody::DispatchOrder(o) => Some(o.dispatch_id.to_string()),
                NoticeBody::IncidentUpdate(_) => None,
            })
            .collect()
    }
}

#[tonic::async_trait]
impl NotifyPort for Terminals {
    async fn publish(
        &self,
        _: &Call,
        publications: Vec<Publication>,
    ) -> Result<Vec<Cursor>, PortError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(Status::unavailable("notification down").into());
        }
        let mut all = self.publications.lock();
        let n = publications.len() as u64;
        all.extend(publications);
        Ok((1..=n)
            .map(|position| Cursor { epoch: 1, position })
            .collect())
    }
    async fn subscribe(&self, _: &Call, _: Subscription) -> Result<NoticeStream, PortError> {
        Err(Status::unimplemented("not used").into())
    }
}

pub struct NoCases;

#[tonic::async_trait]
impl CasePort for NoCases {
    async fn open_case(&self, _: &Call, _: Incident) -> Result<Case, PortError> {
        Err(Status::unavailable("no case squad in this test").into())
    }
}

/// A private Redis that fsyncs every write.
pub fn redis() -> RedisServer {
    RedisServer::start_with(Options {
        fsync_always: true,
        ..Options::default()
    })
    .unwrap_or_else(|e| panic!("{e}"))
}

/// Where the officers sign on and the incidents happen.
pub fn here() -> Option<LatLng> {
    Some(LatLng::new(23.0, 113.7).unwrap_or_else(|e| panic!("{e}")))
}

/// Directory entry of district `id` of station `town-s1`.
pub fn district(id: &str) -> DistrictEntry {
    DistrictEntry {
        id: id.into(),
        station_id: "town-s1".into(),
        sub_bureau_id: "town".into(),
        central: true,
        center: LatLng::new(23.0, 113.7).unwrap_or_else(|e| panic!("{e}")),
        area_m2: 1e6,
        adjacent: vec![],
    }
}

/// A directory of `ids`.
pub fn directory<'a>(ids: impl IntoIterator<Item = &'a str>) -> Directory {
    Directory {
        map_name: "test".into(),
        sub_bureaus: vec![],
        stations: vec![],
        districts: ids.into_iter().map(district).collect(),
    }
}

/// Incident `id`, a theft near [`here`], `ROUTED` to `district_id`.
pub fn routed(id: &str, district_id: &str) -> Incident {
    let scene = LatLng::new(23.001, 113.7).unwrap_or_else(|e| panic!("{e}"));
    let mut i = Incident::received(
        id.into(),
        format!("call-{id}").into(),
        Category::Theft,
        scene,
        "wallet taken".into(),
        T0,
    );
    i.district_id = district_id.into();
    i.station_id = "town-s1".into();
    i.sub_bureau_id = "town".into();
    i.transition(IncidentState::Routed, T0)
        .unwrap_or_else(|e| panic!("{e}"));
    i
}

/// Waits until `check` holds, polling every 20 ms; panics after `within`.
pub async fn eventually(what: &str, within: Duration, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while start.elapsed() < within {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("not within {within:?}: {what}");
}

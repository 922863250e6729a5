//! The gRPC shell of the case squad.

use std::future::Future;
use std::sync::{Arc, OnceLock};

use dispatch_bus::convert::FieldError;
use dispatch_bus::ports::Directory;
use dispatch_core::clock::SharedClock;
use dispatch_proto::service_names;
use dispatch_proto::v1;
use dispatch_proto::v1::case_squad_server::{CaseSquad, CaseSquadServer};
use tokio::net::TcpListener;
use tonic::service::Routes;
use tonic::{Request, Response, Status};

use crate::book::{self, CaseRecord};
use crate::error::{Error, Result};
use crate::lookup::RecordsClient;
use crate::open;
use crate::store::{CaseStore, MemoryCaseStore};

/// The case-squad service: one squad per police station, cases in a [`CaseStore`] (in memory
/// or in Redis), incidents checked against intake's records when it has a [`RecordsClient`].
pub struct CaseSquadService {
    store: Arc<dyn CaseStore>,
    lookup: OnceLock<RecordsClient>,
    clock: SharedClock,
}

impl std::fmt::Debug for CaseSquadService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaseSquadService")
            .field("checks_intake", &self.lookup.get().is_some())
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

impl CaseSquadService {
    /// A squad of `investigators_per_squad` investigators (ids `{station_id}-inv01`, ...) at each
    /// of `stations`, cases kept in memory and stamped with `clock`, no intake check (see
    /// [`CaseSquadService::set_lookup`]). With 0 investigators every `OpenCase` fails with
    /// `FailedPrecondition`.
    pub fn new(stations: Vec<String>, investigators_per_squad: u32, clock: SharedClock) -> Self {
        let store = MemoryCaseStore::new(stations, investigators_per_squad);
        Self::with_store(Arc::new(store), None, clock)
    }

    /// A squad at every station of the geo-router's directory; see [`CaseSquadService::new`].
    pub fn from_directory(
        directory: &Directory,
        investigators_per_squad: u32,
        clock: SharedClock,
    ) -> Self {
        Self::new(book::station_ids(directory), investigators_per_squad, clock)
    }

    /// A service over `store` (e.g. a [`crate::RedisCaseStore`] shared by every replica),
    /// checking each `OpenCase` against intake through `lookup` when given; cases are stamped
    /// with `clock`.
    pub fn with_store(
        store: Arc<dyn CaseStore>,
        lookup: Option<RecordsClient>,
        clock: SharedClock,
    ) -> Self {
        let cell = OnceLock::new();
        if let Some(lookup) = lookup {
            let _ = cell.set(lookup);
        }
        Self {
            store,
            lookup: cell,
            clock,
        }
    }

    /// From now on, checks each `OpenCase` against intake through `lookup`. For wiring where
    /// intake is built after the case squad (the embedded server hands this service to the
    /// districts, which intake needs); call it before serving.
    ///
    /// Errors: gives `lookup` back when the service already has one (which it keeps).
    pub fn set_lookup(&self, lookup: RecordsClient) -> Result<(), RecordsClient> {
        self.lookup.set(lookup)
    }

    /// Checks `req` ([`open::check`], then intake's record when there is a lookup) and opens
    /// its case.
    async fn open_case(&self, req: &v1::OpenCaseRequest) -> Result<v1::Case> {
        let case_req = open::check(req)?;
        if let (Some(lookup), Some(sent)) = (self.lookup.get(), req.incident.as_ref()) {
            // Whatever went wrong, without intake's answer the squad cannot decide: the caller
            // (the district's outbox) should try again.
            let id = sent.incident_id.as_str().into();
            let recorded = lookup.incident(&id).await.map_err(|e| {
                Error::Unavailable(format!(
                    "cannot check incident {:?} with intake: {e}",
                    sent.incident_id
                ))
            })?;
            open::check_recorded(sent, recorded.as_ref())?;
        }
        let now = self.clock.now();
        let opened = self.store.open(&case_req, now).await?;
        if opened.created {
            tracing::info!(case_id = %opened.case.case_id, station_id = %opened.case.station_id,
                investigator_id = %opened.case.investigator_id, "case opened");
        }
        Ok(opened.case.to_wire())
    }

    async fn get_case(&self, case_id: &str) -> Result<v1::Case> {
        if case_id.is_empty() {
            return Err(FieldError::new("case_id", "is required").into());
        }
        Ok(self.store.get(case_id).await?.to_wire())
    }

    async fn list_cases(&self, station_id: &str) -> Result<v1::ListCasesResponse> {
        if station_id.is_empty() {
            return Err(FieldError::new("station_id", "is required").into());
        }
        let squad = self.store.list(station_id).await?;
        Ok(v1::ListCasesResponse {
            cases: squad.cases.iter().map(CaseRecord::to_wire).collect(),
            investigators: squad
                .loads
                .into_iter()
                .map(|(investigator_id, open_cases)| v1::InvestigatorLoad {
                    investigator_id,
                    open_cases,
                })
                .collect(),
        })
    }
}

#[tonic::async_trait]
impl CaseSquad for CaseSquadService {
    /// The case opens under the incident's `case_id` (assigned by its district at clearance),
    /// or `case-{incident_id}` for an incident without one ([`open::check`]).
    ///
    /// Errors: see [`open::check`] (`InvalidArgument`, `FailedPrecondition` when not cleared);
    /// `InvalidArgument` naming `incident.case_id` when another incident's case has that id;
    /// with an intake lookup, `FailedPrecondition` naming the field when intake did not record
    /// the incident or records another station, district or call ([`open::check_recorded`]),
    /// `Unavailable` when intake cannot answer; `NotFound` for an unknown station,
    /// `FailedPrecondition` for a squad without investigators; `Unavailable` when the case
    /// store cannot be reached, `Internal` when it fails otherwise.
    async fn open_case(
        &self,
        request: Request<v1::OpenCaseRequest>,
    ) -> Result<Response<v1::Case>, Status> {
        Ok(Response::new(
            CaseSquadService::open_case(self, request.get_ref()).await?,
        ))
    }

    /// Errors: `InvalidArgument` on an empty `case_id`, `NotFound` for an unknown one;
    /// `Unavailable` or `Internal` from the case store.
    async fn get_case(
        &self,
        request: Request<v1::GetCaseRequest>,
    ) -> Result<Response<v1::Case>, Status> {
        Ok(Response::new(
            CaseSquadService::get_case(self, &request.get_ref().case_id).await?,
        ))
    }

    /// Errors: `InvalidArgument` on an empty `station_id`, `NotFound` for an unknown one;
    /// `Unavailable` or `Internal` from the case store.
    async fn list_cases(
        &self,
        request: Request<v1::ListCasesRequest>,
    ) -> Result<Response<v1::ListCasesResponse>, Status> {
        Ok(Response::new(
            CaseSquadService::list_cases(self, &request.get_ref().station_id).await?,
        ))
    }
}

/// Serves `CaseSquad` (plus gRPC health and reflection) on `listener` until `shutdown` resolves.
/// The service is shared, so the embedded server can also hand it to districts in-process.
///
/// Errors: the transport error that ended serving.
pub async fn run(
    listener: TcpListener,
    service: Arc<CaseSquadService>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    let routes = Routes::new(CaseSquadServer::from_arc(service));
    dispatch_runtime::serve(listener, routes, &[service_names::CASE_SQUAD], shutdown).await
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::RedisCaseStore;
    use crate::lookup::tests::FakeIntake;
    use dispatch_core::{ManualClock, Timestamp};
    use dispatch_proto::status::violated_field;
    use dispatch_redis_test::{Options, RedisServer};
    use tonic::Code;
    use tonic_types::StatusExt;

    fn service(clock: &ManualClock) -> CaseSquadService {
        let directory = Directory {
            map_name: "test".into(),
            sub_bureaus: vec![],
            stations: ["st-a", "st-b"]
                .into_iter()
                .map(|id| dispatch_bus::ports::StationEntry {
                    id: id.into(),
                    sub_bureau_id: "town".into(),
                    central_district_id: format!("{id}-d1").into(),
                    location: dispatch_core::LatLng::new(23.0, 113.7).unwrap(),
                })
                .collect(),
            districts: vec![],
        };
        CaseSquadService::from_directory(&directory, 6, Arc::new(clock.clone()))
    }

    fn cleared(incident_id: &str, station_id: &str, d: v1::Disposition) -> v1::OpenCaseRequest {
        v1::OpenCaseRequest {
            incident: Some(v1::Incident {
                incident_id: incident_id.into(),
                station_id: station_id.into(),
                district_id: format!("{station_id}-d2"),
                state: v1::IncidentState::Cleared as i32,
                disposition: d as i32,
                ..Default::default()
            }),
        }
    }

    async fn open(s: &CaseSquadService, r: v1::OpenCaseRequest) -> Result<v1::Case, Status> {
        Ok(CaseSquad::open_case(s, Request::new(r)).await?.into_inner())
    }

    #[tokio::test]
    async fn cases_spread_round_the_squad_of_six() {
        let clock = ManualClock::at(Timestamp(1_000_000));
        let s = service(&clock);
        // Six investigators at 0: cases 1..=6 go to inv01..inv06 in turn; all then hold one,
        // so cases 7 and 8 go to inv01 and inv02 again.
        let expected = [1, 2, 3, 4, 5, 6, 1, 2];
        for (i, n) in expected.iter().enumerate() {
            clock.advance(60.0);
            let d = if i % 2 == 0 {
                v1::Disposition::CriminalCase
            } else {
                v1::Disposition::AdministrativeCase
            };
            let case = open(&s, cleared(&format!("inc-{i}"), "st-a", d))
                .await
                .unwrap();
            assert_eq!(case.investigator_id, format!("st-a-inv{n:02}"));
            assert_eq!(case.case_id, format!("case-inc-{i}"));
        }
        let list = CaseSquad::list_cases(
            &s,
            Request::new(v1::ListCasesRequest {
                station_id: "st-a".into(),
            }),
        )
        .await
        .unwrap()
        .into_inner();
        let loads: Vec<(String, u32)> = list
            .investigators
            .iter()
            .map(|l| (l.investigator_id.clone(), l.open_cases))
            .collect();
        let want: Vec<(String, u32)> = [2, 2, 1, 1, 1, 1]
            .iter()
            .enumerate()
            .map(|(i, n)| (format!("st-a-inv{:02}", i + 1), *n))
            .collect();
        assert_eq!(loads, want);
        let ids: Vec<&str> = list.cases.iter().map(|c| c.case_id.as_str()).collect();
        assert_eq!(
            ids,
            (0..8).map(|i| format!("case-inc-{i}")).collect::<Vec<_>>()
        );
        let first = &list.cases[0];
        assert_eq!(first.kind, v1::CaseKind::Criminal as i32);
        assert_eq!(list.cases[1].kind, v1::CaseKind::Administrative as i32);
        assert_eq!(first.district_id, "st-a-d2");
        // Opened one minute after the clock's start: 1,060,000 ms.
        assert_eq!(first.opened_at.unwrap().seconds, 1_060);
    }

    #[tokio::test]
    async fn open_case_is_idempotent_on_the_incident() {
        let clock = ManualClock::at(Timestamp(0));
        let s = service(&clock);
        let r = cleared("inc-1", "st-b", v1::Disposition::CriminalCase);
        let first = open(&s, r.clone()).await.unwrap();
        clock.advance(5.0);
        let again = open(&s, r).await.unwrap();
        assert_eq!(again, first);
        let next = open(&s, cleared("inc-2", "st-b", v1::Disposition::CriminalCase))
            .await
            .unwrap();
        // inv01 took inc-1 only once, so inc-2 goes to inv02.
        assert_eq!(next.investigator_id, "st-b-inv02");
        let got = CaseSquad::get_case(
            &s,
            Request::new(v1::GetCaseRequest {
                case_id: "case-inc-1".into(),
            }),
        )
        .await
        .unwrap()
        .into_inner();
        assert_eq!(got, first);
    }

    /// The incident a district clears as a criminal case, as its `OpenCase` effect carries it.
    fn cleared_by_a_district(incident_id: &str, station_id: &str) -> v1::Incident {
        use dispatch_core::district::{DistrictConfig, DistrictState, Effect};
        use dispatch_core::{
            Category, Disposition, Incident, IncidentState, LatLng, Officer, OfficerStatus,
        };
        let t = Timestamp(1_700_000_000_000);
        let scene = LatLng::new(23.02, 113.75).unwrap();
        let mut d = DistrictState::new("st-b-d2".into(), DistrictConfig::default());
        d.add_officer(Officer::off_duty("o1".into(), "st-b-d2".into(), t));
        d.set_officer_status(&"o1".into(), OfficerStatus::Available, Some(scene), t)
            .unwrap();
        let mut i = Incident::received(
            incident_id.into(),
            "call-7".into(),
            Category::Burglary,
            scene,
            String::new(),
            t,
        );
        i.district_id = "st-b-d2".into();
        i.station_id = station_id.into();
        i.transition(IncidentState::Routed, t).unwrap();
        let (dispatched, _) = d.submit(i, t).unwrap();
        let dispatch_id = dispatched.dispatch_id.unwrap();
        d.arrive(&"o1".into(), &dispatch_id, t).unwrap();
        let (_, effects) = d
            .clear(&"o1".into(), &dispatch_id, Disposition::CriminalCase, t)
            .unwrap();
        let case = effects.iter().find_map(|e| match e {
            Effect::OpenCase(i) => Some(dispatch_bus::convert::incident_to_wire(i)),
            _ => None,
        });
        case.unwrap()
    }

    #[tokio::test]
    async fn the_case_opens_under_the_id_its_district_gave_the_incident() {
        let clock = ManualClock::at(Timestamp(0));
        let s = service(&clock);
        let incident = cleared_by_a_district("inc-7", "st-b");
        // `case-{station_id}-{incident_id}`, assigned at clearance.
        assert_eq!(incident.case_id, "case-st-b-inc-7");
        let r = v1::OpenCaseRequest {
            incident: Some(incident.clone()),
        };
        let case = open(&s, r.clone()).await.unwrap();
        assert_eq!(case.case_id, incident.case_id);
        assert_eq!(case.incident_id, "inc-7");
        assert_eq!(open(&s, r).await.unwrap(), case);
        // Another incident naming the same case id is refused, naming the field.
        let mut thief = cleared_by_a_district("inc-8", "st-b");
        thief.case_id = incident.case_id.clone();
        let err = open(
            &s,
            v1::OpenCaseRequest {
                incident: Some(thief),
            },
        )
        .await
        .unwrap_err();
        assert_eq!(
            (err.code(), violated_field(&err).as_deref()),
            (Code::InvalidArgument, Some("incident.case_id"))
        );
    }

    #[tokio::test]
    async fn each_bad_request_gets_its_status() {
        let clock = ManualClock::at(Timestamp(0));
        let s = service(&clock);
        let err = open(&s, v1::OpenCaseRequest { incident: None })
            .await
            .unwrap_err();
        assert_eq!(
            (err.code(), violated_field(&err).as_deref()),
            (Code::InvalidArgument, Some("incident"))
        );
        let err = open(&s, cleared("", "st-a", v1::Disposition::CriminalCase))
            .await
            .unwrap_err();
        assert_eq!(
            violated_field(&err).as_deref(),
            Some("incident.incident_id")
        );
        let err = open(&s, cleared("i", "st-a", v1::Disposition::Resolved))
            .await
            .unwrap_err();
        assert_eq!(
            (err.code(), violated_field(&err).as_deref()),
            (Code::InvalidArgument, Some("incident.disposition"))
        );
        let err = open(&s, cleared("i", "st-zz", v1::Disposition::CriminalCase))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::NotFound);
        assert!(err.message().contains("st-zz"), "{}", err.message());
        let mut not_cleared = cleared("i", "st-a", v1::Disposition::CriminalCase);
        not_cleared.incident.as_mut().unwrap().state = v1::IncidentState::Dispatched as i32;
        let err = open(&s, not_cleared).await.unwrap_err();
        assert_eq!(err.code(), Code::FailedPrecondition);

        let get = |id: &str| {
            CaseSquad::get_case(&s, Request::new(v1::GetCaseRequest { case_id: id.into() }))
        };
        let err = get("").await.unwrap_err();
        assert_eq!(
            (err.code(), violated_field(&err).as_deref()),
            (Code::InvalidArgument, Some("case_id"))
        );
        assert_eq!(get("case-nope").await.unwrap_err().code(), Code::NotFound);

        let list = |id: &str| {
            CaseSquad::list_cases(
                &s,
                Request::new(v1::ListCasesRequest {
                    station_id: id.into(),
                }),
            )
        };
        let err = list("").await.unwrap_err();
        assert_eq!(
            (err.code(), violated_field(&err).as_deref()),
            (Code::InvalidArgument, Some("station_id"))
        );
        assert_eq!(list("st-zz").await.unwrap_err().code(), Code::NotFound);
        // Nothing was opened by the failed calls.
        let listed = list("st-a").await.unwrap().into_inner();
        assert!(listed.cases.is_empty());
        assert!(listed.investigators.iter().all(|l| l.open_cases == 0));
    }

    // ---- checks against intake's record -----------------------------------------------------

    /// A service of [`service`] that checks each incident with `intake`, set after building as
    /// the embedded server does.
    fn checked_service(clock: &ManualClock, intake: FakeIntake) -> CaseSquadService {
        let s = service(clock);
        assert!(s.set_lookup(records(intake)).is_ok());
        s
    }

    /// Intake's record of `incident_id` (see [`crate::lookup::record`]).
    fn recorded(incident_id: &str, station_id: &str) -> dispatch_core::Incident {
        crate::lookup::record(incident_id, station_id)
    }

    /// A client of `intake`'s records in this process.
    fn records(intake: FakeIntake) -> RecordsClient {
        RecordsClient::in_process(
            Arc::new(intake),
            dispatch_bus::ports::CallOptions::with_deadline(RecordsClient::DEFAULT_DEADLINE),
        )
    }

    /// The district's cleared copy of `incident_id` at `station_id` (district 2).
    fn sent(incident_id: &str, station_id: &str) -> v1::OpenCaseRequest {
        let mut r = cleared(incident_id, station_id, v1::Disposition::CriminalCase);
        if let Some(i) = r.incident.as_mut() {
            i.call_id = format!("call-{incident_id}");
        }
        r
    }

    fn precondition_subject(status: &Status) -> Option<String> {
        status
            .get_details_precondition_failure()
            .and_then(|p| p.violations.first().map(|v| v.subject.clone()))
    }

    async fn open_cases(s: &CaseSquadService, station_id: &str) -> Vec<u32> {
        let list = CaseSquad::list_cases(
            s,
            Request::new(v1::ListCasesRequest {
                station_id: station_id.into(),
            }),
        )
        .await
        .unwrap()
        .into_inner();
        list.investigators.iter().map(|l| l.open_cases).collect()
    }

    #[tokio::test]
    async fn a_clearance_intake_has_not_heard_of_yet_opens_its_case() {
        let clock = ManualClock::at(Timestamp(0));
        let s = checked_service(&clock, FakeIntake::with([recorded("inc-1", "st-a")]));
        let case = open(&s, sent("inc-1", "st-a")).await.unwrap();
        assert_eq!(
            (case.case_id.as_str(), case.investigator_id.as_str()),
            ("case-inc-1", "st-a-inv01")
        );
    }

    #[tokio::test]
    async fn a_forged_case_for_an_incident_intake_never_recorded_is_refused() {
        let clock = ManualClock::at(Timestamp(0));
        let s = checked_service(&clock, FakeIntake::with([recorded("inc-1", "st-a")]));
        let err = open(&s, sent("inc-404", "st-a")).await.unwrap_err();
        assert_eq!(err.code(), Code::FailedPrecondition);
        assert_eq!(
            precondition_subject(&err).as_deref(),
            Some("incident.incident_id")
        );
        assert_eq!(
            err.message(),
            "incident.incident_id: \"inc-404\" is not an incident intake recorded"
        );
        assert_eq!(open_cases(&s, "st-a").await, vec![0; 6]);
    }

    #[tokio::test]
    async fn a_case_at_another_station_than_intake_recorded_is_refused() {
        let clock = ManualClock::at(Timestamp(0));
        let s = checked_service(&clock, FakeIntake::with([recorded("inc-1", "st-a")]));
        let err = open(&s, sent("inc-1", "st-b")).await.unwrap_err();
        assert_eq!(err.code(), Code::FailedPrecondition);
        assert_eq!(
            precondition_subject(&err).as_deref(),
            Some("incident.station_id")
        );
        assert_eq!(
            err.message(),
            "incident.station_id: must match intake's record of incident \"inc-1\" (\"st-a\"), \
             got \"st-b\""
        );
        assert_eq!(open_cases(&s, "st-a").await, vec![0; 6]);
        assert_eq!(open_cases(&s, "st-b").await, vec![0; 6]);
    }

    #[tokio::test]
    async fn intake_unreachable_is_unavailable_and_opens_nothing() {
        let clock = ManualClock::at(Timestamp(0));
        let down = FakeIntake {
            down: true,
            ..FakeIntake::default()
        };
        let s = checked_service(&clock, down);
        let err = open(&s, sent("inc-1", "st-a")).await.unwrap_err();
        assert_eq!(err.code(), Code::Unavailable);
        assert!(err.message().contains("\"inc-1\""), "{}", err.message());
        assert_eq!(open_cases(&s, "st-a").await, vec![0; 6]);
        // The first lookup stays: a second is handed back.
        assert!(s.set_lookup(records(FakeIntake::default())).is_err());
        assert_eq!(
            open(&s, sent("inc-1", "st-a")).await.unwrap_err().code(),
            Code::Unavailable
        );
    }

    #[tokio::test]
    async fn a_service_over_redis_serves_the_same_cases() {
        let server = RedisServer::start_with(Options {
            fsync_always: true,
            ..Options::default()
        })
        .unwrap();
        let stations = vec!["st-a".to_string()];
        let store = RedisCaseStore::connect(&server.url(), stations, 2)
            .await
            .unwrap();
        let clock = ManualClock::at(Timestamp(1_000));
        let intake = records(FakeIntake::with([
            recorded("inc-1", "st-a"),
            recorded("inc-2", "st-a"),
        ]));
        let s =
            CaseSquadService::with_store(Arc::new(store), Some(intake), Arc::new(clock.clone()));
        let first = open(&s, sent("inc-1", "st-a")).await.unwrap();
        clock.advance(30.0);
        let second = open(&s, sent("inc-2", "st-a")).await.unwrap();
        assert_eq!(open(&s, sent("inc-1", "st-a")).await.unwrap(), first);
        assert_eq!(second.investigator_id, "st-a-inv02");
        // 1,000 ms + 30 s.
        assert_eq!(second.opened_at.unwrap().seconds, 31);
        assert_eq!(open_cases(&s, "st-a").await, vec![1, 1]);
        let err = open(&s, sent("inc-404", "st-a")).await.unwrap_err();
        assert_eq!(
            precondition_subject(&err).as_deref(),
            Some("incident.incident_id")
        );
    }
}

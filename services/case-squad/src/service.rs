//! The gRPC shell of the case squad.

use std::future::Future;
use std::sync::Arc;

use dispatch_bus::convert::FieldError;
use dispatch_core::clock::SharedClock;
use dispatch_proto::service_names;
use dispatch_proto::v1;
use dispatch_proto::v1::case_squad_server::{CaseSquad, CaseSquadServer};
use parking_lot::Mutex;
use tokio::net::TcpListener;
use tonic::service::Routes;
use tonic::{Request, Response, Status};

use crate::book::CaseBook;
use crate::error::Result;
use crate::open;

/// The case-squad service: one squad per police station, cases kept in memory.
#[derive(Debug)]
pub struct CaseSquadService {
    book: Mutex<CaseBook>,
    clock: SharedClock,
}

impl CaseSquadService {
    /// A squad of `investigators_per_squad` investigators (ids `{station_id}-inv01`, ...) at each
    /// of `stations`; cases are stamped with `clock`. With 0 investigators every `OpenCase`
    /// fails with `FailedPrecondition`.
    pub fn new(stations: Vec<String>, investigators_per_squad: u32, clock: SharedClock) -> Self {
        Self {
            book: Mutex::new(CaseBook::new(stations, investigators_per_squad)),
            clock,
        }
    }

    /// A squad at every station of the geo-router's directory; see [`CaseSquadService::new`].
    pub fn from_directory(
        directory: &v1::ListDistrictsResponse,
        investigators_per_squad: u32,
        clock: SharedClock,
    ) -> Self {
        let stations = directory
            .stations
            .iter()
            .map(|s| s.station_id.clone())
            .collect();
        Self::new(stations, investigators_per_squad, clock)
    }

    fn open_case(&self, req: &v1::OpenCaseRequest) -> Result<v1::Case> {
        let case_req = open::check(req)?;
        let now = self.clock.now();
        let opened = self.book.lock().open(&case_req, now)?;
        if opened.created {
            tracing::info!(case_id = %opened.case.case_id, station_id = %opened.case.station_id,
                investigator_id = %opened.case.investigator_id, "case opened");
        }
        Ok(opened.case.to_wire())
    }

    fn get_case(&self, case_id: &str) -> Result<v1::Case> {
        if case_id.is_empty() {
            return Err(FieldError::new("case_id", "is required").into());
        }
        Ok(self.book.lock().get(case_id)?.to_wire())
    }

    fn list_cases(&self, station_id: &str) -> Result<v1::ListCasesResponse> {
        if station_id.is_empty() {
            return Err(FieldError::new("station_id", "is required").into());
        }
        let book = self.book.lock();
        let squad = book.list(station_id)?;
        Ok(v1::ListCasesResponse {
            cases: squad.cases.into_iter().map(|c| c.to_wire()).collect(),
            investigators: squad
                .loads
                .into_iter()
                .map(|(id, open_cases)| v1::InvestigatorLoad {
                    investigator_id: id.to_owned(),
                    open_cases,
                })
                .collect(),
        })
    }
}

#[tonic::async_trait]
impl CaseSquad for CaseSquadService {
    /// Errors: see [`open::check`] (`InvalidArgument`, `FailedPrecondition` when not cleared),
    /// `NotFound` for an unknown station, `FailedPrecondition` for a squad without investigators.
    async fn open_case(
        &self,
        request: Request<v1::OpenCaseRequest>,
    ) -> Result<Response<v1::Case>, Status> {
        Ok(Response::new(CaseSquadService::open_case(
            self,
            request.get_ref(),
        )?))
    }

    /// Errors: `InvalidArgument` on an empty `case_id`, `NotFound` for an unknown one.
    async fn get_case(
        &self,
        request: Request<v1::GetCaseRequest>,
    ) -> Result<Response<v1::Case>, Status> {
        Ok(Response::new(CaseSquadService::get_case(
            self,
            &request.get_ref().case_id,
        )?))
    }

    /// Errors: `InvalidArgument` on an empty `station_id`, `NotFound` for an unknown one.
    async fn list_cases(
        &self,
        request: Request<v1::ListCasesRequest>,
    ) -> Result<Response<v1::ListCasesResponse>, Status> {
        Ok(Response::new(CaseSquadService::list_cases(
            self,
            &request.get_ref().station_id,
        )?))
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
    use dispatch_core::{ManualClock, Timestamp};
    use dispatch_proto::status::violated_field;
    use tonic::Code;

    fn service(clock: &ManualClock) -> CaseSquadService {
        let directory = v1::ListDistrictsResponse {
            stations: ["st-a", "st-b"]
                .into_iter()
                .map(|id| v1::Station {
                    station_id: id.into(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
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
}

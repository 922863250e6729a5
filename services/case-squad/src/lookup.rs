//! Where the case squad asks whether an incident is real: intake's record.
//!
//! `OpenCase` carries the district's copy of the incident, and anyone who can reach the case
//! squad's listener could forge one. Intake is the registry of every incident the cluster took
//! (`Intake.GetIncident`), so before opening a case the squad asks it: an incident intake never
//! recorded, or recorded at another station, district or call, gets no case
//! ([`crate::open::check_recorded`] holds the rule).

pub use dispatch_bus::ports::RecordsClient;

/// Intake's record of an incident as a complete domain incident, routed to `station_id`'s
/// district `{station_id}-d2` under call `call-{incident_id}` and, as intake hears of a
/// clearance from the feed a moment after the district, still on scene. For tests.
#[cfg(test)]
pub(crate) fn record(incident_id: &str, station_id: &str) -> dispatch_core::Incident {
    use dispatch_core::{Category, Incident, IncidentState, LatLng, Timestamp};
    let mut i = Incident::received(
        incident_id.into(),
        format!("call-{incident_id}").into(),
        Category::ViolentCrime,
        LatLng {
            lat: 23.02,
            lon: 113.75,
        },
        "robbery".into(),
        Timestamp(1_000),
    );
    i.station_id = station_id.into();
    i.district_id = format!("{station_id}-d2").into();
    i.sub_bureau_id = "sb".into();
    i.state = IncidentState::OnScene;
    i
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod tests {
    use std::collections::HashMap;
    use std::sync::Arc;

    use dispatch_bus::convert::incident_to_wire;
    use dispatch_bus::ports::{CallOptions, PortError};
    use dispatch_core::Incident;
    use dispatch_proto::service_names;
    use dispatch_proto::v1;
    use dispatch_proto::v1::intake_server::{Intake, IntakeServer};
    use tokio::net::TcpListener;
    use tonic::service::Routes;
    use tonic::{Request, Response, Status};

    use super::*;

    /// Intake as the case squad sees it: `GetIncident` over a fixed record, or down.
    #[derive(Debug, Default)]
    pub(crate) struct FakeIntake {
        /// Incident id -> what intake recorded.
        pub(crate) incidents: HashMap<String, Incident>,
        /// Answers every call `Unavailable`.
        pub(crate) down: bool,
        /// Never answers (a hung intake).
        pub(crate) hung: bool,
    }

    impl FakeIntake {
        /// An intake that recorded `incidents`.
        pub(crate) fn with(incidents: impl IntoIterator<Item = Incident>) -> Self {
            Self {
                incidents: incidents
                    .into_iter()
                    .map(|i| (i.id.to_string(), i))
                    .collect(),
                down: false,
                hung: false,
            }
        }
    }

    #[tonic::async_trait]
    impl Intake for FakeIntake {
        async fn report_incident(
            &self,
            _: Request<v1::ReportIncidentRequest>,
        ) -> Result<Response<v1::ReportIncidentResponse>, Status> {
            Err(Status::unimplemented("the case squad never reports calls"))
        }

        async fn get_incident(
            &self,
            request: Request<v1::GetIncidentRequest>,
        ) -> Result<Response<v1::Incident>, Status> {
            if self.hung {
                std::future::pending::<()>().await;
            }
            if self.down {
                return Err(Status::unavailable("intake is down"));
            }
            let id = &request.get_ref().incident_id;
            self.incidents
                .get(id)
                .map(|i| Response::new(incident_to_wire(i)))
                .ok_or_else(|| Status::not_found(format!("incident {id:?} not found")))
        }
    }

    /// Both adapters: the record when intake has it, `None` on `NOT_FOUND`, a transport
    /// failure as `Unavailable`.
    async fn answers_as_intake_does(up: &RecordsClient, down: &RecordsClient) {
        let recorded = record("inc-1", "st-a");
        assert_eq!(up.incident(&"inc-1".into()).await.unwrap(), Some(recorded));
        assert_eq!(up.incident(&"inc-404".into()).await.unwrap(), None);
        assert!(matches!(
            down.incident(&"inc-1".into()).await.unwrap_err(),
            PortError::Unavailable { .. }
        ));
    }

    fn options() -> CallOptions {
        CallOptions::with_deadline(RecordsClient::DEFAULT_DEADLINE)
    }

    #[tokio::test]
    async fn in_process_lookup_answers_as_intake_does() {
        let up = RecordsClient::in_process(
            Arc::new(FakeIntake::with([record("inc-1", "st-a")])),
            options(),
        );
        let down = RecordsClient::in_process(
            Arc::new(FakeIntake {
                down: true,
                ..FakeIntake::default()
            }),
            options(),
        );
        answers_as_intake_does(&up, &down).await;
    }

    #[tokio::test]
    async fn grpc_lookup_answers_as_intake_does() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let routes = Routes::new(IntakeServer::new(FakeIntake::with([record(
            "inc-1", "st-a",
        )])));
        let server = tokio::spawn(dispatch_runtime::serve(
            listener,
            routes,
            &[service_names::INTAKE],
            std::future::pending(),
        ));
        let up = RecordsClient::grpc(
            dispatch_bus::ports::channel(&addr.to_string()).unwrap(),
            options(),
        );
        // Nothing listens on a port just freed: the transport refuses, as when intake is down.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let closed_addr = closed.local_addr().unwrap();
        drop(closed);
        let down = RecordsClient::grpc(
            dispatch_bus::ports::channel(&closed_addr.to_string()).unwrap(),
            options(),
        );
        answers_as_intake_does(&up, &down).await;
        server.abort();
    }

    /// A hung intake costs the check its deadline, not the case squad's caller its own.
    #[tokio::test(start_paused = true)]
    async fn a_hung_intake_is_given_up_on_at_the_deadline() {
        let hung = RecordsClient::in_process(
            Arc::new(FakeIntake {
                hung: true,
                ..FakeIntake::default()
            }),
            options(),
        );
        let started = tokio::time::Instant::now();
        let e = hung.incident(&"inc-1".into()).await.unwrap_err();
        assert_eq!(
            e,
            PortError::DeadlineExceeded {
                after: Some(RecordsClient::DEFAULT_DEADLINE),
                message: String::new(),
            }
        );
        assert_eq!(started.elapsed(), RecordsClient::DEFAULT_DEADLINE);
    }
}

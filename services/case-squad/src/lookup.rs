//! Where the case squad asks whether an incident is real: intake's record.
//!
//! `OpenCase` carries the district's copy of the incident, and anyone who can reach the case
//! squad's listener could forge one. Intake is the registry of every incident the cluster took
//! (`Intake.GetIncident`), so before opening a case the squad asks it: an incident intake never
//! recorded, or recorded at another station, district or call, gets no case
//! ([`crate::open::check_recorded`] holds the rule).

use dispatch_bus::ports::InProcess;
use dispatch_proto::v1;
use dispatch_proto::v1::intake_client::IntakeClient;
use tonic::transport::Channel;
use tonic::{Code, Request, Status};

/// Case squad -> intake: what intake recorded of an incident.
#[tonic::async_trait]
pub trait IncidentLookup: Send + Sync + 'static {
    /// Intake's copy of incident `incident_id`, `None` when intake answers `NOT_FOUND`.
    ///
    /// Errors: any other status intake (or the transport) answers, e.g. `Unavailable` when
    /// intake cannot be reached; the case squad turns every one into `Unavailable`, since
    /// without an answer it cannot decide and the caller should try again.
    async fn incident(&self, incident_id: &str) -> Result<Option<v1::Incident>, Status>;
}

/// `NOT_FOUND` -> `None`, anything else as it came.
fn found(answer: Result<v1::Incident, Status>) -> Result<Option<v1::Incident>, Status> {
    match answer {
        Ok(incident) => Ok(Some(incident)),
        Err(status) if status.code() == Code::NotFound => Ok(None),
        Err(status) => Err(status),
    }
}

fn request(incident_id: &str) -> v1::GetIncidentRequest {
    v1::GetIncidentRequest {
        incident_id: incident_id.to_owned(),
    }
}

/// Over gRPC, when intake runs in another process.
#[tonic::async_trait]
impl IncidentLookup for IntakeClient<Channel> {
    async fn incident(&self, incident_id: &str) -> Result<Option<v1::Incident>, Status> {
        let answer = IntakeClient::get_incident(&mut self.clone(), request(incident_id)).await;
        found(answer.map(tonic::Response::into_inner))
    }
}

/// In-process, when intake runs in the same process (the embedded mode).
#[tonic::async_trait]
impl<T: v1::intake_server::Intake> IncidentLookup for InProcess<T> {
    async fn incident(&self, incident_id: &str) -> Result<Option<v1::Incident>, Status> {
        let answer = self
            .0
            .get_incident(Request::new(request(incident_id)))
            .await;
        found(answer.map(tonic::Response::into_inner))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod tests {
    use std::collections::HashMap;
    use std::sync::Arc;

    use dispatch_proto::service_names;
    use dispatch_proto::v1::intake_server::{Intake, IntakeServer};
    use tokio::net::TcpListener;
    use tonic::Response;
    use tonic::service::Routes;

    use super::*;

    /// Intake as the case squad sees it: `GetIncident` over a fixed record, or down.
    #[derive(Debug, Default)]
    pub(crate) struct FakeIntake {
        /// Incident id -> what intake recorded.
        pub(crate) incidents: HashMap<String, v1::Incident>,
        /// Answers every call `Unavailable`.
        pub(crate) down: bool,
    }

    impl FakeIntake {
        /// An intake that recorded `incidents`.
        pub(crate) fn with(incidents: impl IntoIterator<Item = v1::Incident>) -> Self {
            Self {
                incidents: incidents
                    .into_iter()
                    .map(|i| (i.incident_id.clone(), i))
                    .collect(),
                down: false,
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
            if self.down {
                return Err(Status::unavailable("intake is down"));
            }
            let id = &request.get_ref().incident_id;
            self.incidents
                .get(id)
                .cloned()
                .map(Response::new)
                .ok_or_else(|| Status::not_found(format!("incident {id:?} not found")))
        }
    }

    fn recorded() -> v1::Incident {
        v1::Incident {
            incident_id: "inc-1".into(),
            call_id: "call-1".into(),
            station_id: "st-a".into(),
            district_id: "st-a-d2".into(),
            ..Default::default()
        }
    }

    /// Both adapters: the record when intake has it, `None` on `NOT_FOUND`, other statuses
    /// passed on.
    async fn answers_as_intake_does(up: &dyn IncidentLookup, down: &dyn IncidentLookup) {
        assert_eq!(up.incident("inc-1").await.unwrap(), Some(recorded()));
        assert_eq!(up.incident("inc-404").await.unwrap(), None);
        assert_eq!(
            down.incident("inc-1").await.unwrap_err().code(),
            Code::Unavailable
        );
    }

    #[tokio::test]
    async fn in_process_lookup_answers_as_intake_does() {
        let up = InProcess(Arc::new(FakeIntake::with([recorded()])));
        let down = InProcess(Arc::new(FakeIntake {
            down: true,
            ..FakeIntake::default()
        }));
        answers_as_intake_does(&up, &down).await;
    }

    #[tokio::test]
    async fn grpc_lookup_answers_as_intake_does() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let routes = Routes::new(IntakeServer::new(FakeIntake::with([recorded()])));
        let server = tokio::spawn(dispatch_runtime::serve(
            listener,
            routes,
            &[service_names::INTAKE],
            std::future::pending(),
        ));
        let up = IntakeClient::new(dispatch_bus::ports::channel(&addr.to_string()).unwrap());
        // Nothing listens on a port just freed: the transport refuses, as when intake is down.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let closed_addr = closed.local_addr().unwrap();
        drop(closed);
        let down =
            IntakeClient::new(dispatch_bus::ports::channel(&closed_addr.to_string()).unwrap());
        answers_as_intake_does(&up, &down).await;
        server.abort();
    }
}

//! The gRPC contract of the dispatch cluster: package `dispatch.v1`, compiled from
//! `proto/dispatch/v1/*.proto` at build time, plus the helpers every service uses to answer bad
//! input with a precise [`tonic::Status`].
//!
//! Flow of a call: the 110 platform calls `Intake.ReportIncident`; intake asks
//! `GeoRouter.Route`, hands the incident to `DistrictService.SubmitIncident`; the district's
//! actor publishes a `DispatchOrder` through `Notification.Publish` to the officer's terminal
//! (`Notification.Subscribe`); criminal and administrative clearances go to `CaseSquad.OpenCase`.

pub mod status;

/// Generated messages and services of `dispatch.v1`.
#[allow(missing_docs, clippy::all, clippy::unwrap_used)]
pub mod v1 {
    tonic::include_proto!("dispatch.v1");
}

/// Encoded `FileDescriptorSet` of `dispatch.v1`, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    tonic::include_file_descriptor_set!("dispatch_v1_descriptor");

/// gRPC service names, as the health service reports them.
pub mod service_names {
    /// `dispatch.v1.Intake`
    pub const INTAKE: &str = "dispatch.v1.Intake";
    /// `dispatch.v1.GeoRouter`
    pub const GEO_ROUTER: &str = "dispatch.v1.GeoRouter";
    /// `dispatch.v1.DistrictService`
    pub const DISTRICT: &str = "dispatch.v1.DistrictService";
    /// `dispatch.v1.CaseSquad`
    pub const CASE_SQUAD: &str = "dispatch.v1.CaseSquad";
    /// `dispatch.v1.Notification`
    pub const NOTIFICATION: &str = "dispatch.v1.Notification";
}

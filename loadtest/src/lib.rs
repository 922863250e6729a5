//! Load-test harness of the dispatch cluster.
//!
//! It plays both ends of the flow of a 110 call over gRPC: a **110 platform** sending calls to
//! `Intake.ReportIncident` by a Poisson process at a citywide peak rate, spread over sub-bureaus
//! by population ([`platform`]), and a fleet of **officer terminals** that subscribe to their
//! dispatch orders (`Notification.Subscribe`), acknowledge, drive at road speed streaming GPS
//! (`DistrictService.ReportLocation`), arrive, spend an on-scene time and clear with a
//! disposition ([`terminal`]). After the calls and a drain it asks the cluster where every
//! incident ended (`Intake.GetIncident`, `CaseSquad.ListCases`) and writes a [`report`]: response
//! time percentiles by priority, sub-bureau and district, the share within the target, system
//! latency, throughput, and a pass/fail verdict that becomes the exit code.
//!
//! A run is described by a [`scenario::Scenario`] file. [`run::run`] starts an embedded cluster
//! on loopback (or drives a running one) with a scaled clock, so one simulated hour of peak
//! takes a minute or two of real time.
//!
//! Units: durations in seconds of cluster time unless named `_real` or `_ms` (real
//! milliseconds); distances in metres; coordinates in WGS84 degrees; speeds in km/h.

use std::path::PathBuf;

pub mod connect;
pub mod draw;
pub mod geography;
pub mod html;
pub mod platform;
pub mod report;
pub mod run;
pub mod scenario;
pub mod stats;
pub mod takeover;
pub mod terminal;

/// Everything that can stop a run before it has a verdict.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file given to the harness cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The scenario is not valid TOML or has an unknown key.
    #[error("scenario {path}: {message}")]
    ScenarioSyntax {
        /// The scenario file (empty when parsed from text).
        path: PathBuf,
        /// The parser's message, naming the key.
        message: String,
    },
    /// A scenario value breaks a rule.
    #[error("scenario key {key}: {rule}")]
    Scenario {
        /// The key, dotted (`terminal.speed_kmh`).
        key: String,
        /// The rule and the value that broke it.
        rule: String,
    },
    /// The city map cannot be loaded.
    #[error("map {source_desc}: {message}")]
    Map {
        /// Which map.
        source_desc: String,
        /// Why.
        message: String,
    },
    /// A set of weights cannot be drawn from (all zero, negative, or empty).
    #[error("cannot draw from {what}: {reason}")]
    Weights {
        /// What the weights are for.
        what: String,
        /// Why.
        reason: String,
    },
    /// Command-line flags that do not fit together.
    #[error("{0}")]
    Usage(String),
    /// The running cluster does not match the scenario (its map or its clock scale).
    #[error("the cluster does not match the scenario: {0}")]
    Mismatch(String),
    /// A report file cannot be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A connection to a cluster address failed.
    #[error("cannot connect to {service} at {addr}: {message}")]
    Connect {
        /// The service.
        service: &'static str,
        /// The address.
        addr: String,
        /// Why.
        message: String,
    },
    /// An RPC the run depends on failed.
    #[error("{rpc} failed: {status}")]
    Rpc {
        /// The RPC, with its argument (`DistrictService.GetDistrict(d-01)`).
        rpc: String,
        /// The cluster's answer.
        status: Box<tonic::Status>,
    },
    /// The embedded cluster failed to start or the run could not set up.
    #[error("{0}")]
    Setup(String),
}

impl Error {
    /// The process exit code for this error: 2 for bad input (scenario, files, flags, a map
    /// that does not match the cluster), 1 for a run that failed on the way.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Read { .. }
            | Error::ScenarioSyntax { .. }
            | Error::Scenario { .. }
            | Error::Map { .. }
            | Error::Weights { .. }
            | Error::Usage(_)
            | Error::Mismatch(_)
            | Error::Write { .. } => 2,
            Error::Connect { .. } | Error::Rpc { .. } | Error::Setup(_) => 1,
        }
    }

    /// An [`Error::Rpc`] for `rpc`.
    pub fn rpc(rpc: impl Into<String>, status: tonic::Status) -> Self {
        Error::Rpc {
            rpc: rpc.into(),
            status: Box::new(status),
        }
    }
}

/// Result of the harness library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Runs `fut` in an actix system on a multi-thread tokio runtime, as the embedded cluster needs
/// (its district actors live on the system's thread, tonic on the workers).
///
/// Errors: [`Error::Setup`] when the runtime cannot be built.
pub fn block_on_actix<F: std::future::Future>(fut: F) -> Result<F::Output> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Setup(format!("cannot build the tokio runtime: {e}")))?;
    Ok(actix_rt::System::with_tokio_rt(move || runtime).block_on(fut))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_input_exits_2_and_run_failures_exit_1() {
        let bad_input = [
            Error::Scenario {
                key: "clock.scale".into(),
                rule: "r".into(),
            },
            Error::Read {
                path: "x".into(),
                source: std::io::Error::other("gone"),
            },
            Error::Usage("flags".into()),
            Error::Mismatch("district d-1".into()),
        ];
        for e in bad_input {
            assert_eq!(e.exit_code(), 2, "{e}");
        }
        let failures = [
            Error::Setup("x".into()),
            Error::rpc("Intake.GetIncident", tonic::Status::unavailable("down")),
            Error::Connect {
                service: "intake",
                addr: "127.0.0.1:1".into(),
                message: "refused".into(),
            },
        ];
        for e in failures {
            assert_eq!(e.exit_code(), 1, "{e}");
        }
    }
}

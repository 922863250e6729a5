//! How the services of the dispatch cluster talk to each other.
//!
//! - [`ports`]: one trait per dependency a service has on another (intake -> geo-router,
//!   intake -> district, district -> notification, district -> case squad), each with a gRPC
//!   adapter (separate processes) and an in-process adapter (the embedded single-process mode).
//!   Both adapters carry the same `dispatch.v1` messages, so the code path is the same.
//! - [`feed`]: the in-process fan-out bus behind the notification service: one ordered,
//!   resumable feed per audience (an officer's terminal, the command center).
//! - [`convert`]: domain types of `dispatch-core` to and from their wire messages, with
//!   field-naming errors for bad input.

pub mod convert;
pub mod feed;
pub mod ports;

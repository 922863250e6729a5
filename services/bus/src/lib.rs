//! How the services of the dispatch cluster talk to each other.
//!
//! - [`ports`]: one trait per dependency a service has on another (intake -> geo-router,
//!   intake -> district, district -> notification, district -> case squad), each with a gRPC
//!   adapter (separate processes) and an in-process adapter (the embedded single-process mode).
//!   Both adapters carry the same `dispatch.v1` messages, so the code path is the same.
//! - [`feed`]: the feeds behind the notification service: one ordered feed per audience (an
//!   officer's terminal, the command center), resumable from an opaque cursor, in memory or in
//!   Redis streams.
//! - [`convert`]: domain types of `dispatch-core` to and from their wire messages, with
//!   field-naming errors for bad input.

pub mod convert;
pub mod feed;
pub mod ports;
pub mod redis_conn;

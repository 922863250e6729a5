//! How the services of the dispatch cluster talk to each other.
//!
//! - [`ports`]: one trait per dependency a service has on another (intake -> geo-router,
//!   intake -> district, district -> notification, district -> case squad), over domain types
//!   with a typed error, and one client type each over a gRPC channel, an in-process handle or
//!   any implementation; every call has a deadline and carries the trace context.
//! - [`trace`]: the W3C trace context a 110 call carries from intake to the terminal.
//! - [`feed`]: the feeds behind the notification service: one ordered feed per audience (an
//!   officer's terminal, the command center), resumable from an opaque cursor, in memory or in
//!   Redis streams.
//! - [`convert`]: domain types of `dispatch-core` to and from their wire messages, with
//!   field-naming errors for bad input.

pub mod convert;
pub mod feed;
pub mod ports;
pub mod redis_conn;
pub mod trace;

//! Runs the dispatch cluster.
//!
//! - [`EmbeddedCluster`]: all five services in one process, wired in-process (the in-process
//!   bus and direct calls), served together on one loopback port. The load-test harness starts
//!   one; so do the end-to-end tests.
//! - [`standalone`]: any one service as its own process, talking gRPC to its peers at the
//!   addresses of its [`Config`]. `dispatch-server <service>` runs it.
//!
//! Both modes run the same service code; only the adapters behind the ports differ.

pub mod backends;
pub mod config;
pub mod embedded;
pub mod standalone;

pub use config::Config;
pub use embedded::{ClusterConfig, EmbeddedCluster};

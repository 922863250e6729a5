//! The district service: one actix actor per police district.
//!
//! In the flow of a call, intake hands a routed incident to `SubmitIncident`; the district's
//! [`actor::DistrictActor`] queues it and dispatches the nearest available officer (the rule is
//! in `dispatch-core`); the order and every incident change leave through the [`outbox::Outbox`]
//! to the notification service (terminals, command center) and, for criminal and administrative
//! clearances, to the case squad of the district's station. Officers' terminals then call
//! `AcknowledgeDispatch`, `ArriveOnScene`, `ClearIncident`, `UpdateOfficerStatus` and stream
//! `ReportLocation`.
//!
//! Each actor alone mutates its district's state, so there are no locks. Actors are spread over
//! a few actix arbiters (threads); gRPC handlers reach them through the cloneable
//! [`node::DistrictNode`] handle.
//!
//! One node may run every district ([`DistrictNode::start`]: the embedded mode, and one
//! district process over Redis), or districts may be spread over several nodes
//! ([`DistrictNode::join_cluster`]): each node then owns the districts rendezvous hashing gives
//! it among the live nodes, through a fenced lease, and takes over those of a node that dies
//! or leaves (`ownership`, over `dispatch-cluster`), and forwards a terminal's command for a
//! district it does not own to the owner ([`forward`]).
//! A panic in one district's handler is caught, costs that district a rebuild from its journal
//! and never its neighbours on the same thread; a command that keeps panicking is quarantined
//! ([`supervision`]).

pub mod actor;
mod delivery;
pub mod forward;
mod host;
pub mod journal;
pub mod node;
pub mod outbox;
mod ownership;
mod recent;
mod record_stream;
pub mod service;
pub mod supervision;

pub use node::{ClusterOptions, DistrictNode, NodeConfig};
pub use outbox::Outbox;
pub use service::{DistrictGrpc, run};

/// Why a district request failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The district's state machine refused the request.
    #[error(transparent)]
    Domain(#[from] dispatch_core::district::Error),
    /// No district with this id on this node.
    #[error("district {0:?} not found")]
    UnknownDistrict(String),
    /// No officer with this id on this node.
    #[error("officer {0:?} not found")]
    UnknownOfficer(String),
    /// The district is one of the cluster's, but this node does not own it now (another node
    /// does, or a takeover is in progress): ask its owner, or retry.
    #[error("district {district} is not owned by this node; {}", owner_hint(owner.as_deref()))]
    NotOwner {
        /// The district.
        district: String,
        /// The node that owns it, when this node knows.
        owner: Option<String>,
    },
    /// The district's actor is gone (node shutting down).
    #[error("district actor unavailable: {0}")]
    Mailbox(#[from] actix::MailboxError),
    /// The district's journal refused or could not take the request: unreachable (the actor
    /// rebuilds itself), or the district was taken over by another owner.
    #[error(transparent)]
    Journal(#[from] journal::Error),
    /// The district's handler panicked on this command (a bug): the command was not applied
    /// and the district was rebuilt from its journal. Tried again it may pass (the state moves
    /// on); at its `quarantine_after`th panic it is quarantined instead.
    #[error(
        "district {district} failed on this command (panic {tries} of {quarantine_after} before \
         quarantine): it was not applied and the district was rebuilt from its journal"
    )]
    Panicked {
        /// The district.
        district: String,
        /// Panics of this command so far.
        tries: u32,
        /// Panics after which it is quarantined ([`supervision::SupervisionConfig`]).
        quarantine_after: u32,
    },
    /// The command made the district panic `tries` times and is quarantined: refused without
    /// running until an operator deals with it.
    #[error(
        "command quarantined in district {district} after {tries} panics: it is refused without \
         running; see {recorded_in}"
    )]
    Quarantined {
        /// The district.
        district: String,
        /// Panics it raised.
        tries: u32,
        /// Where it is recorded ([`supervision::QuarantineSink::location`]).
        recorded_in: String,
    },
    /// The actor answered something other than the request asks for (a bug).
    #[error("district answered an unexpected reply: {0}")]
    BadReply(String),
}

fn owner_hint(owner: Option<&str>) -> String {
    match owner {
        Some(node) => format!("its owner is node {node}"),
        None => "its owner is not known yet (a takeover in progress)".into(),
    }
}

/// Result of district operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

//! What a node needs to run a district's actor ([`Host`]), and the table of the actors it runs
//! now ([`Table`]), shared by the node's handle and, in a cluster, its ownership loop.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use actix::{Actor, Addr};
use actix_rt::ArbiterHandle;
use dispatch_cluster::{LiveView, NodeId};
use dispatch_core::Officer;
use dispatch_core::clock::SharedClock;
use dispatch_core::district::{DistrictConfig, DistrictState};
use parking_lot::RwLock;
use tokio::sync::watch;

use crate::actor::{DistrictActor, Recovered, StopHook};
use crate::delivery::{Marks, track};
use crate::journal::Journal;
use crate::node::{NodeConfig, officer_id};
use crate::supervision::Supervisor;
use crate::{Error, Outbox, Result};

/// How to start a district's actor on this node.
pub(crate) struct Host {
    config: NodeConfig,
    clock: SharedClock,
    outbox: Outbox,
    journal: Arc<dyn Journal>,
    arbiters: Vec<ArbiterHandle>,
    /// Round-robin over `arbiters`.
    next: AtomicUsize,
    marks: Arc<Marks>,
    /// Supervises every district actor of the node.
    supervisor: Arc<Supervisor>,
}

impl Host {
    /// Errors: `config.travel`, `config.positions` or `config.supervision` invalid, or no
    /// arbiter given, as a message naming the rule.
    pub(crate) fn new(
        config: NodeConfig,
        clock: SharedClock,
        outbox: Outbox,
        journal: Arc<dyn Journal>,
        arbiters: &[ArbiterHandle],
    ) -> std::result::Result<Self, String> {
        config.travel.validate()?;
        config
            .positions
            .validate()
            .map_err(|e| format!("positions.{e}"))?;
        config
            .supervision
            .validate()
            .map_err(|e| format!("supervision.{e}"))?;
        let supervisor = Arc::new(Supervisor::new(
            config.supervision,
            config.quarantine.clone(),
        ));
        if arbiters.is_empty() {
            return Err("at least one arbiter is needed to run district actors".into());
        }
        Ok(Self {
            config,
            clock,
            outbox,
            journal,
            arbiters: arbiters.to_vec(),
            next: AtomicUsize::new(0),
            marks: Arc::new(Marks::default()),
            supervisor,
        })
    }

    /// The node's supervisor.
    pub(crate) fn supervisor(&self) -> &Arc<Supervisor> {
        &self.supervisor
    }

    pub(crate) fn journal(&self) -> &dyn Journal {
        self.journal.as_ref()
    }

    /// District `district_id` as configured: a roster of `officers_per_district` off-duty
    /// officers, what a district the journal has never seen starts from.
    pub(crate) fn fresh(&self, district_id: &str) -> DistrictState {
        let now = self.clock.now();
        let mut fresh = DistrictState::new(
            district_id.into(),
            DistrictConfig {
                travel: self.config.travel,
                positions: self.config.positions,
            },
        );
        for n in 1..=self.config.officers_per_district {
            let id = officer_id(district_id, n);
            fresh.add_officer(Officer::off_duty(id.into(), district_id.into(), now));
        }
        fresh
    }

    /// Starts the actor of a `recovered` district on the next arbiter, delivers again the
    /// effects past its delivered mark, and enters it in `table`. `hook` is told when it stops.
    pub(crate) fn run(&self, table: &Table, recovered: Recovered, hook: Option<StopHook>) {
        let district = recovered.state.id().to_string();
        // The roster is the journal's (a snapshot may predate a roster change).
        let roster: Vec<String> = recovered
            .state
            .officers()
            .map(|o| o.id.to_string())
            .collect();
        self.outbox.redeliver(&recovered);
        let emitted = self.marks.emitted(&district);
        emitted.store(recovered.seq, Ordering::Release);
        let (clock, outbox, journal) = (
            self.clock.clone(),
            self.outbox.clone(),
            self.journal.clone(),
        );
        let Recovered {
            state, epoch, seq, ..
        } = recovered;
        let (every, supervisor) = (self.config.snapshot_every, self.supervisor.clone());
        let arbiter =
            &self.arbiters[self.next.fetch_add(1, Ordering::Relaxed) % self.arbiters.len()];
        let addr = DistrictActor::start_in_arbiter(arbiter, move |_| {
            let actor =
                DistrictActor::new(state, clock, outbox, journal, epoch, seq, every, emitted)
                    .supervised(supervisor);
            match hook {
                Some(hook) => actor.with_stop_hook(hook),
                None => actor,
            }
        });
        table.insert(&district, Running { epoch, addr }, roster);
    }

    /// Stops tracking the delivered mark of `district` (this node no longer owns it).
    pub(crate) fn forget(&self, district: &str) {
        self.marks.forget(district);
    }

    /// Starts the task that stores each district's delivered mark; it runs until aborted.
    pub(crate) fn track(&self) -> tokio::task::JoinHandle<()> {
        tokio::spawn(track(
            self.marks.clone(),
            self.outbox.clone(),
            self.journal.clone(),
        ))
    }
}

/// The actor of a district this node runs, and the epoch it writes with.
#[derive(Clone)]
pub(crate) struct Running {
    pub(crate) epoch: u64,
    pub(crate) addr: Addr<DistrictActor>,
}

/// Who owns the districts this node does not (a clustered node): the holder last seen by the
/// ownership loop, else the rendezvous choice among the live nodes.
pub(crate) struct Owners {
    pub(crate) me: NodeId,
    pub(crate) seen: RwLock<HashMap<String, NodeId>>,
    pub(crate) view: watch::Receiver<LiveView>,
}

/// The districts this node runs now, and the district of every officer it has seen.
pub(crate) struct Table {
    directory: HashSet<String>,
    running: RwLock<HashMap<String, Running>>,
    /// Officer id -> district id, from the rosters of every district this node has run. An
    /// officer of a district never run here is found by the shape of the id instead.
    officers: RwLock<HashMap<String, String>>,
    owners: Option<Owners>,
}

impl Table {
    /// A table for the districts of `directory`, running none yet.
    pub(crate) fn new(directory: impl IntoIterator<Item = String>, owners: Option<Owners>) -> Self {
        Self {
            directory: directory.into_iter().collect(),
            running: RwLock::default(),
            officers: RwLock::default(),
            owners,
        }
    }

    fn insert(&self, district: &str, running: Running, roster: Vec<String>) {
        let mut officers = self.officers.write();
        for officer in roster {
            officers.insert(officer, district.to_owned());
        }
        drop(officers);
        self.running.write().insert(district.to_owned(), running);
        if let Some(owners) = &self.owners {
            owners.seen.write().remove(district);
        }
    }

    /// Takes `district` out of the table when its actor writes as `epoch` (any epoch when
    /// `None`); answers what was there.
    pub(crate) fn remove(&self, district: &str, epoch: Option<u64>) -> Option<Running> {
        let mut running = self.running.write();
        let here = running.get(district)?;
        if epoch.is_some_and(|e| e != here.epoch) {
            return None;
        }
        running.remove(district)
    }

    /// Records that `node` holds `district`.
    pub(crate) fn seen_owner(&self, district: &str, node: NodeId) {
        if let Some(owners) = &self.owners {
            owners.seen.write().insert(district.to_owned(), node);
        }
    }

    /// Forgets who holds `district` (its lease was released): until a holder is seen again,
    /// its owner is the rendezvous choice.
    pub(crate) fn forget_owner(&self, district: &str) {
        if let Some(owners) = &self.owners {
            owners.seen.write().remove(district);
        }
    }

    /// Replaces what this node knows of the holders of the districts it does not run with
    /// `holders` (district, holder; `None` for a free lease), as read from the leases.
    pub(crate) fn seen_owners(&self, holders: impl IntoIterator<Item = (String, Option<NodeId>)>) {
        let Some(owners) = &self.owners else {
            return;
        };
        let mut seen = owners.seen.write();
        for (district, holder) in holders {
            match holder {
                Some(node) if node != owners.me => seen.insert(district, node),
                _ => seen.remove(&district),
            };
        }
    }

    /// Ids of the districts running here, sorted.
    pub(crate) fn ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.running.read().keys().cloned().collect();
        ids.sort();
        ids
    }

    /// The actor of `district`.
    ///
    /// Errors: [`Error::UnknownDistrict`] for a district not in the directory;
    /// [`Error::NotOwner`] for one this node does not run now (its actor stopped, or another
    /// node owns it).
    pub(crate) fn district(&self, id: &str) -> Result<Addr<DistrictActor>> {
        if let Some(running) = self.running.read().get(id)
            && running.addr.connected()
        {
            return Ok(running.addr.clone());
        }
        if !self.directory.contains(id) {
            return Err(Error::UnknownDistrict(id.to_owned()));
        }
        Err(Error::NotOwner {
            district: id.to_owned(),
            owner: self.owner_of(id),
        })
    }

    /// The actor of the district of `officer_id`.
    ///
    /// Errors: [`Error::UnknownOfficer`] for an officer of no district this node knows;
    /// otherwise as [`Table::district`].
    pub(crate) fn officer_district(&self, officer_id: &str) -> Result<Addr<DistrictActor>> {
        let known = self.officers.read().get(officer_id).cloned();
        if let Some(district) = known {
            return self.district(&district);
        }
        // An officer of a district this node never ran: its id names the district.
        let named = roster_district(officer_id).filter(|d| self.directory.contains(*d));
        let runs = named.is_some_and(|d| self.running.read().contains_key(d));
        match named {
            Some(d) if !runs => self.district(d),
            _ => Err(Error::UnknownOfficer(officer_id.to_owned())),
        }
    }

    /// The live district nodes and their addresses, as this clustered node's membership sees
    /// them; `None` for a node that runs every district.
    pub(crate) fn members(&self) -> Option<watch::Receiver<LiveView>> {
        self.owners.as_ref().map(|o| o.view.clone())
    }

    /// Who owns `district` (not this node), when known: the lease holder last seen (read at
    /// every ownership pass, so a takeover between two other nodes is seen within a reconcile
    /// period), else the rendezvous choice among the live nodes.
    fn owner_of(&self, district: &str) -> Option<NodeId> {
        let owners = self.owners.as_ref()?;
        let seen = owners.seen.read().get(district).cloned();
        let owner = seen.or_else(|| owners.view.borrow().owner(district).map(str::to_owned))?;
        (owner != owners.me).then_some(owner)
    }
}

/// The district of an officer id of the configured shape `{district_id}-o{n}`
/// ([`officer_id`]).
fn roster_district(officer_id: &str) -> Option<&str> {
    let (district, n) = officer_id.rsplit_once("-o")?;
    (!district.is_empty() && !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        .then_some(district)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_officer_id_names_its_district() {
        assert_eq!(
            roster_district(&officer_id("town-d01", 7)),
            Some("town-d01")
        );
        assert_eq!(roster_district("town-d01-o123"), Some("town-d01"));
        for bad in ["town-d01", "town-d01-o", "-o01", "town-d01-ox1", ""] {
            assert_eq!(roster_district(bad), None, "{bad:?}");
        }
    }
}

//! A clustered node's ownership loop: which districts this node runs, kept in line with the
//! cluster.
//!
//! DESIGN.md section 5: "A district is owned by exactly one node at a time: a Redis lease with
//! a fencing epoch, placement by rendezvous hashing over live nodes. A node that loses its
//! lease stops writing." The loop (one task) runs a pass over every district of the directory
//! whenever the live set changes, on every [`ClusterConfig::reconcile_every`], and for one
//! district when its lease is released:
//! - a district rendezvous gives this node and that it does not hold: acquire its lease; on
//!   winning, rebuild it from the journal at the lease's epoch (snapshot plus tail, effects not
//!   yet delivered delivered again) and start its actor. A lease held by another node waits for
//!   its release or expiry. A district that cannot be rebuilt is dropped and its lease lapses,
//!   so a broken journal is retried once per lease, not in a loop;
//! - a district it holds that rendezvous now gives another live node: hand it over: take it
//!   out of the table (new commands get `NotOwner`), let the actor finish what it has queued,
//!   store a snapshot and stop ([`Relinquish`]), release the lease (announced, so the new owner
//!   takes it at once).
//!
//! A second task renews every lease held, in one round trip, every
//! [`ClusterConfig::renew_every`]. A district is dropped (its actor stopped at once, no
//! snapshot, nothing more written) when a renewal finds the lease lost, when no renewal has
//! worked for nine tenths of a lease length since the last one was sent (Redis unreachable:
//! the lease is about to lapse and another node to take the district; the renewer drops it
//! itself, at that deadline, whatever a renewal in flight or the loop is waiting on), or when
//! its actor stops because an append was refused as fenced (another node took over while this
//! one was paused).
//!
//! A node that does not see itself in the live set (its registration lapsed, or Redis lost its
//! data and the heartbeat has not registered it again) takes and gives nothing until it does.
//! Leaving ([`Ownership::leave`]): deregister first, so the others stop counting this node, then
//! hand every district over.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use dispatch_cluster::{
    Acquired, ClusterConfig, Holder, Leases, Membership, NodeId, Renewal, SubscriptionProbe,
};
use parking_lot::Mutex;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::actor::{Relinquish, StopHook, Stopped, recover_at};
use crate::host::{Host, Owners, Table};
use crate::node::{AbortOnDrop, ClusterOptions};

/// A lease this node holds.
#[derive(Debug, Clone, Copy)]
struct Held {
    epoch: u64,
    /// When the last renewal that succeeded was sent (the lease runs at least a lease length
    /// from then).
    renewed_at: Instant,
}

/// Leases held, by district; shared by the loop and the renewer.
type HeldLeases = Arc<Mutex<HashMap<String, Held>>>;

/// What the loop and the renewer both need to drop a district at once. The renewer drops
/// what it finds lost itself rather than asking the loop, which may be waiting on Redis (an
/// acquisition during a partition) while a lease runs out.
#[derive(Clone)]
struct Dropper {
    me: NodeId,
    held: HeldLeases,
    table: Arc<Table>,
    host: Arc<Host>,
}

impl Dropper {
    /// Drops a district whose lease was found lost, or not renewed in time.
    fn lose(&self, lost: Lost) {
        if !self.forget(&lost.district, lost.epoch) {
            return;
        }
        let holder = lost.holder.map(|h| {
            if h.node != self.me {
                self.table.seen_owner(&lost.district, h.node.clone());
            }
            format!("{} at epoch {}", h.node, h.epoch)
        });
        tracing::warn!(district = %lost.district, epoch = lost.epoch,
            holder = holder.as_deref().unwrap_or("none (lapsed or unreachable)"),
            "district lease lost; district dropped");
    }

    /// Forgets `district` held at `epoch` and stops its actor at once (no snapshot: another
    /// node may own the district already); false when not held at that epoch.
    fn forget(&self, district: &str, epoch: u64) -> bool {
        {
            let mut held = self.held.lock();
            if held.get(district).is_none_or(|h| h.epoch != epoch) {
                return false;
            }
            held.remove(district);
        }
        if let Some(running) = self.table.remove(district, Some(epoch)) {
            // An actor that stopped by itself is not there to answer; that is fine.
            running.addr.do_send(Relinquish { snapshot: false });
        }
        self.host.forget(district);
        true
    }
}

/// A lease the renewer found lost (or could not renew for a whole lease length: `holder`
/// `None`).
#[derive(Debug)]
struct Lost {
    district: String,
    epoch: u64,
    holder: Option<Holder>,
}

enum Command {
    Leave(oneshot::Sender<()>),
}

/// The handle to a node's ownership tasks; dropping it stops them without handing anything over.
pub(crate) struct Ownership {
    node: NodeId,
    subscribed: SubscriptionProbe,
    /// Set once a pass found this node live and went over every district.
    settled: Arc<AtomicBool>,
    commands: mpsc::UnboundedSender<Command>,
    _manager: AbortOnDrop,
    _renewer: AbortOnDrop,
}

impl Ownership {
    /// Joins the cluster and starts the loop and the renewer for the districts of `directory`;
    /// answers the table of districts running here, filled in the background.
    ///
    /// Errors: a bad node id, a zero period, a malformed URL, Redis not taking the registration.
    pub(crate) async fn start(
        host: Arc<Host>,
        directory: Vec<String>,
        options: ClusterOptions,
    ) -> dispatch_cluster::Result<(Arc<Table>, Self)> {
        let timings = options.timings;
        let node = options.node_id;
        let leases = Leases::connect(&options.redis_url, node.as_str(), timings.lease)?;
        let membership =
            Membership::join(&options.redis_url, &node, &options.addr, timings).await?;
        if timings.renew_every >= timings.lease {
            tracing::warn!(renew_every = ?timings.renew_every, lease = ?timings.lease,
                "leases are renewed no faster than they lapse: districts will be lost between renewals");
        }
        let subscribed = membership.probe();
        let table = Arc::new(Table::new(
            directory.iter().cloned(),
            Some(Owners {
                me: node.clone(),
                seen: Default::default(),
                view: membership.view(),
            }),
        ));
        let held: HeldLeases = Arc::default();
        let settled = Arc::new(AtomicBool::new(false));
        let (hook, stops) = mpsc::unbounded_channel();
        let (commands, commands_rx) = mpsc::unbounded_channel();
        let dropper = Dropper {
            me: node.clone(),
            held: held.clone(),
            table: table.clone(),
            host: host.clone(),
        };
        let renewer = tokio::spawn(renew(leases.clone(), dropper.clone(), timings));
        let manager = Manager {
            me: node.clone(),
            host,
            table: table.clone(),
            membership,
            leases,
            directory: directory.into(),
            held,
            hook,
            every: timings.reconcile_every,
            lease: timings.lease,
            settled: settled.clone(),
            dropper,
        };
        let manager = tokio::spawn(manager.run(commands_rx, stops));
        Ok((
            table,
            Self {
                node,
                subscribed,
                settled,
                commands,
                _manager: AbortOnDrop(manager),
                _renewer: AbortOnDrop(renewer),
            },
        ))
    }

    /// This node's id.
    pub(crate) fn node_id(&self) -> &str {
        &self.node
    }

    /// Whether the node receives the cluster's announcements now (readiness).
    pub(crate) fn is_subscribed(&self) -> bool {
        self.subscribed.is_subscribed()
    }

    /// Whether a first pass has gone over every district since the node joined: it has
    /// acquired the free leases rendezvous gives it (those still held by another node come on
    /// their release or expiry).
    pub(crate) fn is_settled(&self) -> bool {
        self.settled.load(Ordering::Acquire)
    }

    /// Leaves gracefully (see the module docs) and waits until every district is handed over.
    /// Nothing when already left.
    pub(crate) async fn leave(&self) {
        let (done, left) = oneshot::channel();
        if self.commands.send(Command::Leave(done)).is_ok() {
            let _ = left.await;
        }
    }
}

struct Manager {
    me: NodeId,
    host: Arc<Host>,
    table: Arc<Table>,
    membership: Membership,
    leases: Leases,
    directory: Arc<[String]>,
    held: HeldLeases,
    /// Given to every actor started, so a fenced actor's stop reaches the loop.
    hook: StopHook,
    every: Duration,
    lease: Duration,
    /// Set at the end of the first complete pass.
    settled: Arc<AtomicBool>,
    dropper: Dropper,
}

impl Manager {
    async fn run(
        mut self,
        mut commands: mpsc::UnboundedReceiver<Command>,
        mut stops: mpsc::UnboundedReceiver<Stopped>,
    ) {
        let mut view = self.membership.view();
        let mut released = self.membership.released();
        // The first tick is at once: the first pass.
        let mut tick = tokio::time::interval(self.every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                command = commands.recv() => {
                    if let Some(Command::Leave(done)) = command {
                        self.leave().await;
                        let _ = done.send(());
                    }
                    return;
                }
                Some(stopped) = stops.recv() => self.stopped(&stopped),
                changed = view.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    self.pass().await;
                }
                released = released.recv() => match released {
                    Ok(r) => self.take_released(&r.district).await,
                    Err(RecvError::Lagged(_)) => self.pass().await,
                    Err(RecvError::Closed) => return,
                },
                _ = tick.tick() => self.pass().await,
            }
        }
    }

    fn holds(&self, district: &str) -> bool {
        self.held.lock().contains_key(district)
    }

    /// Hands over what rendezvous gives other nodes, acquires what it gives this one, then reads
    /// who holds the rest.
    async fn pass(&self) {
        self.balance().await;
        self.read_holders().await;
    }

    /// Hands over what rendezvous gives other nodes, then acquires what it gives this one.
    async fn balance(&self) {
        let live = self.membership.live();
        if !live.contains(&self.me) {
            tracing::debug!(node = %self.me, "not in the live set; taking and giving nothing");
            return;
        }
        let held: Vec<String> = self.held.lock().keys().cloned().collect();
        for district in held {
            if let Some(owner) = live.owner(&district)
                && owner != self.me
            {
                self.hand_off(&district, Some(owner)).await;
            }
        }
        let directory = self.directory.clone();
        for district in directory.iter() {
            if live.owner(district) == Some(self.me.as_str())
                && !self.holds(district)
                && let Err(e) = self.acquire(district).await
            {
                // Redis does not answer: the next pass tries again.
                tracing::warn!(%district, error = %e, "district lease not acquired; pass cut short");
                return;
            }
        }
        self.settled.store(true, Ordering::Release);
    }

    /// Reads who holds every district's lease, so this node names the right owner of the ones
    /// it does not run (it only sees a holder itself when it tries to acquire or hands off;
    /// a takeover between two other nodes would go unseen).
    async fn read_holders(&self) {
        let districts: Vec<String> = self.directory.iter().cloned().collect();
        match self.leases.holders(&districts).await {
            Ok(holders) => self.table.seen_owners(
                districts
                    .into_iter()
                    .zip(holders.into_iter().map(|h| h.map(|h| h.node))),
            ),
            Err(e) => tracing::debug!(error = %e, "lease holders not read; keeping what was seen"),
        }
    }

    /// Acquires `district` when it was released and rendezvous gives it to this node.
    async fn take_released(&self, district: &str) {
        self.table.forget_owner(district);
        let live = self.membership.live();
        if live.contains(&self.me)
            && live.owner(district) == Some(self.me.as_str())
            && !self.holds(district)
            && let Err(e) = self.acquire(district).await
        {
            tracing::warn!(%district, error = %e, "released district not acquired");
        }
    }

    /// Acquires the lease of `district` and, when won, rebuilds the district at its epoch and
    /// starts its actor.
    ///
    /// Errors: the lease's ([`dispatch_cluster::Error::Unavailable`] when Redis does not
    /// answer).
    async fn acquire(&self, district: &str) -> dispatch_cluster::Result<()> {
        let asked = Instant::now();
        // Bounded: `acquire` retries a Redis that does not answer for many seconds, and the
        // loop has other work (stops, a leave). A lease won without an answer lapses unrenewed.
        let acquired = tokio::time::timeout(self.lease, self.leases.acquire(district))
            .await
            .unwrap_or_else(|_| {
                Err(dispatch_cluster::Error::Unavailable(format!(
                    "no answer to the acquisition within a lease length ({:?})",
                    self.lease
                )))
            })?;
        let epoch = match acquired {
            Acquired::Won { epoch } => epoch,
            Acquired::Held(holder) => {
                if holder.node != self.me {
                    self.table.seen_owner(district, holder.node);
                }
                return Ok(());
            }
        };
        self.held.lock().insert(
            district.to_owned(),
            Held {
                epoch,
                renewed_at: asked,
            },
        );
        let fresh = self.host.fresh(district);
        match recover_at(self.host.journal(), fresh, epoch).await {
            Ok(recovered) => {
                tracing::info!(%district, epoch, replayed = recovered.loaded.entries.len(),
                    after = recovered.loaded.delivered, "district taken: rebuilt from its journal");
                self.host
                    .run(&self.table, recovered, Some(self.hook.clone()));
            }
            Err(e) => {
                // Released, it would come straight back here; left to lapse, it is tried again
                // after one lease length. Fenced: another node acquired it meanwhile.
                tracing::warn!(%district, epoch, error = %e,
                    "district not rebuilt; its lease is left to lapse");
                self.held.lock().remove(district);
            }
        }
        Ok(())
    }

    /// Hands `district` over to `to` (rendezvous' choice, when known): snapshot, stop, release.
    async fn hand_off(&self, district: &str, to: Option<&str>) {
        let Some(held) = self.held.lock().remove(district) else {
            return;
        };
        if let Some(to) = to {
            self.table.seen_owner(district, to.to_owned());
        }
        if let Some(running) = self.table.remove(district, Some(held.epoch)) {
            // The actor handles what it has queued first, then stores the snapshot. Bounded: an
            // actor stuck rebuilding (Redis down) stops when it gets to the message.
            let relinquish = running.addr.send(Relinquish { snapshot: true });
            match tokio::time::timeout(self.lease, relinquish).await {
                Ok(Ok(Ok(()))) | Ok(Err(_)) => {}
                Ok(Ok(Err(e))) => tracing::warn!(%district, error = %e,
                    "no snapshot before the handoff; the next owner replays the tail"),
                Err(_) => tracing::warn!(%district, "actor did not stop within a lease length"),
            }
        }
        self.host.forget(district);
        match self.leases.release(district, held.epoch).await {
            Ok(true) => {
                tracing::info!(%district, epoch = held.epoch, to = to.unwrap_or("?"), "district handed over");
            }
            Ok(false) => {
                tracing::warn!(%district, epoch = held.epoch, "lease already gone at the handoff");
            }
            Err(e) => tracing::warn!(%district, epoch = held.epoch, error = %e,
                "lease not released; it lapses after its length"),
        }
    }

    /// Drops a district whose actor stopped by itself (fenced, or its arbiter gone).
    fn stopped(&self, stopped: &Stopped) {
        if !self.dropper.forget(&stopped.district, stopped.epoch) {
            return; // a planned stop, or an older actor
        }
        tracing::warn!(district = %stopped.district, epoch = stopped.epoch,
            "district actor stopped (an append was refused as fenced); district dropped");
    }

    /// Deregisters, then hands every district over.
    async fn leave(&mut self) {
        if let Err(e) = self.membership.leave().await {
            tracing::warn!(error = %e, "not deregistered; the registration lapses after its TTL");
        }
        let live = self.membership.live();
        let held: Vec<String> = self.held.lock().keys().cloned().collect();
        for district in &held {
            let to = live.owner(district).filter(|n| *n != self.me);
            self.hand_off(district, to).await;
        }
        tracing::info!(node = %self.me, districts = held.len(), "left the cluster; districts handed over");
    }
}

/// How long before its lease could lapse in Redis an owner that could not renew gives a
/// district up: a tenth of the lease (300 ms of the default 3 s). The lease runs at least a
/// lease length from when its last successful renewal was *sent* (Redis received it later), so
/// giving up at `sent + lease - margin` stops the node before any other can acquire, with room
/// for the actor to stop; clock rate differences over a few seconds are parts per million.
fn give_up_margin(lease: Duration) -> Duration {
    lease / 10
}

/// Renews every lease in `held` every `renew_every`; reports each lost one, and each not
/// renewed in time ([`give_up_margin`]), to the loop.
///
/// A renewal is one attempt per period, cut at the period, and raced against the earliest
/// give-up deadline: `renew_all` retries a Redis that does not answer for many seconds (each
/// try waits out the response timeout), and a renewer waiting on it would keep districts whose
/// leases lapsed (found by the partition test: a node cut off from Redis kept its districts for
/// over 10 s, and two nodes ran them at once for seconds).
async fn renew(leases: Leases, dropper: Dropper, timings: ClusterConfig) {
    let held = &dropper.held;
    let every = timings.renew_every;
    let keep_for = timings.lease.saturating_sub(give_up_margin(timings.lease));
    let mut tick = tokio::time::interval_at(Instant::now() + every, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        tick.tick().await;
        let (batch, give_up_at) = {
            let held = held.lock();
            let batch: Vec<(String, u64)> =
                held.iter().map(|(d, h)| (d.clone(), h.epoch)).collect();
            let earliest = held.values().map(|h| h.renewed_at).min();
            (batch, earliest.map(|at| at + keep_for))
        };
        let Some(give_up_at) = give_up_at else {
            continue;
        };
        let sent = Instant::now();
        let attempt = tokio::select! {
            attempt = tokio::time::timeout(every, leases.renew_all(&batch)) => {
                attempt.unwrap_or_else(|_| {
                    Err(dispatch_cluster::Error::Unavailable(format!(
                        "no answer within the renewal period ({every:?})"
                    )))
                })
            }
            () = tokio::time::sleep_until(give_up_at) => Err(
                dispatch_cluster::Error::Unavailable("no answer before a lease ran out".into()),
            ),
        };
        let reports = match attempt {
            Ok(renewals) => {
                failing = false;
                renewed(held, batch, renewals, sent)
            }
            Err(e) => {
                if !failing {
                    tracing::warn!(error = %e, leases = batch.len(), "lease renewal failed; retrying every renewal");
                }
                failing = true;
                lapsed(held, keep_for)
            }
        };
        for report in reports {
            dropper.lose(report);
        }
    }
}

/// Records the renewals that worked (as of `sent`); answers the leases found lost.
fn renewed(
    held: &HeldLeases,
    batch: Vec<(String, u64)>,
    renewals: Vec<Renewal>,
    sent: Instant,
) -> Vec<Lost> {
    let mut held = held.lock();
    let mut lost = Vec::new();
    for ((district, epoch), renewal) in batch.into_iter().zip(renewals) {
        match renewal {
            Renewal::Renewed => {
                if let Some(h) = held.get_mut(&district)
                    && h.epoch == epoch
                {
                    h.renewed_at = sent;
                }
            }
            Renewal::Lost(holder) => lost.push(Lost {
                district,
                epoch,
                holder,
            }),
        }
    }
    lost
}

/// The leases not renewed for at least `keep_for`: they may lapse any moment.
fn lapsed(held: &HeldLeases, keep_for: Duration) -> Vec<Lost> {
    let now = Instant::now();
    held.lock()
        .iter()
        .filter(|(_, h)| now.duration_since(h.renewed_at) >= keep_for)
        .map(|(district, h)| Lost {
            district: district.clone(),
            epoch: h.epoch,
            holder: None,
        })
        .collect()
}

//! Which district nodes are alive: a registry in Redis with heartbeats and a TTL, pub/sub
//! announcements, and a timer that reads the registry back.
//!
//! DESIGN.md section 5: "Each district node registers itself in Redis with a heartbeat TTL;
//! membership changes are announced on a Redis pub/sub channel." Keys:
//! - `cluster:nodes`: sorted set, member = node id, score = when its registration expires (ms
//!   since the Unix epoch on **Redis's** clock, `TIME`, so node clocks never matter);
//! - `cluster:addrs`: hash, node id -> its internal gRPC address (`host:port`).
//!
//! A member's heartbeat (every [`ClusterConfig::heartbeat_every`]) is one Lua script: it moves
//! the node's expiry to now + [`ClusterConfig::node_ttl`], sets its address, announces
//! `join {node}` on [`MEMBERSHIP_CHANNEL`] when the node was not registered (first start, a
//! Redis that lost its data, a registration that had expired), and removes every other expired
//! registration, announcing `expired {node}`. A graceful [`Membership::leave`] deletes the
//! registration and announces `leave {node}`. The live set is the members whose expiry is
//! still ahead, read by a script on Redis's clock.
//!
//! Pub/sub is fast but lossy: a subscriber that is disconnected misses what is published
//! meanwhile, and a node that dies announces nothing. So every node (and every observer) reads
//! the live set from the registry on any announcement, right after each (re)subscription, and
//! every [`ClusterConfig::reconcile_every`] whatever pub/sub says. The subscriber pings its
//! connection every heartbeat, treats a silent or closed connection as lost, and subscribes
//! again with a backoff (50 ms doubling to 1 s); [`Membership::is_subscribed`] says whether it
//! is subscribed now, for readiness. The subscription also carries lease announcements
//! ([`crate::LEASE_CHANNEL`]), handed on as [`Released`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use dispatch_bus::redis_conn::{self, CONNECT_TIMEOUT, RESPONSE_TIMEOUT};
use futures::StreamExt;
use redis::Script;
use redis::aio::{ConnectionManager, PubSubSink, PubSubStream};
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;

use crate::lease::Released;
use crate::{
    ClusterConfig, LEASE_CHANNEL, MEMBERSHIP_CHANNEL, NodeId, Result, check_node_id, rendezvous,
    unavailable,
};

/// The registry's sorted set of node expiries.
pub const NODES_KEY: &str = "cluster:nodes";
/// The registry's hash of node addresses.
pub const ADDRS_KEY: &str = "cluster:addrs";

const NOW_MS: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
";

/// KEYS: nodes, addrs; ARGV: node, addr, ttl ms, channel.
fn heartbeat_script() -> String {
    format!(
        r"{NOW_MS}
local was = redis.call('ZSCORE', KEYS[1], ARGV[1])
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)
for _, id in ipairs(expired) do
  if id ~= ARGV[1] then
    redis.call('ZREM', KEYS[1], id)
    redis.call('HDEL', KEYS[2], id)
    redis.call('PUBLISH', ARGV[4], 'expired ' .. id)
  end
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
if (not was) or tonumber(was) <= now then
  redis.call('PUBLISH', ARGV[4], 'join ' .. ARGV[1])
  return 1
end
return 0
"
    )
}

/// KEYS: nodes, addrs. Answers `[node, addr, node, addr, ...]` of the live members.
fn live_script() -> String {
    format!(
        r"{NOW_MS}
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], string.format('(%d', now), '+inf')
local out = {{}}
for _, id in ipairs(ids) do
  out[#out + 1] = id
  out[#out + 1] = redis.call('HGET', KEYS[2], id) or ''
end
return out
"
    )
}

/// KEYS: nodes, addrs; ARGV: node, channel.
const LEAVE: &str = r"
local n = redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('PUBLISH', ARGV[2], 'leave ' .. ARGV[1])
return n
";

/// Backoff of the subscriber between tries to subscribe again.
const RESUBSCRIBE_MIN: Duration = Duration::from_millis(50);
const RESUBSCRIBE_MAX: Duration = Duration::from_secs(1);

/// The live district nodes: id -> internal gRPC address, as the registry last said.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LiveView {
    members: BTreeMap<NodeId, String>,
}

impl LiveView {
    /// A view of `members` (id, address).
    pub fn new(members: impl IntoIterator<Item = (NodeId, String)>) -> Self {
        Self {
            members: members.into_iter().collect(),
        }
    }

    /// Whether `node` is live.
    pub fn contains(&self, node: &str) -> bool {
        self.members.contains_key(node)
    }

    /// The internal gRPC address of `node`, when live.
    pub fn addr(&self, node: &str) -> Option<&str> {
        self.members.get(node).map(String::as_str)
    }

    /// The live node ids, sorted.
    pub fn ids(&self) -> impl Iterator<Item = &str> + Clone {
        self.members.keys().map(String::as_str)
    }

    /// How many nodes are live.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether no node is live.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// The node rendezvous hashing gives `district` among the live ones
    /// ([`rendezvous::owner`]); `None` when none is live.
    pub fn owner(&self, district: &str) -> Option<&str> {
        rendezvous::owner(self.ids(), district)
    }
}

/// What every task of a membership shares.
struct Shared {
    con: ConnectionManager,
    client: redis::Client,
    live: Script,
    view: watch::Sender<LiveView>,
    subscribed: AtomicBool,
    released: broadcast::Sender<Released>,
    /// One reconcile at a time, so an older read never overwrites a newer one.
    reconciling: tokio::sync::Mutex<()>,
    /// Whether the last registry read worked (to log an outage once, not every second).
    reachable: AtomicBool,
}

impl Shared {
    /// Reads the live set and publishes it when it changed.
    async fn try_reconcile(&self) -> Result<()> {
        let _one = self.reconciling.lock().await;
        let mut con = self.con.clone();
        let flat: Vec<String> = self
            .live
            .key(NODES_KEY)
            .key(ADDRS_KEY)
            .invoke_async(&mut con)
            .await
            .map_err(unavailable)?;
        let view = LiveView::new(
            flat.chunks_exact(2)
                .map(|pair| (pair[0].clone(), pair[1].clone())),
        );
        self.view.send_if_modified(|old| {
            if *old == view {
                return false;
            }
            tracing::info!(live = ?view.ids().collect::<Vec<_>>(), "cluster membership changed");
            *old = view;
            true
        });
        Ok(())
    }

    /// [`Shared::try_reconcile`], logging an outage once.
    async fn reconcile(&self) {
        match self.try_reconcile().await {
            Ok(()) => {
                if !self.reachable.swap(true, Ordering::AcqRel) {
                    tracing::info!("cluster registry readable again");
                }
            }
            Err(e) => {
                if self.reachable.swap(false, Ordering::AcqRel) {
                    tracing::warn!(error = %e, "cluster registry unreadable; keeping the last view");
                }
            }
        }
    }

    async fn handle(&self, msg: redis::Msg) {
        let payload: String = msg.get_payload().unwrap_or_default();
        match msg.get_channel_name() {
            MEMBERSHIP_CHANNEL => {
                tracing::debug!(announcement = %payload, "membership announcement");
                self.reconcile().await;
            }
            LEASE_CHANNEL => match Released::parse(&payload) {
                // Nobody listening is fine: the ownership loop also runs on a timer.
                Some(released) => drop(self.released.send(released)),
                None => tracing::warn!(message = %payload, "unreadable lease announcement"),
            },
            other => tracing::warn!(channel = %other, "message on an unexpected channel"),
        }
    }
}

/// This process's link to the cluster registry: a member (a district node, registered and
/// heartbeating) or an observer (a caller that only needs the live set). Dropping it stops its
/// tasks without deregistering: to the others that looks like a crash, and the registration
/// lapses after the TTL.
pub struct Membership {
    shared: Arc<Shared>,
    me: Option<NodeId>,
    config: ClusterConfig,
    heartbeat: Option<JoinHandle<()>>,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Membership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Membership")
            .field("me", &self.me)
            .field("live", &*self.shared.view.borrow())
            .field("subscribed", &self.is_subscribed())
            .finish_non_exhaustive()
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        if let Some(h) = self.heartbeat.take() {
            h.abort();
        }
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Membership {
    /// Registers `node` at internal gRPC address `addr` in the Redis at `url`, reads the live
    /// set, and keeps both up to date: heartbeats, subscription, reconcile (see the module
    /// docs). Must run inside a Tokio runtime.
    ///
    /// Errors: [`crate::Error::NodeId`] for a bad id; [`crate::Error::Config`] for a zero period;
    /// [`crate::Error::Unavailable`] for a malformed `url` or a Redis that does not take the first
    /// registration (a node must not start while it cannot register).
    pub async fn join(url: &str, node: &str, addr: &str, config: ClusterConfig) -> Result<Self> {
        check_node_id(node)?;
        config.check_positive()?;
        let shared = Self::shared(url)?;
        let member = Member {
            node: node.to_owned(),
            addr: addr.to_owned(),
            ttl_ms: u64::try_from(config.node_ttl.as_millis()).unwrap_or(u64::MAX),
            script: Script::new(&heartbeat_script()),
        };
        redis_conn::retry("membership join", || member.beat(&shared.con))
            .await
            .map_err(|e| unavailable(format!("registering node {node}: {e}")))?;
        tracing::info!(%node, %addr, "joined the cluster");
        let mut membership = Self::start(shared, Some(node.to_owned()), config).await?;
        let shared = membership.shared.clone();
        membership.heartbeat = Some(tokio::spawn(beat(shared, member, config.heartbeat_every)));
        Ok(membership)
    }

    /// Follows the live set without registering (a caller locating district owners). Must run
    /// inside a Tokio runtime.
    ///
    /// Errors: [`crate::Error::Config`] for a zero period; [`crate::Error::Unavailable`] for a malformed
    /// `url` or a Redis that does not answer the first read.
    pub async fn observe(url: &str, config: ClusterConfig) -> Result<Self> {
        config.check_positive()?;
        Self::start(Self::shared(url)?, None, config).await
    }

    fn shared(url: &str) -> Result<Arc<Shared>> {
        let con = redis_conn::connect(url).map_err(|e| unavailable(format!("{url}: {e}")))?;
        let client = redis::Client::open(url).map_err(|e| unavailable(format!("{url}: {e}")))?;
        Ok(Arc::new(Shared {
            con,
            client,
            live: Script::new(&live_script()),
            view: watch::Sender::new(LiveView::default()),
            subscribed: AtomicBool::new(false),
            released: broadcast::Sender::new(1024),
            reconciling: tokio::sync::Mutex::new(()),
            reachable: AtomicBool::new(true),
        }))
    }

    async fn start(shared: Arc<Shared>, me: Option<NodeId>, config: ClusterConfig) -> Result<Self> {
        shared.try_reconcile().await?;
        let tasks = vec![
            tokio::spawn(subscribe(shared.clone(), config.heartbeat_every)),
            tokio::spawn(reconcile_every(shared.clone(), config.reconcile_every)),
        ];
        Ok(Self {
            shared,
            me,
            config,
            heartbeat: None,
            tasks,
        })
    }

    /// This node's id; `None` for an observer.
    pub fn node_id(&self) -> Option<&str> {
        self.me.as_deref()
    }

    /// The timings it runs with.
    pub fn config(&self) -> &ClusterConfig {
        &self.config
    }

    /// The live set now.
    pub fn live(&self) -> LiveView {
        self.shared.view.borrow().clone()
    }

    /// A receiver of the live set, marked changed whenever it changes.
    pub fn view(&self) -> watch::Receiver<LiveView> {
        self.shared.view.subscribe()
    }

    /// Whether the announcements are being received now (false from a lost connection until
    /// the subscription is made again): the readiness of a node that must react to changes.
    pub fn is_subscribed(&self) -> bool {
        self.shared.subscribed.load(Ordering::Acquire)
    }

    /// A cheap handle answering [`Membership::is_subscribed`] for as long as this membership
    /// runs (a readiness probe to hand to a server); false once it is dropped.
    pub fn probe(&self) -> SubscriptionProbe {
        SubscriptionProbe(Arc::downgrade(&self.shared))
    }

    /// A receiver of lease announcements ([`Released`]); one that lags misses the oldest
    /// (`RecvError::Lagged`) and should look at every district again.
    pub fn released(&self) -> broadcast::Receiver<Released> {
        self.shared.released.subscribe()
    }

    /// Leaves gracefully: stops the heartbeat, deletes the registration and announces
    /// `leave {node}`, so the others drop this node at once rather than after the TTL. The
    /// subscription and the reconcile go on until the membership is dropped. Nothing for an
    /// observer or a second call.
    ///
    /// Errors: [`crate::Error::Unavailable`] when Redis does not answer within
    /// `redis_conn::RETRY_FOR` (the registration then lapses after the TTL).
    pub async fn leave(&mut self) -> Result<()> {
        let Some(heartbeat) = self.heartbeat.take() else {
            return Ok(());
        };
        heartbeat.abort();
        // Wait until it is gone, so no heartbeat registers the node again after the delete.
        let _ = heartbeat.await;
        let Some(node) = self.me.clone() else {
            return Ok(());
        };
        let script = Script::new(LEAVE);
        redis_conn::retry("membership leave", || {
            let mut con = self.shared.con.clone();
            let mut inv = script.prepare_invoke();
            inv.key(NODES_KEY)
                .key(ADDRS_KEY)
                .arg(&node)
                .arg(MEMBERSHIP_CHANNEL);
            async move { inv.invoke_async::<i64>(&mut con).await }
        })
        .await
        .map_err(|e| unavailable(format!("deregistering node {node}: {e}")))?;
        tracing::info!(%node, "left the cluster");
        self.shared.reconcile().await;
        Ok(())
    }
}

/// Whether a [`Membership`] is subscribed to the announcements now; see
/// [`Membership::probe`].
#[derive(Clone)]
pub struct SubscriptionProbe(std::sync::Weak<Shared>);

impl SubscriptionProbe {
    /// Whether the membership is subscribed now; false once it is dropped.
    pub fn is_subscribed(&self) -> bool {
        self.0
            .upgrade()
            .is_some_and(|s| s.subscribed.load(Ordering::Acquire))
    }
}

impl std::fmt::Debug for SubscriptionProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("SubscriptionProbe")
            .field(&self.is_subscribed())
            .finish()
    }
}

/// What a member's heartbeat sends.
struct Member {
    node: NodeId,
    addr: String,
    ttl_ms: u64,
    script: Script,
}

impl Member {
    async fn beat(&self, con: &ConnectionManager) -> redis::RedisResult<i64> {
        let mut con = con.clone();
        self.script
            .key(NODES_KEY)
            .key(ADDRS_KEY)
            .arg(&self.node)
            .arg(&self.addr)
            .arg(self.ttl_ms)
            .arg(MEMBERSHIP_CHANNEL)
            .invoke_async(&mut con)
            .await
    }
}

/// Refreshes the registration every `every`; the first was made by [`Membership::join`].
async fn beat(shared: Arc<Shared>, member: Member, every: Duration) {
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut healthy = true;
    loop {
        tick.tick().await;
        match member.beat(&shared.con).await {
            Ok(rejoined) => {
                if !healthy || rejoined == 1 {
                    tracing::info!(node = %member.node, rejoined = rejoined == 1, "registration refreshed");
                }
                healthy = true;
            }
            Err(e) => {
                if healthy {
                    tracing::warn!(node = %member.node, error = %e, "heartbeat failed; retrying every heartbeat");
                }
                healthy = false;
            }
        }
    }
}

/// Reads the registry every `every`, whatever pub/sub says.
async fn reconcile_every(shared: Arc<Shared>, every: Duration) {
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        shared.reconcile().await;
    }
}

/// Keeps a subscription to the announcements, subscribing again whenever it is lost.
async fn subscribe(shared: Arc<Shared>, ping_every: Duration) {
    let mut backoff = RESUBSCRIBE_MIN;
    let mut logged = false;
    loop {
        match open(&shared.client).await {
            Ok((sink, stream)) => {
                backoff = RESUBSCRIBE_MIN;
                logged = false;
                shared.subscribed.store(true, Ordering::Release);
                tracing::info!("subscribed to cluster announcements");
                // What was announced while this node was not subscribed is lost: read it back.
                shared.reconcile().await;
                let why = listen(&shared, sink, stream, ping_every).await;
                shared.subscribed.store(false, Ordering::Release);
                tracing::warn!(reason = %why, "cluster announcements lost; subscribing again");
            }
            Err(e) => {
                if !logged {
                    tracing::warn!(error = %e, "cannot subscribe to cluster announcements; retrying");
                    logged = true;
                }
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(RESUBSCRIBE_MAX);
    }
}

/// A new pub/sub connection subscribed to both channels.
async fn open(client: &redis::Client) -> Result<(PubSubSink, PubSubStream)> {
    let pubsub = tokio::time::timeout(CONNECT_TIMEOUT, client.get_async_pubsub())
        .await
        .map_err(|_| unavailable(format!("no connection within {CONNECT_TIMEOUT:?}")))?
        .map_err(unavailable)?;
    let (mut sink, stream) = pubsub.split();
    tokio::time::timeout(
        RESPONSE_TIMEOUT,
        sink.subscribe(&[MEMBERSHIP_CHANNEL, LEASE_CHANNEL]),
    )
    .await
    .map_err(|_| {
        unavailable(format!(
            "SUBSCRIBE not answered within {RESPONSE_TIMEOUT:?}"
        ))
    })?
    .map_err(unavailable)?;
    Ok((sink, stream))
}

/// Handles announcements until the connection closes or stops answering pings; answers why.
async fn listen(
    shared: &Shared,
    mut sink: PubSubSink,
    mut stream: PubSubStream,
    ping_every: Duration,
) -> String {
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + ping_every, ping_every);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            msg = stream.next() => match msg {
                Some(msg) => shared.handle(msg).await,
                None => return "connection closed".into(),
            },
            _ = ping.tick() => {
                match tokio::time::timeout(RESPONSE_TIMEOUT, sink.ping::<redis::Value>()).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => return format!("ping failed: {e}"),
                    Err(_) => return format!("no pong within {RESPONSE_TIMEOUT:?}"),
                }
            }
        }
    }
}

//! The Redis feed store: feeds that outlive a notification process and are shared by every
//! notification node of a cluster.
//!
//! Layout, per audience (`{tag}` is `{officer:<id>}` or `{cc}`, so a feed's keys share one
//! cluster slot and one Lua script can touch them all):
//!
//! | key | type | what |
//! |---|---|---|
//! | `feed:{tag}` | stream | the notices, entry id `0-<seq>`, fields `b` (encoded `NoticeBody`), `t` (published at, ms) |
//! | `feed:{tag}:seq` | string | `seq` of the newest notice (`INCR`) |
//! | `feed:{tag}:epoch` | string | the feed's epoch: Redis `TIME` in µs when the feed was first written |
//! | `feed:{tag}:pub:<id>` | string | `seq` of the notice of publication `<id>`, expiring after [`RedisConfig::dedup_ttl`] |
//!
//! An append is one Lua script (create the epoch if missing, dedup, `INCR`, `XADD ... MAXLEN`,
//! record the id, `PUBLISH` a wake-up), so it is atomic and numbering is gap-free. Explicit
//! stream ids `0-<seq>` make `XRANGE (0-<position>` the exact resume read.
//!
//! Retention: `XADD MAXLEN` (exact) keeps the newest [`FeedLimits`] notices per feed (1,000 per
//! officer, 200,000 for the command center by default); publication ids expire after
//! [`RedisConfig::dedup_ttl`]; the `seq` and `epoch` keys stay (two small strings per
//! audience, and audiences are bounded by the rosters). If Redis loses the data (no AOF, a
//! `FLUSHALL`, a failover to an empty replica), the next append creates a new epoch, so every
//! cursor handed out before is refused as out of range. With `appendfsync everysec` a crash may
//! lose the last second of appends; `appendfsync always` loses nothing acknowledged.
//!
//! Waiting: every append publishes the feed's tag on [`WAKE_CHANNEL`]; one pub/sub connection
//! per store wakes the local waiters of that feed. Pub/sub is at most once (a message is lost
//! while the connection is down), so the store wakes every waiter after each (re)subscribe and
//! callers bound their waits.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use dispatch_core::Timestamp;
use dispatch_core::clock::SharedClock;
use dispatch_proto::v1;
use futures::StreamExt;
use parking_lot::Mutex;
use prost::Message;
use redis::aio::ConnectionManager;
use redis::streams::{StreamId, StreamRangeReply};
use tokio::sync::watch;

use super::{AudienceKey, Cursor, Error, FeedLimits, FeedStore, Publication, Result, Span};
use crate::convert::timestamp_to_wire;
use crate::redis_conn;

/// The pub/sub channel on which every append announces its feed's tag.
pub const WAKE_CHANNEL: &str = "feed:wake";

/// Settings of a [`RedisFeedStore`].
#[derive(Debug, Clone, PartialEq)]
pub struct RedisConfig {
    /// How many notices each feed keeps.
    pub limits: FeedLimits,
    /// How long a publication id is remembered. 24 h: the district outbox retries a
    /// publication for as long as the notification service is down, and a day outlasts any
    /// outage it should ride out.
    pub dedup_ttl: Duration,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            limits: FeedLimits::default(),
            dedup_ttl: Duration::from_secs(24 * 3600),
        }
    }
}

/// Feeds in Redis streams: [`FeedStore`] for multi-node clusters. See the module docs for the
/// layout, retention and epochs.
pub struct RedisFeedStore {
    con: ConnectionManager,
    append: redis::Script,
    config: RedisConfig,
    clock: SharedClock,
    wakers: Arc<Wakers>,
    closed: watch::Sender<bool>,
    listener: tokio::task::AbortHandle,
}

/// Feed tag -> the wake-up of its local waiters (a counter bumped on every wake).
type Wakers = Mutex<HashMap<String, watch::Sender<u64>>>;

impl std::fmt::Debug for RedisFeedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisFeedStore")
            .field("config", &self.config)
            .field("waiting_feeds", &self.wakers.lock().len())
            .finish()
    }
}

impl Drop for RedisFeedStore {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

/// Appends one notice; see the module docs. Returns `{epoch, seq}` as strings.
///
/// KEYS: stream, seq, epoch, publication id key (unused without an id).
/// ARGV: encoded body, published at (ms), MAXLEN, has id (`1`/`0`), id TTL (s), wake
/// channel, tag.
const APPEND: &str = r"
redis.replicate_commands()
local epoch = redis.call('GET', KEYS[3])
if not epoch then
  local t = redis.call('TIME')
  epoch = t[1] .. string.format('%06d', tonumber(t[2]))
  redis.call('SET', KEYS[3], epoch)
end
if ARGV[4] == '1' then
  local seen = redis.call('GET', KEYS[4])
  if seen then return {epoch, seen} end
end
local seq = redis.call('INCR', KEYS[2])
redis.call('XADD', KEYS[1], 'MAXLEN', ARGV[3], '0-' .. seq, 'b', ARGV[1], 't', ARGV[2])
if ARGV[4] == '1' then
  redis.call('SET', KEYS[4], seq, 'EX', ARGV[5])
end
redis.call('PUBLISH', ARGV[6], ARGV[7])
return {epoch, tostring(seq)}
";

/// The keys of one audience's feed.
struct Keys {
    tag: String,
    stream: String,
    seq: String,
    epoch: String,
}

impl Keys {
    fn of(audience: &AudienceKey) -> Self {
        let tag = match audience {
            // Braces would end the hash tag early, and `%` is the escape itself.
            AudienceKey::Officer(id) => format!(
                "officer:{}",
                id.as_str()
                    .replace('%', "%25")
                    .replace('{', "%7B")
                    .replace('}', "%7D")
            ),
            AudienceKey::CommandCenter => "cc".to_string(),
        };
        let stream = format!("feed:{{{tag}}}");
        Self {
            seq: format!("{stream}:seq"),
            epoch: format!("{stream}:epoch"),
            stream,
            tag,
        }
    }

    fn publication(&self, id: &str) -> String {
        format!("{}:pub:{id}", self.stream)
    }
}

fn unavailable(what: &str) -> impl FnOnce(redis::RedisError) -> Error + '_ {
    move |e| Error::Unavailable(format!("{what}: {e}"))
}

fn number(text: &str, what: &str) -> Result<u64> {
    text.parse()
        .map_err(|_| Error::Unavailable(format!("{what} is not a number: {text:?}")))
}

/// The `seq` of a stream entry id `0-<seq>`.
fn entry_seq(id: &str) -> Result<u64> {
    let seq = id
        .strip_prefix("0-")
        .ok_or_else(|| Error::Unavailable(format!("stream entry id {id:?} is not 0-<seq>")))?;
    number(seq, "stream entry seq")
}

impl RedisFeedStore {
    /// A store on the Redis at `url` (`redis://host:port/db`), connected lazily with the
    /// shared timeouts and retry policy ([`crate::redis_conn`]), so a notification service
    /// starts while Redis is down and recovers when it returns; notices are stamped with
    /// `clock`. Starts listening for wake-ups.
    ///
    /// Must run inside a Tokio runtime. Errors: [`Error::Unavailable`] when `url` is not a
    /// Redis URL.
    pub async fn connect(url: &str, clock: SharedClock, config: RedisConfig) -> Result<Self> {
        let client = redis::Client::open(url).map_err(unavailable("bad redis url"))?;
        let con = redis_conn::connect(url).map_err(unavailable("bad redis url"))?;
        let wakers = Arc::new(Wakers::default());
        let listener = tokio::spawn(listen(client, Arc::downgrade(&wakers))).abort_handle();
        Ok(Self {
            con,
            append: redis::Script::new(APPEND),
            config,
            clock,
            wakers,
            closed: watch::channel(false).0,
            listener,
        })
    }

    async fn append_one(&self, p: &Publication) -> Result<Cursor> {
        let keys = Keys::of(&p.audience);
        let id = p.id.as_deref();
        let mut invocation = self.append.prepare_invoke();
        invocation
            .key(&keys.stream)
            .key(&keys.seq)
            .key(&keys.epoch)
            .key(id.map_or_else(|| keys.stream.clone(), |id| keys.publication(id)))
            .arg(p.body.encode_to_vec())
            .arg(self.clock.now().as_millis())
            .arg(self.config.limits.of(&p.audience))
            .arg(if id.is_some() { "1" } else { "0" })
            .arg(self.config.dedup_ttl.as_secs().max(1))
            .arg(WAKE_CHANNEL)
            .arg(&keys.tag);
        let invoke = || {
            let mut con = self.con.clone();
            let invocation = &invocation;
            async move { invocation.invoke_async(&mut con).await }
        };
        // Without an id a retry could append twice (the reply may be what was lost); with
        // one it is idempotent.
        let reply: redis::RedisResult<(String, String)> = if id.is_some() {
            redis_conn::retry("feed append", invoke).await
        } else {
            invoke().await
        };
        let (epoch, seq) = reply.map_err(unavailable(&format!("appending to {}", keys.stream)))?;
        Ok(Cursor {
            epoch: number(&epoch, "feed epoch")?,
            position: number(&seq, "feed seq")?,
        })
    }

    /// Appends a batch whose every publication has an id in one round trip: the append script
    /// once per publication, in order, in one pipeline (each is idempotent on its id, so the
    /// whole pipeline may be sent again after a lost reply). A batch of a dispatch (the
    /// incident's change, then the order) costs one round trip instead of one per notice.
    async fn append_pipelined(&self, publications: &[Publication]) -> Result<Vec<Cursor>> {
        let mut pipe = redis::pipe();
        for p in publications {
            let keys = Keys::of(&p.audience);
            let id = p.id.as_deref().unwrap_or_default();
            pipe.cmd("EVAL")
                .arg(APPEND)
                .arg(4)
                .arg(&keys.stream)
                .arg(&keys.seq)
                .arg(&keys.epoch)
                .arg(keys.publication(id))
                .arg(p.body.encode_to_vec())
                .arg(self.clock.now().as_millis())
                .arg(self.config.limits.of(&p.audience))
                .arg("1")
                .arg(self.config.dedup_ttl.as_secs().max(1))
                .arg(WAKE_CHANNEL)
                .arg(&keys.tag);
        }
        let replies: Vec<(String, String)> = redis_conn::retry("feed append", || {
            let mut con = self.con.clone();
            let pipe = &pipe;
            async move { pipe.query_async(&mut con).await }
        })
        .await
        .map_err(unavailable("appending a batch of notices"))?;
        replies
            .iter()
            .map(|(epoch, seq)| {
                Ok(Cursor {
                    epoch: number(epoch, "feed epoch")?,
                    position: number(seq, "feed seq")?,
                })
            })
            .collect()
    }

    /// Wakes this process's waiters on the feeds just appended to at once, without waiting for
    /// the announcement to come back through Redis pub/sub (which wakes other processes).
    fn wake_local(&self, publications: &[Publication]) {
        let wakers = self.wakers.lock();
        for p in publications {
            if let Some(tx) = wakers.get(&Keys::of(&p.audience).tag) {
                tx.send_modify(|n| *n = n.wrapping_add(1));
            }
        }
    }

    /// The span of a feed and, when `entries` is given, up to `entries.1` notices after
    /// `entries.0`, read in one transaction so they agree.
    async fn snapshot(
        &self,
        keys: &Keys,
        entries: Option<(Option<u64>, usize)>,
    ) -> Result<(Span, Vec<StreamId>)> {
        let mut pipe = redis::pipe();
        pipe.atomic()
            .get(&keys.epoch)
            .get(&keys.seq)
            .cmd("XRANGE")
            .arg(&keys.stream)
            .arg("-")
            .arg("+")
            .arg("COUNT")
            .arg(1);
        if let Some((after, max)) = entries {
            let start = after.map_or_else(|| "-".to_string(), |p| format!("(0-{p}"));
            pipe.cmd("XRANGE")
                .arg(&keys.stream)
                .arg(start)
                .arg("+")
                .arg("COUNT")
                .arg(max.max(1));
        } else {
            // Keeps the reply shape the same: an empty range.
            pipe.cmd("XRANGE").arg(&keys.stream).arg("+").arg("-");
        }
        type Reply = (
            Option<String>,
            Option<u64>,
            StreamRangeReply,
            StreamRangeReply,
        );
        let (epoch, seq, first, batch): Reply = redis_conn::retry("feed read", || {
            let mut con = self.con.clone();
            let pipe = &pipe;
            async move { pipe.query_async(&mut con).await }
        })
        .await
        .map_err(unavailable(&format!("reading {}", keys.stream)))?;
        let span = match epoch {
            None => Span::NONE,
            Some(epoch) => Span {
                epoch: Some(number(&epoch, "feed epoch")?),
                first: first.ids.first().map_or(Ok(0), |e| entry_seq(&e.id))?,
                last: seq.unwrap_or(0),
            },
        };
        Ok((span, batch.ids))
    }

    fn notice(&self, epoch: u64, entry: &StreamId) -> Result<v1::Notice> {
        let seq = entry_seq(&entry.id)?;
        let corrupt = |what: &str| Error::Unavailable(format!("notice {} {what}", entry.id));
        let body: Vec<u8> = entry.get("b").ok_or_else(|| corrupt("has no body"))?;
        let body = v1::NoticeBody::decode(body.as_slice())
            .map_err(|e| corrupt(&format!("body cannot be decoded: {e}")))?;
        let at: i64 = entry.get("t").ok_or_else(|| corrupt("has no time"))?;
        Ok(v1::Notice {
            seq,
            published_at: Some(timestamp_to_wire(Timestamp(at))),
            body: Some(body),
            cursor: Cursor {
                epoch,
                position: seq,
            }
            .encode(),
        })
    }

    /// The wake-up receiver of feed `tag`, registered until the guard drops.
    fn waker(&self, tag: &str) -> WakeGuard {
        let rx = self
            .wakers
            .lock()
            .entry(tag.to_string())
            .or_insert_with(|| watch::channel(0).0)
            .subscribe();
        WakeGuard {
            wakers: self.wakers.clone(),
            tag: tag.to_string(),
            rx: Some(rx),
        }
    }
}

/// A registered waiter; unregisters the feed's wake-up when its last waiter goes.
struct WakeGuard {
    wakers: Arc<Wakers>,
    tag: String,
    rx: Option<watch::Receiver<u64>>,
}

impl Drop for WakeGuard {
    fn drop(&mut self) {
        drop(self.rx.take());
        let mut wakers = self.wakers.lock();
        if wakers
            .get(&self.tag)
            .is_some_and(|tx| tx.receiver_count() == 0)
        {
            wakers.remove(&self.tag);
        }
    }
}

/// Shortest and longest pause before re-opening the wake-up subscription.
const LISTEN_BACKOFF: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(5));

/// Wakes local waiters on every append announced on [`WAKE_CHANNEL`], for as long as the
/// store lives; re-subscribes after a broken connection.
async fn listen(client: redis::Client, wakers: Weak<Wakers>) {
    let mut pause = LISTEN_BACKOFF.0;
    loop {
        match subscribe(&client).await {
            Ok(mut pubsub) => {
                pause = LISTEN_BACKOFF.0;
                // Appends while the subscription was down announced nothing we heard.
                let Some(all) = wakers.upgrade() else { return };
                for tx in all.lock().values() {
                    tx.send_modify(|n| *n = n.wrapping_add(1));
                }
                drop(all);
                let mut messages = pubsub.on_message();
                while let Some(msg) = messages.next().await {
                    let Some(all) = wakers.upgrade() else { return };
                    let tag = String::from_utf8_lossy(msg.get_payload_bytes());
                    if let Some(tx) = all.lock().get(tag.as_ref()) {
                        tx.send_modify(|n| *n = n.wrapping_add(1));
                    }
                }
                tracing::warn!(
                    channel = WAKE_CHANNEL,
                    "feed wake-up subscription lost, re-subscribing"
                );
            }
            Err(e) => {
                tracing::warn!(channel = WAKE_CHANNEL, error = %e, ?pause, "cannot subscribe to feed wake-ups");
            }
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(LISTEN_BACKOFF.1);
    }
}

async fn subscribe(client: &redis::Client) -> redis::RedisResult<redis::aio::PubSub> {
    let timeout = LISTEN_BACKOFF.1;
    let attempt = async {
        let mut pubsub = client.get_async_pubsub().await?;
        pubsub.subscribe(WAKE_CHANNEL).await?;
        Ok(pubsub)
    };
    tokio::time::timeout(timeout, attempt)
        .await
        .unwrap_or_else(|_| {
            Err(redis::RedisError::from(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no answer to SUBSCRIBE within {timeout:?}"),
            )))
        })
}

#[tonic::async_trait]
impl FeedStore for RedisFeedStore {
    async fn append(&self, publications: Vec<Publication>) -> Result<Vec<Cursor>> {
        let cursors = if publications.iter().all(|p| p.id.is_some()) {
            self.append_pipelined(&publications).await?
        } else {
            let mut cursors = Vec::with_capacity(publications.len());
            for p in &publications {
                cursors.push(self.append_one(p).await?);
            }
            cursors
        };
        self.wake_local(&publications);
        Ok(cursors)
    }

    async fn read(
        &self,
        audience: &AudienceKey,
        after: Option<Cursor>,
        max: usize,
    ) -> Result<Vec<v1::Notice>> {
        let keys = Keys::of(audience);
        let (span, entries) = self
            .snapshot(&keys, Some((after.map(|c| c.position), max)))
            .await?;
        if let Some(c) = after {
            span.check(c)?;
        }
        let Some(epoch) = span.epoch else {
            return Ok(Vec::new());
        };
        entries.iter().map(|e| self.notice(epoch, e)).collect()
    }

    async fn span(&self, audience: &AudienceKey) -> Result<Span> {
        Ok(self.snapshot(&Keys::of(audience), None).await?.0)
    }

    async fn wait(&self, audience: &AudienceKey, after: Option<Cursor>) -> Result<()> {
        let keys = Keys::of(audience);
        let mut guard = self.waker(&keys.tag);
        let mut closed = self.closed.subscribe();
        loop {
            if *closed.borrow_and_update() {
                return Err(Error::Closed);
            }
            let Some(rx) = guard.rx.as_mut() else {
                return Err(Error::Closed);
            };
            // Registered and marked seen before looking: an append after the look wakes us.
            rx.borrow_and_update();
            let (span, _) = self.snapshot(&keys, None).await?;
            let moved = match after {
                None => span.last > 0,
                Some(c) => span.epoch != Some(c.epoch) || span.last != c.position,
            };
            if moved {
                return Ok(());
            }
            tokio::select! {
                // An append to this feed (announced locally or through pub/sub): return at
                // once rather than look again, which would cost the caller a second round trip
                // before its read; a spurious return costs one read (see the trait).
                // The sender lives while this guard holds the registration.
                changed = rx.changed() => if changed.is_ok() { return Ok(()) },
                _ = closed.changed() => {}
            }
        }
    }

    fn close(&self) {
        self.closed.send_replace(true);
    }

    fn is_closed(&self) -> bool {
        *self.closed.borrow()
    }
}

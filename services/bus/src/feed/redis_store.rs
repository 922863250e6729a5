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
//! Waiting: every append publishes a wake-up on [`WAKE_CHANNEL`] carrying the feed's tag and
//! the new notice (its epoch, seq, time and, up to [`INLINE_BODY_MAX`] bytes, its body); one
//! pub/sub connection per store wakes the local waiters of that feed, and the appending store
//! wakes its own process's waiters at once with the notice it just appended. A waiter whose
//! cursor is right before that notice takes it from the wake-up instead of reading the feed:
//! the order reaches a terminal one Redis round trip sooner. Anything else (a wake-up for a
//! later notice, one without a body) makes the waiter read. Pub/sub is at most once (a message
//! is lost while the connection is down), so the store wakes every waiter after each
//! (re)subscribe and callers bound their waits.

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

/// The pub/sub channel on which every append announces its feed's tag and new notice.
///
/// Message: `"<epoch> <seq> <published at ms> <tag length> <inline 1|0>\n"`, then the tag, then
/// the encoded `NoticeBody` when inline is `1`.
pub const WAKE_CHANNEL: &str = "feed:wake";

/// Largest notice body a wake-up carries (bytes); a bigger one is announced without it and
/// waiters read it. 16 KiB is over ten times an order with a long description, and keeps a
/// burst of wake-ups, which every notification node receives, small.
pub const INLINE_BODY_MAX: usize = 16 * 1024;

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
    /// Whether the wake-up subscription is up ([`RedisFeedStore::is_listening`]).
    listening: Arc<std::sync::atomic::AtomicBool>,
}

/// Feed tag -> the wake-up of its local waiters: every wake sends, carrying the appended notice
/// when it is known.
type Wakers = Mutex<HashMap<String, watch::Sender<Option<Arc<Fresh>>>>>;

/// A notice just appended, as a wake-up carries it.
#[derive(Debug)]
struct Fresh {
    epoch: u64,
    notice: v1::Notice,
}

impl Fresh {
    /// The notice when it is the very next one after `after` (for `None`, the feed's first).
    fn next_after(&self, after: Option<Cursor>) -> Option<v1::Notice> {
        let next = match after {
            Some(c) => c.epoch == self.epoch && c.position + 1 == self.notice.seq,
            None => self.notice.seq == 1,
        };
        next.then(|| self.notice.clone())
    }

    /// Whether a waiter at `after` has this notice already (a late wake-up for it).
    fn seen_by(&self, after: Option<Cursor>) -> bool {
        after.is_some_and(|c| c.epoch == self.epoch && self.notice.seq <= c.position)
    }
}

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

/// A Lua function appending one notice (see the module docs), for this store's own script and
/// for a script of another crate that appends notices in the same step as its own write
/// ([`co_append`]). Call `redis.replicate_commands()` before it in any script (it reads
/// `TIME`).
///
/// `feed_append(stream, seq, epoch, publication id key, body, published at (ms), MAXLEN,
/// has id (`1`/`0`), id TTL (s), wake channel, tag, largest body the wake-up carries)`
/// returns `{epoch, seq, new}` as strings (`new` is `0` for a publication id the feed already
/// held).
pub const APPEND_FN: &str = r"
local function feed_append(stream, seqkey, epochkey, pubkey, body, at, maxlen, hasid, ttl, channel, tag, inline_max)
  local epoch = redis.call('GET', epochkey)
  if not epoch then
    local t = redis.call('TIME')
    epoch = t[1] .. string.format('%06d', tonumber(t[2]))
    redis.call('SET', epochkey, epoch)
  end
  if hasid == '1' then
    local seen = redis.call('GET', pubkey)
    if seen then return {epoch, seen, '0'} end
  end
  local seq = redis.call('INCR', seqkey)
  redis.call('XADD', stream, 'MAXLEN', maxlen, '0-' .. seq, 'b', body, 't', at)
  if hasid == '1' then
    redis.call('SET', pubkey, seq, 'EX', ttl)
  end
  local inline = #body <= tonumber(inline_max)
  local wake = epoch .. ' ' .. seq .. ' ' .. at .. ' ' .. #tag .. ' ' .. (inline and '1' or '0') .. '\n' .. tag
  if inline then wake = wake .. body end
  redis.call('PUBLISH', channel, wake)
  return {epoch, tostring(seq), '1'}
end
";

/// How many keys and arguments one [`APPEND_FN`] call takes.
pub const APPEND_KEYS: usize = 4;
/// See [`APPEND_KEYS`].
pub const APPEND_ARGS: usize = 8;

/// This store's append script: [`APPEND_FN`] on `KEYS[1..4]` and `ARGV[1..8]`.
fn append_script() -> String {
    format!(
        "redis.replicate_commands()\n{APPEND_FN}\nreturn feed_append(KEYS[1], KEYS[2], KEYS[3], KEYS[4], \
         ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8])"
    )
}

/// The [`APPEND_KEYS`] keys and [`APPEND_ARGS`] arguments of an [`APPEND_FN`] call appending
/// `p`, stamped `at` (ms of the cluster clock), under `config`: what a script of another crate
/// passes to append `p` in the same step as its own write, exactly as this store would.
pub fn co_append(p: &Publication, at: i64, config: &RedisConfig) -> (Vec<String>, Vec<Vec<u8>>) {
    append_args(p, &Keys::of(&p.audience), at, config)
}

/// See [`co_append`].
fn append_args(
    p: &Publication,
    keys: &Keys,
    at: i64,
    config: &RedisConfig,
) -> (Vec<String>, Vec<Vec<u8>>) {
    let id = p.id.as_deref();
    let keys_ = vec![
        keys.stream.clone(),
        keys.seq.clone(),
        keys.epoch.clone(),
        id.map_or_else(|| keys.stream.clone(), |id| keys.publication(id)),
    ];
    let args = vec![
        p.body.encode_to_vec(),
        at.to_string().into_bytes(),
        config.limits.of(&p.audience).to_string().into_bytes(),
        if id.is_some() {
            b"1".to_vec()
        } else {
            b"0".to_vec()
        },
        config.dedup_ttl.as_secs().max(1).to_string().into_bytes(),
        WAKE_CHANNEL.as_bytes().to_vec(),
        keys.tag.clone().into_bytes(),
        INLINE_BODY_MAX.to_string().into_bytes(),
    ];
    (keys_, args)
}

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

/// One publication as the append script answered it.
#[derive(Debug, Clone, Copy)]
struct Appended {
    cursor: Cursor,
    /// When it was stamped (ms of the cluster clock): the notice's time when it is new.
    at: i64,
    /// Appended now (`false`: the feed held its publication id already).
    new: bool,
}

/// Reads the append script's `{epoch, seq, new}` reply for a notice stamped `at`.
fn appended((epoch, seq, new): &(String, String, String), at: i64) -> Result<Appended> {
    Ok(Appended {
        cursor: Cursor {
            epoch: number(epoch, "feed epoch")?,
            position: number(seq, "feed seq")?,
        },
        at,
        new: new == "1",
    })
}

/// The notice at `cursor`, published at `at` (ms), of `body`.
fn notice_at(cursor: Cursor, at: i64, body: v1::NoticeBody) -> v1::Notice {
    v1::Notice {
        seq: cursor.position,
        published_at: Some(timestamp_to_wire(Timestamp(at))),
        body: Some(body),
        cursor: cursor.encode(),
    }
}

/// What a wake-up message on [`WAKE_CHANNEL`] says: the feed's tag and, when it carries a
/// body, the notice. `None` for a message this version cannot read (it then wakes nobody).
fn parse_wake(payload: &[u8]) -> Option<(String, Option<Fresh>)> {
    let newline = payload.iter().position(|&b| b == b'\n')?;
    let header = std::str::from_utf8(&payload[..newline]).ok()?;
    let mut fields = header.split(' ');
    let mut next = || fields.next();
    let (epoch, seq, at, tag_len, inline) = (next()?, next()?, next()?, next()?, next()?);
    let rest = &payload[newline + 1..];
    let tag_len: usize = tag_len.parse().ok()?;
    let tag = std::str::from_utf8(rest.get(..tag_len)?).ok()?.to_owned();
    let body = &rest[tag_len..];
    let fresh = (|| {
        if inline != "1" {
            return None;
        }
        let cursor = Cursor {
            epoch: epoch.parse().ok()?,
            position: seq.parse().ok()?,
        };
        let body = v1::NoticeBody::decode(body).ok()?;
        Some(Fresh {
            epoch: cursor.epoch,
            notice: notice_at(cursor, at.parse().ok()?, body),
        })
    })();
    Some((tag, fresh))
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
        let listening = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let listener =
            tokio::spawn(listen(client, Arc::downgrade(&wakers), listening.clone())).abort_handle();
        Ok(Self {
            con,
            append: redis::Script::new(&append_script()),
            config,
            clock,
            wakers,
            closed: watch::channel(false).0,
            listener,
            listening,
        })
    }

    /// Whether the wake-up subscription is up. Until it is (just after [`RedisFeedStore::connect`],
    /// or while Redis is unreachable), a wait is woken by this process's appends only, and
    /// by the re-subscription itself, which wakes every waiter to read.
    pub fn is_listening(&self) -> bool {
        self.listening.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Waits up to `within` for the wake-up subscription to be up (polling every 10 ms);
    /// whether it is. For readiness checks and tests that need appends, not the subscription
    /// coming up, to wake their waits.
    pub async fn listening_within(&self, within: Duration) -> bool {
        let start = tokio::time::Instant::now();
        while !self.is_listening() {
            if start.elapsed() >= within {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        true
    }

    async fn append_one(&self, p: &Publication) -> Result<Appended> {
        let keys = Keys::of(&p.audience);
        let at = self.clock.now().as_millis();
        let (k, a) = append_args(p, &keys, at, &self.config);
        let mut invocation = self.append.prepare_invoke();
        for key in &k {
            invocation.key(key);
        }
        for arg in &a {
            invocation.arg(arg.as_slice());
        }
        let invoke = || {
            let mut con = self.con.clone();
            let invocation = &invocation;
            async move { invocation.invoke_async(&mut con).await }
        };
        // Without an id a retry could append twice (the reply may be what was lost); with
        // one it is idempotent.
        let reply: redis::RedisResult<(String, String, String)> = if p.id.is_some() {
            redis_conn::retry("feed append", invoke).await
        } else {
            invoke().await
        };
        let reply = reply.map_err(unavailable(&format!("appending to {}", keys.stream)))?;
        appended(&reply, at)
    }

    /// Appends a batch whose every publication has an id in one round trip: the append script
    /// (by its SHA, loaded first when Redis does not hold it) once per publication, in order,
    /// in one pipeline (each is idempotent on its id, so the whole pipeline may be sent again
    /// after a lost reply). A batch of a dispatch (the incident's change, then the order)
    /// costs one round trip instead of one per notice.
    async fn append_pipelined(&self, publications: &[Publication]) -> Result<Vec<Appended>> {
        let mut pipe = redis::pipe();
        let mut stamps = Vec::with_capacity(publications.len());
        for p in publications {
            let keys = Keys::of(&p.audience);
            let at = self.clock.now().as_millis();
            stamps.push(at);
            let (k, a) = append_args(p, &keys, at, &self.config);
            let cmd = pipe.cmd("EVALSHA").arg(self.append.get_hash()).arg(k.len());
            for key in &k {
                cmd.arg(key);
            }
            for arg in &a {
                cmd.arg(arg.as_slice());
            }
        }
        let replies: Vec<(String, String, String)> = redis_conn::retry("feed append", || {
            let mut con = self.con.clone();
            let pipe = &pipe;
            let script = &self.append;
            async move {
                match pipe.query_async(&mut con).await {
                    Err(e)
                        if e.kind()
                            == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) =>
                    {
                        // A restarted or flushed Redis forgot the script: load it, send again.
                        script.prepare_invoke().load_async(&mut con).await?;
                        pipe.query_async(&mut con).await
                    }
                    other => other,
                }
            }
        })
        .await
        .map_err(unavailable("appending a batch of notices"))?;
        replies
            .iter()
            .zip(stamps)
            .map(|(reply, at)| appended(reply, at))
            .collect()
    }

    /// Appends a batch whose every publication has an id: one pipeline per audience, in
    /// order within it, all sent at once, and wakes each feed's local waiters as soon as its
    /// own pipeline is answered. Feeds are independent, so an officer's order does not wait
    /// behind the command center's notices of the same batch.
    async fn append_by_audience(&self, publications: Vec<Publication>) -> Result<Vec<Cursor>> {
        let mut groups: Vec<(AudienceKey, Vec<usize>)> = Vec::new();
        for (i, p) in publications.iter().enumerate() {
            match groups.iter_mut().find(|(a, _)| *a == p.audience) {
                Some((_, members)) => members.push(i),
                None => groups.push((p.audience.clone(), vec![i])),
            }
        }
        // Officers' feeds first: their pipelines reach Redis first, so an order is stored
        // and handed to its terminal before the command center's copies are.
        groups.sort_by_key(|(a, _)| matches!(a, AudienceKey::CommandCenter));
        let appends = groups.iter().map(|(_, members)| {
            let group: Vec<Publication> =
                members.iter().map(|&i| publications[i].clone()).collect();
            async move {
                let appended = self.append_pipelined(&group).await?;
                self.wake_local(&group, &appended);
                Ok::<_, Error>(appended)
            }
        });
        let answered = futures::future::try_join_all(appends).await?;
        let mut cursors = vec![None; publications.len()];
        for ((_, members), appended) in groups.iter().zip(answered) {
            for (&i, a) in members.iter().zip(appended) {
                cursors[i] = Some(a.cursor);
            }
        }
        cursors
            .into_iter()
            .map(|c| {
                c.ok_or_else(|| Error::Unavailable("a pipeline answered too few appends".into()))
            })
            .collect()
    }

    /// Wakes this process's waiters on the feeds just appended to at once, with the notices
    /// appended, without waiting for the announcement to come back through Redis pub/sub
    /// (which wakes other processes).
    fn wake_local(&self, publications: &[Publication], appended: &[Appended]) {
        let wakers = self.wakers.lock();
        for (p, a) in publications.iter().zip(appended) {
            // A publication the feed already held announces nothing: its notice is old.
            if !a.new {
                continue;
            }
            let Some(tx) = wakers.get(&Keys::of(&p.audience).tag) else {
                continue;
            };
            tx.send_replace(Some(Arc::new(Fresh {
                epoch: a.cursor.epoch,
                notice: notice_at(a.cursor, a.at, p.body.clone()),
            })));
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
        let cursor = Cursor {
            epoch,
            position: seq,
        };
        Ok(notice_at(cursor, at, body))
    }

    /// The wake-up receiver of feed `tag`, registered until the guard drops.
    fn waker(&self, tag: &str) -> WakeGuard {
        let rx = self
            .wakers
            .lock()
            .entry(tag.to_string())
            .or_insert_with(|| watch::channel(None).0)
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
    rx: Option<watch::Receiver<Option<Arc<Fresh>>>>,
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
async fn listen(
    client: redis::Client,
    wakers: Weak<Wakers>,
    listening: Arc<std::sync::atomic::AtomicBool>,
) {
    use std::sync::atomic::Ordering;
    let mut pause = LISTEN_BACKOFF.0;
    loop {
        match subscribe(&client).await {
            Ok(mut pubsub) => {
                pause = LISTEN_BACKOFF.0;
                // Appends while the subscription was down announced nothing we heard.
                let Some(all) = wakers.upgrade() else { return };
                for tx in all.lock().values() {
                    tx.send_replace(None);
                }
                drop(all);
                listening.store(true, Ordering::Release);
                let mut messages = pubsub.on_message();
                while let Some(msg) = messages.next().await {
                    let Some(all) = wakers.upgrade() else { return };
                    let Some((tag, fresh)) = parse_wake(msg.get_payload_bytes()) else {
                        tracing::warn!(channel = WAKE_CHANNEL, "unreadable feed wake-up ignored");
                        continue;
                    };
                    if let Some(tx) = all.lock().get(&tag) {
                        tx.send_replace(fresh.map(Arc::new));
                    }
                }
                listening.store(false, Ordering::Release);
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
        if publications.iter().all(|p| p.id.is_some()) {
            return self.append_by_audience(publications).await;
        }
        let mut appended = Vec::with_capacity(publications.len());
        for p in &publications {
            appended.push(self.append_one(p).await?);
        }
        self.wake_local(&publications, &appended);
        Ok(appended.iter().map(|a| a.cursor).collect())
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

    async fn wait(&self, audience: &AudienceKey, after: Option<Cursor>) -> Result<Vec<v1::Notice>> {
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
                return Ok(Vec::new());
            }
            loop {
                tokio::select! {
                    // An append to this feed (announced locally or through pub/sub): return at
                    // once rather than look again, which would cost the caller a second round
                    // trip before its read; with the very next notice when the wake-up carried
                    // it. A spurious return costs one read (see the trait). The sender lives
                    // while this guard holds the registration.
                    changed = rx.changed() => {
                        if changed.is_err() {
                            break;
                        }
                        let fresh = rx.borrow_and_update().clone();
                        match fresh {
                            Some(f) if f.seen_by(after) => continue,
                            Some(f) => return Ok(f.next_after(after).into_iter().collect()),
                            None => return Ok(Vec::new()),
                        }
                    }
                    _ = closed.changed() => break,
                }
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod wake_tests {
    use super::*;

    fn message(header: &str, tag: &str, body: &[u8]) -> Vec<u8> {
        [header.as_bytes(), b"\n", tag.as_bytes(), body].concat()
    }

    fn body() -> v1::NoticeBody {
        v1::NoticeBody {
            kind: Some(v1::notice_body::Kind::DispatchOrder(v1::DispatchOrder {
                dispatch_id: "d-1/inc-1/1".into(),
                ..Default::default()
            })),
        }
    }

    #[test]
    fn a_wake_up_gives_its_tag_and_notice_whatever_bytes_the_tag_holds() {
        // A tag with a space and a newline: its length, not a separator, ends it.
        let tag = "officer:a b\nc";
        let payload = message(
            &format!("17 5 1000 {} 1", tag.len()),
            tag,
            &body().encode_to_vec(),
        );
        let (got_tag, fresh) = parse_wake(&payload).unwrap();
        assert_eq!(got_tag, tag);
        let fresh = fresh.unwrap();
        assert_eq!(fresh.epoch, 17);
        assert_eq!(
            fresh.notice,
            notice_at(
                Cursor {
                    epoch: 17,
                    position: 5
                },
                1000,
                body()
            )
        );
        // The very next notice after 17-4 only.
        let after = |position| {
            Some(Cursor {
                epoch: 17,
                position,
            })
        };
        assert!(fresh.next_after(after(4)).is_some());
        assert!(fresh.next_after(after(3)).is_none());
        assert!(
            fresh
                .next_after(Some(Cursor {
                    epoch: 18,
                    position: 4
                }))
                .is_none()
        );
        assert!(fresh.next_after(None).is_none());
        assert!(fresh.seen_by(after(5)) && fresh.seen_by(after(9)) && !fresh.seen_by(after(4)));
    }

    #[test]
    fn a_wake_up_without_a_readable_body_wakes_without_a_notice() {
        let no_body = message("17 5 1000 9 0", "officer:a", b"");
        assert_eq!(parse_wake(&no_body).unwrap().0, "officer:a");
        assert!(parse_wake(&no_body).unwrap().1.is_none());
        let garbled = message("17 5 1000 9 1", "officer:a", b"\xff\xff\xff");
        let (tag, fresh) = parse_wake(&garbled).unwrap();
        assert_eq!((tag.as_str(), fresh.is_none()), ("officer:a", true));
    }

    #[test]
    fn unreadable_wake_ups_are_none() {
        for bad in [
            b"officer:a".to_vec(),                       // an older version's bare tag
            message("17 5 1000 99 1", "officer:a", b""), // tag longer than the message
            message("17 5 1000 x 1", "officer:a", b""),  // length not a number
            message("17 5", "officer:a", b""),           // fields missing
        ] {
            assert!(parse_wake(&bad).is_none(), "{bad:?}");
        }
    }
}

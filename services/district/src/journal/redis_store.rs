//! The journal in Redis: one stream per district.
//!
//! Keys of district `D`:
//! - `district:{D}:epoch`: the owner's epoch, raised by every [`Journal::open`] or by the
//!   acquisition of the district's lease (`dispatch-cluster`), which [`Journal::load`] then
//!   checks;
//! - `district:{D}:seq`: the last sequence number given;
//! - `district:{D}:log`: a stream of entries with explicit ids `0-<seq>` (so a cursor is the
//!   sequence number itself), field `e` = the [`Entry`] as JSON;
//! - `district:{D}:last`: hash `id`, `seq` of the last append, so an append sent again after its
//!   reply was lost (the connection broke) answers the first one's `seq` and lands once;
//! - `district:{D}:snap`: hash `seq`, `state` (the [`DistrictState`] as JSON);
//! - `district:{D}:delivered`: the delivered mark.
//!
//! With [`RedisJournal::with_notices`] an append also appends the dispatch orders among the
//! entry's effects to their officers' notification feeds (`feed:{officer:<id>}`; layout in
//! `dispatch_bus::feed::redis_store`) in the same script, so an order exists exactly when its
//! entry does.
//!
//! Every write checks the epoch in the same Lua script, so a paused owner whose district was
//! opened by another cannot append after the takeover. The stream keeps only entries after
//! min(snapshot, delivered): a snapshot or a delivered mark trims it (`XTRIM MINID`).
//!
//! JSON (with exact float round trips) is the entry encoding: entries carry domain types whose
//! exact values matter for replay, and the journal is read only by this crate.

use std::sync::atomic::{AtomicU64, Ordering};

use dispatch_bus::feed::redis_store as feed;
use dispatch_bus::feed::{Publication, RedisConfig};
use dispatch_bus::{convert, redis_conn};
use dispatch_core::DistrictState;
use dispatch_core::district::{Effect, Entry};
use redis::aio::ConnectionManager;
use redis::streams::StreamRangeReply;
use redis::{AsyncCommands, Script};

use super::{Error, Journal, Loaded, Result};

/// Appends one entry (after the epoch check), and the notices of its effects to their feeds
/// when given. KEYS: epoch, seq, log, last, then [`feed::APPEND_KEYS`] per notice. ARGV:
/// epoch, entry JSON, append id, notice count, then [`feed::APPEND_ARGS`] per notice.
fn append_script() -> String {
    format!(
        r#"redis.replicate_commands()
{feed_fn}
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
if cur ~= tonumber(ARGV[1]) then return {{0, cur}} end
if redis.call('HGET', KEYS[4], 'id') == ARGV[3] then
  return {{1, tonumber(redis.call('HGET', KEYS[4], 'seq'))}}
end
local seq = redis.call('INCR', KEYS[2])
redis.call('XADD', KEYS[3], '0-' .. seq, 'e', ARGV[2])
redis.call('HSET', KEYS[4], 'id', ARGV[3], 'seq', seq)
for i = 0, tonumber(ARGV[4]) - 1 do
  local k, a = 4 + i * {nk}, 4 + i * {na}
  feed_append(KEYS[k + 1], KEYS[k + 2], KEYS[k + 3], KEYS[k + 4],
    ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4], ARGV[a + 5], ARGV[a + 6], ARGV[a + 7], ARGV[a + 8])
end
return {{1, seq}}
"#,
        feed_fn = feed::APPEND_FN,
        nk = feed::APPEND_KEYS,
        na = feed::APPEND_ARGS,
    )
}

/// Trims the log to the entries after min(snapshot, delivered). KEYS: snap, delivered, log.
const TRIM: &str = r#"
local function trim(snap, delivered, log)
  local s = tonumber(redis.call('HGET', snap, 'seq') or '0')
  local d = tonumber(redis.call('GET', delivered) or '0')
  local keep = math.min(s, d)
  if keep > 0 then redis.call('XTRIM', log, 'MINID', '0-' .. (keep + 1)) end
end
"#;

fn snapshot_script() -> String {
    format!(
        r#"{TRIM}
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
if cur ~= tonumber(ARGV[1]) then return {{0, cur}} end
local have = tonumber(redis.call('HGET', KEYS[2], 'seq') or '0')
if tonumber(ARGV[2]) >= have then
  redis.call('HSET', KEYS[2], 'seq', ARGV[2], 'state', ARGV[3])
end
trim(KEYS[2], KEYS[3], KEYS[4])
return {{1, cur}}
"#
    )
}

fn delivered_script() -> String {
    format!(
        r#"{TRIM}
local have = tonumber(redis.call('GET', KEYS[2]) or '0')
if tonumber(ARGV[1]) > have then redis.call('SET', KEYS[2], ARGV[1]) end
trim(KEYS[1], KEYS[2], KEYS[3])
return 1
"#
    )
}

struct Keys {
    epoch: String,
    seq: String,
    log: String,
    last: String,
    snap: String,
    delivered: String,
}

fn keys(district: &str) -> Keys {
    let k = |s: &str| format!("district:{district}:{s}");
    Keys {
        epoch: k("epoch"),
        seq: k("seq"),
        log: k("log"),
        last: k("last"),
        snap: k("snap"),
        delivered: k("delivered"),
    }
}

/// District journals in Redis. Cheap to clone.
#[derive(Clone)]
pub struct RedisJournal {
    con: ConnectionManager,
    /// The URL, for the appending thread's connection ([`redis_conn::thread_local`]).
    url: String,
    append: Script,
    snapshot: Script,
    delivered: Script,
    /// Distinguishes this process's appends in `district:{D}:last`.
    instance: String,
    /// With a feed configuration: each append also appends its entry's notices to their feeds
    /// ([`RedisJournal::with_notices`]).
    notices: Option<RedisConfig>,
    appends: std::sync::Arc<AtomicU64>,
}

impl std::fmt::Debug for RedisJournal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisJournal")
            .field("instance", &self.instance)
            .finish_non_exhaustive()
    }
}

impl RedisJournal {
    /// Journals in the Redis at `url`; connects lazily and reconnects by itself.
    ///
    /// Errors: [`Error::Unavailable`] for a malformed `url`.
    pub fn connect(url: &str) -> Result<Self> {
        let con =
            redis_conn::connect(url).map_err(|e| Error::Unavailable(format!("{url}: {e}")))?;
        Ok(Self {
            con,
            url: url.to_owned(),
            append: Script::new(&append_script()),
            snapshot: Script::new(&snapshot_script()),
            delivered: Script::new(&delivered_script()),
            instance: ulid::Ulid::generate().to_string(),
            appends: std::sync::Arc::new(AtomicU64::new(0)),
            notices: None,
        })
    }

    /// Also appends, in the same script as each entry, the dispatch orders among its effects to
    /// their officers' feeds of the notification service sharing this Redis, laid out and
    /// trimmed by `feeds` (the notification service's own [`RedisConfig`]). An order is then on
    /// its terminal's feed in the same Redis step as the journal append, with no hop through
    /// the outbox and the notification service; the outbox still publishes it, and that
    /// publication lands as a repeat of the same id (each feed is idempotent on it), so the
    /// outbox stays what guarantees delivery. A fenced append writes no order either. The
    /// command center's incident changes go through the outbox only: screens can wait a hop,
    /// and each notice in the script lengthens the step that the order waits for.
    #[must_use]
    pub fn with_notices(mut self, feeds: RedisConfig) -> Self {
        self.notices = Some(feeds);
        self
    }

    /// The keys and arguments of the orders of `entry` ([`RedisJournal::with_notices`]).
    fn notices_of(&self, entry: &Entry) -> (Vec<String>, Vec<Vec<u8>>) {
        let (mut keys, mut args) = (Vec::new(), Vec::new());
        let Some(config) = &self.notices else {
            return (keys, args);
        };
        let orders = entry
            .effects
            .iter()
            .filter(|e| matches!(e, Effect::Order(_)));
        for p in orders.filter_map(crate::outbox::publication_of) {
            let wire = Publication {
                audience: p.audience,
                body: convert::notice_body_to_wire(&p.body),
                id: p.id,
            };
            let (k, a) = feed::co_append(&wire, entry.at.as_millis(), config);
            keys.extend(k);
            args.extend(a);
        }
        (keys, args)
    }
}

fn unavailable(e: impl std::fmt::Display) -> Error {
    Error::Unavailable(e.to_string())
}

fn seq_of(stream_id: &str) -> Result<u64> {
    stream_id
        .strip_prefix("0-")
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| Error::Unavailable(format!("journal entry id {stream_id:?} is not 0-<seq>")))
}

fn fenced_or(district: &str, epoch: u64, (ok, current): (i64, u64)) -> Result<u64> {
    if ok == 1 {
        Ok(current)
    } else {
        Err(Error::Fenced {
            district: district.to_owned(),
            ours: epoch,
            current,
        })
    }
}

#[tonic::async_trait]
impl Journal for RedisJournal {
    async fn open(&self, district: &str) -> Result<Loaded> {
        // Taking the epoch is not idempotent, but a lost reply only skips an epoch: the retry
        // takes a higher one, and nobody holds the skipped one. So it is retried like the rest
        // (a connection broken by a Redis restart fails its first command).
        let key = keys(district).epoch;
        let epoch: u64 = redis_conn::retry("journal open", || {
            let mut con = self.con.clone();
            let key = &key;
            async move { con.incr(key, 1).await }
        })
        .await
        .map_err(unavailable)?;
        self.load(district, epoch).await
    }

    async fn load(&self, district: &str, epoch: u64) -> Result<Loaded> {
        let k = keys(district);
        // One transaction, so the epoch checked and the state read belong together.
        let (current, snap, delivered, log): (
            Option<u64>,
            Vec<Option<String>>,
            Option<u64>,
            StreamRangeReply,
        ) = redis_conn::retry("journal load", || {
            let mut con = self.con.clone();
            let mut pipe = redis::pipe();
            pipe.atomic()
                .get(&k.epoch)
                .hmget(&k.snap, &["seq", "state"])
                .get(&k.delivered)
                .xrange_all(&k.log);
            async move { pipe.query_async(&mut con).await }
        })
        .await
        .map_err(unavailable)?;
        let current = current.unwrap_or(0);
        if current != epoch {
            return Err(Error::Fenced {
                district: district.to_owned(),
                ours: epoch,
                current,
            });
        }
        let snapshot = match (
            snap.first().cloned().flatten(),
            snap.get(1).cloned().flatten(),
        ) {
            (Some(seq), Some(state)) => {
                let seq: u64 = seq.parse().map_err(unavailable)?;
                let state: DistrictState = serde_json::from_str(&state).map_err(unavailable)?;
                Some((seq, state))
            }
            _ => None,
        };
        let mut entries = Vec::with_capacity(log.ids.len());
        for id in &log.ids {
            let json: String = id
                .get("e")
                .ok_or_else(|| Error::Unavailable(format!("journal entry {} has no e", id.id)))?;
            let entry: Entry = serde_json::from_str(&json).map_err(unavailable)?;
            entries.push((seq_of(&id.id)?, entry));
        }
        Ok(Loaded {
            epoch,
            snapshot,
            entries,
            delivered: delivered.unwrap_or(0),
        })
    }

    async fn append(&self, district: &str, epoch: u64, entry: &Entry) -> Result<u64> {
        let k = keys(district);
        let json = serde_json::to_string(entry).map_err(unavailable)?;
        let n = self.appends.fetch_add(1, Ordering::Relaxed);
        let append_id = format!("{}:{n}", self.instance);
        let (notice_keys, notice_args) = self.notices_of(entry);
        let notices = notice_keys.len() / feed::APPEND_KEYS;
        // A district actor appends from its arbiter's thread: on a connection of that thread.
        let local = redis_conn::thread_local(&self.url, &self.con);
        let answer: (i64, u64) = redis_conn::retry("journal append", || {
            let mut con = local.clone();
            let mut inv = self.append.prepare_invoke();
            inv.key(&k.epoch)
                .key(&k.seq)
                .key(&k.log)
                .key(&k.last)
                .arg(epoch)
                .arg(&json)
                .arg(&append_id)
                .arg(notices);
            for key in &notice_keys {
                inv.key(key);
            }
            for arg in &notice_args {
                inv.arg(arg.as_slice());
            }
            async move { inv.invoke_async(&mut con).await }
        })
        .await
        .map_err(unavailable)?;
        fenced_or(district, epoch, answer)
    }

    async fn snapshot(
        &self,
        district: &str,
        epoch: u64,
        seq: u64,
        state: &DistrictState,
    ) -> Result<()> {
        let k = keys(district);
        let json = serde_json::to_string(state).map_err(unavailable)?;
        let answer: (i64, u64) = redis_conn::retry("journal snapshot", || {
            let mut con = self.con.clone();
            let mut inv = self.snapshot.prepare_invoke();
            inv.key(&k.epoch)
                .key(&k.snap)
                .key(&k.delivered)
                .key(&k.log)
                .arg(epoch)
                .arg(seq)
                .arg(&json);
            async move { inv.invoke_async(&mut con).await }
        })
        .await
        .map_err(unavailable)?;
        fenced_or(district, epoch, answer).map(|_| ())
    }

    async fn delivered(&self, district: &str, seq: u64) -> Result<()> {
        let k = keys(district);
        let _: i64 = redis_conn::retry("journal delivered", || {
            let mut con = self.con.clone();
            let mut inv = self.delivered.prepare_invoke();
            inv.key(&k.snap).key(&k.delivered).key(&k.log).arg(seq);
            async move { inv.invoke_async(&mut con).await }
        })
        .await
        .map_err(unavailable)?;
        Ok(())
    }

    async fn confirm(&self, district: &str, epoch: u64) -> Result<()> {
        let k = keys(district);
        let current: Option<u64> = redis_conn::retry("journal confirm", || {
            let mut con = self.con.clone();
            let key = k.epoch.clone();
            async move { con.get(key).await }
        })
        .await
        .map_err(unavailable)?;
        let current = current.unwrap_or(0);
        if current == epoch {
            Ok(())
        } else {
            Err(Error::Fenced {
                district: district.to_owned(),
                ours: epoch,
                current,
            })
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod notice_tests {
    use std::sync::Arc;
    use std::time::Duration;

    use dispatch_bus::feed::{AudienceKey, FeedStore, RedisFeedStore};
    use dispatch_core::district::{Command, DispatchOrder, Effect};
    use dispatch_core::{
        Category, DispatchId, Incident, IncidentState, LatLng, ManualClock, Priority, Timestamp,
    };
    use dispatch_proto::v1;
    use dispatch_redis_test::RedisServer;

    use super::*;

    const D: &str = "town-d01";
    const AT: Timestamp = Timestamp(1_700_000_000_000);

    /// An entry as a submit that dispatches at once makes it: the incident's change, then the
    /// order of officer `o1`.
    fn dispatched(incident: &str) -> (Entry, DispatchOrder) {
        let mut i = Incident::received(
            incident.into(),
            format!("call-{incident}").into(),
            Category::Theft,
            LatLng::new(23.001, 113.7).unwrap(),
            "wallet taken".into(),
            AT,
        );
        i.district_id = D.into();
        i.transition(IncidentState::Routed, AT).unwrap();
        let order = DispatchOrder {
            dispatch_id: DispatchId::new(&D.into(), &i.id, 1),
            incident_id: i.id.clone(),
            officer_id: "town-d01-o01".into(),
            district_id: D.into(),
            priority: Priority::P2,
            category: Category::Theft,
            location: i.location,
            description: i.description.clone(),
            eta_s: 42.0,
            dispatched_at: AT,
        };
        let entry = Entry {
            at: AT,
            command: Command::Submit(Box::new(i.clone())),
            effects: vec![Effect::IncidentChanged(i), Effect::Order(order.clone())],
        };
        (entry, order)
    }

    /// Feeds whose wake-up subscription is up, so a wait from now on is woken by appends.
    async fn feeds(server: &RedisServer) -> Arc<dyn FeedStore> {
        let store = RedisFeedStore::connect(
            &server.url(),
            Arc::new(ManualClock::at(AT)),
            RedisConfig::default(),
        )
        .await
        .unwrap();
        assert!(store.listening_within(Duration::from_secs(5)).await);
        Arc::new(store)
    }

    fn order_id(n: &v1::Notice) -> Option<String> {
        match n.body.as_ref()?.kind.as_ref()? {
            v1::notice_body::Kind::DispatchOrder(o) => Some(o.dispatch_id.clone()),
            _ => None,
        }
    }

    #[tokio::test]
    async fn an_append_puts_its_order_on_the_officers_feed_once_and_a_fenced_one_puts_none() {
        let server = RedisServer::start().unwrap_or_else(|e| panic!("{e}"));
        let feeds = feeds(&server).await;
        let officer = AudienceKey::Officer("town-d01-o01".into());
        let journal = RedisJournal::connect(&server.url())
            .unwrap()
            .with_notices(RedisConfig::default());
        let epoch = journal.open(D).await.unwrap().epoch;

        // A terminal waiting at the head of its (empty) feed.
        let waiter = {
            let (feeds, officer) = (feeds.clone(), officer.clone());
            tokio::spawn(async move { feeds.wait(&officer, None).await })
        };
        tokio::time::sleep(Duration::from_millis(200)).await;
        let (entry, order) = dispatched("inc-1");
        journal.append(D, epoch, &entry).await.unwrap();

        // The order is on the officer's feed, and the waiter was handed it by the wake-up.
        let on_feed = feeds.read(&officer, None, 10).await.unwrap();
        assert_eq!(on_feed.len(), 1);
        assert_eq!(
            order_id(&on_feed[0]).as_deref(),
            Some(order.dispatch_id.as_str())
        );
        let handed = tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(handed, on_feed);
        // The change is for the outbox to publish.
        let cc = AudienceKey::CommandCenter;
        assert!(feeds.read(&cc, None, 10).await.unwrap().is_empty());

        // The outbox's publication of the same effects: the change lands, the order as a
        // repeat (its cursor, no second notice).
        let again: Vec<_> = entry
            .effects
            .iter()
            .filter_map(crate::outbox::publication_of)
            .map(|p| Publication {
                audience: p.audience,
                body: convert::notice_body_to_wire(&p.body),
                id: p.id,
            })
            .collect();
        let cursors = feeds.append(again).await.unwrap();
        assert_eq!(cursors[1].encode(), on_feed[0].cursor);
        assert_eq!(feeds.read(&officer, None, 10).await.unwrap().len(), 1);
        assert_eq!(feeds.read(&cc, None, 10).await.unwrap().len(), 1);

        // Another owner takes the district: the old one's append is refused and writes no notice.
        let taken = journal.open(D).await.unwrap().epoch;
        let (late, _) = dispatched("inc-2");
        assert!(matches!(
            journal.append(D, epoch, &late).await,
            Err(Error::Fenced { current, .. }) if current == taken
        ));
        assert_eq!(feeds.read(&officer, None, 10).await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn without_notices_an_append_leaves_the_feeds_alone() {
        let server = RedisServer::start().unwrap_or_else(|e| panic!("{e}"));
        let feeds = feeds(&server).await;
        let journal = RedisJournal::connect(&server.url()).unwrap();
        let epoch = journal.open(D).await.unwrap().epoch;
        journal
            .append(D, epoch, &dispatched("inc-1").0)
            .await
            .unwrap();
        let officer = AudienceKey::Officer("town-d01-o01".into());
        assert!(feeds.read(&officer, None, 10).await.unwrap().is_empty());
    }
}

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
//! Every write checks the epoch in the same Lua script, so a paused owner whose district was
//! opened by another cannot append after the takeover. The stream keeps only entries after
//! min(snapshot, delivered): a snapshot or a delivered mark trims it (`XTRIM MINID`).
//!
//! JSON (with exact float round trips) is the entry encoding: entries carry domain types whose
//! exact values matter for replay, and the journal is read only by this crate.

use std::sync::atomic::{AtomicU64, Ordering};

use dispatch_bus::redis_conn;
use dispatch_core::DistrictState;
use dispatch_core::district::Entry;
use redis::aio::ConnectionManager;
use redis::streams::StreamRangeReply;
use redis::{AsyncCommands, Script};

use super::{Error, Journal, Loaded, Result};

const APPEND: &str = r#"
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
if cur ~= tonumber(ARGV[1]) then return {0, cur} end
if redis.call('HGET', KEYS[4], 'id') == ARGV[3] then
  return {1, tonumber(redis.call('HGET', KEYS[4], 'seq'))}
end
local seq = redis.call('INCR', KEYS[2])
redis.call('XADD', KEYS[3], '0-' .. seq, 'e', ARGV[2])
redis.call('HSET', KEYS[4], 'id', ARGV[3], 'seq', seq)
return {1, seq}
"#;

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
    append: Script,
    snapshot: Script,
    delivered: Script,
    /// Distinguishes this process's appends in `district:{D}:last`.
    instance: String,
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
            append: Script::new(APPEND),
            snapshot: Script::new(&snapshot_script()),
            delivered: Script::new(&delivered_script()),
            instance: ulid::Ulid::generate().to_string(),
            appends: std::sync::Arc::new(AtomicU64::new(0)),
        })
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
        // Taking the epoch is not idempotent, but a lost reply only skips an epoch: the next
        // open takes a higher one, and nobody holds the skipped one.
        let epoch: u64 = self
            .con
            .clone()
            .incr(&keys(district).epoch, 1)
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
        let answer: (i64, u64) = redis_conn::retry("journal append", || {
            let mut con = self.con.clone();
            let mut inv = self.append.prepare_invoke();
            inv.key(&k.epoch)
                .key(&k.seq)
                .key(&k.log)
                .key(&k.last)
                .arg(epoch)
                .arg(&json)
                .arg(&append_id);
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
}

//! Intake's records in Redis: the system of record shared by every intake replica.
//!
//! Keys (all under `intake:`):
//! - `intake:call:{call_id}` -> incident id: the `call_id` index;
//! - `intake:inc:{id}` -> hash `pb` (the `dispatch.v1.Incident`, protobuf), `rev` (its
//!   revision), `state` (its `IncidentState` number), so scripts can compare without decoding;
//! - `intake:lease:{id}` -> the token of the hand-off attempt holding it, with a `PX` expiry;
//! - `intake:routed` -> sorted set of incidents not yet taken by their district, scored by the
//!   call's receive time (ms), which the sweeper scans.
//!
//! Every rule that needs more than one key runs in one Lua script, so it is atomic across
//! replicas: two replicas reporting one call at once make one incident and one lease. Every
//! script is idempotent, so a command whose reply was lost with the connection is sent again
//! ([`dispatch_bus::redis_conn::retry`]) and lands once.
//!
//! Retention: when an incident closes, its record and `call_id` entry get a time to live (the
//! configured retention, in real time), and Redis removes them.

use std::time::Duration;

use dispatch_bus::convert::{incident_from_wire, incident_to_wire, state_to_wire};
use dispatch_bus::redis_conn;
use dispatch_core::{Incident, Timestamp};
use dispatch_proto::v1;
use prost::Message;
use redis::aio::ConnectionManager;
use redis::{AsyncCommands, Script};

use super::IncidentRecords;
use crate::error::{Error, Result};
use crate::store::Created;

/// `dispatch.v1.IncidentState.INCIDENT_STATE_ROUTED`, as the scripts see it.
const ROUTED: i32 = v1::IncidentState::Routed as i32;
const ROUTED_SET: &str = "intake:routed";

fn call_key(call_id: &str) -> String {
    format!("intake:call:{call_id}")
}
fn inc_key(id: &str) -> String {
    format!("intake:inc:{id}")
}
fn lease_key(id: &str) -> String {
    format!("intake:lease:{id}")
}

/// Creates the record of a new call, or answers the known one.
/// KEYS: call, inc, lease, routed. ARGV: id, pb, rev, state, token, lease_ms, score.
/// Returns {1, pb} when this id now holds the call (created now, or by an earlier send of the
/// same command whose reply was lost), {0, pb} with the holder's record otherwise.
const CREATE: &str = r#"
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then
  local pb = redis.call('HGET', 'intake:inc:' .. holder, 'pb')
  if pb then return {0, pb} end
end
if holder == ARGV[1] and redis.call('EXISTS', KEYS[2]) == 1 then
  return {1, redis.call('HGET', KEYS[2], 'pb')}
end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[2], 'pb', ARGV[2], 'rev', ARGV[3], 'state', ARGV[4])
redis.call('SET', KEYS[3], ARGV[5], 'PX', ARGV[6])
redis.call('ZADD', KEYS[4], ARGV[7], ARGV[1])
return {1, ARGV[2]}
"#;

/// Takes a free lease on a record still ROUTED.
/// KEYS: inc, lease. ARGV: token, lease_ms, routed state number.
/// Returns the record's pb, or false.
const TAKE_LEASE: &str = r#"
local state = redis.call('HGET', KEYS[1], 'state')
if not state or state ~= ARGV[3] then return false end
local holder = redis.call('GET', KEYS[2])
if holder == ARGV[1] then return redis.call('HGET', KEYS[1], 'pb') end
if holder then return false end
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
return redis.call('HGET', KEYS[1], 'pb')
"#;

/// Applies a newer revision (and, with a token, releases that attempt's lease first).
/// KEYS: inc, routed, call, lease. ARGV: id, token ('' for none), pb ('' for none), rev, state,
/// routed state number, closed ('1' or '0'), retention_ms.
/// Returns {applied (0/1), current pb or false}.
const APPLY: &str = r#"
if ARGV[2] ~= '' and redis.call('GET', KEYS[4]) == ARGV[2] then
  redis.call('DEL', KEYS[4])
end
local cur = redis.call('HGET', KEYS[1], 'rev')
if not cur then return {0, false} end
local applied = 0
if ARGV[3] ~= '' and tonumber(ARGV[4]) > tonumber(cur) then
  redis.call('HSET', KEYS[1], 'pb', ARGV[3], 'rev', ARGV[4], 'state', ARGV[5])
  if ARGV[5] ~= ARGV[6] then redis.call('ZREM', KEYS[2], ARGV[1]) end
  if ARGV[7] == '1' then
    redis.call('PEXPIRE', KEYS[1], ARGV[8])
    redis.call('PEXPIRE', KEYS[3], ARGV[8])
  end
  applied = 1
end
return {applied, redis.call('HGET', KEYS[1], 'pb')}
"#;

/// Intake's records in Redis. Cheap to clone.
#[derive(Clone)]
pub struct RedisRecords {
    con: ConnectionManager,
    /// The URL, for the creating thread's connection ([`redis_conn::thread_local`]).
    url: String,
    retention: Duration,
    create: Script,
    take_lease: Script,
    apply: Script,
}

impl std::fmt::Debug for RedisRecords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisRecords")
            .field("retention", &self.retention)
            .finish_non_exhaustive()
    }
}

impl RedisRecords {
    /// Records in the Redis at `url`, closed ones kept for `retention` (real time). Connects
    /// lazily: intake starts while Redis is down and reconnects by itself.
    ///
    /// Errors: [`Error::Records`] for a malformed `url`.
    pub fn connect(url: &str, retention: Duration) -> Result<Self> {
        let con = redis_conn::connect(url).map_err(|e| Error::Records(format!("{url}: {e}")))?;
        Ok(Self {
            con,
            url: url.to_owned(),
            retention,
            create: Script::new(CREATE),
            take_lease: Script::new(TAKE_LEASE),
            apply: Script::new(APPLY),
        })
    }

    async fn read(&self, id: &str) -> Result<Option<Incident>> {
        let key = inc_key(id);
        let pb: Option<Vec<u8>> = redis_conn::retry("intake get", || {
            let mut con = self.con.clone();
            let key = key.clone();
            async move { con.hget(key, "pb").await }
        })
        .await
        .map_err(records)?;
        pb.map(|b| decode(&b)).transpose()
    }

    /// Runs APPLY: releases `token`'s lease (when given) and applies `incident` (when given and
    /// newer). Returns (applied, the record as it stands).
    async fn apply_script(
        &self,
        id: &str,
        token: &str,
        incident: Option<&Incident>,
    ) -> Result<(bool, Option<Incident>)> {
        let (pb, rev, state, closed) = match incident {
            Some(i) => (
                encode(i),
                i.revision,
                state_to_wire(i.state) as i32,
                i.state.is_closed(),
            ),
            None => (Vec::new(), 0, 0, false),
        };
        let retention_ms = u64::try_from(self.retention.as_millis()).unwrap_or(u64::MAX);
        let (applied, current): (i64, Option<Vec<u8>>) = redis_conn::retry("intake apply", || {
            let mut con = self.con.clone();
            let mut inv = self.apply.prepare_invoke();
            inv.key(inc_key(id))
                .key(ROUTED_SET)
                .key(call_key(incident.map_or("", |i| i.call_id.as_str())))
                .key(lease_key(id))
                .arg(id)
                .arg(token)
                .arg(pb.as_slice())
                .arg(rev)
                .arg(state)
                .arg(ROUTED)
                .arg(if closed { "1" } else { "0" })
                .arg(retention_ms);
            async move { inv.invoke_async(&mut con).await }
        })
        .await
        .map_err(records)?;
        Ok((applied == 1, current.map(|b| decode(&b)).transpose()?))
    }
}

fn records(e: redis::RedisError) -> Error {
    Error::Records(e.to_string())
}

fn encode(incident: &Incident) -> Vec<u8> {
    incident_to_wire(incident).encode_to_vec()
}

fn decode(bytes: &[u8]) -> Result<Incident> {
    let wire = v1::Incident::decode(bytes)
        .map_err(|e| Error::Records(format!("stored incident does not decode: {e}")))?;
    incident_from_wire(&wire)
        .map_err(|e| Error::Records(format!("stored incident is invalid: {e}")))
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

#[tonic::async_trait]
impl IncidentRecords for RedisRecords {
    async fn find_call(&self, call_id: &str) -> Result<Option<Incident>> {
        let key = call_key(call_id);
        let id: Option<String> = redis_conn::retry("intake find call", || {
            let mut con = self.con.clone();
            let key = key.clone();
            async move { con.get(key).await }
        })
        .await
        .map_err(records)?;
        match id {
            Some(id) => self.read(&id).await,
            None => Ok(None),
        }
    }

    async fn get(&self, id: &str) -> Result<Option<Incident>> {
        self.read(id).await
    }

    async fn create(&self, incident: Incident, token: &str, lease: Duration) -> Result<Created> {
        let pb = encode(&incident);
        let score = incident.times.received_at.map_or(0, Timestamp::as_millis);
        // The first write of every call: on a connection of this thread.
        let local = redis_conn::thread_local(&self.url, &self.con);
        let (mine, stored): (i64, Vec<u8>) = redis_conn::retry("intake create", || {
            let mut con = local.clone();
            let mut inv = self.create.prepare_invoke();
            inv.key(call_key(incident.call_id.as_str()))
                .key(inc_key(incident.id.as_str()))
                .key(lease_key(incident.id.as_str()))
                .key(ROUTED_SET)
                .arg(incident.id.as_str())
                .arg(pb.as_slice())
                .arg(incident.revision)
                .arg(ROUTED)
                .arg(token)
                .arg(millis(lease))
                .arg(score);
            async move { inv.invoke_async(&mut con).await }
        })
        .await
        .map_err(records)?;
        let stored = decode(&stored)?;
        Ok(if mine == 1 {
            Created::New(stored)
        } else {
            Created::Existing(stored)
        })
    }

    async fn take_lease(&self, id: &str, token: &str, lease: Duration) -> Result<Option<Incident>> {
        let pb: Option<Vec<u8>> = redis_conn::retry("intake take lease", || {
            let mut con = self.con.clone();
            let mut inv = self.take_lease.prepare_invoke();
            inv.key(inc_key(id))
                .key(lease_key(id))
                .arg(token)
                .arg(millis(lease))
                .arg(ROUTED);
            async move { inv.invoke_async(&mut con).await }
        })
        .await
        .map_err(records)?;
        pb.map(|b| decode(&b)).transpose()
    }

    async fn handoff_done(
        &self,
        id: &str,
        token: &str,
        reply: Option<Incident>,
    ) -> Result<Option<Incident>> {
        Ok(self.apply_script(id, token, reply.as_ref()).await?.1)
    }

    async fn apply_update(&self, incident: Incident) -> Result<bool> {
        Ok(self
            .apply_script(incident.id.as_str(), "", Some(&incident))
            .await?
            .0)
    }

    async fn stranded(&self, limit: usize) -> Result<Vec<String>> {
        let end = isize::try_from(limit.saturating_mul(4)).unwrap_or(isize::MAX) - 1;
        let ids: Vec<String> = redis_conn::retry("intake stranded", || {
            let mut con = self.con.clone();
            async move { con.zrange(ROUTED_SET, 0, end).await }
        })
        .await
        .map_err(records)?;
        if ids.is_empty() {
            return Ok(ids);
        }
        let (leased, present): (Vec<bool>, Vec<bool>) =
            redis_conn::retry("intake stranded", || {
                let mut con = self.con.clone();
                let mut leases = redis::pipe();
                let mut records = redis::pipe();
                for id in &ids {
                    leases.exists(lease_key(id));
                    records.exists(inc_key(id));
                }
                async move {
                    let leased: Vec<bool> = leases.query_async(&mut con).await?;
                    let present: Vec<bool> = records.query_async(&mut con).await?;
                    Ok((leased, present))
                }
            })
            .await
            .map_err(records)?;
        let mut out = Vec::new();
        for ((id, leased), present) in ids.into_iter().zip(leased).zip(present) {
            if !present {
                // Expired or never finished: nothing left to hand off.
                let mut con = self.con.clone();
                let _: Result<i64, _> = con.zrem(ROUTED_SET, &id).await;
            } else if !leased && out.len() < limit {
                out.push(id);
            }
        }
        Ok(out)
    }

    async fn purge_closed(&self, _before: Timestamp) -> Result<usize> {
        // Closed records carry a time to live; Redis removes them.
        Ok(0)
    }

    async fn len(&self) -> Result<usize> {
        let keys: Vec<String> = redis_conn::retry("intake len", || {
            let mut con = self.con.clone();
            async move {
                let mut keys = Vec::new();
                let mut iter: redis::AsyncIter<String> = con.scan_match("intake:inc:*").await?;
                while let Some(k) = futures::StreamExt::next(&mut iter).await {
                    keys.push(k?);
                }
                Ok(keys)
            }
        })
        .await
        .map_err(records)?;
        Ok(keys.len())
    }
}

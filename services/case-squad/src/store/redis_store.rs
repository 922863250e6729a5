//! The case book in Redis: [`CaseStore`] for a cluster of case-squad replicas, Redis being the
//! system of record (`../shared/DESIGN.md` section 5).
//!
//! Layout:
//!
//! | key | type | what |
//! |---|---|---|
//! | `cases:case:<case_id>` | hash | one case: `incident_id`, `station_id`, `district_id`, `kind` (`criminal` or `administrative`), `investigator_id`, `opened_at` (cluster time, ms since the Unix epoch) |
//! | `cases:station:<station_id>:loads` | hash | investigator id -> open cases; a missing field is 0 |
//! | `cases:station:<station_id>:list` | sorted set | the station's case ids, scored by `opened_at` (ms) |
//! | `cases:incident:<incident_id>` | string | the incident's case id |
//!
//! Opening is one Lua script ([`OPEN`]): when the incident already has a case (its
//! `cases:incident` key, or, for a case opened before that key was kept, a case of the asked id
//! recording this incident), answer with it; refuse a case id another incident's case holds;
//! otherwise pick the least-loaded investigator, `HINCRBY` their load, write the case, list it
//! and index it by incident. Redis runs a script alone, so two replicas opening the same
//! incident at once open one case and add one to one load; and since a second run finds the
//! case, a script whose reply was lost may be run again ([`redis_conn::retry`]).
//!
//! The case id comes with the request (the incident's `case_id`, see
//! [`CaseRequest::case_id`]); one incident always asks with the same id, but the incident
//! index keeps the one-case-per-incident rule even if it did not.
//!
//! The squads themselves are configuration, not state: the script is handed the squad's
//! investigator ids in id order and picks the first of the smallest load, so ties go by id as
//! in [`crate::CaseBook`] without comparing strings in Lua (whose order follows the server's
//! locale). Replicas must share the station directory and `investigators_per_squad`.
//!
//! A list is read in one `MULTI` (the station's case ids and loads agree), then the cases,
//! which never change once written. Retention: cases are kept for good, like the in-memory
//! book; closing and purging cases comes with case updates (a later issue).
//!
//! The keys of one case and its station are not in one hash slot: this needs one Redis
//! primary (with replicas), not Redis Cluster.

use std::collections::{BTreeMap, HashMap};

use dispatch_bus::redis_conn;
use dispatch_core::Timestamp;
use redis::aio::ConnectionManager;
use redis::{RedisError, RetryMethod};

use super::{CaseStore, SquadListing};
use crate::book::{self, CaseKind, CaseRecord, Opened};
use crate::error::{Error, Result};
use crate::open::CaseRequest;

/// Opens a case; see the module docs.
///
/// KEYS: the case, the station's loads, the station's list, the incident's case id.
/// ARGV: case id, incident id, station id, district id, kind, opened at (ms), then the
/// squad's investigator ids in id order (none for an unknown station or an empty squad).
/// Returns `{outcome, id, fields}`: `{1, case id, fields}` when it opened the case,
/// `{0, case id, fields}` when the incident's case was there under that id,
/// `{2, other case id, {}}` when the incident's case has another id (read it with `get`),
/// `{-2, incident id, {}}` when the case id is another incident's, `{-1, '', {}}` when there is
/// nobody to assign to; `fields` are the case's [`FIELDS`].
const OPEN: &str = r"
local fields = {'incident_id', 'station_id', 'district_id', 'kind', 'investigator_id', 'opened_at'}
local known = redis.call('GET', KEYS[4])
if known and known ~= ARGV[1] then
  return {2, known, {}}
end
if redis.call('EXISTS', KEYS[1]) == 1 then
  local holder = redis.call('HGET', KEYS[1], 'incident_id')
  if holder ~= ARGV[2] then
    return {-2, holder or '', {}}
  end
  redis.call('SET', KEYS[4], ARGV[1])
  return {0, ARGV[1], redis.call('HMGET', KEYS[1], unpack(fields))}
end
local squad = #ARGV - 6
if squad < 1 then
  return {-1, '', {}}
end
local loads = redis.call('HMGET', KEYS[2], unpack(ARGV, 7))
local best, least = 1, tonumber(loads[1]) or 0
for i = 2, squad do
  local load = tonumber(loads[i]) or 0
  if load < least then
    best, least = i, load
  end
end
local investigator = ARGV[6 + best]
redis.call('HINCRBY', KEYS[2], investigator, 1)
redis.call('HSET', KEYS[1], 'incident_id', ARGV[2], 'station_id', ARGV[3],
  'district_id', ARGV[4], 'kind', ARGV[5], 'investigator_id', investigator, 'opened_at', ARGV[6])
redis.call('ZADD', KEYS[3], ARGV[6], ARGV[1])
redis.call('SET', KEYS[4], ARGV[1])
return {1, ARGV[1], redis.call('HMGET', KEYS[1], unpack(fields))}
";

/// The fields of a case hash, in the order [`OPEN`] and [`RedisCaseStore::get`] read them.
const FIELDS: [&str; 6] = [
    "incident_id",
    "station_id",
    "district_id",
    "kind",
    "investigator_id",
    "opened_at",
];

fn case_key(case_id: &str) -> String {
    format!("cases:case:{case_id}")
}

fn incident_key(incident_id: &str) -> String {
    format!("cases:incident:{incident_id}")
}

fn loads_key(station_id: &str) -> String {
    format!("cases:station:{station_id}:loads")
}

fn list_key(station_id: &str) -> String {
    format!("cases:station:{station_id}:list")
}

fn kind_name(kind: CaseKind) -> &'static str {
    match kind {
        CaseKind::Criminal => "criminal",
        CaseKind::Administrative => "administrative",
    }
}

/// A Redis error as ours. A passing outage: a broken, refused or timed-out connection, and a
/// server that asks to wait (`LOADING` its AOF after a restart, `MASTERDOWN`, `TRYAGAIN`) or
/// has just become a replica (`READONLY`, a failover). Anything else (a script error, a wrong
/// type) is not.
pub(super) fn failed(what: String) -> impl FnOnce(RedisError) -> Error {
    move |e| {
        let passing = redis_conn::is_transient(&e)
            || matches!(
                e.retry_method(),
                RetryMethod::WaitAndRetry | RetryMethod::RefreshSlotsAndRetry
            );
        if passing {
            Error::Unavailable(format!("{what}: redis unavailable: {e}"))
        } else {
            Error::Store(format!("{what}: {e}"))
        }
    }
}

/// The case `case_id` from its hash's [`FIELDS`]; `None` when the hash does not exist.
///
/// Errors: [`Error::Store`] when a field is missing or unreadable.
fn record(case_id: &str, fields: Vec<Option<String>>) -> Result<Option<CaseRecord>> {
    if fields.iter().all(Option::is_none) {
        return Ok(None);
    }
    let corrupt = |what: String| Error::Store(format!("case {case_id:?} {what}"));
    let n = fields.len();
    let [
        incident_id,
        station_id,
        district_id,
        kind,
        investigator_id,
        opened_at,
    ]: [Option<String>; 6] = fields
        .try_into()
        .map_err(|_| corrupt(format!("came back with {n} fields, not {}", FIELDS.len())))?;
    let field = |value: Option<String>, name: &str| {
        value.ok_or_else(|| corrupt(format!("has no field {name:?}")))
    };
    let kind = match field(kind, "kind")?.as_str() {
        "criminal" => CaseKind::Criminal,
        "administrative" => CaseKind::Administrative,
        other => return Err(corrupt(format!("has kind {other:?}"))),
    };
    let opened_at = field(opened_at, "opened_at")?;
    let opened_at = opened_at
        .parse()
        .map_err(|_| corrupt(format!("has opened_at {opened_at:?}, not ms")))?;
    Ok(Some(CaseRecord {
        case_id: case_id.to_owned(),
        incident_id: field(incident_id, "incident_id")?,
        station_id: field(station_id, "station_id")?,
        district_id: field(district_id, "district_id")?,
        kind,
        investigator_id: field(investigator_id, "investigator_id")?,
        opened_at: Timestamp(opened_at),
    }))
}

/// The case book in Redis; see the module docs for the layout and the atomic open.
pub struct RedisCaseStore {
    con: ConnectionManager,
    /// Station id -> its squad's investigator ids in id order.
    squads: BTreeMap<String, Vec<String>>,
    open: redis::Script,
}

impl std::fmt::Debug for RedisCaseStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCaseStore")
            .field("stations", &self.squads.len())
            .finish_non_exhaustive()
    }
}

impl RedisCaseStore {
    /// A store on the Redis at `url` (`redis://host:port/db`) with a squad of
    /// `investigators_per_squad` at each of `stations` (duplicates count once), connected
    /// lazily with the shared timeouts and retry policy ([`redis_conn`]): the service starts
    /// while Redis is down and recovers when it returns. Async because the connection's task
    /// runs on the caller's Tokio runtime.
    ///
    /// Errors: a malformed `url`.
    pub async fn connect(
        url: &str,
        stations: impl IntoIterator<Item = String>,
        investigators_per_squad: u32,
    ) -> Result<Self, RedisError> {
        let con = redis_conn::connect(url)?;
        let squads = stations
            .into_iter()
            .map(|station| {
                let ids = book::squad_ids(&station, investigators_per_squad);
                (station, ids)
            })
            .collect();
        Ok(Self {
            con,
            squads,
            open: redis::Script::new(OPEN),
        })
    }

    /// The case ids of `station_id` in list order and the load of each of `squad`, read
    /// together.
    async fn ids_and_loads(
        &self,
        station_id: &str,
        squad: &[String],
    ) -> Result<(Vec<String>, Vec<(String, u32)>)> {
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("ZRANGE")
            .arg(list_key(station_id))
            .arg(0)
            .arg(-1)
            .cmd("HGETALL")
            .arg(loads_key(station_id));
        let (ids, stored): (Vec<String>, HashMap<String, u32>) =
            redis_conn::retry("case list", || {
                let mut con = self.con.clone();
                let pipe = &pipe;
                async move { pipe.query_async(&mut con).await }
            })
            .await
            .map_err(failed(format!(
                "listing the cases of station {station_id:?}"
            )))?;
        let loads = squad
            .iter()
            .map(|id| (id.clone(), stored.get(id).copied().unwrap_or(0)))
            .collect();
        Ok((ids, loads))
    }
}

#[tonic::async_trait]
impl CaseStore for RedisCaseStore {
    async fn open(&self, req: &CaseRequest, at: Timestamp) -> Result<Opened> {
        let case_id = &req.case_id;
        let squad = self.squads.get(&req.station_id);
        let mut invocation = self.open.prepare_invoke();
        invocation
            .key(case_key(case_id))
            .key(loads_key(&req.station_id))
            .key(list_key(&req.station_id))
            .key(incident_key(&req.incident_id))
            .arg(case_id)
            .arg(&req.incident_id)
            .arg(&req.station_id)
            .arg(&req.district_id)
            .arg(kind_name(req.kind))
            .arg(at.as_millis());
        for investigator in squad.into_iter().flatten() {
            invocation.arg(investigator);
        }
        type Reply = (i64, String, Vec<Option<String>>);
        let (outcome, id, fields): Reply = redis_conn::retry("case open", || {
            let mut con = self.con.clone();
            let invocation = &invocation;
            async move { invocation.invoke_async(&mut con).await }
        })
        .await
        .map_err(failed(format!("opening case {case_id:?}")))?;
        match outcome {
            0 | 1 => {
                let case = record(case_id, fields)?
                    .ok_or_else(|| Error::Store(format!("case {case_id:?} came back empty")))?;
                Ok(Opened {
                    case,
                    created: outcome == 1,
                })
            }
            // Cases never change once written, so reading it after the script is safe.
            2 => Ok(Opened {
                case: self.get(&id).await?,
                created: false,
            }),
            -2 => Err(Error::CaseIdTaken {
                case_id: case_id.clone(),
                incident_id: id,
            }),
            -1 if squad.is_some() => Err(Error::NoInvestigators(req.station_id.clone())),
            -1 => Err(Error::UnknownStation(req.station_id.clone())),
            other => Err(Error::Store(format!(
                "opening case {case_id:?}: the script answered {other}"
            ))),
        }
    }

    async fn get(&self, case_id: &str) -> Result<CaseRecord> {
        let key = case_key(case_id);
        let fields: Vec<Option<String>> = redis_conn::retry("case get", || {
            let mut con = self.con.clone();
            let key = &key;
            async move {
                redis::cmd("HMGET")
                    .arg(key)
                    .arg(&FIELDS[..])
                    .query_async(&mut con)
                    .await
            }
        })
        .await
        .map_err(failed(format!("reading case {case_id:?}")))?;
        record(case_id, fields)?.ok_or_else(|| Error::UnknownCase(case_id.to_owned()))
    }

    async fn list(&self, station_id: &str) -> Result<SquadListing> {
        let squad = self
            .squads
            .get(station_id)
            .ok_or_else(|| Error::UnknownStation(station_id.to_owned()))?;
        let (ids, loads) = self.ids_and_loads(station_id, squad).await?;
        if ids.is_empty() {
            return Ok(SquadListing {
                cases: Vec::new(),
                loads,
            });
        }
        let mut pipe = redis::pipe();
        for id in &ids {
            pipe.cmd("HMGET").arg(case_key(id)).arg(&FIELDS[..]);
        }
        let all: Vec<Vec<Option<String>>> = redis_conn::retry("case list", || {
            let mut con = self.con.clone();
            let pipe = &pipe;
            async move { pipe.query_async(&mut con).await }
        })
        .await
        .map_err(failed(format!(
            "reading the cases of station {station_id:?}"
        )))?;
        let cases = ids
            .iter()
            .zip(all)
            .map(|(id, fields)| {
                record(id, fields)?.ok_or_else(|| {
                    Error::Store(format!(
                        "case {id:?} is listed at station {station_id:?} but has no record"
                    ))
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(SquadListing { cases, loads })
    }
}

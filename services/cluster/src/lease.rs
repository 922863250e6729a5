//! District leases with fencing epochs.
//!
//! DESIGN.md section 5: "A district is owned by exactly one node at a time: a Redis lease with
//! a fencing epoch." Keys of district `D`:
//! - `district:{D}:lease`: `{epoch} {token} {node}` with a PX expiry of the lease length: who
//!   holds the district, at which epoch (`token` identifies one acquisition, so an acquire sent
//!   again after its reply was lost answers the same epoch instead of seeing "held");
//! - `district:{D}:epoch`: the owner epoch, raised (`INCR`) by every acquisition in the same
//!   script, so it grows at every change of owner and never goes back. It is the key the
//!   district journal checks every append and snapshot against (`dispatch-district`'s
//!   `journal`), so a node that lost its lease cannot write after another acquired it; the new
//!   owner opens the journal at the epoch its lease gave, raising it once.
//!
//! Three Lua scripts, each atomic in Redis:
//! - acquire: only when no lease is there (free, or expired: Redis drops it at its PX); raises
//!   the epoch, sets the lease, answers the new epoch; else answers the holder;
//! - renew: resets the PX of each lease still held by this node at the epoch it holds (one
//!   call renews all of a node's districts);
//! - release: only when held by this node at this epoch: deletes the lease and publishes
//!   `released {D} {epoch}` on [`crate::LEASE_CHANNEL`], so a node waiting for the district
//!   takes it at once rather than after the lease would have lapsed.
//!
//! Every time is Redis's: the PX runs on the server's clock, so the nodes' clocks never meet.

use std::time::Duration;

use dispatch_bus::redis_conn;
use redis::Script;
use redis::aio::ConnectionManager;

use crate::{LEASE_CHANNEL, NodeId, Result, unavailable};

const ACQUIRE: &str = r"
local cur = redis.call('GET', KEYS[1])
if cur then
  local epoch, token, node = string.match(cur, '^(%d+) (%S+) (%S+)$')
  if not epoch then return redis.error_reply('unreadable lease ' .. KEYS[1]) end
  if token == ARGV[2] then return {1, tonumber(epoch), node} end
  return {0, tonumber(epoch), node}
end
local epoch = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], epoch .. ' ' .. ARGV[2] .. ' ' .. ARGV[1], 'PX', ARGV[3])
return {1, epoch, ARGV[1]}
";

/// KEYS: the lease keys; ARGV: node, px, then the epoch held of each key in order.
const RENEW: &str = r"
local out = {}
for i, key in ipairs(KEYS) do
  local cur = redis.call('GET', key)
  if not cur then
    out[i] = {0, 0, ''}
  else
    local epoch, token, node = string.match(cur, '^(%d+) (%S+) (%S+)$')
    if node == ARGV[1] and tonumber(epoch) == tonumber(ARGV[i + 2]) then
      redis.call('PEXPIRE', key, ARGV[2])
      out[i] = {1, tonumber(epoch), node}
    else
      out[i] = {0, tonumber(epoch) or 0, node or ''}
    end
  end
end
return out
";

/// KEYS: lease; ARGV: node, epoch, channel, district.
const RELEASE: &str = r"
local cur = redis.call('GET', KEYS[1])
if not cur then return 0 end
local epoch, token, node = string.match(cur, '^(%d+) (%S+) (%S+)$')
if node ~= ARGV[1] or tonumber(epoch) ~= tonumber(ARGV[2]) then return 0 end
redis.call('DEL', KEYS[1])
redis.call('PUBLISH', ARGV[3], 'released ' .. ARGV[4] .. ' ' .. ARGV[2])
return 1
";

/// The lease key of `district`.
pub fn lease_key(district: &str) -> String {
    format!("district:{district}:lease")
}

/// The owner-epoch key of `district` (shared with the district journal).
pub fn epoch_key(district: &str) -> String {
    format!("district:{district}:epoch")
}

/// Who holds a district's lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// The holding node.
    pub node: NodeId,
    /// The epoch it holds the district at.
    pub epoch: u64,
}

/// What an acquisition got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Acquired {
    /// The district is this node's at `epoch`, higher than any before.
    Won {
        /// The new epoch: write the district's journal with it.
        epoch: u64,
    },
    /// Another node (or an earlier acquisition of this one) holds it.
    Held(Holder),
}

/// What a renewal found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Renewal {
    /// Still this node's at the epoch given; the lease runs its full length again.
    Renewed,
    /// Not this node's at that epoch any more: expired (`None`) or acquired by someone
    /// (`Some`, possibly this node at a later epoch). Drop the district.
    Lost(Option<Holder>),
}

/// A lease given up on purpose, as announced on [`LEASE_CHANNEL`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Released {
    /// The district, now free.
    pub district: String,
    /// The epoch its last holder held it at.
    pub epoch: u64,
}

impl Released {
    /// Reads an announcement `released {district} {epoch}`; `None` for anything else.
    pub fn parse(message: &str) -> Option<Self> {
        let rest = message.strip_prefix("released ")?;
        let (district, epoch) = rest.rsplit_once(' ')?;
        if district.is_empty() {
            return None;
        }
        Some(Self {
            district: district.to_owned(),
            epoch: epoch.parse().ok()?,
        })
    }
}

/// One node's hand on district leases. Cheap to clone.
#[derive(Clone)]
pub struct Leases {
    con: ConnectionManager,
    node: NodeId,
    px: u64,
    lease: Duration,
    acquire: Script,
    renew: Script,
    release: Script,
}

impl std::fmt::Debug for Leases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leases")
            .field("node", &self.node)
            .field("lease", &self.lease)
            .finish_non_exhaustive()
    }
}

fn holder(epoch: u64, node: String) -> Option<Holder> {
    (!node.is_empty()).then_some(Holder { node, epoch })
}

impl Leases {
    /// Leases of length `lease` (whole milliseconds, at least 1) for node `node` in the Redis at
    /// `url`; connects lazily and reconnects by itself.
    ///
    /// Errors: [`crate::Error::NodeId`] for a bad id; [`crate::Error::Config`] for a lease
    /// under 1 ms; [`crate::Error::Unavailable`] for a malformed `url`.
    pub fn connect(url: &str, node: impl Into<NodeId>, lease: Duration) -> Result<Self> {
        let node = node.into();
        crate::check_node_id(&node)?;
        let px = u64::try_from(lease.as_millis()).unwrap_or(u64::MAX);
        if px == 0 {
            return Err(crate::Error::Config {
                field: "lease",
                rule: format!("must be at least 1 ms, got {lease:?}"),
            });
        }
        let con = redis_conn::connect(url).map_err(|e| unavailable(format!("{url}: {e}")))?;
        Ok(Self {
            con,
            node,
            px,
            lease,
            acquire: Script::new(ACQUIRE),
            renew: Script::new(RENEW),
            release: Script::new(RELEASE),
        })
    }

    /// The holder of each of `districts` (in order; `None` for a free lease), in one round
    /// trip: what a node reads to know who owns the districts it does not.
    ///
    /// Errors: as [`holders`].
    pub async fn holders(&self, districts: &[String]) -> Result<Vec<Option<Holder>>> {
        holders(&self.con, districts).await
    }

    /// The node these leases are for.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The lease length.
    pub fn lease(&self) -> Duration {
        self.lease
    }

    /// Takes `district` when its lease is free or expired, raising its epoch.
    ///
    /// Errors: [`crate::Error::Unavailable`] when Redis does not answer within
    /// `redis_conn::RETRY_FOR` or answers something unreadable.
    pub async fn acquire(&self, district: &str) -> Result<Acquired> {
        let (lease, epoch) = (lease_key(district), epoch_key(district));
        // One token per acquisition, the same for every retry of it.
        let token = ulid::Ulid::generate().to_string();
        let (won, epoch, node): (i64, u64, String) = redis_conn::retry("lease acquire", || {
            let mut con = self.con.clone();
            let mut inv = self.acquire.prepare_invoke();
            inv.key(&lease)
                .key(&epoch)
                .arg(&self.node)
                .arg(&token)
                .arg(self.px);
            async move { inv.invoke_async(&mut con).await }
        })
        .await
        .map_err(unavailable)?;
        Ok(if won == 1 {
            Acquired::Won { epoch }
        } else {
            Acquired::Held(Holder { node, epoch })
        })
    }

    /// Renews `district`, held at `epoch`. See [`Leases::renew_all`].
    ///
    /// Errors: as [`Leases::renew_all`].
    pub async fn renew(&self, district: &str, epoch: u64) -> Result<Renewal> {
        let mut one = self.renew_all(&[(district.to_owned(), epoch)]).await?;
        one.pop()
            .ok_or_else(|| unavailable("lease renew answered nothing"))
    }

    /// Renews each of `held` (district, epoch held) still held by this node at that epoch, in
    /// one round trip; answers one [`Renewal`] per district, in order.
    ///
    /// Errors: [`crate::Error::Unavailable`] when Redis does not answer within
    /// `redis_conn::RETRY_FOR` (renewing is idempotent, so it is retried until then) or
    /// answers something unreadable.
    pub async fn renew_all(&self, held: &[(String, u64)]) -> Result<Vec<Renewal>> {
        if held.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = held.iter().map(|(d, _)| lease_key(d)).collect();
        let answers: Vec<(i64, u64, String)> = redis_conn::retry("lease renew", || {
            let mut con = self.con.clone();
            let mut inv = self.renew.prepare_invoke();
            for key in &keys {
                inv.key(key);
            }
            inv.arg(&self.node).arg(self.px);
            for (_, epoch) in held {
                inv.arg(*epoch);
            }
            async move { inv.invoke_async(&mut con).await }
        })
        .await
        .map_err(unavailable)?;
        if answers.len() != held.len() {
            return Err(unavailable(format!(
                "lease renew answered {} results for {} leases",
                answers.len(),
                held.len()
            )));
        }
        Ok(answers
            .into_iter()
            .map(|(ok, epoch, node)| {
                if ok == 1 {
                    Renewal::Renewed
                } else {
                    Renewal::Lost(holder(epoch, node))
                }
            })
            .collect())
    }

    /// Gives up `district`, held at `epoch`, and announces it; `false` when it was not held by
    /// this node at that epoch any more (nothing changed).
    ///
    /// Errors: [`crate::Error::Unavailable`] when Redis does not answer within
    /// `redis_conn::RETRY_FOR`.
    pub async fn release(&self, district: &str, epoch: u64) -> Result<bool> {
        let lease = lease_key(district);
        let released: i64 = redis_conn::retry("lease release", || {
            let mut con = self.con.clone();
            let mut inv = self.release.prepare_invoke();
            inv.key(&lease)
                .arg(&self.node)
                .arg(epoch)
                .arg(LEASE_CHANNEL)
                .arg(district);
            async move { inv.invoke_async(&mut con).await }
        })
        .await
        .map_err(unavailable)?;
        Ok(released == 1)
    }
}

/// The holder of each of `districts` (in order; `None` for a free lease), in one round trip on
/// `con`, for callers that only look (placement).
///
/// Errors: [`crate::Error::Unavailable`] when Redis does not answer or a lease is unreadable.
pub async fn holders(con: &ConnectionManager, districts: &[String]) -> Result<Vec<Option<Holder>>> {
    if districts.is_empty() {
        return Ok(Vec::new());
    }
    let keys: Vec<String> = districts.iter().map(|d| lease_key(d)).collect();
    let mut con = con.clone();
    let values: Vec<Option<String>> = redis::cmd("MGET")
        .arg(&keys)
        .query_async(&mut con)
        .await
        .map_err(unavailable)?;
    values
        .into_iter()
        .zip(&keys)
        .map(|(value, key)| value.map(|v| parse_lease(key, &v)).transpose())
        .collect()
}

/// Reads a lease value `{epoch} {token} {node}`.
fn parse_lease(key: &str, value: &str) -> Result<Holder> {
    let mut parts = value.splitn(3, ' ');
    let (epoch, _token, node) = (parts.next(), parts.next(), parts.next());
    match (epoch.and_then(|e| e.parse().ok()), node) {
        (Some(epoch), Some(node)) if !node.is_empty() => Ok(Holder {
            node: node.to_owned(),
            epoch,
        }),
        _ => Err(unavailable(format!("unreadable lease {key}: {value:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_release_announcement_reads_back() {
        assert_eq!(
            Released::parse("released town-d01 7"),
            Some(Released {
                district: "town-d01".into(),
                epoch: 7
            })
        );
        for bad in [
            "released town-d01",
            "released  7",
            "released town-d01 x",
            "join node-a",
            "",
        ] {
            assert_eq!(Released::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_lease_value_reads_as_its_holder() {
        assert_eq!(
            parse_lease("k", "12 01J0TOKEN node-b"),
            Ok(Holder {
                node: "node-b".into(),
                epoch: 12
            })
        );
        for bad in ["", "12", "12 tok", "x tok node-a", "12 tok "] {
            assert!(parse_lease("k", bad).is_err(), "{bad:?}");
        }
    }
}

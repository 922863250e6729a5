//! Connections to Redis, the cluster's system of record, shared by every service's Redis
//! backend: one reconnecting connection per backend, explicit timeouts, and one retry policy
//! for commands that broke with the connection.
//!
//! Why explicit timeouts: redis-rs 1.x times a response out after 500 ms by default, which
//! turns a Redis pause into errors mid-burst (`../shared/STACK.md`). A command gets
//! [`RESPONSE_TIMEOUT`]; blocking reads need a connection of their own with no response timeout.
//!
//! Why retry is safe: every write our backends make is idempotent (a Lua script keyed by a
//! natural id, or a dedup key), so a write whose reply was lost when the connection broke may be
//! sent again and still lands once.

use std::future::Future;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use redis::RedisError;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

/// How long one command may wait for its reply before it counts as failed.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a connection attempt may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long [`retry`] keeps trying a command that failed with the connection: long enough to
/// ride out a Redis restart with AOF (about a second here), short enough that a caller's own
/// deadline is not spent.
pub const RETRY_FOR: Duration = Duration::from_secs(3);

/// A reconnecting connection to the Redis at `url` (`redis://host:port/db`), connected lazily:
/// a service starts even while Redis is down and reconnects by itself after an outage.
///
/// Errors: a malformed `url`.
pub fn connect(url: &str) -> Result<ConnectionManager, RedisError> {
    let client = redis::Client::open(url)?;
    let config = ConnectionManagerConfig::new()
        .set_response_timeout(Some(RESPONSE_TIMEOUT))
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_min_delay(Duration::from_millis(20))
        .set_max_delay(Duration::from_millis(500))
        // One reconnect try per command: the retry loop of [`retry`] paces the rest, so a
        // command against a Redis that is down fails within about RETRY_FOR, not many times it.
        .set_number_of_retries(1);
    ConnectionManager::new_lazy_with_config(client, config)
}

/// Errors worth sending the command again for: the connection broke, was refused or timed
/// out, or the server asks to be asked again (`LOADING` its AOF after a restart, `TRYAGAIN`,
/// `MASTERDOWN`, `READONLY` during a failover); not a refusal of the command itself (a script
/// error, a wrong type).
pub fn is_transient(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_timeout()
        || matches!(
            e.code(),
            Some("LOADING" | "TRYAGAIN" | "MASTERDOWN" | "READONLY")
        )
}

/// Runs `op` and runs it again after a transient error (20 ms doubling to 500 ms, for at most
/// [`RETRY_FOR`]). `op` must be idempotent.
///
/// Errors: the last error, transient or not.
pub async fn retry<T, F, Fut>(what: &'static str, op: F) -> Result<T, RedisError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, RedisError>>,
{
    op.retry(
        ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(20))
            .with_max_delay(Duration::from_millis(500))
            .with_total_delay(Some(RETRY_FOR))
            .without_max_times(),
    )
    .when(is_transient)
    .notify(
        |e, after| tracing::warn!(op = what, error = %e, ?after, "redis command failed, retrying"),
    )
    .await
}

/// Whether Redis answers a `PING` within [`RESPONSE_TIMEOUT`] on `con`: the health probe of a
/// service that cannot work without Redis.
pub async fn ping(con: &ConnectionManager) -> bool {
    let mut con = con.clone();
    let pong: Result<String, RedisError> = redis::cmd("PING").query_async(&mut con).await;
    pong.is_ok()
}

/// A connection of the calling thread to the Redis at `url`, made on first use (lazily
/// connected, as [`connect`]) and kept for the thread's life; `fallback` when `url` does not
/// parse (it did once, for `fallback`). Its I/O task runs on the runtime of the thread that
/// first used it: a caller on an actix arbiter, or one staying on its Tokio worker, then gets
/// its replies without a wake-up of another thread (two per command), which is most of what a
/// loopback Redis command costs beyond Redis's own work.
pub fn thread_local(url: &str, fallback: &ConnectionManager) -> ConnectionManager {
    thread_local! {
        static CONNECTIONS: std::cell::RefCell<std::collections::HashMap<String, ConnectionManager>> =
            std::cell::RefCell::default();
    }
    CONNECTIONS.with(|cons| {
        let mut cons = cons.borrow_mut();
        if let Some(con) = cons.get(url) {
            return con.clone();
        }
        let Ok(con) = connect(url) else {
            return fallback.clone();
        };
        cons.insert(url.to_owned(), con.clone());
        con
    })
}

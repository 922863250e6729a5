//! Dead letters in a Redis stream, where an operator can read them (`XRANGE`) after the node that
//! wrote them is gone.
//!
//! One stream for the cluster, key [`RedisDeadLetters::KEY`] (`district:dead-letters`), holding
//! about the last [`RedisDeadLetters::RETENTION`] letters (`XADD ... MAXLEN ~`). Fields of each
//! entry:
//! - `lane`: `notification` or `case-squad`;
//! - `destination`: `officer:{id}`, `command-center` or `station:{id}`;
//! - `kind`: `order`, `incident-changed` or `open-case`;
//! - `incident`: the incident id;
//! - `reason`: why, with the last error;
//! - `redelivered`: `1` when the outbox will send it again ([`Reason::redelivered`]), `0` when
//!   it was refused and waits for an operator;
//! - `effect`: the effect as JSON, enough to replay it by hand.
//!
//! [`DeadLetterSink::record`] must not block, so letters go through a bounded queue to one
//! writer task, which retries through Redis blips ([`redis_conn::retry`]; a letter whose reply was lost may
//! show twice). A letter that finds
//! the queue full, or that Redis refuses for longer than the retry window, is not in the stream;
//! it is still in the error log line the outbox wrote and in its counters, and counted here as
//! [`RedisDeadLetters::unrecorded`]. The stream is a record, not what keeps an effect alive: an
//! effect that may still be delivered stays parked in the outbox and held by the journal.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use dispatch_bus::redis_conn;
use redis::aio::ConnectionManager;
use redis::streams::StreamMaxlen;
use redis::{AsyncCommands, RedisError};
use tokio::sync::mpsc;

use super::dead_letter::{DeadLetter, DeadLetterSink};

/// The dead-letter stream in Redis; see the module docs.
#[derive(Debug)]
pub struct RedisDeadLetters {
    tx: mpsc::Sender<DeadLetter>,
    counts: Arc<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    written: AtomicU64,
    unrecorded: AtomicU64,
}

impl RedisDeadLetters {
    /// The stream's key.
    pub const KEY: &'static str = "district:dead-letters";
    /// Letters the stream keeps, about (trimmed with `MAXLEN ~`): 100,000, tens of megabytes
    /// at most (a letter takes well under 4 KiB with intake's 1,000-character limit on
    /// descriptions), days of a full outage at the Dongguan peak of about 2,000 effects an
    /// hour.
    pub const RETENTION: usize = 100_000;
    /// Letters waiting for the writer before new ones are left out of the stream.
    pub const QUEUE: usize = 10_000;

    /// A sink writing to the Redis at `url`; connects lazily and starts its writer task on the
    /// current Tokio runtime.
    ///
    /// Errors: a malformed URL.
    pub fn connect(url: &str) -> Result<Self, RedisError> {
        let con = redis_conn::connect(url)?;
        Ok(Self::start(con, Self::KEY, Self::RETENTION))
    }

    /// A sink writing to `key` over `con`, keeping about `retention` letters.
    pub fn start(con: ConnectionManager, key: &str, retention: usize) -> Self {
        let (tx, rx) = mpsc::channel(Self::QUEUE);
        let counts = Arc::new(Counts::default());
        tokio::spawn(write(con, key.to_owned(), retention, rx, counts.clone()));
        Self { tx, counts }
    }

    /// Letters written to the stream so far.
    pub fn written(&self) -> u64 {
        self.counts.written.load(Ordering::Relaxed)
    }

    /// Letters that are not in the stream: the queue was full or Redis refused them past the
    /// retry window. Each is still in the outbox's error log line and counters.
    pub fn unrecorded(&self) -> u64 {
        self.counts.unrecorded.load(Ordering::Relaxed)
    }
}

impl DeadLetterSink for RedisDeadLetters {
    fn record(&self, letter: DeadLetter) {
        if let Err(e) = self.tx.try_send(letter) {
            self.counts.unrecorded.fetch_add(1, Ordering::Relaxed);
            let letter = match e {
                mpsc::error::TrySendError::Full(l) | mpsc::error::TrySendError::Closed(l) => l,
            };
            tracing::error!(
                incident = %letter.incident_id,
                kind = %letter.kind,
                "dead letter not written to Redis: its queue is full"
            );
        }
    }
}

/// The fields of `letter`'s stream entry.
fn fields(letter: &DeadLetter) -> Vec<(&'static str, String)> {
    let effect = serde_json::to_string(&letter.effect)
        .unwrap_or_else(|e| format!("{{\"unserialisable\":\"{e}\"}}"));
    vec![
        ("lane", letter.lane.name().to_owned()),
        ("destination", letter.destination.clone()),
        ("kind", letter.kind.name().to_owned()),
        ("incident", letter.incident_id.clone()),
        ("reason", letter.reason.to_string()),
        (
            "redelivered",
            if letter.reason.redelivered() {
                "1"
            } else {
                "0"
            }
            .to_owned(),
        ),
        ("effect", effect),
    ]
}

async fn write(
    con: ConnectionManager,
    key: String,
    retention: usize,
    mut rx: mpsc::Receiver<DeadLetter>,
    counts: Arc<Counts>,
) {
    while let Some(letter) = rx.recv().await {
        let fields = fields(&letter);
        let added = redis_conn::retry("dead letter", || {
            let mut con = con.clone();
            let (key, fields) = (&key, &fields);
            async move {
                con.xadd_maxlen::<_, _, _, _, String>(
                    key,
                    StreamMaxlen::Approx(retention),
                    "*",
                    fields,
                )
                .await
            }
        })
        .await;
        match added {
            Ok(_) => {
                counts.written.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                counts.unrecorded.fetch_add(1, Ordering::Relaxed);
                tracing::error!(incident = %letter.incident_id, kind = %letter.kind, error = %e,
                    "dead letter not written to Redis");
            }
        }
    }
}

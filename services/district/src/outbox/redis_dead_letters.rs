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
//! [`DeadLetterSink::record`] must not block, so letters go through the bounded queue and
//! writer task of a [`RecordStream`] (retried through Redis blips; a letter whose reply was lost
//! may show twice). A letter that finds the queue full, or that Redis refuses for longer than
//! the retry window, is not in the stream; it is still in the error log line the outbox wrote
//! and in its counters, and counted here as [`RedisDeadLetters::unrecorded`]. The stream is a
//! record, not what keeps an effect alive: an effect that may still be delivered stays parked
//! in the outbox and held by the journal.

use dispatch_bus::redis_conn;
use redis::RedisError;
use redis::aio::ConnectionManager;

use super::dead_letter::{DeadLetter, DeadLetterSink};
use crate::record_stream::{RecordStream, StreamRecord};

/// The dead-letter stream in Redis; see the module docs.
#[derive(Debug)]
pub struct RedisDeadLetters {
    stream: RecordStream<DeadLetter>,
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
        Self {
            stream: RecordStream::start(con, key, retention, Self::QUEUE),
        }
    }

    /// Letters written to the stream so far.
    pub fn written(&self) -> u64 {
        self.stream.written()
    }

    /// Letters that are not in the stream: the queue was full or Redis refused them past the
    /// retry window. Each is still in the outbox's error log line and counters.
    pub fn unrecorded(&self) -> u64 {
        self.stream.unrecorded()
    }
}

impl DeadLetterSink for RedisDeadLetters {
    fn record(&self, letter: DeadLetter) {
        self.stream.record(letter);
    }
}

impl StreamRecord for DeadLetter {
    const WHAT: &'static str = "dead letter";

    fn fields(&self) -> Vec<(&'static str, String)> {
        let effect = serde_json::to_string(&self.effect)
            .unwrap_or_else(|e| format!("{{\"unserialisable\":\"{e}\"}}"));
        let redelivered = if self.reason.redelivered() { "1" } else { "0" };
        vec![
            ("lane", self.lane.name().to_owned()),
            ("destination", self.destination.clone()),
            ("kind", self.kind.name().to_owned()),
            ("incident", self.incident_id.clone()),
            ("reason", self.reason.to_string()),
            ("redelivered", redelivered.to_owned()),
            ("effect", effect),
        ]
    }

    fn describe(&self) -> String {
        format!("{} of incident {}", self.kind, self.incident_id)
    }
}

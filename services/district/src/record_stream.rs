//! A record for operators in a Redis stream, written without ever blocking the writer: the one
//! piece behind the dead-letter stream ([`crate::outbox::RedisDeadLetters`]) and the quarantine
//! stream ([`crate::supervision::RedisQuarantine`]).
//!
//! [`RecordStream::record`] is called on a district actor's thread, so it neither blocks nor
//! awaits: it hands the record to a bounded queue (`try_send`), and one writer task turns each
//! record into its fields ([`StreamRecord::fields`], off the actor's thread) and appends it with
//! `XADD key MAXLEN ~ retention * field value ...`, retrying through Redis blips
//! ([`redis_conn::retry`]; a record whose reply was lost may show twice). A record that finds
//! the queue full, or that Redis refuses for longer than the retry window, is not in the
//! stream: it is logged at error level and counted as [`RecordStream::unrecorded`]. The caller
//! has logged and counted what the record is about beforehand, so the stream is a record for
//! operators, never what keeps anything alive.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use dispatch_bus::redis_conn;
use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use redis::streams::StreamMaxlen;
use tokio::sync::mpsc;

/// What a [`RecordStream`] writes.
pub(crate) trait StreamRecord: Send + 'static {
    /// What a record is, in log lines: `dead letter`, `quarantined command`.
    const WHAT: &'static str;

    /// The fields of the record's stream entry, in order.
    fn fields(&self) -> Vec<(&'static str, String)>;

    /// A short description for log lines (the ids it is about), never the whole record.
    fn describe(&self) -> String;
}

/// A bounded queue and its writer task appending records to one Redis stream; see the module
/// docs. Dropping it closes the queue: the writer writes what is queued and ends.
pub(crate) struct RecordStream<T> {
    key: Arc<str>,
    tx: mpsc::Sender<T>,
    counts: Arc<Counts>,
}

impl<T> fmt::Debug for RecordStream<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecordStream")
            .field("key", &self.key)
            .field("written", &self.written())
            .field("unrecorded", &self.unrecorded())
            .finish()
    }
}

#[derive(Debug, Default)]
struct Counts {
    written: AtomicU64,
    unrecorded: AtomicU64,
}

impl<T: StreamRecord> RecordStream<T> {
    /// A stream writer appending to `key` over `con`, keeping about `retention` entries, with
    /// up to `queue` records waiting for the writer (at least 1); starts its writer task on the
    /// current Tokio runtime.
    pub(crate) fn start(con: ConnectionManager, key: &str, retention: usize, queue: usize) -> Self {
        let (tx, rx) = mpsc::channel(queue.max(1));
        let counts = Arc::new(Counts::default());
        let key: Arc<str> = Arc::from(key);
        tokio::spawn(write(con, key.clone(), retention, rx, counts.clone()));
        Self { key, tx, counts }
    }

    /// Queues `record` for the stream, never waiting. A full queue (or a writer gone with its
    /// runtime) leaves the record out: logged at error level and counted as unrecorded.
    pub(crate) fn record(&self, record: T) {
        if let Err(e) = self.tx.try_send(record) {
            self.counts.unrecorded.fetch_add(1, Ordering::Relaxed);
            let (record, why) = match e {
                mpsc::error::TrySendError::Full(r) => (r, "its queue is full"),
                mpsc::error::TrySendError::Closed(r) => (r, "its writer is gone"),
            };
            tracing::error!(stream = %self.key, record = %record.describe(),
                "{} not written to Redis: {why}", T::WHAT);
        }
    }
}

impl<T> RecordStream<T> {
    /// Records appended to the stream so far.
    pub(crate) fn written(&self) -> u64 {
        self.counts.written.load(Ordering::Relaxed)
    }

    /// Records that are not in the stream: the queue was full or Redis refused them past the
    /// retry window.
    pub(crate) fn unrecorded(&self) -> u64 {
        self.counts.unrecorded.load(Ordering::Relaxed)
    }
}

async fn write<T: StreamRecord>(
    con: ConnectionManager,
    key: Arc<str>,
    retention: usize,
    mut rx: mpsc::Receiver<T>,
    counts: Arc<Counts>,
) {
    while let Some(record) = rx.recv().await {
        let fields = record.fields();
        let added = redis_conn::retry(T::WHAT, || {
            let mut con = con.clone();
            let (key, fields) = (&*key, &fields);
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
                tracing::error!(stream = %key, record = %record.describe(), error = %e,
                    "{} not written to Redis", T::WHAT);
            }
        }
    }
}

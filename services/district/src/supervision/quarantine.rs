//! Where quarantined commands are recorded: one record per command, with what it was, where,
//! and the panic it raised, for an operator (or a later tool) to read, fix the cause and replay.

use dispatch_bus::redis_conn;
use dispatch_core::district::Command;
use redis::RedisError;
use redis::aio::ConnectionManager;

use super::{CommandKey, command_kind};
use crate::recent::Recent;
use crate::record_stream::{RecordStream, StreamRecord};

/// One quarantined command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuarantineRecord {
    /// The district whose handler panicked on it.
    pub district: String,
    /// The command's kind ([`command_kind`]): `submit`, `set-status`, `report-location`,
    /// `acknowledge`, `arrive`, `clear` or `cancel`.
    pub kind: &'static str,
    /// The incident it names (`submit`, `cancel`).
    pub incident: Option<String>,
    /// The officer it names (`set-status`, `report-location`, the dispatch steps; a
    /// submitted incident's officer when it has one).
    pub officer: Option<String>,
    /// The dispatch it names (`acknowledge`, `arrive`, `clear`).
    pub dispatch: Option<String>,
    /// Panics it raised, the last of which quarantined it.
    pub tries: u32,
    /// The last panic's message.
    pub panic: String,
    /// The command as JSON (`dispatch_core::district::Command`), enough to replay it.
    pub command: String,
}

impl QuarantineRecord {
    /// The record of `command` (whose key is `key`) after `tries` panics, the last with
    /// message `panic`.
    pub fn new(key: CommandKey, command: &Command, tries: u32, panic: &str) -> Self {
        let (incident, officer, dispatch) = match command {
            Command::Submit(i) => (
                Some(i.id.to_string()),
                i.officer_id.as_ref().map(ToString::to_string),
                None,
            ),
            Command::SetStatus { officer_id, .. } | Command::ReportLocation { officer_id, .. } => {
                (None, Some(officer_id.to_string()), None)
            }
            Command::Acknowledge {
                officer_id,
                dispatch_id,
            }
            | Command::Arrive {
                officer_id,
                dispatch_id,
            }
            | Command::Clear {
                officer_id,
                dispatch_id,
                ..
            } => (
                None,
                Some(officer_id.to_string()),
                Some(dispatch_id.to_string()),
            ),
            Command::Cancel { incident_id } => (Some(incident_id.to_string()), None, None),
        };
        let CommandKey { district, json } = key;
        Self {
            district,
            kind: command_kind(command),
            incident,
            officer,
            dispatch,
            tries,
            panic: panic.to_owned(),
            command: json,
        }
    }
}

/// Where a node records its quarantined commands.
///
/// [`QuarantineSink::record`] is called on a district actor's thread, so it must neither block
/// nor await: a sink that writes to Redis hands the record to its own bounded queue and task.
pub trait QuarantineSink: Send + Sync + std::fmt::Debug + 'static {
    /// Keeps `record`. The supervisor has already counted it and the actor logs it.
    fn record(&self, record: QuarantineRecord);

    /// Where an operator finds the records, for the message a refused caller gets, e.g.
    /// `the Redis stream district:quarantine`.
    fn location(&self) -> String;
}

/// Keeps the most recent quarantined commands in memory, up to a capacity, and counts all.
#[derive(Debug)]
pub struct MemoryQuarantine {
    records: Recent<QuarantineRecord>,
}

impl MemoryQuarantine {
    /// Records kept by [`MemoryQuarantine::default`]: 1,000, a few megabytes at most (a
    /// command's JSON is under 4 KiB with intake's 1,000-character limit on descriptions);
    /// quarantine follows a bug, so a node seldom has more than a few.
    pub const DEFAULT_CAPACITY: usize = 1_000;

    /// A record keeping the `capacity` most recent commands (0 keeps none but still counts).
    pub fn new(capacity: usize) -> Self {
        Self {
            records: Recent::new(capacity),
        }
    }

    /// The records kept, oldest first.
    pub fn records(&self) -> Vec<QuarantineRecord> {
        self.records.items()
    }

    /// Records ever made, including those no longer kept.
    pub fn recorded(&self) -> u64 {
        self.records.recorded()
    }
}

impl Default for MemoryQuarantine {
    fn default() -> Self {
        Self::new(Self::DEFAULT_CAPACITY)
    }
}

impl QuarantineSink for MemoryQuarantine {
    fn record(&self, record: QuarantineRecord) {
        self.records.push(record);
    }

    fn location(&self) -> String {
        "this node's in-memory quarantine record (logged at error level)".to_owned()
    }
}

/// Quarantined commands in a Redis stream, where an operator reads them
/// (`XRANGE district:quarantine - +`) after the node that wrote them is gone.
///
/// One stream for the cluster, key [`RedisQuarantine::KEY`], holding about the last
/// [`RedisQuarantine::RETENTION`] records (`XADD ... MAXLEN ~`). Fields of each entry:
/// - `district`: the district;
/// - `kind`: `submit`, `set-status`, `report-location`, `acknowledge`, `arrive`, `clear` or
///   `cancel`;
/// - `incident`, `officer`, `dispatch`: the ids the command names (only those it names);
/// - `tries`: panics it raised (the configured `supervision.quarantine_after`);
/// - `panic`: the last panic's message;
/// - `command`: the command as JSON, enough to replay it.
///
/// Written through a bounded queue and a writer task (see `record_stream`): a record that
/// finds the queue full or that Redis refuses past the retry window is counted as
/// [`RedisQuarantine::unrecorded`], and is still in the actor's error log line.
#[derive(Debug)]
pub struct RedisQuarantine {
    key: String,
    stream: RecordStream<QuarantineRecord>,
}

impl RedisQuarantine {
    /// The stream's key.
    pub const KEY: &'static str = "district:quarantine";
    /// Records the stream keeps, about (trimmed with `MAXLEN ~`): 10,000, at most about 40 MB.
    /// Quarantine follows a bug, not load; that is every poison command of a bad release.
    pub const RETENTION: usize = 10_000;
    /// Records waiting for the writer before new ones are left out of the stream.
    pub const QUEUE: usize = 1_000;

    /// A sink writing to the Redis at `url`; connects lazily and starts its writer task on the
    /// current Tokio runtime.
    ///
    /// Errors: a malformed URL.
    pub fn connect(url: &str) -> Result<Self, RedisError> {
        let con = redis_conn::connect(url)?;
        Ok(Self::start(con, Self::KEY, Self::RETENTION))
    }

    /// A sink writing to `key` over `con`, keeping about `retention` records.
    pub fn start(con: ConnectionManager, key: &str, retention: usize) -> Self {
        Self {
            key: key.to_owned(),
            stream: RecordStream::start(con, key, retention, Self::QUEUE),
        }
    }

    /// Records written to the stream so far.
    pub fn written(&self) -> u64 {
        self.stream.written()
    }

    /// Records that are not in the stream: the queue was full or Redis refused them past the
    /// retry window. Each is still in the actor's error log line.
    pub fn unrecorded(&self) -> u64 {
        self.stream.unrecorded()
    }
}

impl QuarantineSink for RedisQuarantine {
    fn record(&self, record: QuarantineRecord) {
        self.stream.record(record);
    }

    fn location(&self) -> String {
        format!("the Redis stream {}", self.key)
    }
}

impl StreamRecord for QuarantineRecord {
    const WHAT: &'static str = "quarantined command";

    fn fields(&self) -> Vec<(&'static str, String)> {
        let mut fields = vec![
            ("district", self.district.clone()),
            ("kind", self.kind.to_owned()),
        ];
        let ids = [
            ("incident", &self.incident),
            ("officer", &self.officer),
            ("dispatch", &self.dispatch),
        ];
        fields.extend(
            ids.into_iter()
                .filter_map(|(name, id)| id.clone().map(|id| (name, id))),
        );
        fields.extend([
            ("tries", self.tries.to_string()),
            ("panic", self.panic.clone()),
            ("command", self.command.clone()),
        ]);
        fields
    }

    fn describe(&self) -> String {
        format!("{} command to district {}", self.kind, self.district)
    }
}

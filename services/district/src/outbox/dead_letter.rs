//! The dead-letter record: every effect the outbox could not deliver, with why.
//!
//! Nothing leaves the outbox silently. An effect that cannot be delivered (its lane is full, the
//! destination refused it, every try failed, or the node shut down first) becomes a
//! [`DeadLetter`]: one error-level log line naming the lane, destination, effect kind, incident
//! id and last error, one increment of the lane's `dead_lettered` counter, and one record in the
//! [`DeadLetterSink`]. The sink is a trait so the Redis dead-letter stream of DESIGN.md section 5
//! can replace the in-memory [`MemoryDeadLetters`] without touching the lanes.

use std::fmt;

use dispatch_bus::ports::PortError;
use dispatch_core::district::Effect;

use crate::recent::Recent;

/// The lane an effect travels in: one per destination, each drained by its own task, so one
/// failing destination never delays another (DESIGN.md section 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Lane {
    /// Publications to the notification service: dispatch orders for officers' terminals and
    /// incident updates for the command center.
    Notification,
    /// Cases for the case squad.
    CaseSquad,
}

impl Lane {
    /// Every lane, in the order stats and reports list them.
    pub const ALL: [Lane; 2] = [Lane::Notification, Lane::CaseSquad];

    /// The lane `effect` travels in.
    pub fn of(effect: &Effect) -> Lane {
        match effect {
            Effect::Order(_) | Effect::IncidentChanged(_) => Lane::Notification,
            Effect::OpenCase(_) => Lane::CaseSquad,
        }
    }

    /// The lane's name in logs: `notification` or `case-squad`.
    pub fn name(self) -> &'static str {
        match self {
            Lane::Notification => "notification",
            Lane::CaseSquad => "case-squad",
        }
    }
}

impl fmt::Display for Lane {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What an effect is, for logs and dead letters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EffectKind {
    /// [`Effect::Order`].
    Order,
    /// [`Effect::IncidentChanged`].
    IncidentChanged,
    /// [`Effect::OpenCase`].
    OpenCase,
}

impl EffectKind {
    /// The kind of `effect`.
    pub fn of(effect: &Effect) -> EffectKind {
        match effect {
            Effect::Order(_) => EffectKind::Order,
            Effect::IncidentChanged(_) => EffectKind::IncidentChanged,
            Effect::OpenCase(_) => EffectKind::OpenCase,
        }
    }

    /// The kind's name in logs: `order`, `incident-changed` or `open-case`.
    pub fn name(self) -> &'static str {
        match self {
            EffectKind::Order => "order",
            EffectKind::IncidentChanged => "incident-changed",
            EffectKind::OpenCase => "open-case",
        }
    }
}

impl fmt::Display for EffectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why an effect was not delivered.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Reason {
    /// Its lane already held `capacity` effects. The actor never waits for room, so the new
    /// effect is set aside here instead.
    #[error("{lane} lane full at {capacity} effects")]
    LaneFull {
        /// The full lane.
        lane: Lane,
        /// Its capacity, effects.
        capacity: usize,
    },
    /// The destination refused it: a [`PortError::Refused`], which retrying cannot change.
    #[error("{error}")]
    Refused {
        /// The refusal, with its code and the field it names.
        error: PortError,
    },
    /// Every one of `tries` tries failed with a transient error
    /// ([`PortError::is_transient`]).
    #[error("gave up after {tries} tries, last error: {error}")]
    GaveUp {
        /// Tries made (the configured `max_tries`).
        tries: u32,
        /// The last try's error.
        error: PortError,
    },
    /// Emitted after [`crate::Outbox::flush`] began: the outbox takes nothing new.
    #[error("outbox closed by flush, not taking new effects")]
    Closed,
    /// Still queued or in flight when the flush deadline passed. An effect in flight may have
    /// reached its destination anyway; receivers are idempotent, so a replay does no harm.
    #[error("left undelivered at the flush deadline after {tries} failed tries")]
    Shutdown {
        /// Failed tries of the call the effect was in (0 when it was only queued).
        tries: u32,
    },
}

impl Reason {
    /// True when the effect is still worth delivering and the outbox's redrive sends it again
    /// ([`crate::OutboxConfig::redrive_every`]): its lane was full, its destination stayed
    /// down for every try, or the node was shutting down. False for [`Reason::Refused`]: the
    /// destination said the effect itself is wrong, and sending it again would be refused
    /// again; it stays in the dead letters for an operator.
    pub fn redelivered(&self) -> bool {
        !matches!(self, Reason::Refused { .. })
    }
}

/// One effect that was not delivered, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    /// The lane it travelled in.
    pub lane: Lane,
    /// Who should have received it: `officer:{officer_id}` (a terminal's feed),
    /// `command-center`, or `station:{station_id}` (that station's case squad).
    pub destination: String,
    /// What it is.
    pub kind: EffectKind,
    /// The incident it is about.
    pub incident_id: String,
    /// Why it was not delivered, with the last error.
    pub reason: Reason,
    /// The effect itself, so it can be replayed by hand or by a later tool.
    pub effect: Effect,
}

impl DeadLetter {
    /// The dead letter of `effect`, set aside for `reason`.
    pub fn new(effect: Effect, reason: Reason) -> Self {
        let (destination, incident_id) = match &effect {
            Effect::Order(o) => (
                format!("officer:{}", o.officer_id),
                o.incident_id.to_string(),
            ),
            Effect::IncidentChanged(i) => ("command-center".to_owned(), i.id.to_string()),
            Effect::OpenCase(i) => (format!("station:{}", i.station_id), i.id.to_string()),
        };
        Self {
            lane: Lane::of(&effect),
            destination,
            kind: EffectKind::of(&effect),
            incident_id,
            reason,
            effect,
        }
    }
}

/// Where dead letters are kept.
///
/// [`DeadLetterSink::record`] is called from [`crate::Outbox::emit`] on a district actor's
/// thread when a lane is full, so it must neither block nor await: a sink that writes to Redis
/// hands the letter to its own bounded queue and task.
pub trait DeadLetterSink: Send + Sync + 'static {
    /// Keeps `letter`. The outbox has already logged it and counted it.
    fn record(&self, letter: DeadLetter);
}

/// Keeps the most recent dead letters in memory, up to a capacity, and counts all of them.
///
/// Bounded so that a long outage cannot grow it without limit (the error log and the
/// `recorded` count still show every letter).
#[derive(Debug)]
pub struct MemoryDeadLetters {
    letters: Recent<DeadLetter>,
}

impl MemoryDeadLetters {
    /// Letters kept by [`MemoryDeadLetters::default`]: 1,000, a few megabytes at most (an
    /// effect takes well under 4 KiB with intake's 1,000-character limit on descriptions),
    /// enough to see what an outage lost without letting one outage hold memory.
    pub const DEFAULT_CAPACITY: usize = 1_000;

    /// A record keeping the `capacity` most recent letters (0 keeps none but still counts).
    pub fn new(capacity: usize) -> Self {
        Self {
            letters: Recent::new(capacity),
        }
    }

    /// The letters kept, oldest first.
    pub fn letters(&self) -> Vec<DeadLetter> {
        self.letters.items()
    }

    /// Letters ever recorded, including those no longer kept.
    pub fn recorded(&self) -> u64 {
        self.letters.recorded()
    }
}

impl Default for MemoryDeadLetters {
    fn default() -> Self {
        Self::new(Self::DEFAULT_CAPACITY)
    }
}

impl DeadLetterSink for MemoryDeadLetters {
    fn record(&self, letter: DeadLetter) {
        self.letters.push(letter);
    }
}

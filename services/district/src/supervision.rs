//! Supervision of the district actors: a panic in one district's handler costs that district
//! one rebuild, never its neighbours, and a command that keeps panicking is quarantined.
//!
//! Actors run on a few actix arbiters (threads), several districts to a thread; a panic that
//! unwound out of a handler would end the thread and every district on it. So
//! [`crate::actor::DistrictActor`] applies each command to its state under
//! [`std::panic::catch_unwind`]. On a panic the command was not journaled (the journal takes
//! only what applied) but the state in memory may be half changed, so the actor rebuilds the
//! district from its journal (snapshot plus tail, as after a failed append) and answers
//! `INTERNAL`; the other districts of the thread never notice.
//!
//! One [`Supervisor`] per node counts panics per command (the district and the command's exact
//! JSON: a retry of the same request is the same command). At the
//! [`SupervisionConfig::quarantine_after`]th panic the command is quarantined: the caller gets
//! `FAILED_PRECONDITION`, the command is recorded once in the node's [`QuarantineSink`] (in
//! Redis, the stream `district:quarantine` of [`RedisQuarantine`]), and every later try of it is
//! refused at once without running, so a poison command costs its district at most N rebuilds
//! however often it is sent again (intake's sweeper offers a refused incident every sweep).
//! [`Supervisor::stats`] gives the counters (panics, quarantined, refused): the metric an
//! exporter will publish. The quarantine lives in the node's memory: a restarted node (say, with
//! the fix) runs the command again when it is sent again.
//!
//! With the cargo feature `fault-injection` (off by default; enabled only by this crate's own
//! dev-dependencies, for its tests, never by a binary), `inject_panic` and
//! `inject_panic_after_apply` make a district's handler panic on the commands a test chooses,
//! before or after the state takes them.

#[cfg(feature = "fault-injection")]
mod fault;
mod quarantine;

use std::any::Any;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use dispatch_core::district::Command;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

#[cfg(feature = "fault-injection")]
pub use self::fault::{PanicInjection, inject_panic, inject_panic_after_apply};
#[cfg(feature = "fault-injection")]
pub(crate) use self::fault::{Phase, check as fault_check};
pub use self::quarantine::{MemoryQuarantine, QuarantineRecord, QuarantineSink, RedisQuarantine};

/// How a node supervises its districts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SupervisionConfig {
    /// A command is quarantined at its this-many-th panic (at least 1). Default 3: the state
    /// is deterministic, so a command that panics on one state panics on it again, but the
    /// state moves between tries (other calls, officers' steps), so a retry may find a state
    /// that does not trip the bug; two retries give it that chance while bounding what a
    /// poison command costs its district to three rebuilds (each replays at most
    /// `snapshot_every` entries, milliseconds, during which that district takes no request).
    pub quarantine_after: u32,
}

impl Default for SupervisionConfig {
    fn default() -> Self {
        Self {
            quarantine_after: 3,
        }
    }
}

impl SupervisionConfig {
    /// Checks the rule: `quarantine_after` at least 1.
    ///
    /// Errors: a message naming the field and the value, e.g.
    /// `quarantine_after must be >= 1, got 0`.
    pub fn validate(&self) -> Result<(), String> {
        if self.quarantine_after == 0 {
            return Err(format!(
                "quarantine_after must be >= 1, got {}",
                self.quarantine_after
            ));
        }
        Ok(())
    }
}

/// What the supervisor counts panics of: one command to one district, as its exact JSON.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CommandKey {
    district: String,
    json: String,
}

impl CommandKey {
    /// The key of `command` to `district`: the command's JSON (`serde_json`), or its debug form
    /// in the unexpected case that it does not serialise (the key need only be stable).
    pub fn of(district: &str, command: &Command) -> Self {
        let json = serde_json::to_string(command).unwrap_or_else(|_| format!("{command:?}"));
        Self {
            district: district.to_owned(),
            json,
        }
    }

    /// The district.
    pub fn district(&self) -> &str {
        &self.district
    }

    /// The command's JSON.
    pub fn json(&self) -> &str {
        &self.json
    }
}

/// What becomes of a command after a panic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// It may be tried again: `tries` panics so far, fewer than `quarantine_after`.
    Retry {
        /// Panics of this command so far.
        tries: u32,
    },
    /// It is quarantined: refused from now on, recorded in the sink.
    Quarantined {
        /// Panics of this command.
        tries: u32,
    },
}

/// The supervisor's counters since it was made (the node's start).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SupervisionStats {
    /// Panics caught in district handlers.
    pub panics: u64,
    /// Commands quarantined (each counted once).
    pub quarantined: u64,
    /// Tries of quarantined commands refused without running.
    pub refused: u64,
    /// Commands counted or quarantined now (at most [`Supervisor::MAX_TRACKED`]).
    pub tracked: usize,
    /// Commands forgotten to stay within [`Supervisor::MAX_TRACKED`].
    pub forgotten: u64,
}

/// Counts panics per command for every district of a node, decides quarantine, and keeps the
/// quarantined commands out; shared by the node's actors (see the module docs).
#[derive(Debug)]
pub struct Supervisor {
    config: SupervisionConfig,
    sink: Arc<dyn QuarantineSink>,
    commands: Mutex<Tracked>,
    /// `commands`' length, read without the lock: while it is 0 (a healthy node) an actor
    /// neither serialises its commands nor takes the lock.
    tracked: AtomicUsize,
    panics: AtomicU64,
    quarantined: AtomicU64,
    refused: AtomicU64,
    forgotten: AtomicU64,
}

#[derive(Debug, Default)]
struct Tracked {
    by_key: HashMap<CommandKey, Track>,
    /// Order of first panic, to forget the oldest first.
    next: u64,
}

#[derive(Debug, Clone, Copy)]
struct Track {
    panics: u32,
    quarantined: bool,
    since: u64,
}

impl Supervisor {
    /// Commands counted or quarantined at once: 10,000. A panic is a bug, not load: a healthy
    /// node tracks none, a bug a handful; ten thousand distinct panicking commands is a broken
    /// release, and the map then holds at most about 40 MB (a command's JSON is under 4 KiB
    /// with intake's 1,000-character limit on descriptions). Past it, the command first counted
    /// longest ago and not yet quarantined is forgotten (if it panics again it counts from 1);
    /// when every tracked command is quarantined, the oldest quarantined one is (if it is sent
    /// again it runs, and is quarantined, and recorded, again after N more panics). Each is
    /// counted in [`SupervisionStats::forgotten`] and logged.
    pub const MAX_TRACKED: usize = 10_000;

    /// A supervisor quarantining after `config.quarantine_after` panics (taken as at least 1)
    /// into `sink`.
    pub fn new(config: SupervisionConfig, sink: Arc<dyn QuarantineSink>) -> Self {
        Self {
            config: SupervisionConfig {
                quarantine_after: config.quarantine_after.max(1),
            },
            sink,
            commands: Mutex::new(Tracked::default()),
            tracked: AtomicUsize::new(0),
            panics: AtomicU64::new(0),
            quarantined: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            forgotten: AtomicU64::new(0),
        }
    }

    /// A supervisor with the default configuration and an in-memory sink
    /// ([`MemoryQuarantine::default`]): what an actor built without a node's supervisor gets.
    pub fn in_memory() -> Self {
        Self::new(
            SupervisionConfig::default(),
            Arc::new(MemoryQuarantine::default()),
        )
    }

    /// The configuration in force.
    pub fn config(&self) -> SupervisionConfig {
        self.config
    }

    /// Where quarantined commands are recorded, for the caller's error message
    /// ([`QuarantineSink::location`]).
    pub fn location(&self) -> String {
        self.sink.location()
    }

    /// Whether any command is counted or quarantined: when not, nothing need be looked up.
    pub fn watching(&self) -> bool {
        self.tracked.load(Ordering::Acquire) > 0
    }

    /// When `key` is quarantined, its panics (and the try is counted as refused); `None` when
    /// it may run.
    pub fn quarantined(&self, key: &CommandKey) -> Option<u32> {
        let commands = self.commands.lock();
        let track = commands.by_key.get(key).filter(|t| t.quarantined)?;
        self.refused.fetch_add(1, Ordering::Relaxed);
        Some(track.panics)
    }

    /// `key` ran without a panic (applied or refused by the district's rules): its count, if
    /// any and not quarantined, is forgotten, so only panics in a row lead to quarantine.
    pub fn ran(&self, key: &CommandKey) {
        let mut commands = self.commands.lock();
        if commands.by_key.get(key).is_some_and(|t| !t.quarantined) {
            commands.by_key.remove(key);
            self.tracked.store(commands.by_key.len(), Ordering::Release);
        }
    }

    /// `command` (whose key is `key`) panicked with `message`: counts it and says whether it
    /// may be tried again. At the `quarantine_after`th panic it is quarantined and recorded in
    /// the sink, once.
    pub fn panicked(&self, key: CommandKey, command: &Command, message: &str) -> Verdict {
        self.panics.fetch_add(1, Ordering::Relaxed);
        let quarantine_after = self.config.quarantine_after;
        let (track, newly) = {
            let mut commands = self.commands.lock();
            if !commands.by_key.contains_key(&key) && commands.by_key.len() >= Self::MAX_TRACKED {
                self.forget_oldest(&mut commands);
            }
            let since = commands.next;
            commands.next += 1;
            let track = commands.by_key.entry(key.clone()).or_insert(Track {
                panics: 0,
                quarantined: false,
                since,
            });
            if track.quarantined {
                // Raced past the check (not possible from one actor); already recorded.
                return Verdict::Quarantined {
                    tries: track.panics,
                };
            }
            track.panics = track.panics.saturating_add(1);
            let newly = track.panics >= quarantine_after;
            track.quarantined = newly;
            let track = *track;
            self.tracked.store(commands.by_key.len(), Ordering::Release);
            (track, newly)
        };
        if !newly {
            return Verdict::Retry {
                tries: track.panics,
            };
        }
        self.quarantined.fetch_add(1, Ordering::Relaxed);
        self.sink
            .record(QuarantineRecord::new(key, command, track.panics, message));
        Verdict::Quarantined {
            tries: track.panics,
        }
    }

    /// Forgets the oldest command still being counted, or else the oldest quarantined one.
    fn forget_oldest(&self, commands: &mut Tracked) {
        let oldest = |quarantined: bool| {
            commands
                .by_key
                .iter()
                .filter(|(_, t)| t.quarantined == quarantined)
                .min_by_key(|(_, t)| t.since)
                .map(|(k, t)| (k.clone(), *t))
        };
        let Some((key, track)) = oldest(false).or_else(|| oldest(true)) else {
            return;
        };
        commands.by_key.remove(&key);
        self.forgotten.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(district = %key.district, panics = track.panics, quarantined = track.quarantined,
            max = Self::MAX_TRACKED, "too many panicking commands tracked, forgetting the oldest");
    }

    /// The counters; see [`SupervisionStats`].
    pub fn stats(&self) -> SupervisionStats {
        SupervisionStats {
            panics: self.panics.load(Ordering::Relaxed),
            quarantined: self.quarantined.load(Ordering::Relaxed),
            refused: self.refused.load(Ordering::Relaxed),
            tracked: self.tracked.load(Ordering::Acquire),
            forgotten: self.forgotten.load(Ordering::Relaxed),
        }
    }
}

/// The name of `command`'s kind in logs and records: `submit`, `set-status`,
/// `report-location`, `acknowledge`, `arrive`, `clear` or `cancel`.
pub fn command_kind(command: &Command) -> &'static str {
    match command {
        Command::Submit(_) => "submit",
        Command::SetStatus { .. } => "set-status",
        Command::ReportLocation { .. } => "report-location",
        Command::Acknowledge { .. } => "acknowledge",
        Command::Arrive { .. } => "arrive",
        Command::Clear { .. } => "clear",
        Command::Cancel { .. } => "cancel",
    }
}

/// The message a panic was raised with (`panic!("...")` gives a `&str` or a `String`).
pub fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic without a message".to_owned()
    }
}

#[cfg(test)]
mod tests;

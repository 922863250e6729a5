//! Fault injection for tests (cargo feature `fault-injection`, off by default): makes a
//! district's handler panic on chosen commands, to test supervision end to end.
//!
//! The registry is process-global (the actors run on their own threads, where a test cannot
//! reach), one hook per district id; tests that run at once use different district ids. A hook
//! is consulted inside the actor's `catch_unwind` for every command the district runs (not for
//! one refused as quarantined): [`inject_panic`] just before the command is applied, so the
//! state is untouched; [`inject_panic_after_apply`] just after, so the state has changed and
//! only the rebuild from the journal can undo it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};

use dispatch_core::district::Command;
use parking_lot::Mutex;

use super::command_kind;

type Predicate = Arc<dyn Fn(&Command) -> bool + Send + Sync>;

/// When a hook is consulted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Before the command is applied.
    Before,
    /// After it was applied (the state changed), before it is journaled.
    After,
}

struct Hook {
    id: u64,
    phase: Phase,
    predicate: Predicate,
}

/// District id -> its hook.
static HOOKS: LazyLock<Mutex<HashMap<String, Hook>>> = LazyLock::new(Mutex::default);
/// Hooks installed: while 0, actors skip the lock.
static ARMED: AtomicUsize = AtomicUsize::new(0);
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

/// An installed hook; dropping it removes the hook.
#[derive(Debug)]
#[must_use = "the hook is removed when this is dropped"]
pub struct PanicInjection {
    district: String,
    id: u64,
}

/// Makes district `district_id`'s handler panic, before applying it, on every command for
/// which `predicate` answers true (it is called once per command the district runs, on the
/// actor's thread), until the returned guard is dropped. Replaces an earlier hook of the same
/// district. The panic's message is `injected panic: district {district_id}, {kind} command`
/// (kind as [`super::command_kind`]).
pub fn inject_panic(
    district_id: &str,
    predicate: impl Fn(&Command) -> bool + Send + Sync + 'static,
) -> PanicInjection {
    install(district_id, Phase::Before, Arc::new(predicate))
}

/// As [`inject_panic`], but the panic comes right after the command was applied: the
/// district's state in memory has taken the command, its journal has not.
pub fn inject_panic_after_apply(
    district_id: &str,
    predicate: impl Fn(&Command) -> bool + Send + Sync + 'static,
) -> PanicInjection {
    install(district_id, Phase::After, Arc::new(predicate))
}

fn install(district_id: &str, phase: Phase, predicate: Predicate) -> PanicInjection {
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let hook = Hook {
        id,
        phase,
        predicate,
    };
    if HOOKS.lock().insert(district_id.to_owned(), hook).is_none() {
        ARMED.fetch_add(1, Ordering::Release);
    }
    PanicInjection {
        district: district_id.to_owned(),
        id,
    }
}

impl Drop for PanicInjection {
    fn drop(&mut self) {
        let mut hooks = HOOKS.lock();
        if hooks.get(&self.district).is_some_and(|h| h.id == self.id) {
            hooks.remove(&self.district);
            ARMED.fetch_sub(1, Ordering::Release);
        }
    }
}

/// Panics when `district`'s hook is for `phase` and chooses `command`.
pub(crate) fn check(phase: Phase, district: &str, command: &Command) {
    if ARMED.load(Ordering::Acquire) == 0 {
        return;
    }
    // Out of the lock before calling: the predicate or the panic must not hold it.
    let predicate = HOOKS
        .lock()
        .get(district)
        .filter(|h| h.phase == phase)
        .map(|h| h.predicate.clone());
    if let Some(predicate) = predicate
        && predicate(command)
    {
        panic!(
            "injected panic: district {district}, {} command",
            command_kind(command)
        );
    }
}

//! The most recent records of a kind, kept in memory up to a capacity, with a count of all:
//! the in-memory dead letters and quarantine record, bounded so that an outage or a bug storm
//! cannot grow them without limit (the error log and the count still show every record).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

/// Up to `capacity` most recent records and a count of every record ever pushed.
#[derive(Debug)]
pub(crate) struct Recent<T> {
    capacity: usize,
    items: Mutex<VecDeque<T>>,
    recorded: AtomicU64,
}

impl<T: Clone> Recent<T> {
    /// Keeps the `capacity` most recent records (0 keeps none but still counts).
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity,
            items: Mutex::new(VecDeque::new()),
            recorded: AtomicU64::new(0),
        }
    }

    /// Counts `item` and keeps it, dropping the oldest kept when full.
    pub(crate) fn push(&self, item: T) {
        self.recorded.fetch_add(1, Ordering::Relaxed);
        if self.capacity == 0 {
            return;
        }
        let mut items = self.items.lock();
        if items.len() >= self.capacity {
            items.pop_front();
        }
        items.push_back(item);
    }

    /// The records kept, oldest first.
    pub(crate) fn items(&self) -> Vec<T> {
        self.items.lock().iter().cloned().collect()
    }

    /// Records ever pushed, including those no longer kept.
    pub(crate) fn recorded(&self) -> u64 {
        self.recorded.load(Ordering::Relaxed)
    }
}

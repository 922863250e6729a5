//! A district's queue of waiting incidents, in dispatch order.
//!
//! DESIGN.md section 4: "a priority queue of waiting incidents (priority first, then age)".
//! The order is total and deterministic: priority (P1 first), then age (the earlier
//! [`QueueKey::since`] first), then incident id, so two replicas that see the same pushes pop
//! the same incident, which event-sourced takeover (DESIGN.md section 5) relies on.
//!
//! Aging (a later issue) fits as a re-key: [`IncidentQueue::set_priority`] moves an incident to
//! a higher priority while it keeps its `since`, so it still sorts by its true age among peers.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::{IncidentId, Priority, Timestamp};

/// Where one incident stands in the queue. Ordered by `priority` (P1 first), then `since`
/// (earlier first), then `incident_id` (byte order), in that field order.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct QueueKey {
    /// Urgency; P1 sorts first.
    pub priority: Priority,
    /// Age reference, cluster clock: the district uses the time the call was received, so the
    /// wait that counts against response time decides among incidents of one priority.
    pub since: Timestamp,
    /// The incident; the final tie-breaker and the queue's identity (no duplicates).
    pub incident_id: IncidentId,
}

/// Waiting incidents of one district in dispatch order, at most once each.
///
/// A `BTreeSet` of keys gives the order; a `BTreeMap` from incident id to key makes
/// [`contains`](Self::contains) and [`remove`](Self::remove) O(log n). All operations are
/// O(log n) except iteration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncidentQueue {
    order: BTreeSet<QueueKey>,
    keys: BTreeMap<IncidentId, QueueKey>,
}

impl IncidentQueue {
    /// An empty queue.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an incident. Returns `false` and changes nothing when its id is already queued
    /// (whatever the key), so a redelivered message cannot queue an incident twice.
    pub fn push(&mut self, key: QueueKey) -> bool {
        if self.keys.contains_key(&key.incident_id) {
            return false;
        }
        self.keys.insert(key.incident_id.clone(), key.clone());
        self.order.insert(key);
        true
    }

    /// Takes the next incident to dispatch: highest priority, then oldest, then lowest id.
    pub fn pop(&mut self) -> Option<QueueKey> {
        let key = self.order.pop_first()?;
        self.keys.remove(&key.incident_id);
        Some(key)
    }

    /// The next incident to dispatch, left in place.
    pub fn peek(&self) -> Option<&QueueKey> {
        self.order.first()
    }

    /// Takes an incident out wherever it stands (cancelled, merged). Returns whether it was there.
    pub fn remove(&mut self, incident_id: &(impl AsRef<str> + ?Sized)) -> bool {
        match self.keys.remove(incident_id.as_ref()) {
            Some(key) => self.order.remove(&key),
            None => false,
        }
    }

    /// Moves a queued incident to `priority`, keeping its age; for aging and re-classification.
    /// Returns whether the incident was queued.
    pub fn set_priority(
        &mut self,
        incident_id: &(impl AsRef<str> + ?Sized),
        priority: Priority,
    ) -> bool {
        let Some(key) = self.keys.get_mut(incident_id.as_ref()) else {
            return false;
        };
        self.order.remove(key);
        key.priority = priority;
        self.order.insert(key.clone());
        true
    }

    /// The key of a queued incident.
    pub fn get(&self, incident_id: &(impl AsRef<str> + ?Sized)) -> Option<&QueueKey> {
        self.keys.get(incident_id.as_ref())
    }

    /// Whether the incident is queued.
    pub fn contains(&self, incident_id: &(impl AsRef<str> + ?Sized)) -> bool {
        self.keys.contains_key(incident_id.as_ref())
    }

    /// Number of waiting incidents.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// No incident waiting.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// Waiting incidents in dispatch order (the order [`pop`](Self::pop) would take them).
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &QueueKey> + ExactSizeIterator + '_ {
        self.order.iter()
    }
}

impl<'a> IntoIterator for &'a IncidentQueue {
    type Item = &'a QueueKey;
    type IntoIter = std::collections::btree_set::Iter<'a, QueueKey>;

    fn into_iter(self) -> Self::IntoIter {
        self.order.iter()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn key(p: Priority, since: i64, id: &str) -> QueueKey {
        QueueKey {
            priority: p,
            since: Timestamp(since),
            incident_id: id.into(),
        }
    }

    fn ids(q: &IncidentQueue) -> Vec<&str> {
        q.iter().map(|k| k.incident_id.as_str()).collect()
    }

    #[test]
    fn priority_then_age_then_id() {
        let mut q = IncidentQueue::new();
        assert!(q.push(key(Priority::P3, 100, "old-p3")));
        assert!(q.push(key(Priority::P1, 900, "new-p1")));
        assert!(q.push(key(Priority::P1, 500, "b")));
        assert!(q.push(key(Priority::P1, 500, "a")));
        assert!(q.push(key(Priority::P4, 0, "oldest-p4")));
        assert_eq!(ids(&q), ["a", "b", "new-p1", "old-p3", "oldest-p4"]);
        assert_eq!(q.peek().unwrap().incident_id, "a");
        assert_eq!(q.pop().unwrap().incident_id, "a");
        assert_eq!(q.pop().unwrap().incident_id, "b");
        assert_eq!(q.len(), 3);
        assert!(!q.contains("a"));
    }

    #[test]
    fn duplicates_are_refused_even_with_another_key() {
        let mut q = IncidentQueue::new();
        assert!(q.push(key(Priority::P2, 10, "i1")));
        assert!(!q.push(key(Priority::P2, 10, "i1")));
        assert!(!q.push(key(Priority::P1, 5, "i1")));
        assert_eq!(q.len(), 1);
        assert_eq!(q.get("i1").unwrap().priority, Priority::P2);
    }

    #[test]
    fn remove_takes_out_from_the_middle() {
        let mut q = IncidentQueue::new();
        for (i, id) in ["x", "y", "z"].into_iter().enumerate() {
            q.push(key(Priority::P2, i as i64, id));
        }
        assert!(q.remove("y"));
        assert!(!q.remove("y"));
        assert!(!q.remove("nope"));
        assert_eq!(ids(&q), ["x", "z"]);
        assert!(
            q.push(key(Priority::P2, 1, "y")),
            "a removed id may come back"
        );
        assert_eq!(ids(&q), ["x", "y", "z"]);
    }

    #[test]
    fn set_priority_keeps_age() {
        let mut q = IncidentQueue::new();
        q.push(key(Priority::P1, 50, "p1"));
        q.push(key(Priority::P1, 200, "p1-later"));
        q.push(key(Priority::P3, 100, "aged"));
        assert!(q.set_priority("aged", Priority::P1));
        assert_eq!(ids(&q), ["p1", "aged", "p1-later"]);
        assert!(!q.set_priority("nope", Priority::P1));
    }

    #[test]
    fn empty_queue() {
        let mut q = IncidentQueue::default();
        assert!(q.is_empty());
        assert_eq!(q.pop(), None);
        assert_eq!(q.peek(), None);
        assert_eq!((&q).into_iter().count(), 0);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Push(u8, i64, u8),
        Pop,
        Remove(u8),
        Age(u8, u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => (1u8..=4, 0i64..20, 0u8..12).prop_map(|(p, s, i)| Op::Push(p, s, i)),
            1 => Just(Op::Pop),
            1 => (0u8..12).prop_map(Op::Remove),
            1 => (0u8..12, 1u8..=4).prop_map(|(i, p)| Op::Age(i, p)),
        ]
    }

    proptest! {
        /// Against a sorted-vector model: same contents, same pop order, never a duplicate.
        #[test]
        fn behaves_like_a_sorted_set_of_unique_ids(ops in prop::collection::vec(op(), 0..60)) {
            let mut q = IncidentQueue::new();
            let mut model: Vec<QueueKey> = Vec::new();
            for op in ops {
                match op {
                    Op::Push(p, s, i) => {
                        let k = key(Priority::from_level(p).unwrap(), s, &format!("i{i}"));
                        let fresh = !model.iter().any(|m| m.incident_id == k.incident_id);
                        prop_assert_eq!(q.push(k.clone()), fresh);
                        if fresh {
                            model.push(k);
                        }
                    }
                    Op::Pop => {
                        model.sort();
                        let expected = if model.is_empty() { None } else { Some(model.remove(0)) };
                        prop_assert_eq!(q.pop(), expected);
                    }
                    Op::Remove(i) => {
                        let id = format!("i{i}");
                        let before = model.len();
                        model.retain(|m| m.incident_id != id);
                        prop_assert_eq!(q.remove(&id), before != model.len());
                    }
                    Op::Age(i, p) => {
                        let id = format!("i{i}");
                        let p = Priority::from_level(p).unwrap();
                        let found = model.iter_mut().find(|m| m.incident_id == id);
                        let was = found.is_some();
                        if let Some(m) = found {
                            m.priority = p;
                        }
                        prop_assert_eq!(q.set_priority(&id, p), was);
                    }
                }
                model.sort();
                prop_assert_eq!(q.iter().cloned().collect::<Vec<_>>(), model.clone());
                prop_assert_eq!(q.len(), model.len());
                prop_assert_eq!(q.peek(), model.first());
                for m in &model {
                    prop_assert!(q.contains(&m.incident_id));
                }
            }
        }
    }
}

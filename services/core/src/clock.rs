//! The one source of time. Every timestamp and timer in the cluster goes through a [`Clock`]:
//! [`WallClock`] in production, [`ScaledClock`] in load tests (one hour of peak in a minute),
//! [`ManualClock`] in unit tests.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// A point in cluster time: milliseconds since the Unix epoch, as read from a [`Clock`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// Milliseconds since the Unix epoch.
    pub fn as_millis(self) -> i64 {
        self.0
    }

    /// Seconds from `earlier` to `self` (negative when `earlier` is later).
    pub fn seconds_since(self, earlier: Timestamp) -> f64 {
        (self.0 - earlier.0) as f64 / 1000.0
    }

    /// This timestamp moved by `seconds` (rounded to the millisecond).
    pub fn plus_seconds(self, seconds: f64) -> Timestamp {
        Timestamp(self.0 + (seconds * 1000.0).round() as i64)
    }
}

/// Source of cluster time.
pub trait Clock: Send + Sync + std::fmt::Debug + 'static {
    /// Now, in cluster time.
    fn now(&self) -> Timestamp;

    /// Cluster seconds that pass per real second (1 for the wall clock).
    fn scale(&self) -> f64;

    /// How long to really wait for `cluster_seconds` of cluster time to pass.
    fn real_duration(&self, cluster_seconds: f64) -> Duration {
        Duration::from_secs_f64((cluster_seconds / self.scale()).max(0.0))
    }
}

/// A shared clock.
pub type SharedClock = Arc<dyn Clock>;

fn system_now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The real clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct WallClock;

impl Clock for WallClock {
    fn now(&self) -> Timestamp {
        Timestamp(system_now_ms())
    }
    fn scale(&self) -> f64 {
        1.0
    }
}

/// Time that runs `scale` times faster than real time, starting at the wall-clock time of its
/// creation. Two processes with the same scale measure the same cluster durations.
#[derive(Debug, Clone)]
pub struct ScaledClock {
    start_ms: i64,
    started: Instant,
    scale: f64,
}

impl ScaledClock {
    /// A clock running `scale` times real time. Errors when `scale` is not finite and > 0.
    pub fn new(scale: f64) -> Result<Self, String> {
        if !scale.is_finite() || scale <= 0.0 {
            return Err(format!(
                "clock scale must be a finite number > 0, got {scale}"
            ));
        }
        Ok(Self {
            start_ms: system_now_ms(),
            started: Instant::now(),
            scale,
        })
    }
}

impl Clock for ScaledClock {
    fn now(&self) -> Timestamp {
        let elapsed = self.started.elapsed().as_secs_f64() * self.scale;
        Timestamp(self.start_ms + (elapsed * 1000.0) as i64)
    }
    fn scale(&self) -> f64 {
        self.scale
    }
}

/// A clock that moves only when told; for tests.
#[derive(Debug, Clone, Default)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    /// A clock standing at `at`.
    pub fn at(at: Timestamp) -> Self {
        Self(Arc::new(AtomicI64::new(at.0)))
    }

    /// Moves the clock forward by `seconds`.
    pub fn advance(&self, seconds: f64) {
        self.0
            .fetch_add((seconds * 1000.0).round() as i64, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.0.load(Ordering::SeqCst))
    }
    fn scale(&self) -> f64 {
        1.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let c = ManualClock::at(Timestamp(1_000));
        assert_eq!(c.now(), Timestamp(1_000));
        c.advance(2.5);
        assert_eq!(c.now(), Timestamp(3_500));
        assert_eq!(c.now().seconds_since(Timestamp(1_000)), 2.5);
    }

    #[test]
    fn scaled_clock_converts_cluster_time_to_real_time() {
        let c = ScaledClock::new(60.0).unwrap();
        assert_eq!(c.real_duration(60.0), Duration::from_secs(1));
        assert!(ScaledClock::new(0.0).is_err());
        assert!(ScaledClock::new(f64::NAN).is_err());
    }

    #[test]
    fn timestamps_do_arithmetic_in_seconds() {
        assert_eq!(Timestamp(0).plus_seconds(1.2345), Timestamp(1_235));
        assert_eq!(Timestamp(5_000).seconds_since(Timestamp(2_000)), 3.0);
    }
}

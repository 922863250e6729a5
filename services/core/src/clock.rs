//! The one source of time. Every timestamp and timer in the cluster goes through a [`Clock`]:
//! [`WallClock`] in production, [`ScaledClock`] in load tests (one hour of peak in a minute),
//! [`ManualClock`] in unit tests.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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

    /// The cluster epoch, milliseconds since the Unix epoch: the wall-clock instant from which
    /// cluster time runs [`Clock::scale`] times faster (see [`ScaledClock::anchored`]). `None`
    /// when cluster time is not derived from the wall clock that way: the wall clock itself, a
    /// [`ManualClock`]. Services report it so that a client can read the cluster's clock too.
    fn epoch_ms(&self) -> Option<i64> {
        None
    }
}

/// A shared clock.
pub type SharedClock = Arc<dyn Clock>;

/// Why a clock cannot be built.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// The scale is not a finite number > 0.
    #[error("clock scale must be a finite number > 0, got {0}")]
    Scale(f64),
    /// The epoch is before [`MIN_EPOCH_MS`], most likely seconds given for milliseconds.
    #[error(
        "clock epoch must be milliseconds since the Unix epoch, at least {min} \
         (2001-09-09T01:46:40Z), got {0}: was it given in seconds?",
        min = MIN_EPOCH_MS
    )]
    EpochTooEarly(i64),
    /// The epoch is later than this host's wall clock by more than
    /// [`EPOCH_AHEAD_TOLERANCE_MS`].
    #[error(
        "clock epoch {epoch_ms} ms is {ahead_ms} ms ahead of this host's wall clock (at most \
         {tolerance} ms is tolerated): give every process the same epoch, read from a wall \
         clock at or before the cluster's start",
        tolerance = EPOCH_AHEAD_TOLERANCE_MS
    )]
    EpochInFuture {
        /// The epoch given, ms since the Unix epoch.
        epoch_ms: i64,
        /// How far it is ahead of the wall clock, ms.
        ahead_ms: i64,
    },
}

/// Result of building a clock.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Smallest accepted epoch: 10^12 ms since the Unix epoch (2001-09-09T01:46:40Z), the first
/// instant whose millisecond count has 13 digits. Any recent instant given in seconds (10
/// digits) falls below it and is refused rather than read as a day in January 1970, which would
/// put a scaled cluster's time centuries ahead.
pub const MIN_EPOCH_MS: i64 = 1_000_000_000_000;

/// How far ahead of this host's wall clock an epoch may be, in ms: one minute, far more than
/// NTP-synchronised hosts disagree by (milliseconds), far less than a value given in
/// microseconds is ahead (centuries). An epoch a little ahead is harmless: cluster time then
/// starts somewhat before it and runs forward as usual.
pub const EPOCH_AHEAD_TOLERANCE_MS: i64 = 60_000;

fn system_now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn system_now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
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

/// Where a [`ScaledClock`] reads wall time: microseconds since the Unix epoch. The system clock
/// in production; tests put in a value they control.
type WallSource = Arc<dyn Fn() -> i64 + Send + Sync>;

/// Time that runs `scale` times faster than the wall clock from an epoch:
/// `cluster_ms = epoch_ms + (wall_ms - epoch_ms) x scale`.
///
/// Cluster time is a function of the wall clock ([`SystemTime`]) alone, not of when the clock
/// was made, so every process given the same epoch and scale reads the same cluster time (to
/// the millisecond, on hosts whose wall clocks agree): a call stamped by intake and its arrival
/// stamped by the district service give a true response time although the two processes started
/// at different moments.
///
/// Wall-clock steps are scaled too: when the host's clock steps forward by `d` (NTP, an
/// operator), cluster time steps forward by `scale x d`. When it steps back, cluster time holds
/// still, never running backwards within one process (every clone of a clock shares that
/// memory), until the wall clock has caught up with where it was; another process that did not
/// read the later time reads the lower value meanwhile. NTP slewing (at most 500 ppm) changes the
/// cluster's rate by the same fraction.
#[derive(Clone)]
pub struct ScaledClock {
    epoch_ms: i64,
    scale: f64,
    wall_us: WallSource,
    /// Latest cluster time read, ms, so that a wall clock stepping back does not make cluster
    /// time run backwards.
    latest_ms: Arc<AtomicI64>,
}

impl std::fmt::Debug for ScaledClock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScaledClock")
            .field("epoch_ms", &self.epoch_ms)
            .field("scale", &self.scale)
            .finish_non_exhaustive()
    }
}

impl ScaledClock {
    /// A clock running `scale` times real time from `epoch_ms` (milliseconds since the Unix
    /// epoch). Give every process of a cluster the same two values and they agree on the time.
    ///
    /// Errors: [`Error::Scale`] when `scale` is not finite and > 0, [`Error::EpochTooEarly`] when
    /// `epoch_ms` is below [`MIN_EPOCH_MS`], [`Error::EpochInFuture`] when it is more than
    /// [`EPOCH_AHEAD_TOLERANCE_MS`] ahead of this host's wall clock.
    pub fn anchored(epoch_ms: i64, scale: f64) -> Result<Self> {
        Self::anchored_on(epoch_ms, scale, Arc::new(system_now_us))
    }

    /// A clock running `scale` times real time from now: the epoch is the wall-clock time of
    /// its creation. For a cluster in one process (the embedded cluster, the load-test
    /// harness's); separate processes need [`ScaledClock::anchored`] with one shared epoch.
    ///
    /// Errors: [`Error::Scale`] when `scale` is not finite and > 0.
    pub fn new(scale: f64) -> Result<Self> {
        Self::build(system_now_ms(), scale, Arc::new(system_now_us))
    }

    fn anchored_on(epoch_ms: i64, scale: f64, wall_us: WallSource) -> Result<Self> {
        if epoch_ms < MIN_EPOCH_MS {
            return Err(Error::EpochTooEarly(epoch_ms));
        }
        let ahead_ms = epoch_ms.saturating_sub(wall_us() / 1_000);
        if ahead_ms > EPOCH_AHEAD_TOLERANCE_MS {
            return Err(Error::EpochInFuture { epoch_ms, ahead_ms });
        }
        Self::build(epoch_ms, scale, wall_us)
    }

    fn build(epoch_ms: i64, scale: f64, wall_us: WallSource) -> Result<Self> {
        if !scale.is_finite() || scale <= 0.0 {
            return Err(Error::Scale(scale));
        }
        Ok(Self {
            epoch_ms,
            scale,
            wall_us,
            latest_ms: Arc::new(AtomicI64::new(i64::MIN)),
        })
    }

    /// Cluster time at wall time `wall_us` (microseconds since the Unix epoch), rounded down to
    /// the millisecond. Microseconds in, so that a scaled clock still ticks every millisecond
    /// (a millisecond wall source would move a 60x clock in steps of 60 ms).
    fn at(&self, wall_us: i64) -> i64 {
        let since_epoch_us = wall_us.saturating_sub(self.epoch_ms.saturating_mul(1_000));
        // `as` saturates on overflow; nothing here can panic.
        let scaled_ms = (since_epoch_us as f64 * self.scale / 1_000.0).floor() as i64;
        self.epoch_ms.saturating_add(scaled_ms)
    }
}

impl Clock for ScaledClock {
    fn now(&self) -> Timestamp {
        let t = self.at((self.wall_us)());
        let before = self.latest_ms.fetch_max(t, Ordering::Relaxed);
        Timestamp(t.max(before))
    }
    fn scale(&self) -> f64 {
        self.scale
    }
    fn epoch_ms(&self) -> Option<i64> {
        Some(self.epoch_ms)
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

    /// 2025-11-24T16:00:00Z, ms since the Unix epoch.
    const EPOCH: i64 = 1_764_000_000_000;

    /// A wall clock the test moves: microseconds since the Unix epoch.
    #[derive(Clone)]
    struct Wall(Arc<AtomicI64>);

    impl Wall {
        fn at_ms(ms: i64) -> Self {
            Self(Arc::new(AtomicI64::new(ms * 1_000)))
        }
        fn advance_ms(&self, ms: i64) {
            self.0.fetch_add(ms * 1_000, Ordering::SeqCst);
        }
        fn source(&self) -> WallSource {
            let us = self.0.clone();
            Arc::new(move || us.load(Ordering::SeqCst))
        }
    }

    #[test]
    fn clocks_with_one_epoch_agree_whenever_they_were_made() {
        let wall = Wall::at_ms(EPOCH + 5_000);
        let early = ScaledClock::anchored_on(EPOCH, 60.0, wall.source()).unwrap();
        // The second process starts 7.25 s of wall time later.
        wall.advance_ms(7_250);
        let late = ScaledClock::anchored_on(EPOCH, 60.0, wall.source()).unwrap();
        // 12.25 s of wall time since the epoch, 60 times faster: 735 s.
        assert_eq!(early.now(), Timestamp(EPOCH + 735_000));
        assert_eq!(late.now(), early.now());
        wall.advance_ms(1);
        assert_eq!(late.now(), Timestamp(EPOCH + 735_060));
        assert_eq!(early.now(), late.now());
        assert_eq!(early.epoch_ms(), Some(EPOCH));
        assert_eq!(late.scale(), 60.0);
    }

    #[test]
    fn cluster_time_is_epoch_plus_scaled_wall_interval() {
        let wall = Wall::at_ms(EPOCH);
        let c = ScaledClock::anchored_on(EPOCH, 60.0, wall.source()).unwrap();
        assert_eq!(c.now(), Timestamp(EPOCH), "at the epoch both clocks agree");
        wall.advance_ms(1_500);
        assert_eq!(c.now(), Timestamp(EPOCH + 90_000)); // 1.5 s x 60
        wall.advance_ms(60_000);
        assert_eq!(c.now(), Timestamp(EPOCH + 3_690_000)); // 61.5 s x 60
        // A scale below 1 slows time down: 10 s x 0.25 = 2.5 s.
        let slow_wall = Wall::at_ms(EPOCH + 10_000);
        let slow = ScaledClock::anchored_on(EPOCH, 0.25, slow_wall.source()).unwrap();
        assert_eq!(slow.now(), Timestamp(EPOCH + 2_500));
        // Sub-millisecond wall time still counts: 400 us x 60 = 24 ms.
        let fine = Wall::at_ms(EPOCH);
        let c = ScaledClock::anchored_on(EPOCH, 60.0, fine.source()).unwrap();
        fine.0.fetch_add(400, Ordering::SeqCst);
        assert_eq!(c.now(), Timestamp(EPOCH + 24));
    }

    #[test]
    fn wall_clock_steps_are_scaled_and_never_run_time_backwards() {
        let wall = Wall::at_ms(EPOCH + 1_000);
        let c = ScaledClock::anchored_on(EPOCH, 60.0, wall.source()).unwrap();
        let clone = c.clone();
        assert_eq!(c.now(), Timestamp(EPOCH + 60_000));
        // Forward step of 10 s: cluster time jumps 600 s.
        wall.advance_ms(10_000);
        assert_eq!(c.now(), Timestamp(EPOCH + 660_000));
        // Back 2 s: cluster time holds (in every clone) until the wall clock is back at 11 s.
        wall.advance_ms(-2_000);
        assert_eq!(c.now(), Timestamp(EPOCH + 660_000));
        assert_eq!(clone.now(), Timestamp(EPOCH + 660_000));
        wall.advance_ms(1_999);
        assert_eq!(clone.now(), Timestamp(EPOCH + 660_000));
        wall.advance_ms(2);
        assert_eq!(c.now(), Timestamp(EPOCH + 660_060));
        // A clock made during the hold reads the lower value: it never saw the later one.
        wall.advance_ms(-1_000);
        let fresh = ScaledClock::anchored_on(EPOCH, 60.0, wall.source()).unwrap();
        assert_eq!(fresh.now(), Timestamp(EPOCH + 600_060));
    }

    #[test]
    fn bad_scales_and_epochs_are_refused_naming_the_value() {
        let wall = Wall::at_ms(EPOCH);
        for scale in [0.0, -60.0, f64::NAN, f64::INFINITY] {
            let err = ScaledClock::anchored_on(EPOCH, scale, wall.source()).unwrap_err();
            // NaN is not equal to itself: compare the bits.
            assert!(
                matches!(err, Error::Scale(s) if s.to_bits() == scale.to_bits()),
                "{err}"
            );
            assert!(err.to_string().contains(&format!("got {scale}")), "{err}");
        }
        for epoch in [0, -1, 1_764_000_000] {
            let err = ScaledClock::anchored_on(epoch, 60.0, wall.source()).unwrap_err();
            assert_eq!(err, Error::EpochTooEarly(epoch));
            assert!(err.to_string().contains(&format!("got {epoch}")), "{err}");
        }
        // Up to a minute ahead of this host's wall clock is tolerated, more is not.
        assert!(ScaledClock::anchored_on(EPOCH + 60_000, 60.0, wall.source()).is_ok());
        let err = ScaledClock::anchored_on(EPOCH + 60_001, 60.0, wall.source()).unwrap_err();
        assert_eq!(
            err,
            Error::EpochInFuture {
                epoch_ms: EPOCH + 60_001,
                ahead_ms: 60_001
            }
        );
        assert!(err.to_string().contains("60001 ms ahead"), "{err}");
        // Microseconds for milliseconds: centuries ahead.
        assert!(ScaledClock::anchored_on(EPOCH * 1_000, 60.0, wall.source()).is_err());
        // The real wall clock is past 2001, and an epoch of now is accepted.
        assert!(ScaledClock::anchored(system_now_ms(), 60.0).is_ok());
    }

    #[test]
    fn clocks_report_their_epoch() {
        let before = system_now_ms();
        let c = ScaledClock::new(60.0).unwrap();
        let after = system_now_ms();
        let epoch = c.epoch_ms().unwrap();
        assert!(
            (before..=after).contains(&epoch),
            "{before} {epoch} {after}"
        );
        assert_eq!(WallClock.epoch_ms(), None);
        assert_eq!(ManualClock::at(Timestamp(EPOCH)).epoch_ms(), None);
    }

    #[test]
    fn timestamps_do_arithmetic_in_seconds() {
        assert_eq!(Timestamp(0).plus_seconds(1.2345), Timestamp(1_235));
        assert_eq!(Timestamp(5_000).seconds_since(Timestamp(2_000)), 3.0);
    }
}

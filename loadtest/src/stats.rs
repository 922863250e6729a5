//! Percentiles and per-group response-time statistics, on `hdrhistogram`.
//!
//! Response times are recorded in whole seconds of cluster time (3 significant digits: exact up
//! to 2,047 s, within 0.1% above), system latencies in microseconds of real time. Means and
//! maxima are exact (kept beside the histogram). Percentiles follow hdrhistogram: the p-th
//! percentile is the smallest recorded value with at least p% of the samples at or below it.

use hdrhistogram::Histogram;
use serde::Serialize;

/// Non-negative samples with exact mean and maximum.
#[derive(Debug, Clone)]
pub struct Samples {
    hist: Histogram<u64>,
    /// Units recorded per unit reported (1 for seconds, 1,000 for ms recorded in µs).
    resolution: f64,
    sum: f64,
    max: f64,
    count: u64,
}

impl Samples {
    /// A distribution recorded at `resolution` histogram units per reported unit.
    fn with_resolution(resolution: f64) -> Self {
        Self {
            // Auto-resizing, 3 significant digits: cannot fail for sigfig 3.
            hist: Histogram::new(3).unwrap_or_else(|_| unreachable!("sigfig 3 is valid")),
            resolution,
            sum: 0.0,
            max: 0.0,
            count: 0,
        }
    }

    /// For values in seconds, percentiles to the whole second.
    pub fn seconds() -> Self {
        Self::with_resolution(1.0)
    }

    /// For values in milliseconds, percentiles to the microsecond.
    pub fn millis() -> Self {
        Self::with_resolution(1_000.0)
    }

    /// Adds one sample (negative or non-finite values count as 0).
    pub fn record(&mut self, value: f64) {
        let v = if value.is_finite() {
            value.max(0.0)
        } else {
            0.0
        };
        let units = (v * self.resolution).round() as u64;
        // The histogram grows as needed; only a value beyond what it can ever hold (above
        // u64::MAX / 2) fails, and is then clamped to its highest trackable value.
        if self.hist.record(units).is_err() {
            self.hist.saturating_record(units);
        }
        self.sum += v;
        self.max = self.max.max(v);
        self.count += 1;
    }

    /// Number of samples.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The `q`-quantile (0..=1), in the recorded unit; `None` without samples.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        (self.count > 0).then(|| self.hist.value_at_quantile(q) as f64 / self.resolution)
    }

    /// Exact mean; `None` without samples.
    pub fn mean(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum / self.count as f64)
    }

    /// Exact maximum; `None` without samples.
    pub fn max(&self) -> Option<f64> {
        (self.count > 0).then_some(self.max)
    }

    /// The summary written to reports, values rounded to `decimals`.
    pub fn summary(&self, decimals: i32) -> Summary {
        let r = |v: Option<f64>| v.map(|x| round_to(x, decimals));
        Summary {
            count: self.count,
            p50: r(self.quantile(0.50)),
            p90: r(self.quantile(0.90)),
            p99: r(self.quantile(0.99)),
            mean: r(self.mean()),
            max: r(self.max()),
        }
    }
}

/// Percentiles, mean and maximum of a distribution; `null` fields when it has no samples.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// Number of samples.
    pub count: u64,
    /// Median.
    pub p50: Option<f64>,
    /// 90th percentile.
    pub p90: Option<f64>,
    /// 99th percentile.
    pub p99: Option<f64>,
    /// Exact mean.
    pub mean: Option<f64>,
    /// Exact maximum.
    pub max: Option<f64>,
}

/// `x` rounded to `decimals` decimal places.
pub fn round_to(x: f64, decimals: i32) -> f64 {
    let f = 10f64.powi(decimals);
    (x * f).round() / f
}

/// Response-time statistics of a group of incidents (a priority, a sub-bureau, a district, or
/// all of them).
#[derive(Debug, Clone)]
pub struct Group {
    received: u64,
    within_target: u64,
    response: Samples,
}

impl Default for Group {
    fn default() -> Self {
        Self {
            received: 0,
            within_target: 0,
            response: Samples::seconds(),
        }
    }
}

impl Group {
    /// Counts one received incident; `response_s` is its response time in cluster seconds
    /// when an officer reached it, `None` when none did (a miss).
    pub fn add(&mut self, response_s: Option<f64>, target_s: f64) {
        self.received += 1;
        if let Some(rt) = response_s {
            self.response.record(rt);
            if rt <= target_s {
                self.within_target += 1;
            }
        }
    }

    /// Share of received incidents reached within the target (never-reached ones are misses);
    /// 0 for an empty group.
    pub fn within_target_share(&self) -> f64 {
        if self.received == 0 {
            0.0
        } else {
            self.within_target as f64 / self.received as f64
        }
    }

    /// The report entry of this group.
    pub fn stats(&self) -> GroupStats {
        let s = self.response.summary(1);
        GroupStats {
            received: self.received,
            on_scene: s.count,
            within_target: self.within_target,
            within_target_share: round_to(self.within_target_share(), 4),
            p50: s.p50,
            p90: s.p90,
            p99: s.p99,
            mean: s.mean,
            max: s.max,
        }
    }
}

/// Response times of one group in a report, seconds of cluster time.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupStats {
    /// Incidents received.
    pub received: u64,
    /// Incidents an officer reached (the samples of the percentiles).
    pub on_scene: u64,
    /// Incidents reached within the target.
    pub within_target: u64,
    /// `within_target / received`.
    pub within_target_share: f64,
    /// Median response time, s.
    pub p50: Option<f64>,
    /// 90th percentile, s.
    pub p90: Option<f64>,
    /// 99th percentile, s.
    pub p99: Option<f64>,
    /// Mean, s.
    pub mean: Option<f64>,
    /// Maximum, s.
    pub max: Option<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_one_to_ten() {
        // Ranks: p50 -> ceil(0.5 x 10) = 5th smallest = 5; p90 -> 9th = 9; p99 -> ceil(9.9) =
        // 10th = 10. Mean 5.5, max 10.
        let mut d = Samples::seconds();
        for v in 1..=10 {
            d.record(f64::from(v));
        }
        let s = d.summary(1);
        assert_eq!(s.count, 10);
        assert_eq!(s.p50, Some(5.0));
        assert_eq!(s.p90, Some(9.0));
        assert_eq!(s.p99, Some(10.0));
        assert_eq!(s.mean, Some(5.5));
        assert_eq!(s.max, Some(10.0));
    }

    #[test]
    fn empty_distribution_has_no_figures() {
        let s = Samples::seconds().summary(1);
        assert_eq!(s.count, 0);
        assert_eq!((s.p50, s.p99, s.mean, s.max), (None, None, None, None));
    }

    #[test]
    fn millis_keep_microsecond_resolution() {
        let mut d = Samples::millis();
        for v in [0.25, 0.5, 1.75, 2.0] {
            d.record(v);
        }
        // 250, 500, 1,750, 2,000 µs are exact in the histogram (< 2,048).
        assert_eq!(d.quantile(0.5), Some(0.5));
        assert_eq!(d.quantile(0.99), Some(2.0));
        assert_eq!(d.mean(), Some(1.125));
    }

    #[test]
    fn group_counts_misses_against_the_share() {
        let mut g = Group::default();
        for rt in [Some(100.0), Some(300.0), Some(300.4), None] {
            g.add(rt, 300.0);
        }
        let s = g.stats();
        // 100 and 300 are within (<= 300 s); 300.4 is late; the unreached one is a miss.
        assert_eq!((s.received, s.on_scene, s.within_target), (4, 3, 2));
        assert_eq!(s.within_target_share, 0.5);
        assert_eq!(Group::default().within_target_share(), 0.0);
    }
}

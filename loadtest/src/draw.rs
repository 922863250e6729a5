//! Random draws of a run: Poisson call arrivals, weighted choices (categories, dispositions,
//! sub-bureaus) and the seeded generators that make a run reproducible.
//!
//! Every generator is a ChaCha8 stream seeded from the scenario's seed (and, per officer, from
//! the officer id), so the same scenario file sends the same calls at the same cluster times to
//! the same places, and signs on the same officers.

use rand::Rng;
use rand::distr::Distribution;
use rand::distr::weighted::WeightedIndex;
use rand_chacha::ChaCha8Rng;
use rand_distr::Exp;

use crate::scenario::SecondsRange;
use crate::{Error, Result};

/// The generator every draw uses.
pub type SeededRng = ChaCha8Rng;

/// Purposes of the independent random streams of one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Call arrival times.
    Arrivals,
    /// Call places and categories.
    Calls,
    /// Which officers are on duty.
    Roster,
    /// Officers' start positions.
    StartPositions,
}

/// A generator for `stream` of a run with scenario seed `seed`.
pub fn rng_for(seed: u64, stream: Stream) -> SeededRng {
    use rand::SeedableRng;
    ChaCha8Rng::seed_from_u64(seed ^ fnv1a(format!("{stream:?}").as_bytes()))
}

/// A generator for one officer's terminal (ack delays, on-scene times, dispositions).
pub fn rng_for_officer(seed: u64, officer_id: &str) -> SeededRng {
    use rand::SeedableRng;
    ChaCha8Rng::seed_from_u64(seed ^ fnv1a(officer_id.as_bytes()).rotate_left(17))
}

/// 64-bit FNV-1a hash: stable across platforms and Rust versions, unlike `DefaultHasher`.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Arrival times of a homogeneous Poisson process: exponential gaps with mean
/// `3600 / calls_per_hour` seconds, as a stream of cluster seconds from the start of the run.
#[derive(Debug)]
pub struct PoissonArrivals<R> {
    rng: R,
    gap: Exp<f64>,
    now_s: f64,
}

impl<R: Rng> PoissonArrivals<R> {
    /// A process of `calls_per_hour` (> 0, finite) calls per hour of cluster time.
    ///
    /// Errors: [`Error::Scenario`] on `calls.peak_per_hour` when the rate is not usable.
    pub fn new(calls_per_hour: f64, rng: R) -> Result<Self> {
        let gap = Exp::new(calls_per_hour / 3600.0)
            .ok()
            .filter(|_| calls_per_hour.is_finite() && calls_per_hour > 0.0)
            .ok_or_else(|| Error::Scenario {
                key: "calls.peak_per_hour".into(),
                rule: format!("must be a finite number > 0, got {calls_per_hour}"),
            })?;
        Ok(Self {
            rng,
            gap,
            now_s: 0.0,
        })
    }

    /// Every arrival before `duration_s`, in order.
    pub fn until(self, duration_s: f64) -> impl Iterator<Item = f64> {
        self.take_while(move |t| *t < duration_s)
    }
}

impl<R: Rng> Iterator for PoissonArrivals<R> {
    type Item = f64;

    fn next(&mut self) -> Option<f64> {
        self.now_s += self.gap.sample(&mut self.rng);
        Some(self.now_s)
    }
}

/// Items drawn with probability proportional to their weights.
#[derive(Debug, Clone)]
pub struct Weighted<T> {
    items: Vec<T>,
    index: WeightedIndex<f64>,
}

impl<T: Clone> Weighted<T> {
    /// A table of `(item, weight)`; weights finite and >= 0, at least one > 0.
    ///
    /// Errors: [`Error::Weights`] naming `what` when the weights cannot be drawn from.
    pub fn new(what: &str, pairs: impl IntoIterator<Item = (T, f64)>) -> Result<Self> {
        let (items, weights): (Vec<T>, Vec<f64>) = pairs.into_iter().unzip();
        let index = WeightedIndex::new(&weights).map_err(|e| Error::Weights {
            what: what.to_string(),
            reason: e.to_string(),
        })?;
        Ok(Self { items, index })
    }

    /// One item.
    pub fn draw(&self, rng: &mut impl Rng) -> T {
        self.items[self.index.sample(rng)].clone()
    }

    /// The items, in table order.
    pub fn items(&self) -> &[T] {
        &self.items
    }
}

/// A uniform draw within `range` (its lower bound when the range is a single value).
pub fn uniform_in(range: SecondsRange, rng: &mut impl Rng) -> f64 {
    if range.max() > range.min() {
        rng.random_range(range.min()..=range.max())
    } else {
        range.min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dispatch_core::{Category, Disposition};

    /// Asserts `observed` successes out of `n` are within 4.5 standard deviations of `p`
    /// (a false alarm about once in 150,000 for a correct generator; the seeds are fixed, so
    /// the outcome is deterministic anyway).
    fn assert_share(what: &str, observed: usize, n: usize, p: f64) {
        let sd = (p * (1.0 - p) / n as f64).sqrt();
        let got = observed as f64 / n as f64;
        assert!(
            (got - p).abs() <= 4.5 * sd,
            "{what}: share {got:.5}, expected {p:.5} +- {:.5}",
            4.5 * sd
        );
    }

    #[test]
    fn poisson_mean_rate_matches_within_tolerance() {
        // 3,600 calls/h = 1 call/s; over 200,000 s the count is Poisson(200,000), sd ~447.
        let arrivals: Vec<f64> = PoissonArrivals::new(3_600.0, rng_for(7, Stream::Arrivals))
            .expect("rate")
            .until(200_000.0)
            .collect();
        let n = arrivals.len() as f64;
        assert!((n - 200_000.0).abs() < 4.5 * 447.0, "got {n} arrivals");
        // Strictly increasing and inside the window.
        assert!(arrivals.windows(2).all(|w| w[0] < w[1]));
        assert!(arrivals.iter().all(|t| (0.0..200_000.0).contains(t)));
    }

    #[test]
    fn poisson_gaps_are_exponential_not_regular() {
        // Exponential gaps: mean 1/rate and coefficient of variation 1; a fixed-interval or
        // uniform-gap generator gives a CV of 0 or ~0.58 and fails.
        let times: Vec<f64> = PoissonArrivals::new(120.0, rng_for(11, Stream::Arrivals))
            .expect("rate")
            .take(50_000)
            .collect();
        let gaps: Vec<f64> = std::iter::once(times[0])
            .chain(times.windows(2).map(|w| w[1] - w[0]))
            .collect();
        let n = gaps.len() as f64;
        let mean = gaps.iter().sum::<f64>() / n;
        let var = gaps.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / (n - 1.0);
        // Mean 30 s; its sd is 30/sqrt(50,000) = 0.134 s.
        assert!((mean - 30.0).abs() < 4.5 * 0.134, "mean gap {mean}");
        let cv = var.sqrt() / mean;
        assert!((cv - 1.0).abs() < 0.03, "cv {cv}");
        // P(gap > 60 s) = e^-2 = 0.1353.
        let long = gaps.iter().filter(|g| **g > 60.0).count();
        assert_share("gaps over 60 s", long, gaps.len(), (-2.0f64).exp());
    }

    #[test]
    fn poisson_rejects_bad_rates() {
        for bad in [0.0, -5.0, f64::NAN, f64::INFINITY] {
            let e = PoissonArrivals::new(bad, rng_for(1, Stream::Arrivals)).expect_err("must fail");
            assert!(e.to_string().contains("calls.peak_per_hour"), "{e}");
        }
    }

    #[test]
    fn same_seed_same_arrivals_other_seed_other_arrivals() {
        let a: Vec<f64> = PoissonArrivals::new(600.0, rng_for(5, Stream::Arrivals))
            .expect("rate")
            .take(20)
            .collect();
        let b: Vec<f64> = PoissonArrivals::new(600.0, rng_for(5, Stream::Arrivals))
            .expect("rate")
            .take(20)
            .collect();
        let c: Vec<f64> = PoissonArrivals::new(600.0, rng_for(6, Stream::Arrivals))
            .expect("rate")
            .take(20)
            .collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn category_draws_follow_the_weights() {
        let table = Weighted::new(
            "category mix",
            [
                (Category::ViolentCrime, 1.0),
                (Category::Theft, 3.0),
                (Category::Noise, 6.0),
                (Category::Fraud, 0.0),
            ],
        )
        .expect("weights");
        let mut rng = rng_for(3, Stream::Calls);
        let n = 100_000;
        let draws: Vec<Category> = (0..n).map(|_| table.draw(&mut rng)).collect();
        let count = |c| draws.iter().filter(|d| **d == c).count();
        assert_share("violent_crime", count(Category::ViolentCrime), n, 0.1);
        assert_share("theft", count(Category::Theft), n, 0.3);
        assert_share("noise", count(Category::Noise), n, 0.6);
        assert_eq!(count(Category::Fraud), 0, "a zero weight is never drawn");
    }

    #[test]
    fn disposition_draws_follow_the_shares_with_resolved_as_rest() {
        let shares = crate::scenario::DispositionShares {
            criminal_case: 0.08,
            administrative_case: 0.04,
            false_alarm: 0.2,
            referred: 0.1,
        };
        let table = Weighted::new("dispositions", shares.weights()).expect("weights");
        let mut rng = rng_for_officer(9, "officer-1");
        let n = 100_000;
        let draws: Vec<Disposition> = (0..n).map(|_| table.draw(&mut rng)).collect();
        let count = |d| draws.iter().filter(|x| **x == d).count();
        assert_share("criminal", count(Disposition::CriminalCase), n, 0.08);
        assert_share(
            "administrative",
            count(Disposition::AdministrativeCase),
            n,
            0.04,
        );
        assert_share("false alarm", count(Disposition::FalseAlarm), n, 0.2);
        assert_share("referred", count(Disposition::Referred), n, 0.1);
        assert_share("resolved", count(Disposition::Resolved), n, 0.58);
    }

    #[test]
    fn weighted_rejects_all_zero_and_negative_weights() {
        assert!(Weighted::new("x", [(1, 0.0), (2, 0.0)]).is_err());
        assert!(Weighted::new("x", [(1, -1.0), (2, 3.0)]).is_err());
        let e = Weighted::<u8>::new("sub-bureau populations", []).expect_err("must fail");
        assert!(e.to_string().contains("sub-bureau populations"), "{e}");
    }

    #[test]
    fn uniform_in_stays_inside_and_handles_a_point_range() {
        let mut rng = rng_for(2, Stream::Calls);
        let r = SecondsRange(5.0, 20.0);
        let draws: Vec<f64> = (0..10_000).map(|_| uniform_in(r, &mut rng)).collect();
        assert!(draws.iter().all(|d| (5.0..=20.0).contains(d)));
        let mean = draws.iter().sum::<f64>() / draws.len() as f64;
        // sd of the mean: 15/sqrt(12)/100 = 0.043.
        assert!((mean - 12.5).abs() < 0.2, "mean {mean}");
        assert_eq!(uniform_in(SecondsRange(7.0, 7.0), &mut rng), 7.0);
    }

    #[test]
    fn officer_streams_differ_by_officer() {
        let a: u64 = rng_for_officer(1, "d1-o1").random();
        let b: u64 = rng_for_officer(1, "d1-o2").random();
        let a2: u64 = rng_for_officer(1, "d1-o1").random();
        assert_ne!(a, b);
        assert_eq!(a, a2);
    }
}

//! Statistics of results across seeds, in one place: Student-t confidence intervals
//! with exact quantiles, paired per-seed differences, a seeded percentile bootstrap,
//! the interquartile mean and the probability of improvement.
//!
//! The experiment tables ([`crate::experiment`]) and the seed bands of the figures
//! ([`crate::plots`]) both use these, so a table and a figure of the same run show the
//! same interval. The robust aggregates (IQM, probability of improvement, bootstrap
//! intervals) follow rliable (Agarwal et al., NeurIPS 2021). Randomness comes from a
//! `ChaCha8Rng` seeded by the caller, never from libtorch, so results repeat exactly.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, StudentsT};
use std::collections::{HashMap, HashSet};

/// Why a statistic could not be computed from its inputs.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StatsError {
    /// A seed appears twice in one sample of a paired comparison, so the pairing is
    /// ambiguous.
    #[error("seed {0} appears more than once in one sample of a paired comparison")]
    DuplicateSeed(u64),
    /// A bootstrap was asked of no values.
    #[error("no values to resample")]
    Empty,
    /// A confidence level outside (0, 1).
    #[error("confidence level {0} is not strictly between 0 and 1")]
    InvalidConfidence(f64),
    /// A bootstrap with zero resamples.
    #[error("a bootstrap needs at least one resample")]
    NoResamples,
}

/// The arithmetic mean of `values`; NaN when empty.
pub fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len() as f64
}

/// The sample standard deviation of `values` (divisor n - 1); NaN for fewer than two.
pub fn sample_sd(values: &[f64]) -> f64 {
    let n = values.len();
    if n < 2 {
        return f64::NAN;
    }
    let mean = mean(values);
    (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt()
}

/// The two-sided 95% critical value of Student's t with `df` degrees of freedom (its
/// 0.975 quantile), computed exactly rather than read from a table, so it is right for
/// any `df` (it tends to 1.95996 as `df` grows). NaN for `df` 0.
pub fn t_critical_95(df: usize) -> f64 {
    if df == 0 {
        return f64::NAN;
    }
    // Location 0, scale 1 and a positive finite `df` are always valid.
    StudentsT::new(0.0, 1.0, df as f64).map_or(f64::NAN, |t| t.inverse_cdf(0.975))
}

/// Mean and half-width of the 95% confidence interval (Student's t, exact quantile) of
/// `values`: `(mean, t_{0.975, n-1} * s / sqrt(n))` with `s` the sample standard
/// deviation. The half-width is 0 for one value (no spread to scale); both are NaN for
/// none.
pub fn mean_ci95(values: &[f64]) -> (f64, f64) {
    let n = values.len();
    if n == 0 {
        return (f64::NAN, f64::NAN);
    }
    let mean = mean(values);
    if n < 2 {
        return (mean, 0.0);
    }
    (
        mean,
        t_critical_95(n - 1) * sample_sd(values) / (n as f64).sqrt(),
    )
}

/// The per-seed differences of two samples measured on the same seeds, summarised.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PairedDifference {
    /// Seeds present in both samples (the number of differences).
    pub pairs: usize,
    /// Mean of `a - b` over those seeds (NaN for no pair).
    pub mean: f64,
    /// Half-width of its 95% Student-t confidence interval (0 for one pair).
    pub ci95: f64,
}

/// No pair (what a report written before a column existed holds for it).
impl Default for PairedDifference {
    fn default() -> Self {
        Self {
            pairs: 0,
            mean: f64::NAN,
            ci95: 0.0,
        }
    }
}

/// The differences `a - b` seed by seed (each sample is `(seed, value)` pairs), in the
/// order of `a`; seeds present in only one sample are left out. Pairing by seed removes
/// the between-seed variance both samples share (same data split, same initial
/// student), so the interval is usually much narrower than that of the difference of
/// means.
///
/// Errors: [`StatsError::DuplicateSeed`] when a seed appears twice in `a` or in `b`.
pub fn paired_difference_values(
    a: &[(u64, f64)],
    b: &[(u64, f64)],
) -> Result<Vec<f64>, StatsError> {
    let mut by_seed = HashMap::with_capacity(b.len());
    for &(seed, value) in b {
        if by_seed.insert(seed, value).is_some() {
            return Err(StatsError::DuplicateSeed(seed));
        }
    }
    let mut seen = HashSet::with_capacity(a.len());
    let mut differences = Vec::with_capacity(a.len());
    for &(seed, value) in a {
        if !seen.insert(seed) {
            return Err(StatsError::DuplicateSeed(seed));
        }
        if let Some(other) = by_seed.get(&seed) {
            differences.push(value - other);
        }
    }
    Ok(differences)
}

/// [`paired_difference_values`] summarised: how many seeds pair up, and the mean of
/// `a - b` over them with its 95% Student-t interval.
///
/// Errors: [`StatsError::DuplicateSeed`] when a seed appears twice in `a` or in `b`.
pub fn paired_differences(
    a: &[(u64, f64)],
    b: &[(u64, f64)],
) -> Result<PairedDifference, StatsError> {
    let differences = paired_difference_values(a, b)?;
    let (mean, ci95) = mean_ci95(&differences);
    Ok(PairedDifference {
        pairs: differences.len(),
        mean,
        ci95,
    })
}

/// A percentile bootstrap confidence interval `(lower, upper)` of `statistic` over
/// `values`: `resamples` resamples of `values.len()` draws with replacement from a
/// `ChaCha8Rng` seeded with `seed` (so the interval repeats exactly), and the
/// `(1 - confidence) / 2` and `(1 + confidence) / 2` quantiles of the resampled
/// statistics, linearly interpolated (numpy's default, as rliable uses). Suits
/// statistics with no closed-form interval, such as [`interquartile_mean`].
/// [`stratified_bootstrap_ci`] with one stratum.
///
/// Errors: [`StatsError::Empty`] for no values, [`StatsError::NoResamples`] for zero
/// resamples, [`StatsError::InvalidConfidence`] for a level outside (0, 1).
pub fn bootstrap_ci(
    values: &[f64],
    statistic: impl Fn(&[f64]) -> f64,
    resamples: usize,
    confidence: f64,
    seed: u64,
) -> Result<(f64, f64), StatsError> {
    stratified_bootstrap_ci(&[values], statistic, resamples, confidence, seed)
}

/// rliable's stratified bootstrap: as [`bootstrap_ci`], but each resample draws from
/// every stratum (a task's runs) as many values as it holds, with replacement, and
/// hands `statistic` them all together, so that every task keeps its weight in an
/// aggregate across tasks (such as the [`interquartile_mean`] of normalised scores).
///
/// Errors: [`StatsError::Empty`] when there are no strata or one is empty; the others
/// as [`bootstrap_ci`].
pub fn stratified_bootstrap_ci(
    strata: &[&[f64]],
    statistic: impl Fn(&[f64]) -> f64,
    resamples: usize,
    confidence: f64,
    seed: u64,
) -> Result<(f64, f64), StatsError> {
    if strata.is_empty() || strata.iter().any(|s| s.is_empty()) {
        return Err(StatsError::Empty);
    }
    if resamples == 0 {
        return Err(StatsError::NoResamples);
    }
    if !(confidence > 0.0 && confidence < 1.0) {
        return Err(StatsError::InvalidConfidence(confidence));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut sample = Vec::with_capacity(strata.iter().map(|s| s.len()).sum());
    let mut statistics: Vec<f64> = (0..resamples)
        .map(|_| {
            sample.clear();
            for stratum in strata {
                for _ in 0..stratum.len() {
                    sample.push(stratum[rng.gen_range(0..stratum.len())]);
                }
            }
            statistic(&sample)
        })
        .collect();
    statistics.sort_by(f64::total_cmp);
    let alpha = 1.0 - confidence;
    Ok((
        quantile_sorted(&statistics, alpha / 2.0),
        quantile_sorted(&statistics, 1.0 - alpha / 2.0),
    ))
}

/// The `q` quantile of non-empty `sorted` values, linearly interpolated between the
/// two nearest ranks.
fn quantile_sorted(sorted: &[f64], q: f64) -> f64 {
    let position = q * (sorted.len() - 1) as f64;
    let below = position.floor() as usize;
    let above = position.ceil() as usize;
    let fraction = position - below as f64;
    sorted[below] + fraction * (sorted[above] - sorted[below])
}

/// The interquartile mean (IQM): the mean of the middle 50% of `values`, robust to a
/// few outlying seeds yet using more of them than the median.
///
/// This is the simple trimmed version rliable uses (`scipy.stats.trim_mean(x, 0.25)`):
/// `floor(n / 4)` values are dropped from each end of the sorted values and the rest
/// averaged, with no fractional weights. So for fewer than four values it is the plain
/// mean. NaN when empty.
pub fn interquartile_mean(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let cut = sorted.len() / 4;
    mean(&sorted[cut..sorted.len() - cut])
}

/// The probability of improvement `P(X > Y) + P(X = Y) / 2` of sample `x` over sample
/// `y`: over all pairs of one value of each, the share where `x`'s is larger, a tie
/// counting one half (the Mann-Whitney U statistic divided by `|x| * |y|`, as in
/// rliable). 0.5 means neither tends to be larger. For "smaller is better" measures,
/// swap the arguments. NaN when either sample is empty.
pub fn probability_of_improvement(x: &[f64], y: &[f64]) -> f64 {
    let wins: f64 = x
        .iter()
        .flat_map(|xi| y.iter().map(move |yj| (xi, yj)))
        .map(|(xi, yj)| {
            if xi > yj {
                1.0
            } else if xi == yj {
                0.5
            } else {
                0.0
            }
        })
        .sum();
    wins / (x.len() * y.len()) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::{assert_abs_diff_eq, assert_relative_eq};

    #[test]
    fn a_stratified_bootstrap_keeps_each_stratum_whole() {
        // Two strata of constant values: every resample holds 3 ones and 1 ten, so the
        // mean is the same in every resample and the interval is a point.
        let ones = [1.0, 1.0, 1.0];
        let tens = [10.0];
        let (lo, hi) = stratified_bootstrap_ci(&[&ones, &tens], mean, 500, 0.95, 3).unwrap();
        assert_relative_eq!(lo, 13.0 / 4.0);
        assert_relative_eq!(hi, 13.0 / 4.0);
        // Pooled, a resample may hold 0 to 4 tens: the interval widens.
        let pooled = [1.0, 1.0, 1.0, 10.0];
        let (lo, hi) = bootstrap_ci(&pooled, mean, 500, 0.95, 3).unwrap();
        assert!(lo < 13.0 / 4.0 && hi > 13.0 / 4.0, "{lo} {hi}");
        assert_eq!(
            stratified_bootstrap_ci(&[&ones, &[]], mean, 10, 0.95, 0),
            Err(StatsError::Empty)
        );
        assert_eq!(
            stratified_bootstrap_ci(&[], mean, 10, 0.95, 0),
            Err(StatsError::Empty)
        );
    }

    #[test]
    fn t_quantiles_match_the_printed_table() {
        // Two-sided 95% values of Student's t from a printed table (4 decimals).
        for (df, expected) in [
            (1, 12.7062),
            (2, 4.3027),
            (4, 2.7764),
            (30, 2.0423),
            (31, 2.0395),
            (60, 2.0003),
            (120, 1.9799),
            (1000, 1.9623),
        ] {
            assert_abs_diff_eq!(t_critical_95(df), expected, epsilon = 1e-4);
        }
        assert!(t_critical_95(0).is_nan());
    }

    #[test]
    fn confidence_interval_matches_hand_computation() {
        // mean 2, sample sd 1, n = 3: half-width = t(0.975, 2) * 1 / sqrt(3).
        let (mean, half) = mean_ci95(&[1.0, 2.0, 3.0]);
        assert_relative_eq!(mean, 2.0);
        assert_abs_diff_eq!(half, 4.3027 / 3f64.sqrt(), epsilon = 1e-4);
        assert_eq!(mean_ci95(&[5.0]), (5.0, 0.0));
        assert!((sample_sd(&[1.0, 2.0, 3.0]) - 1.0).abs() < 1e-12);
        assert!(sample_sd(&[1.0]).is_nan());
        let (m, h) = mean_ci95(&[]);
        assert!(m.is_nan() && h.is_nan());
    }

    #[test]
    fn paired_differences_pair_by_seed() {
        let a = [(1, 10.0), (2, 12.0), (3, 9.0), (4, 5.0)];
        let b = [(2, 10.0), (3, 10.0), (1, 7.0), (9, 0.0)];
        assert_eq!(paired_difference_values(&a, &b), Ok(vec![3.0, 2.0, -1.0]));
        // Differences 3, 2, -1: mean 4/3, sample variance 13/3, so the half-width is
        // t(0.975, 2) * sqrt(13/9).
        let paired = paired_differences(&a, &b).unwrap();
        assert_eq!(paired.pairs, 3);
        assert_relative_eq!(paired.mean, 4.0 / 3.0);
        assert_abs_diff_eq!(paired.ci95, 4.3027 * (13.0f64 / 9.0).sqrt(), epsilon = 1e-3);
        assert_eq!(
            paired_differences(&[(1, 0.0), (1, 1.0)], &b),
            Err(StatsError::DuplicateSeed(1))
        );
        assert_eq!(
            paired_differences(&a, &[(5, 0.0), (5, 1.0)]),
            Err(StatsError::DuplicateSeed(5))
        );
        let none = paired_differences(&a, &[(7, 1.0)]).unwrap();
        assert_eq!(none.pairs, 0);
        assert!(none.mean.is_nan());
    }

    #[test]
    fn bootstrap_is_seeded_and_brackets_the_statistic() {
        let values: Vec<f64> = (1..=10).map(f64::from).collect();
        let first = bootstrap_ci(&values, mean, 2000, 0.95, 7).unwrap();
        assert_eq!(first, bootstrap_ci(&values, mean, 2000, 0.95, 7).unwrap());
        let (lower, upper) = first;
        assert!(lower < 5.5 && 5.5 < upper, "{first:?}");
        // The t interval of 1..=10 is 5.5 ± 2.17; the bootstrap's is a little narrower.
        assert!(
            upper - lower > 2.0 && upper - lower < 2.0 * 2.17,
            "{first:?}"
        );
        // No spread: every resample has the same mean.
        assert_eq!(
            bootstrap_ci(&[3.0; 5], interquartile_mean, 100, 0.9, 1),
            Ok((3.0, 3.0))
        );
        assert_eq!(bootstrap_ci(&[], mean, 10, 0.95, 0), Err(StatsError::Empty));
        assert_eq!(
            bootstrap_ci(&values, mean, 0, 0.95, 0),
            Err(StatsError::NoResamples)
        );
        assert_eq!(
            bootstrap_ci(&values, mean, 10, 1.0, 0),
            Err(StatsError::InvalidConfidence(1.0))
        );
    }

    #[test]
    fn quantiles_interpolate_linearly() {
        let sorted = [1.0, 2.0, 4.0, 8.0, 16.0];
        assert_eq!(quantile_sorted(&sorted, 0.0), 1.0);
        assert_eq!(quantile_sorted(&sorted, 1.0), 16.0);
        assert_eq!(quantile_sorted(&sorted, 0.5), 4.0);
        // Position 0.25 * 4 = 1: exactly the second value; 0.375 * 4 = 1.5: halfway.
        assert_eq!(quantile_sorted(&sorted, 0.25), 2.0);
        assert_eq!(quantile_sorted(&sorted, 0.375), 3.0);
    }

    #[test]
    fn interquartile_mean_trims_a_quarter_from_each_end() {
        // n = 8: drop 2 each end, mean of 3, 4, 5, 6.
        let values = [8.0, 1.0, 7.0, 2.0, 6.0, 3.0, 5.0, 4.0];
        assert_relative_eq!(interquartile_mean(&values), 4.5);
        // n = 4: drop the outlier 100 and the 1.
        assert_relative_eq!(interquartile_mean(&[100.0, 1.0, 2.0, 3.0]), 2.5);
        // n = 5: floor(5 / 4) = 1 each end: mean of 2, 3, 4.
        assert_relative_eq!(interquartile_mean(&[5.0, 4.0, 3.0, 2.0, -50.0]), 3.0);
        // Fewer than four: the plain mean.
        assert_relative_eq!(interquartile_mean(&[1.0, 2.0, 6.0]), 3.0);
        assert!(interquartile_mean(&[]).is_nan());
    }

    #[test]
    fn probability_of_improvement_counts_ties_as_half() {
        // Pairs vs y = 2: 1 < 2 (0), 2 = 2 (1/2), 3 > 2 (1): 1.5 / 3.
        assert_relative_eq!(probability_of_improvement(&[1.0, 2.0, 3.0], &[2.0]), 0.5);
        assert_relative_eq!(probability_of_improvement(&[3.0, 4.0], &[1.0, 2.0]), 1.0);
        assert_relative_eq!(probability_of_improvement(&[1.0, 2.0], &[3.0, 4.0]), 0.0);
        assert_relative_eq!(probability_of_improvement(&[1.0, 1.0], &[1.0, 1.0]), 0.5);
        // x = [1, 3], y = [2]: 1 of 2 pairs.
        assert_relative_eq!(probability_of_improvement(&[1.0, 3.0], &[2.0]), 0.5);
        assert!(probability_of_improvement(&[], &[1.0]).is_nan());
    }
}

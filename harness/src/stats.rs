//! The statistics of rounds: medians, spreads, and the 95% confidence
//! interval of a ratio taken pair by pair.
//!
//! Method (said in every result): a figure's rounds and a ratio's paired
//! rounds are summarised by their median, min and max; the 95% interval is
//! Student's t on the logarithms (the interval of the geometric mean), so a
//! ratio's interval is symmetric in log space (1/r has the interval
//! [1/high, 1/low]) and never crosses zero. It needs 2 or more values, all
//! positive; with fewer it is absent. The paired log-ratios of a round
//! cancel the drift that hits both paths of that round alike, which is why
//! the paths alternate within each round.

/// The method, as the result document names it.
pub const METHOD: &str =
    "student-t on the logarithms of the per-round values (paired per round for ratios), 95%";

/// A caution when an interval's half-width exceeds this share of its median.
pub const WIDE: f64 = 0.10;

/// The median of some values (the mean of the middle two for an even
/// count); None for none. NaNs are ignored.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// Student's t, two-sided 95% (the 0.975 quantile), for `df` degrees of
/// freedom (df >= 1): exact to three decimals up to 30, then interpolated in
/// 1/df towards the normal's 1.960.
pub fn t975(df: usize) -> f64 {
    const T: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
        2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
        2.052, 2.048, 2.045, 2.042,
    ];
    match df {
        0 => f64::INFINITY,
        1..=30 => T[df - 1],
        _ => {
            // t(df) ~ z + (t(30) - z) * 30 / df, within 0.002 of the tables
            let z = 1.960;
            z + (T[29] - z) * 30.0 / df as f64
        }
    }
}

/// The 95% interval of the geometric mean of positive values, by t on
/// their logarithms; None with fewer than 2 values or any value <= 0.
pub fn log_interval(values: &[f64]) -> Option<(f64, f64)> {
    let n = values.len();
    if n < 2 || values.iter().any(|v| !(v.is_finite() && *v > 0.0)) {
        return None;
    }
    let logs: Vec<f64> = values.iter().map(|v| v.ln()).collect();
    let mean = logs.iter().sum::<f64>() / n as f64;
    let var = logs.iter().map(|l| (l - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    let half = t975(n - 1) * (var / n as f64).sqrt();
    Some(((mean - half).exp(), (mean + half).exp()))
}

/// What the rounds of one figure (or one ratio) came to.
#[derive(Clone, Debug, PartialEq)]
pub struct Spread {
    pub n: usize,
    pub median: f64,
    pub min: f64,
    pub max: f64,
    /// The 95% interval (see the module's method); None below 2 values.
    pub ci95: Option<(f64, f64)>,
}

impl Spread {
    /// The spread of some values; None for none.
    pub fn of(values: &[f64]) -> Option<Spread> {
        let median = median(values)?;
        let finite = values.iter().copied().filter(|v| !v.is_nan());
        let (min, max) = finite.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
        Some(Spread {
            n: values.len(),
            median,
            min,
            max,
            ci95: log_interval(values),
        })
    }

    /// Whether the interval's half-width exceeds [`WIDE`] of the median
    /// (false without an interval: one round makes no claim to be wide).
    pub fn wide(&self) -> bool {
        match self.ci95 {
            Some((lo, hi)) => (hi - lo) / 2.0 > WIDE * self.median.abs(),
            None => false,
        }
    }

    /// Whether `x` lies outside the interval (false without one).
    pub fn excludes(&self, x: f64) -> bool {
        self.ci95.is_some_and(|(lo, hi)| x < lo || x > hi)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_of_odd_even_and_none() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[f64::NAN, 5.0]), Some(5.0));
    }

    #[test]
    fn t_quantiles_match_the_tables() {
        assert_eq!(t975(1), 12.706);
        assert_eq!(t975(4), 2.776);
        assert_eq!(t975(30), 2.042);
        // tables: 40 -> 2.021, 60 -> 2.000, 120 -> 1.980
        for (df, t) in [(40, 2.021), (60, 2.000), (120, 1.980)] {
            assert!((t975(df) - t).abs() < 0.003, "df {df}: {}", t975(df));
        }
        assert!(t975(0).is_infinite());
    }

    #[test]
    fn a_known_set_of_ratios_gives_a_known_interval() {
        // logs of 1, e, e^2 -> mean 1, sd 1, n 3: half-width 4.303 / sqrt 3
        let e = std::f64::consts::E;
        let (lo, hi) = log_interval(&[1.0, e, e * e]).unwrap();
        let half = 4.303 / 3f64.sqrt();
        assert!((lo.ln() - (1.0 - half)).abs() < 1e-9);
        assert!((hi.ln() - (1.0 + half)).abs() < 1e-9);
        // five paired ratios about 2: 2.0 [1.903, 2.099] (worked by hand)
        let s = Spread::of(&[1.9, 2.0, 2.1, 1.95, 2.05]).unwrap();
        assert_eq!((s.n, s.median, s.min, s.max), (5, 2.0, 1.9, 2.1));
        let (lo, hi) = s.ci95.unwrap();
        assert!(
            (lo - 1.90296).abs() < 1e-4 && (hi - 2.09936).abs() < 1e-4,
            "{lo} {hi}"
        );
        assert!(!s.wide(), "half-width 0.098 is under 10% of 2.0");
        assert!(s.excludes(1.8) && !s.excludes(2.09));
        // the reciprocal's interval is the reciprocal of the interval
        let inv: Vec<f64> = [1.9, 2.0, 2.1, 1.95, 2.05]
            .iter()
            .map(|r| 1.0 / r)
            .collect();
        let (ilo, ihi) = log_interval(&inv).unwrap();
        assert!((ilo - 1.0 / hi).abs() < 1e-12 && (ihi - 1.0 / lo).abs() < 1e-12);
    }

    #[test]
    fn scattered_rounds_are_wide_and_degenerate_ones_have_no_interval() {
        let s = Spread::of(&[1.2, 3.0, 2.0]).unwrap();
        assert!(s.wide());
        assert_eq!(Spread::of(&[2.0]).unwrap().ci95, None);
        assert!(!Spread::of(&[2.0]).unwrap().wide());
        assert_eq!(log_interval(&[1.0, 0.0, 2.0]), None);
        assert_eq!(log_interval(&[1.0, -1.0]), None);
        // identical rounds: an interval of width zero
        let (lo, hi) = log_interval(&[3.0, 3.0, 3.0]).unwrap();
        assert!((lo - 3.0).abs() < 1e-12 && (hi - 3.0).abs() < 1e-12);
        assert!(Spread::of(&[]).is_none());
    }
}

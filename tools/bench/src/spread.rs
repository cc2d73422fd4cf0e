//! Repetitions and their spread. Every closed-loop figure is measured `--repeat` times,
//! interleaved with its floor (floor, scenario, floor, scenario, ...), so drift on a shared
//! machine hits both alike; each figure is reported as the median with the smallest and
//! largest repetition, and the ratio to the floor is taken per pair (a scenario's run over
//! the floor run just before it), then summarised the same way.

use serde::Serialize;

use super::measure::Figures;

/// Median, smallest and largest of a few values (an even count's median is the mean of
/// the middle two).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Spread {
    /// `None` for no values.
    pub fn of(values: impl IntoIterator<Item = f64>) -> Option<Spread> {
        let mut v: Vec<f64> = values.into_iter().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Some(Spread {
            median,
            min: v[0],
            max: v[n - 1],
        })
    }

    /// `median (min-max)`, with `digits` decimals.
    pub fn show(&self, digits: usize) -> String {
        format!(
            "{:.d$} ({:.d$}-{:.d$})",
            self.median,
            self.min,
            self.max,
            d = digits
        )
    }
}

/// Repetitions of one measurement and the spread of the figures a reader compares.
#[derive(Debug, Clone, Serialize)]
pub struct Repeated {
    pub in_flight: usize,
    pub ops_per_sec: Spread,
    pub p50_us: Spread,
    pub p99_us: Spread,
    /// Total CPU per operation (`cpu_per_op.total_us` of each run), when measured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_us_per_op: Option<Spread>,
    /// Errors of every run together.
    pub errors: u64,
    /// Every repetition, in the order measured.
    pub runs: Vec<Figures>,
}

impl Repeated {
    /// Panics on no runs: every measurement is taken at least once (`--repeat` >= 1).
    pub fn new(runs: Vec<Figures>) -> Repeated {
        assert!(!runs.is_empty(), "a measurement without runs");
        let spread =
            |f: fn(&Figures) -> f64| Spread::of(runs.iter().map(f)).expect("runs are not empty");
        Repeated {
            in_flight: runs[0].in_flight,
            ops_per_sec: spread(|f| f.ops_per_sec),
            p50_us: spread(|f| f.p50_us),
            p99_us: spread(|f| f.p99_us),
            cpu_us_per_op: Spread::of(runs.iter().filter_map(|f| f.cpu_per_op.map(|c| c.total_us))),
            errors: runs.iter().map(|f| f.errors).sum(),
            runs,
        }
    }

    /// The run whose rate is the median (the lower middle one for an even count): one
    /// real run to read the percentiles and the CPU split from.
    pub fn median_run(&self) -> &Figures {
        let mut order: Vec<&Figures> = self.runs.iter().collect();
        order.sort_by(|a, b| a.ops_per_sec.total_cmp(&b.ops_per_sec));
        order[(order.len() - 1) / 2]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::{figures, histogram};
    use crate::report::Scenario;
    use std::time::Duration;

    fn run(ops: u64) -> Figures {
        let mut h = histogram();
        h.record(1_000 * ops).unwrap();
        figures(4, ops, 0, Duration::from_secs(1), &h)
    }

    #[test]
    fn spread_is_median_min_and_max() {
        let s = Spread::of([3.0, 1.0, 2.0]).unwrap();
        assert_eq!((s.median, s.min, s.max), (2.0, 1.0, 3.0));
        let s = Spread::of([4.0, 1.0, 2.0, 3.0]).unwrap();
        assert_eq!((s.median, s.min, s.max), (2.5, 1.0, 4.0));
        assert!(Spread::of([]).is_none());
        assert!(Spread::of([f64::NAN]).is_none());
        assert_eq!(s.show(1), "2.5 (1.0-4.0)");
    }

    #[test]
    fn repetitions_keep_every_run_and_the_median_one() {
        let r = Repeated::new(vec![run(30), run(10), run(20)]);
        assert_eq!(r.runs.len(), 3);
        assert_eq!(r.median_run().ops, 20);
        assert_eq!(r.ops_per_sec.min, 10.0);
        assert_eq!(r.ops_per_sec.max, 30.0);
        // The histogram keeps two significant digits.
        assert!((r.p50_us.median - 20.0).abs() < 0.5, "{:?}", r.p50_us);
    }

    #[test]
    fn ratios_pair_each_run_with_its_own_floor_run() {
        let floor = Repeated::new(vec![run(20), run(30)]);
        let s = Scenario::paired("x", vec![run(10), run(30)], &floor, "floor");
        assert_eq!(s.ratios, vec![0.5, 1.0]);
        let r = s.ratio.unwrap();
        assert_eq!((r.median, r.min, r.max), (0.75, 0.5, 1.0));
        assert_eq!(s.floor_ops_per_sec.unwrap().median, 25.0);
        // The median-rate run is a real repetition (the lower middle of two).
        assert_eq!(s.figures.ops, 10);
    }
}

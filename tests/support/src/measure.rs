//! Reading distributions, for the benchmark and the soak (never for
//! assertions on speed).

use std::time::Duration;

/// The `p`-th percentile (0–100, nearest rank) of `sorted`, which must be
/// sorted ascending; zero for an empty sample.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let Some(last) = sorted.len().checked_sub(1) else {
        return Duration::ZERO;
    };
    let rank = ((p.clamp(0.0, 100.0) / 100.0) * last as f64).round() as usize;
    sorted[rank.min(last)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_pick_the_nearest_rank_and_survive_empty_and_odd_inputs() {
        let ms = |n| Duration::from_millis(n);
        let sample: Vec<Duration> = (1..=100).map(ms).collect();
        assert_eq!(percentile(&sample, 50.0), ms(51));
        assert_eq!(percentile(&sample, 99.0), ms(99));
        assert_eq!(percentile(&sample, 100.0), ms(100));
        assert_eq!(percentile(&sample, 0.0), ms(1));
        assert_eq!(percentile(&sample, 250.0), ms(100));
        assert_eq!(percentile(&[], 50.0), Duration::ZERO);
        assert_eq!(percentile(&[ms(7)], 99.0), ms(7));
    }
}

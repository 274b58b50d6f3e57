//! Pauses between session attempts: exponential with full jitter, so that thousands of nodes
//! that lost their leader at the same instant do not all knock on the next one in step.

use std::time::Duration;

/// Exponential backoff with full jitter: the n-th pause after a failure is drawn uniformly from
/// `[min, min(max, min · 2ⁿ)]`; [`Backoff::reset`] after a session was held.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    ceiling: Duration,
}

impl Backoff {
    /// Pauses between `min` and `max`.
    pub fn new(min: Duration, max: Duration) -> Backoff {
        let max = max.max(min);
        Backoff {
            min,
            max,
            ceiling: min,
        }
    }

    /// The next pause, from `unit` (a number in `[0, 1)`, random in use; fixed in tests);
    /// doubles the ceiling for the pause after it.
    pub fn next_with(&mut self, unit: f64) -> Duration {
        let span = self.ceiling.saturating_sub(self.min);
        let pause = self.min + span.mul_f64(unit.clamp(0.0, 1.0));
        self.ceiling = (self.ceiling * 2).min(self.max);
        pause
    }

    /// The next pause, drawn at random.
    pub fn next_pause(&mut self) -> Duration {
        self.next_with(rand::random::<f64>())
    }

    /// Back to the shortest pauses (a session was held).
    pub fn reset(&mut self) {
        self.ceiling = self.min;
    }
}

/// A pause drawn uniformly from `[0, spread)` to add before reconnecting after a redirect or a
/// lost leader, so that the nodes' attempts spread over `spread` instead of arriving at once.
pub fn spread(spread: Duration, unit: f64) -> Duration {
    spread.mul_f64(unit.clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_grow_to_the_cap_and_are_drawn_below_the_ceiling() {
        let ms = Duration::from_millis;
        let mut b = Backoff::new(ms(50), ms(500));
        // At the top of each range: 50, 100, 200, 400, 500, 500.
        let tops: Vec<Duration> = (0..6).map(|_| b.next_with(1.0)).collect();
        assert_eq!(
            tops,
            vec![ms(50), ms(100), ms(200), ms(400), ms(500), ms(500)]
        );
        // At the bottom: always the minimum.
        assert_eq!(b.next_with(0.0), ms(50));
        // Half way through the range [50, 500].
        assert_eq!(b.next_with(0.5), ms(275));
        b.reset();
        assert_eq!(b.next_with(1.0), ms(50), "reset: back to the shortest");
    }

    #[test]
    fn random_pauses_stay_in_range_and_spread() {
        let ms = Duration::from_millis;
        let mut b = Backoff::new(ms(50), ms(2000));
        for _ in 0..10 {
            b.next_pause();
        }
        let draws: Vec<Duration> = (0..200).map(|_| b.next_pause()).collect();
        assert!(draws.iter().all(|d| *d >= ms(50) && *d <= ms(2000)));
        let distinct: std::collections::BTreeSet<_> = draws.iter().collect();
        assert!(distinct.len() > 100, "drawn, not fixed: {}", distinct.len());
        assert_eq!(spread(ms(1000), 0.25), ms(250));
        assert_eq!(spread(ms(1000), 7.0), ms(1000), "clamped");
    }
}

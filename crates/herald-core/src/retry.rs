//! The retry policy: when a failed delivery is tried again, and when it is given up.

use std::time::Duration;

#[derive(Clone, Debug)]
pub struct RetryPolicy {
    /// Delay before each retry; its length is the number of retries after the first attempt.
    pub schedule: Vec<Duration>,
    /// Relative jitter, 0.2 = ±20 %.
    pub jitter: f64,
    /// The longest wait a receiver's `Retry-After` may ask for.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    /// The Svix schedule: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h, with ±20 % jitter.
    fn default() -> Self {
        let secs = [5, 300, 1800, 7200, 18_000, 36_000, 36_000];
        RetryPolicy {
            schedule: secs.iter().map(|s| Duration::from_secs(*s)).collect(),
            jitter: 0.2,
            max_retry_after: Duration::from_secs(3600),
        }
    }
}

impl RetryPolicy {
    /// The wait before the next attempt after `attempts_made` attempts failed, or `None`
    /// when the schedule is exhausted. `unit_random` is a draw from [0, 1) (injected so
    /// tests are deterministic). A `Retry-After` longer than the scheduled delay wins, up
    /// to `max_retry_after`; a shorter one never makes retries come sooner than scheduled.
    pub fn next_delay(
        &self,
        attempts_made: u32,
        retry_after: Option<Duration>,
        unit_random: f64,
    ) -> Option<Duration> {
        let base = *self
            .schedule
            .get((attempts_made as usize).checked_sub(1)?)?;
        let factor = 1.0 + self.jitter * (2.0 * unit_random - 1.0);
        let jittered = base.mul_f64(factor.max(0.0));
        Some(match retry_after {
            Some(asked) => jittered.max(asked.min(self.max_retry_after)),
            None => jittered,
        })
    }

    /// Total attempts including the first.
    pub fn max_attempts(&self) -> u32 {
        self.schedule.len() as u32 + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_schedule_with_bounded_jitter() {
        let p = RetryPolicy::default();
        assert_eq!(p.max_attempts(), 8);
        assert_eq!(p.next_delay(1, None, 0.5), Some(Duration::from_secs(5)));
        assert_eq!(p.next_delay(2, None, 0.5), Some(Duration::from_secs(300)));
        assert_eq!(p.next_delay(1, None, 0.0), Some(Duration::from_secs(4)));
        assert_eq!(
            p.next_delay(7, None, 0.5),
            Some(Duration::from_secs(36_000))
        );
        assert_eq!(p.next_delay(8, None, 0.5), None);
        assert_eq!(p.next_delay(0, None, 0.5), None);
        let hi = p.next_delay(1, None, 0.999_999).unwrap();
        assert!(hi <= Duration::from_secs(6) && hi > Duration::from_millis(5990));
    }

    #[test]
    fn retry_after_lengthens_within_bounds() {
        let p = RetryPolicy::default();
        let s = Duration::from_secs;
        assert_eq!(p.next_delay(1, Some(s(60)), 0.5), Some(s(60)));
        assert_eq!(p.next_delay(1, Some(s(1)), 0.5), Some(s(5)));
        assert_eq!(p.next_delay(1, Some(s(86_400)), 0.5), Some(s(3600)));
    }
}

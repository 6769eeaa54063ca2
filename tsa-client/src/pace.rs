//! Rate budgets for time-stamp authorities. A TSA (a commercial one above all) allows so many
//! requests per second; a batch job sealing B-T rows as fast as the token signs would exceed
//! that. Each TSA's budget is a generic cell rate (GCRA): a steady `per_second` with room for
//! `burst` requests at once. A request *reserves* its slot before it is sent, so concurrent
//! signers queue in order instead of all retrying at once.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// A TSA's rate budget: `per_second` requests on average, at most `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Budget {
    per_second: f64,
    burst: u32,
}

impl Budget {
    /// A budget of `per_second` (0.001 to 1,000,000: one request in 1,000 s at the slowest)
    /// and `burst` (1 to 100,000).
    pub fn new(per_second: f64, burst: u32) -> Result<Budget, String> {
        if !(per_second.is_finite() && (0.001..=1e6).contains(&per_second)) {
            return Err(format!(
                "a rate of {per_second} requests per second: give 0.001 to 1000000"
            ));
        }
        if !(1..=100_000).contains(&burst) {
            return Err(format!("a burst of {burst} requests: give 1 to 100000"));
        }
        Ok(Budget { per_second, burst })
    }

    pub fn per_second(&self) -> f64 {
        self.per_second
    }

    pub fn burst(&self) -> u32 {
        self.burst
    }
}

/// The budget's state: the theoretical arrival time of the next request.
#[derive(Debug)]
pub(crate) struct Pacer {
    interval: Duration,
    /// How far ahead of the steady rate requests may run: (burst − 1) intervals.
    tolerance: Duration,
    next: Mutex<Option<Instant>>,
}

impl Pacer {
    pub(crate) fn new(budget: Budget) -> Pacer {
        let interval = Duration::from_secs_f64(1.0 / budget.per_second);
        Pacer {
            interval,
            tolerance: interval * (budget.burst - 1),
            next: Mutex::new(None),
        }
    }

    fn wait_at(&self, next: Option<Instant>, now: Instant) -> (Instant, Duration) {
        let next = next.map_or(now, |t| t.max(now));
        let wait = next
            .checked_sub(self.tolerance)
            .map_or(Duration::ZERO, |t| t.saturating_duration_since(now));
        (next, wait)
    }

    /// How long from `now` until a request would be within budget.
    pub(crate) fn wait(&self, now: Instant) -> Duration {
        let next = *self.next.lock().unwrap_or_else(PoisonError::into_inner);
        self.wait_at(next, now).1
    }

    /// Reserves the next request's slot if it comes within `max_wait` of `now`, and says how
    /// long to wait before sending it; `None` (nothing reserved) if it comes later.
    pub(crate) fn reserve(&self, now: Instant, max_wait: Duration) -> Option<Duration> {
        let mut guard = self.next.lock().unwrap_or_else(PoisonError::into_inner);
        let (next, wait) = self.wait_at(*guard, now);
        if wait > max_wait {
            return None;
        }
        *guard = Some(next + self.interval);
        Some(wait)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn requests_are_spaced_at_the_rate_after_the_burst() {
        let p = Pacer::new(Budget::new(10.0, 3).expect("budget"));
        let t0 = Instant::now();
        // Three at once (the burst), then one every 100 ms.
        let waits: Vec<Duration> = (0..6)
            .map(|_| p.reserve(t0, Duration::from_secs(10)).expect("within"))
            .collect();
        assert_eq!(waits, [ms(0), ms(0), ms(0), ms(100), ms(200), ms(300)]);
        // Reservations beyond the longest wait are refused and reserve nothing.
        assert_eq!(p.reserve(t0, ms(399)), None);
        assert_eq!(p.wait(t0), ms(400));
        // Time passing frees the budget again, up to the burst and no more.
        let later = t0 + Duration::from_secs(5);
        let waits: Vec<Duration> = (0..4)
            .map(|_| p.reserve(later, Duration::from_secs(1)).expect("within"))
            .collect();
        assert_eq!(waits, [ms(0), ms(0), ms(0), ms(100)]);
    }

    #[test]
    fn any_window_holds_at_most_burst_plus_rate_times_its_length() {
        let p = Pacer::new(Budget::new(4.0, 2).expect("budget"));
        let t0 = Instant::now();
        // Requests arriving every 10 ms for 3 s, each sent when its slot comes.
        let sent: Vec<Duration> = (0..300u64)
            .map(|i| {
                let now = t0 + ms(10 * i);
                ms(10 * i) + p.reserve(now, Duration::from_secs(3600)).expect("within")
            })
            .collect();
        for (i, a) in sent.iter().enumerate() {
            for (j, b) in sent.iter().enumerate().skip(i + 1) {
                // j − i + 1 requests in [a, b]: at most burst + rate × (b − a).
                let allowed = 2.0 + 4.0 * (*b - *a).as_secs_f64() + 1e-9;
                assert!((j - i + 1) as f64 <= allowed, "{i}..{j}: {a:?}..{b:?}");
            }
        }
    }

    #[test]
    fn nonsense_budgets_are_refused() {
        assert!(Budget::new(0.0, 1).is_err());
        assert!(Budget::new(-1.0, 1).is_err());
        assert!(Budget::new(f64::NAN, 1).is_err());
        assert!(Budget::new(1.0, 0).is_err());
        assert!(
            Budget::new(1e-20, 1).is_err(),
            "an interval beyond what a Duration holds"
        );
        assert!(Budget::new(0.001, 100_001).is_err());
        let slowest = Pacer::new(Budget::new(0.001, 100_000).expect("budget"));
        assert_eq!(slowest.interval, Duration::from_secs(1000));
        assert_eq!(slowest.tolerance, Duration::from_secs(1000) * 99_999);
        assert!(Budget::new(0.5, 1).is_ok());
    }
}

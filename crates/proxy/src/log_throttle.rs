//! Warnings a client, a provider or a tenant's plugin can trigger on every
//! request are written at most once a second per call site, each with the
//! number of lines left out since the last one: a flood of failing calls
//! must not become a flood of log (the disk, and the time spent writing).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Instant;

/// Lines are let through at most this often.
const EVERY_MS: u64 = 1_000;
/// `last_ms` before the first line.
const NEVER: u64 = u64::MAX;

pub struct Throttle {
    last_ms: AtomicU64,
    suppressed: AtomicU64,
}

impl Default for Throttle {
    fn default() -> Self {
        Self::new()
    }
}

impl Throttle {
    pub const fn new() -> Self {
        Self {
            last_ms: AtomicU64::new(NEVER),
            suppressed: AtomicU64::new(0),
        }
    }

    fn now_ms() -> u64 {
        static START: OnceLock<Instant> = OnceLock::new();
        START.get_or_init(Instant::now).elapsed().as_millis() as u64
    }

    /// `Some(lines left out since the last one)` when a line may be
    /// written now; `None` (and counted) when not.
    pub fn admit(&self) -> Option<u64> {
        let now = Self::now_ms();
        let last = self.last_ms.load(Ordering::Relaxed);
        let due = last == NEVER || now.saturating_sub(last) >= EVERY_MS;
        let ours = due
            && self
                .last_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok();
        if ours {
            Some(self.suppressed.swap(0, Ordering::Relaxed))
        } else {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

/// `tracing::<level>!(...)` at most once a second from this call site,
/// with a `suppressed` field counting the lines left out.
#[macro_export]
macro_rules! throttled {
    ($level:ident, $($arg:tt)+) => {{
        static THROTTLE: $crate::log_throttle::Throttle = $crate::log_throttle::Throttle::new();
        if let Some(suppressed) = THROTTLE.admit() {
            tracing::$level!(suppressed, $($arg)+);
        }
    }};
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_a_second_and_a_count_of_the_rest() {
        let throttle = Throttle::new();
        assert_eq!(throttle.admit(), Some(0), "the first line is written");
        let written = (0..1000).filter(|_| throttle.admit().is_some()).count();
        assert!(written <= 1, "{written} more lines in the same second");
        // As if the second had passed (the clock here starts with the test).
        throttle.last_ms.store(NEVER, Ordering::Relaxed);
        let skipped = throttle.admit().expect("due again");
        assert!(skipped >= 999, "{skipped}");
    }
}

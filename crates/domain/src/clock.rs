//! Wall-clock time in the units the state and the WIT contract use.
//!
//! Quota windows read time through [`Clock`], which the tests can move
//! forward (to just before a tenant's midnight, say) to prove that windows
//! reset at the boundary; in production its offset stays zero.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Unix time in milliseconds.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Unix time in seconds.
pub fn now_secs() -> u64 {
    now_ms() / 1000
}

/// The system clock, shifted by an offset that only tests change.
#[derive(Debug, Default)]
pub struct Clock {
    offset_ms: AtomicI64,
}

impl Clock {
    pub fn now_ms(&self) -> u64 {
        now_ms().saturating_add_signed(self.offset_ms.load(Ordering::Relaxed))
    }

    /// Makes `now_ms()` read `target_ms` at this instant (and move on from there).
    pub fn jump_to(&self, target_ms: u64) {
        let offset = target_ms as i64 - now_ms() as i64;
        self.offset_ms.store(offset, Ordering::Relaxed);
    }
}

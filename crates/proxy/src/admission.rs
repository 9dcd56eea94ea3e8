//! Bounded work: at most `max_in_flight` model calls in the process, and at
//! most `max_in_flight_per_tenant` of one tenant, so one tenant's flood
//! cannot take every slot. A call over either limit is shed with 503 and
//! `Retry-After` right after authentication, before its body is read:
//! memory stays bounded however many clients connect.
//!
//! A call holds its slots until it is answered in full (a stream until its
//! last chunk): the ledger carries them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::error::ApiError;

/// Model calls in flight in the process (`/metrics`).
pub static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);

/// Seconds a shed client is asked to wait.
const RETRY_AFTER_SECS: u64 = 1;

pub struct Admission {
    max_in_flight: usize,
    max_per_tenant: usize,
    by_tenant: Mutex<HashMap<Arc<str>, Arc<AtomicUsize>>>,
}

/// One admitted call's slots; given back on drop.
pub struct Admitted {
    tenant: Arc<AtomicUsize>,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.tenant.fetch_sub(1, Ordering::Relaxed);
        IN_FLIGHT.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Admission {
    pub fn new(max_in_flight: usize, max_per_tenant: usize) -> Self {
        Self {
            max_in_flight,
            max_per_tenant,
            by_tenant: Mutex::new(HashMap::new()),
        }
    }

    fn tenant_counter(&self, tenant_id: &str) -> Arc<AtomicUsize> {
        let mut all = self.by_tenant.lock().expect("admission lock");
        if let Some(counter) = all.get(tenant_id) {
            return counter.clone();
        }
        let counter = Arc::new(AtomicUsize::new(0));
        all.insert(Arc::from(tenant_id), counter.clone());
        counter
    }

    /// Slots for one call of `tenant_id`, or the 503 that sheds it.
    pub fn admit(&self, tenant_id: &str) -> Result<Admitted, ApiError> {
        let tenant = self.tenant_counter(tenant_id);
        // Counted first, checked after: a refusal gives both back (drop).
        let global = IN_FLIGHT.fetch_add(1, Ordering::Relaxed);
        let own = tenant.fetch_add(1, Ordering::Relaxed);
        let admitted = Admitted { tenant };
        if global >= self.max_in_flight {
            return Err(ApiError::overloaded(
                format!(
                    "the gateway is at its limit of {} calls in flight; retry shortly",
                    self.max_in_flight
                ),
                RETRY_AFTER_SECS,
            ));
        }
        if own >= self.max_per_tenant {
            return Err(ApiError::overloaded(
                format!(
                    "your organisation is at its limit of {} calls in flight; retry shortly",
                    self.max_per_tenant
                ),
                RETRY_AFTER_SECS,
            ));
        }
        Ok(admitted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_tenant_cannot_take_every_slot() {
        // IN_FLIGHT is process-wide; this test only reads its own tenants.
        let admission = Admission::new(usize::MAX, 2);
        let a1 = admission.admit("a").unwrap();
        let _a2 = admission.admit("a").unwrap();
        let shed = admission
            .admit("a")
            .err()
            .expect("a third call of a is shed");
        assert_eq!(shed.status(), hyper::StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(shed.retry_after_secs, Some(RETRY_AFTER_SECS));
        assert!(admission.admit("b").is_ok(), "another tenant still gets in");
        drop(a1);
        assert!(
            admission.admit("a").is_ok(),
            "a finished call frees its slot"
        );
    }
}

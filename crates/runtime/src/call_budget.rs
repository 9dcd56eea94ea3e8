//! The time budget of one plugin call: the CPU time the call spends, plus
//! the time it waits suspended in a host call (a WASI sleep or poll).
//!
//! A budget read off the wall clock fails honest plugins whenever the host
//! is busy: with two cores and a dozen runnable threads, a call that needs
//! 3 ms of CPU can take 15 ms to finish, and a 10 ms deadline turned it into
//! a 503. So while the call's future is being polled the plugin is charged
//! its thread's CPU time (what it actually used), and while it is suspended
//! it is charged the clock (a plugin that sleeps is cut as before). A
//! ceiling on the clock, `budget + WALL_GRACE`, still bounds a call that the
//! machine is too busy to run at all.
//!
//! Two places enforce it: the epoch-deadline callback interrupts wasm code
//! that has spent its budget ([`CallBudget::on_epoch`]), and
//! [`CallBudget::metered`] cuts a call that waits past it.

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::OnceLock;
use std::task::Poll;
use std::time::{Duration, Instant};

use wasmtime::UpdateDeadline;

use super::EPOCH_TICK;

/// How much longer than its budget a call may take on the clock while the
/// machine is too busy to give it the CPU.
pub(crate) const WALL_GRACE: Duration = Duration::from_secs(1);

/// One instance's meter; [`CallBudget::start`] resets it for each call.
/// Only the thread polling the call touches it, so relaxed atomics are
/// enough (they are atomics because the call's future may move threads
/// between polls).
#[derive(Default)]
pub(crate) struct CallBudget {
    budget_ns: AtomicU64,
    started_ns: AtomicU64,
    /// CPU of finished polls plus clock time spent suspended.
    charged_ns: AtomicU64,
    /// The thread's CPU clock when the current poll began.
    poll_cpu_ns: AtomicU64,
}

/// The call spent its budget (or its wall-clock ceiling) while suspended.
#[derive(Debug)]
pub(crate) struct Overrun {
    pub waited: Duration,
}

impl CallBudget {
    /// Arms the meter for a call of `budget`; returns the epoch deadline
    /// (in ticks) at which wasm code first checks it.
    pub fn start(&self, budget: Duration) -> u64 {
        self.budget_ns.store(nanos(budget), Relaxed);
        self.started_ns.store(clock_ns(), Relaxed);
        self.charged_ns.store(0, Relaxed);
        ticks(budget)
    }

    /// The epoch-deadline callback: interrupt code that has spent its
    /// budget (or the ceiling), otherwise check again when the rest of it
    /// could be spent.
    pub fn on_epoch(&self) -> UpdateDeadline {
        let used = self.charged_ns.load(Relaxed)
            + thread_cpu_ns().saturating_sub(self.poll_cpu_ns.load(Relaxed));
        let budget = self.budget_ns.load(Relaxed);
        if used >= budget || self.past_ceiling() {
            return UpdateDeadline::Interrupt;
        }
        UpdateDeadline::Continue(ticks(Duration::from_nanos(budget - used)))
    }

    /// Runs `work` (a call on this meter's instance), charging it as the
    /// module says, and gives up once it waited past its budget.
    pub async fn metered<T>(&self, work: impl Future<Output = T>) -> Result<T, Overrun> {
        let mut work = pin!(work);
        let mut timer = pin!(tokio::time::sleep(Duration::ZERO));
        let mut suspended_at: Option<u64> = None;
        std::future::poll_fn(|cx| {
            if let Some(since) = suspended_at.take() {
                self.charged_ns
                    .fetch_add(clock_ns().saturating_sub(since), Relaxed);
            }
            if self.spent() || self.past_ceiling() {
                return Poll::Ready(Err(Overrun {
                    waited: Duration::from_nanos(clock_ns() - self.started_ns.load(Relaxed)),
                }));
            }
            let cpu_before = thread_cpu_ns();
            self.poll_cpu_ns.store(cpu_before, Relaxed);
            let polled = work.as_mut().poll(cx);
            let cpu_after = thread_cpu_ns();
            self.charged_ns
                .fetch_add(cpu_after.saturating_sub(cpu_before), Relaxed);
            if let Poll::Ready(out) = polled {
                return Poll::Ready(Ok(out));
            }
            // Suspended: wake up when the rest of the budget is spent
            // waiting, to cut the call then.
            let now = clock_ns();
            suspended_at = Some(now);
            let left = self
                .budget_ns
                .load(Relaxed)
                .saturating_sub(self.charged_ns.load(Relaxed));
            let wake = tokio::time::Instant::now() + Duration::from_nanos(left);
            timer.as_mut().reset(wake);
            if timer.as_mut().poll(cx).is_ready() {
                cx.waker().wake_by_ref();
            }
            Poll::Pending
        })
        .await
    }

    fn spent(&self) -> bool {
        self.charged_ns.load(Relaxed) >= self.budget_ns.load(Relaxed)
    }

    fn past_ceiling(&self) -> bool {
        let elapsed = clock_ns().saturating_sub(self.started_ns.load(Relaxed));
        elapsed >= self.budget_ns.load(Relaxed) + nanos(WALL_GRACE)
    }
}

/// Epoch ticks covering `d`, plus one for the tick already under way.
pub(crate) fn ticks(d: Duration) -> u64 {
    d.as_micros().div_ceil(EPOCH_TICK.as_micros()) as u64 + 1
}

fn nanos(d: Duration) -> u64 {
    d.as_nanos().min(u64::MAX as u128) as u64
}

/// Nanoseconds on a monotonic clock since the first call.
fn clock_ns() -> u64 {
    static BASE: OnceLock<Instant> = OnceLock::new();
    nanos(BASE.get_or_init(Instant::now).elapsed())
}

/// CPU time the calling thread has used (the clock where there is no such
/// counter).
#[cfg(unix)]
fn thread_cpu_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

#[cfg(not(unix))]
fn thread_cpu_ns() -> u64 {
    clock_ns()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spin(d: Duration) {
        let started = thread_cpu_ns();
        while thread_cpu_ns() - started < nanos(d) {
            std::hint::black_box(0);
        }
    }

    #[test]
    fn cpu_spent_in_a_poll_is_charged_and_interrupts_at_the_budget() {
        let meter = CallBudget::default();
        meter.start(Duration::from_millis(20));
        meter.poll_cpu_ns.store(thread_cpu_ns(), Relaxed);
        assert!(matches!(meter.on_epoch(), UpdateDeadline::Continue(_)));
        spin(Duration::from_millis(25));
        assert!(matches!(meter.on_epoch(), UpdateDeadline::Interrupt));
    }

    #[test]
    fn time_off_the_cpu_is_not_charged_while_running() {
        let meter = CallBudget::default();
        meter.start(Duration::from_millis(20));
        meter.poll_cpu_ns.store(thread_cpu_ns(), Relaxed);
        // Descheduled (here: asleep) for longer than the budget, inside a
        // poll: not the plugin's doing.
        std::thread::sleep(Duration::from_millis(40));
        assert!(matches!(meter.on_epoch(), UpdateDeadline::Continue(_)));
    }

    #[tokio::test]
    async fn waiting_suspended_is_charged_on_the_clock() {
        let meter = CallBudget::default();
        meter.start(Duration::from_millis(20));
        let started = Instant::now();
        let waited = meter
            .metered(tokio::time::sleep(Duration::from_secs(5)))
            .await;
        assert!(waited.is_err());
        assert!(started.elapsed() < Duration::from_millis(500));
        meter.start(Duration::from_millis(200));
        let quick = meter
            .metered(tokio::time::sleep(Duration::from_millis(5)))
            .await;
        assert!(quick.is_ok());
    }
}

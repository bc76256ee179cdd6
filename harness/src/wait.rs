//! Waiting for a condition: poll it at an interval until it holds, a deadline passes, or the
//! user interrupts. The one loop behind every "retry until ready" in the harness, so each wait
//! checks the condition once more at its deadline and answers Ctrl-C the same way.

use std::time::{Duration, Instant};

use crate::interrupt::Interrupt;

/// How a [`wait_until`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Waited<T = ()> {
    /// The condition held; for a condition that produces something, that thing.
    Met(T),
    TimedOut,
    Interrupted,
}

/// What a condition answers: `true`/`false`, or `Some(value)` once there is one.
pub trait Ready {
    type Output;
    fn ready(self) -> Option<Self::Output>;
}

impl Ready for bool {
    type Output = ();
    fn ready(self) -> Option<()> {
        self.then_some(())
    }
}

impl<T> Ready for Option<T> {
    type Output = T;
    fn ready(self) -> Option<T> {
        self
    }
}

/// Polls `condition` every `every` until it is ready. It is asked first at once and last at the
/// deadline, so a wait never times out without having looked at the end. `deadline: None` waits
/// as long as it takes; `interrupt: None` means this wait does not yield to Ctrl-C (cleanup,
/// which must finish however the run ends).
pub fn wait_until<R: Ready>(
    deadline: Option<Instant>,
    every: Duration,
    interrupt: Option<&Interrupt>,
    mut condition: impl FnMut() -> R,
) -> Waited<R::Output> {
    loop {
        if let Some(out) = condition().ready() {
            return Waited::Met(out);
        }
        if interrupt.is_some_and(Interrupt::is_set) {
            return Waited::Interrupted;
        }
        let pause = match deadline {
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Waited::TimedOut;
                }
                every.min(left)
            }
            None => every,
        };
        std::thread::sleep(pause);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn met_at_once_does_not_sleep() {
        let t = Instant::now();
        let out = wait_until(
            Some(t + Duration::from_secs(10)),
            Duration::from_secs(10),
            None,
            || true,
        );
        assert_eq!(out, Waited::Met(()));
        assert!(t.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn met_after_some_polls_hands_back_the_value() {
        let calls = Cell::new(0);
        let out = wait_until(
            Some(Instant::now() + Duration::from_secs(10)),
            MS,
            None,
            || {
                calls.set(calls.get() + 1);
                (calls.get() == 3).then_some("ready")
            },
        );
        assert_eq!(out, Waited::Met("ready"));
        assert_eq!(calls.get(), 3);
    }

    #[test]
    fn times_out_after_a_last_look_at_the_deadline() {
        let deadline = Instant::now() + Duration::from_millis(60);
        let last = Cell::new(None);
        let out = wait_until(Some(deadline), Duration::from_millis(25), None, || {
            last.set(Some(Instant::now()));
            false
        });
        assert_eq!(out, Waited::TimedOut);
        assert!(
            last.get().unwrap() >= deadline,
            "the last look was before the deadline"
        );
        // It sleeps only up to the deadline, not a whole interval past it.
        assert!(Instant::now() < deadline + Duration::from_millis(25) + Duration::from_millis(500));
    }

    #[test]
    fn a_past_deadline_still_asks_once() {
        let calls = Cell::new(0);
        let out = wait_until(Some(Instant::now()), Duration::from_secs(10), None, || {
            calls.set(calls.get() + 1);
            false
        });
        assert_eq!(out, Waited::TimedOut);
        assert_eq!(calls.get(), 1);
    }

    #[test]
    fn an_interrupt_ends_the_wait_but_a_met_condition_wins() {
        let stop = Interrupt::new();
        stop.trigger();
        let far = Some(Instant::now() + Duration::from_secs(60));
        assert_eq!(
            wait_until(far, MS, Some(&stop), || false),
            Waited::Interrupted
        );
        assert_eq!(wait_until(far, MS, Some(&stop), || true), Waited::Met(()));
        // A wait that does not take the flag does not see it.
        assert_eq!(
            wait_until(Some(Instant::now() + 5 * MS), MS, None, || false),
            Waited::TimedOut
        );
    }

    #[test]
    fn an_interrupt_raised_while_waiting_is_seen_within_an_interval() {
        let stop = Interrupt::new();
        let raiser = stop.clone();
        let t = Instant::now();
        let thread = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            raiser.trigger();
        });
        let out = wait_until(None, Duration::from_millis(10), Some(&stop), || false);
        thread.join().unwrap();
        assert_eq!(out, Waited::Interrupted);
        assert!(t.elapsed() < Duration::from_secs(5));
    }
}

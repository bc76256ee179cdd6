//! A step's independent libvirt calls at once: `start: [vm1, vm2]` and `destroy: [vm1, vm2]`
//! name guests whose order the step does not test, and libvirt serialises only calls on the
//! same domain, so under TCG two guests start in about the time of one.

/// `call` for every item, each on its own thread (one item: on this one), the results in the
/// items' order. The calls must not depend on one another.
pub fn each_at_once<I: Sync, T: Send>(items: &[I], call: impl Fn(&I) -> T + Sync) -> Vec<T> {
    if items.len() < 2 {
        return items.iter().map(&call).collect();
    }
    std::thread::scope(|s| {
        let handles: Vec<_> = items.iter().map(|i| s.spawn(|| call(i))).collect();
        handles
            .into_iter()
            .map(|h| match h.join() {
                Ok(t) => t,
                // The call's panic is the step's, as it would have been on this thread.
                Err(p) => std::panic::resume_unwind(p),
            })
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Barrier};
    use std::time::Duration;

    #[test]
    fn results_keep_the_items_order() {
        let out = each_at_once(&[3u64, 1, 2], |n| {
            std::thread::sleep(Duration::from_millis(n * 10));
            n * 2
        });
        assert_eq!(out, vec![6, 2, 4]);
    }

    #[test]
    fn the_calls_really_overlap() {
        // Each call waits for the other: run one after the other, this would never return.
        let barrier = Arc::new(Barrier::new(2));
        let out = each_at_once(&["a", "b"], |s| {
            barrier.wait();
            s.len()
        });
        assert_eq!(out, vec![1, 1]);
    }

    #[test]
    fn one_item_runs_on_this_thread() {
        let me = std::thread::current().id();
        assert_eq!(
            each_at_once(&[()], |_| std::thread::current().id()),
            vec![me]
        );
    }
}

//! One timer queue for every transaction timer of the proxy.
//!
//! Transactions arm many short timers (A, E, G retransmissions; B, C, F, H
//! timeouts; D, I, J, K, L, M clean-up) and almost never cancel them: a
//! timer that fires after its state has moved on is simply ignored by the
//! state machine. So a binary heap of deadlines drained by one thread is
//! enough: arming is a push under a mutex, and there is no per-timer task or
//! cancellation bookkeeping.
//!
//! Deadlines are rounded up to a [`TICK`]: the draining thread then wakes
//! once per tick for every timer due in it, instead of once per timer
//! (measured: per-timer wakeups were a visible share of the proxy's CPU at
//! 1,000 calls/s, in context switches). A tick is far below T1 (500 ms),
//! the finest interval the RFC timers use; Kamailio's tm rounds its
//! retransmission timers to 62.5 ms. Under steady load some timer is due
//! in every tick, so the tick is also how often the thread wakes: 20 ms
//! rather than 5 ms took three quarters of those wake-ups out (each costs
//! a context switch, and on a VM the wake-up of an idle vCPU).
//!
//! The thread sleeps on a condition variable of the heap's mutex
//! ([`TimerQueue::wait_due`]), woken early only when a timer earlier than
//! every other one is armed. (A tokio task with a `sleep_until` per tick,
//! as before, woke a second runtime thread on each tick to move the
//! runtime's own timer: two context switches and an eventfd write per tick,
//! a few percent of the proxy's CPU per call.)
//!
//! An entry is 24 bytes: the deadline in ticks and a sequence number packed
//! into one `u64` (the sequence keeps timers due in the same tick in the
//! order they were armed), and the event. A proxy at 2,000 calls/s holds
//! several hundred thousand armed timers (the 64·T1 clean-up timers of
//! finished transactions among them), so the entry size is most of what
//! the queue costs.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

struct Entry<E> {
    /// `tick << SEQ_BITS | seq`, ticks counted from the queue's base.
    key: u64,
    event: E,
}

/// Bits of the sequence number in an entry's key: timers armed in the same
/// tick keep their order up to 16 million of them; 40 bits of ticks last
/// 174 years.
const SEQ_BITS: u32 = 24;

impl<E> PartialEq for Entry<E> {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}
impl<E> Eq for Entry<E> {}
impl<E> PartialOrd for Entry<E> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<E> Ord for Entry<E> {
    /// Reversed, so the max-heap pops the earliest deadline first.
    fn cmp(&self, other: &Self) -> Ordering {
        other.key.cmp(&self.key)
    }
}

/// The granularity of deadlines.
pub const TICK: Duration = Duration::from_millis(20);

/// Deadlines with their events; see the module docs.
pub struct TimerQueue<E> {
    /// Deadlines are counted in ticks from here.
    base: Instant,
    heap: Mutex<BinaryHeap<Entry<E>>>,
    seq: AtomicU64,
    wake: Condvar,
    /// Set by [`TimerQueue::interrupt`]: the waiting thread returns.
    interrupted: std::sync::atomic::AtomicBool,
}

impl<E> std::fmt::Debug for TimerQueue<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TimerQueue").field("armed", &self.len()).finish()
    }
}

impl<E> Default for TimerQueue<E> {
    fn default() -> Self {
        TimerQueue {
            base: Instant::now(),
            heap: Mutex::new(BinaryHeap::new()),
            seq: AtomicU64::new(0),
            wake: Condvar::new(),
            interrupted: std::sync::atomic::AtomicBool::new(false),
        }
    }
}

impl<E> TimerQueue<E> {
    /// Fires `event` after `after`.
    pub fn arm(&self, after: Duration, event: E) {
        let exact = (Instant::now() + after).duration_since(self.base).as_nanos();
        let tick = exact.div_ceil(TICK.as_nanos()) as u64;
        let seq = self.seq.fetch_add(1, AtomicOrdering::Relaxed) & ((1 << SEQ_BITS) - 1);
        let key = tick << SEQ_BITS | seq;
        let earliest = {
            let mut heap = self.lock();
            heap.push(Entry { key, event });
            heap.peek().is_some_and(|e| e.key == key)
        };
        if earliest {
            self.wake.notify_one();
        }
    }

    fn lock(&self) -> MutexGuard<'_, BinaryHeap<Entry<E>>> {
        self.heap.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The instant an entry's tick starts.
    fn instant(&self, key: u64) -> Instant {
        let tick = TICK.as_nanos() as u64;
        self.base + Duration::from_nanos((key >> SEQ_BITS).saturating_mul(tick))
    }

    /// Timers armed and not yet fired.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Removes and returns the events due at `now`, and the next deadline.
    pub fn due(&self, now: Instant) -> (Vec<E>, Option<Instant>) {
        let mut heap = self.lock();
        let out = self.pop_due(&mut heap, now);
        (out, heap.peek().map(|e| self.instant(e.key)))
    }

    fn pop_due(&self, heap: &mut BinaryHeap<Entry<E>>, now: Instant) -> Vec<E> {
        let mut out = Vec::new();
        while heap.peek().is_some_and(|e| self.instant(e.key) <= now) {
            out.extend(heap.pop().map(|e| e.event));
        }
        out
    }

    /// Blocks until some events are due and returns them, or returns none
    /// after `at_most` (so the caller can look at its stop flag).
    pub fn wait_due(&self, at_most: Duration) -> Vec<E> {
        let give_up = Instant::now() + at_most;
        let mut heap = self.lock();
        loop {
            let now = Instant::now();
            let due = self.pop_due(&mut heap, now);
            if !due.is_empty()
                || now >= give_up
                || self.interrupted.swap(false, AtomicOrdering::AcqRel)
            {
                return due;
            }
            let next = heap.peek().map_or(give_up, |e| self.instant(e.key).min(give_up));
            heap = self
                .wake
                .wait_timeout(heap, next.saturating_duration_since(now))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Makes a thread in [`TimerQueue::wait_due`] return now (to stop it).
    pub fn interrupt(&self) {
        let _heap = self.lock(); // not between the waiter's check and its wait
        self.interrupted.store(true, AtomicOrdering::Release);
        self.wake.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_come_out_in_deadline_order() {
        let q = TimerQueue::default();
        let start = Instant::now();
        // Deadlines round up to the next tick: 4 ticks and a little is due
        // at 5, 6 ticks and a little at 7.
        q.arm(6 * TICK, 3);
        q.arm(2 * TICK, 1);
        q.arm(4 * TICK, 2);
        q.arm(4 * TICK, 22);
        let (now, next) = q.due(start);
        assert!(now.is_empty());
        assert!(next.is_some_and(|n| n >= start + 2 * TICK));
        assert_eq!(q.due(start + 5 * TICK).0, vec![1, 2, 22]);
        assert_eq!(q.len(), 1);
    }

    #[test]
    fn wait_due_wakes_for_an_earlier_timer_and_gives_up_in_time() {
        let q = std::sync::Arc::new(TimerQueue::default());
        q.arm(Duration::from_secs(60), 1);
        let q2 = std::sync::Arc::clone(&q);
        let armer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(10));
            q2.arm(Duration::from_millis(20), 2);
        });
        let start = Instant::now();
        assert_eq!(q.wait_due(Duration::from_secs(10)), vec![2]);
        assert!(start.elapsed() < Duration::from_secs(5), "woken by the earlier timer");
        armer.join().unwrap();
        assert!(q.wait_due(Duration::from_millis(20)).is_empty(), "nothing due within at_most");
        assert_eq!(q.len(), 1);
    }
}

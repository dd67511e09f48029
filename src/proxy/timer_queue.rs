//! One timer queue for every transaction timer of the proxy.
//!
//! Transactions arm many short timers (A, E, G retransmissions; B, C, F, H
//! timeouts; D, I, J, K, L, M clean-up) and almost never cancel them: a
//! timer that fires after its state has moved on is simply ignored by the
//! state machine. So a binary heap of deadlines drained by one task is
//! enough: arming is a push under a mutex, and there is no per-timer task or
//! cancellation bookkeeping.
//!
//! Deadlines are rounded up to a [`TICK`]: the draining task then wakes once
//! per tick for every timer due in it, instead of once per timer (measured:
//! per-timer wakeups were a visible share of the proxy's CPU at 1,000
//! calls/s, in context switches). A tick is far below T1 (500 ms), the
//! finest interval the RFC timers use.
//!
//! An entry is 24 bytes: the deadline in ticks and a sequence number packed
//! into one `u64` (the sequence keeps timers due in the same tick in the
//! order they were armed), and the event. A proxy at 2,000 calls/s holds
//! several hundred thousand armed timers (the 64·T1 clean-up timers of
//! finished transactions among them), so the entry size is most of what
//! the queue costs.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

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
pub const TICK: Duration = Duration::from_millis(5);

/// Deadlines with their events; see the module docs.
pub struct TimerQueue<E> {
    /// Deadlines are counted in ticks from here.
    base: Instant,
    heap: Mutex<BinaryHeap<Entry<E>>>,
    seq: AtomicU64,
    wake: Notify,
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
            wake: Notify::new(),
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
            let mut heap = self.heap.lock().unwrap_or_else(|e| e.into_inner());
            heap.push(Entry { key, event });
            heap.peek().is_some_and(|e| e.key == key)
        };
        if earliest {
            self.wake.notify_one();
        }
    }

    /// The instant an entry's tick starts.
    fn instant(&self, key: u64) -> Instant {
        let tick = TICK.as_nanos() as u64;
        self.base + Duration::from_nanos((key >> SEQ_BITS).saturating_mul(tick))
    }

    /// Timers armed and not yet fired.
    pub fn len(&self) -> usize {
        self.heap.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Removes and returns the events due at `now`, and the next deadline.
    pub fn due(&self, now: Instant) -> (Vec<E>, Option<Instant>) {
        let mut heap = self.heap.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = Vec::new();
        while heap.peek().is_some_and(|e| self.instant(e.key) <= now) {
            out.extend(heap.pop().map(|e| e.event));
        }
        (out, heap.peek().map(|e| self.instant(e.key)))
    }

    /// Waits until `next` (or forever) or until an earlier timer is armed.
    pub async fn wait(&self, next: Option<Instant>) {
        match next {
            Some(at) => {
                tokio::select! {
                    _ = tokio::time::sleep_until(at) => {}
                    _ = self.wake.notified() => {}
                }
            }
            None => self.wake.notified().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_come_out_in_deadline_order() {
        let q = TimerQueue::default();
        let start = Instant::now();
        q.arm(Duration::from_millis(30), 3);
        q.arm(Duration::from_millis(10), 1);
        q.arm(Duration::from_millis(20), 2);
        q.arm(Duration::from_millis(20), 22);
        let (now, next) = q.due(start);
        assert!(now.is_empty());
        assert!(next.is_some_and(|n| n >= start + Duration::from_millis(10)));
        assert_eq!(q.due(start + Duration::from_millis(25)).0, vec![1, 2, 22]);
        assert_eq!(q.len(), 1);
    }
}

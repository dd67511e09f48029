//! One timer queue for every transaction timer of the proxy.
//!
//! Transactions arm many short timers (A, E, G retransmissions; B, C, F, H
//! timeouts; D, I, J, K, L, M clean-up) and seldom need one gone: a timer
//! that fires after its state has moved on is simply ignored by the state
//! machine. So a queue of deadlines drained by one thread is enough: arming
//! is an append under a mutex, and there is no per-timer task. The one
//! timer nearly always left so, a branch's Timer A (E) once a reply came,
//! is cancelled by the handle [`TimerQueue::arm`] returned (its entry
//! emptied in place): otherwise it fired for every call, and the timer
//! thread looked up the transaction only to find nothing to do.
//!
//! The queue is a wheel of [`TICK`]-wide slots, one per tick of the next
//! 82 seconds, each a list in the order armed; later deadlines wait in a
//! heap until they come within its span. Arming appends to its tick's list
//! and draining takes each due list whole, where a binary heap of the
//! several hundred thousand timers a busy proxy holds cost a sift through
//! a dozen levels for each push and pop, most of them cache misses (the
//! heap's push was 1% of a stateful call's CPU on the receive thread, and
//! the loop that popped it two fifths of the timer thread's).
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
//! The thread sleeps on a condition variable of the wheel's mutex
//! ([`TimerQueue::wait_due`]), woken early only when a timer earlier than
//! the one it waits for is armed. (A tokio task with a `sleep_until` per
//! tick, as before, woke a second runtime thread on each tick to move the
//! runtime's own timer: two context switches and an eventfd write per tick,
//! a few percent of the proxy's CPU per call.)
//!
//! An event in a slot costs its own size (16 bytes for a transaction's),
//! one in the heap 8 more: the deadline in ticks and a sequence number
//! packed into one `u64` (the sequence keeps timers due in the same tick in
//! the order they were armed). A proxy at 2,000 calls/s holds several
//! hundred thousand armed timers (the 64·T1 clean-up timers of finished
//! transactions among them), so the entry size is most of what the queue
//! costs.

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

/// Ticks the wheel spans: 4,096 of 20 ms, 82 s, beyond every timer a
/// transaction arms but Timer C (3 minutes by default), which waits in the
/// overflow heap until its tick comes within the span.
const WHEEL: u64 = 4096;

/// Where [`TimerQueue::arm`] put an event, to cancel it by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerHandle {
    tick: u64,
    index: u32,
}

/// What the lock guards: the wheel, its overflow, where draining stands.
struct Wheel<E> {
    /// `slots[tick % WHEEL]` holds, in the order armed, the events of the
    /// one tick in `cursor .. cursor + WHEEL` that maps to it (`None`: a
    /// cancelled one).
    slots: Vec<Vec<Option<E>>>,
    /// Entries in the slots, cancelled ones included.
    in_slots: usize,
    /// Cancelled entries in the slots.
    cancelled: usize,
    /// Deadlines at or past `cursor + WHEEL`, earliest first.
    overflow: BinaryHeap<Entry<E>>,
    /// The next tick to drain: every tick before it has been.
    cursor: u64,
    /// The tick a sleeping [`TimerQueue::wait_due`] wakes at (0 when none
    /// sleeps): an arm earlier than it wakes the thread.
    wake_at: u64,
}

/// Deadlines with their events; see the module docs.
pub struct TimerQueue<E> {
    /// Deadlines are counted in ticks from here.
    base: Instant,
    wheel: Mutex<Wheel<E>>,
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
            wheel: Mutex::new(Wheel {
                slots: (0..WHEEL).map(|_| Vec::new()).collect(),
                in_slots: 0,
                cancelled: 0,
                overflow: BinaryHeap::new(),
                cursor: 0,
                wake_at: 0,
            }),
            seq: AtomicU64::new(0),
            wake: Condvar::new(),
            interrupted: std::sync::atomic::AtomicBool::new(false),
        }
    }
}

impl<E> Wheel<E> {
    fn slot(&mut self, tick: u64) -> &mut Vec<Option<E>> {
        &mut self.slots[(tick % WHEEL) as usize]
    }

    /// Files an event due at `tick` (one already past is due at the
    /// cursor); where it went in the wheel, if it did.
    fn insert(&mut self, tick: u64, key: u64, event: E) -> Option<TimerHandle> {
        let tick = tick.max(self.cursor);
        if tick < self.cursor + WHEEL {
            let slot = self.slot(tick);
            slot.push(Some(event));
            let index = (slot.len() - 1) as u32;
            self.in_slots += 1;
            Some(TimerHandle { tick, index })
        } else {
            self.overflow.push(Entry { key, event });
            None
        }
    }

    /// Takes out the event `handle` names, unless its tick was drained.
    fn cancel(&mut self, handle: TimerHandle) {
        if handle.tick < self.cursor {
            return;
        }
        let entry = self.slot(handle.tick).get_mut(handle.index as usize);
        if entry.is_some_and(|e| e.take().is_some()) {
            self.cancelled += 1;
        }
    }

    /// Moves the overflow's events whose ticks came within the span into
    /// their slots. Those ticks were out of the span until now, so their
    /// slots hold nothing of theirs yet, and the heap gives them in the
    /// order armed.
    fn take_in(&mut self) {
        while self.overflow.peek().is_some_and(|e| e.key >> SEQ_BITS < self.cursor + WHEEL) {
            let Some(e) = self.overflow.pop() else { break };
            let tick = e.key >> SEQ_BITS;
            self.slot(tick).push(Some(e.event));
            self.in_slots += 1;
        }
    }

    /// Appends to `out` the events of every tick up to `now_tick`, tick by
    /// tick in order.
    fn drain(&mut self, now_tick: u64, out: &mut Vec<E>) {
        while self.cursor <= now_tick {
            if self.in_slots == 0 {
                // Nothing in the span: skip to the overflow's first tick,
                // or past now.
                let first = self.overflow.peek().map_or(u64::MAX, |e| e.key >> SEQ_BITS);
                let to = first.min(now_tick + 1);
                if to > self.cursor {
                    self.cursor = to;
                    self.take_in();
                    continue;
                }
            }
            // The list goes with its events: a slot that kept its capacity
            // would hold the most it ever held, and with 4,096 of them that
            // high-water mark crept up round after round of a soak.
            let slot = std::mem::take(self.slot(self.cursor));
            let (taken, before) = (slot.len(), out.len());
            out.extend(slot.into_iter().flatten());
            self.in_slots -= taken;
            self.cancelled -= taken - (out.len() - before);
            self.cursor += 1;
            self.take_in();
        }
    }

    /// The first tick with an event, if any.
    fn next_tick(&self) -> Option<u64> {
        if self.in_slots > 0
            && let Some(t) = (self.cursor..self.cursor + WHEEL)
                .find(|&t| !self.slots[(t % WHEEL) as usize].is_empty())
        {
            return Some(t);
        }
        self.overflow.peek().map(|e| e.key >> SEQ_BITS)
    }

    fn len(&self) -> usize {
        self.in_slots - self.cancelled + self.overflow.len()
    }
}

impl<E> TimerQueue<E> {
    /// Fires `event` after `after`. The handle cancels it; there is none
    /// for a deadline beyond the wheel's span.
    pub fn arm(&self, after: Duration, event: E) -> Option<TimerHandle> {
        let exact = (Instant::now() + after).duration_since(self.base).as_nanos();
        let tick = exact.div_ceil(TICK.as_nanos()) as u64;
        let seq = self.seq.fetch_add(1, AtomicOrdering::Relaxed) & ((1 << SEQ_BITS) - 1);
        let key = tick << SEQ_BITS | seq;
        let (handle, wake) = {
            let mut wheel = self.lock();
            let handle = wheel.insert(tick, key, event);
            let earlier = tick < wheel.wake_at;
            if earlier {
                wheel.wake_at = tick;
            }
            (handle, earlier)
        };
        if wake {
            self.wake.notify_one();
        }
        handle
    }

    /// Takes out a timer that has not fired. Cancelling one that fired, or
    /// one already cancelled, does nothing.
    pub fn cancel(&self, handle: TimerHandle) {
        self.lock().cancel(handle);
    }

    fn lock(&self) -> MutexGuard<'_, Wheel<E>> {
        self.wheel.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The tick `now` falls in: every deadline in it or before is due.
    fn tick_of(&self, now: Instant) -> u64 {
        (now.saturating_duration_since(self.base).as_nanos() / TICK.as_nanos()) as u64
    }

    /// The instant a tick starts.
    fn instant(&self, tick: u64) -> Instant {
        self.base + Duration::from_nanos(tick.saturating_mul(TICK.as_nanos() as u64))
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
        let mut wheel = self.lock();
        let mut out = Vec::new();
        wheel.drain(self.tick_of(now), &mut out);
        (out, wheel.next_tick().map(|t| self.instant(t)))
    }

    /// Blocks until some events are due and returns them, or returns none
    /// after `at_most` (so the caller can look at its stop flag).
    pub fn wait_due(&self, at_most: Duration) -> Vec<E> {
        let give_up = Instant::now() + at_most;
        let mut wheel = self.lock();
        let mut due = Vec::new();
        loop {
            let now = Instant::now();
            wheel.drain(self.tick_of(now), &mut due);
            if !due.is_empty()
                || now >= give_up
                || self.interrupted.swap(false, AtomicOrdering::AcqRel)
            {
                wheel.wake_at = 0;
                return due;
            }
            let next_tick = wheel.next_tick();
            let next = next_tick.map_or(give_up, |t| self.instant(t).min(give_up));
            // Woken early by an arm whose tick comes before this one.
            wheel.wake_at = next_tick.unwrap_or(u64::MAX);
            wheel = self
                .wake
                .wait_timeout(wheel, next.saturating_duration_since(now))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Makes a thread in [`TimerQueue::wait_due`] return now (to stop it).
    pub fn interrupt(&self) {
        let _wheel = self.lock(); // not between the waiter's check and its wait
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

    /// Arms `event` for the middle of the tick before `tick`, which rounds
    /// up to `tick` (the tests drain at instants of their choosing; arming
    /// reads the clock, a little later than here).
    fn arm_at<E>(q: &TimerQueue<E>, tick: u64, event: E) {
        q.arm((q.instant(tick) - TICK / 2).saturating_duration_since(Instant::now()), event);
    }

    /// Deadlines beyond the wheel's span wait in the heap and come out in
    /// deadline order, and in the order armed within a tick, with those
    /// armed into the wheel directly; an empty wheel is skipped over.
    #[test]
    fn far_deadlines_cross_into_the_wheel_in_order() {
        let q = TimerQueue::default();
        let at = |tick: u64| q.instant(tick);
        arm_at(&q, WHEEL + 10, "far-a");
        arm_at(&q, 3 * WHEEL, "farther");
        arm_at(&q, WHEEL + 10, "far-b");
        arm_at(&q, 3, "near");
        assert_eq!(q.len(), 4);
        let (due, next) = q.due(at(5));
        assert_eq!(due, vec!["near"]);
        assert_eq!(next, Some(at(WHEEL + 10)));
        // Half the span on, the far tick is within it: one armed for it now
        // goes after the two armed before.
        assert!(q.due(at(WHEEL / 2)).0.is_empty());
        arm_at(&q, WHEEL + 10, "far-c");
        assert_eq!(q.len(), 4);
        assert!(q.due(at(WHEEL + 9)).0.is_empty());
        assert_eq!(q.due(at(WHEEL + 10)).0, vec!["far-a", "far-b", "far-c"]);
        // Nothing in the wheel: the drain goes straight to the heap's tick.
        assert_eq!(q.due(at(3 * WHEEL)).0, vec!["farther"]);
        assert!(q.is_empty());
        assert_eq!(q.due(at(5 * WHEEL)), (vec![], None));
    }

    proptest::proptest! {
        /// The wheel gives what a sorted list gives: every event whose tick
        /// (or, armed after its tick was drained, the next drain) has come,
        /// by tick and then in the order armed, whether it went into a slot
        /// or through the heap, less the ones cancelled before they fired.
        #[test]
        fn the_wheel_drains_as_a_sorted_list(
            ops in proptest::collection::vec((0..3u8, 0..3 * WHEEL), 1..200)
        ) {
            let q = TimerQueue::<u64>::default();
            let mut wheel = q.lock();
            let mut reference: Vec<(u64, u64)> = Vec::new();
            let mut handles = Vec::new();
            let (mut now, mut seq) = (0u64, 0u64);
            for (op, n) in ops {
                match op {
                    0 => {
                        let tick = now + n;
                        if let Some(h) = wheel.insert(tick, tick << SEQ_BITS | seq, seq) {
                            handles.push((h, seq));
                        }
                        reference.push((tick.max(wheel.cursor), seq));
                        seq += 1;
                    }
                    1 if !handles.is_empty() => {
                        let (h, s) = handles[n as usize % handles.len()];
                        wheel.cancel(h);
                        reference.retain(|&(_, r)| r != s);
                    }
                    _ => {
                        now += n % (WHEEL + 7);
                        let mut out = Vec::new();
                        wheel.drain(now, &mut out);
                        reference.sort();
                        let split = reference.partition_point(|&(t, _)| t <= now);
                        let expected: Vec<u64> =
                            reference.drain(..split).map(|(_, s)| s).collect();
                        proptest::prop_assert_eq!(out, expected);
                    }
                }
                proptest::prop_assert_eq!(wheel.len(), reference.len());
            }
        }
    }

    #[test]
    fn a_cancelled_timer_does_not_fire() {
        let q = TimerQueue::default();
        let a = q.arm(2 * TICK, "a").unwrap();
        let b = q.arm(2 * TICK, "b").unwrap();
        assert_eq!(q.arm(TICK * (WHEEL as u32 + 1), "far"), None, "beyond the span: no handle");
        q.cancel(a);
        q.cancel(a);
        assert_eq!(q.len(), 2, "cancelled once");
        assert_eq!(q.due(q.instant(3)).0, vec!["b"]);
        q.cancel(b);
        assert_eq!(q.len(), 1, "fired already: nothing to cancel");
    }

    /// A deadline already past fires with the next drain; a slot is used
    /// again each time the wheel comes round to it.
    #[test]
    fn past_deadlines_fire_next_and_slots_come_round_again() {
        let q = TimerQueue::default();
        for round in 0..3u64 {
            let tick = round * WHEEL + 7;
            arm_at(&q, tick, round);
            assert!(q.due(q.instant(tick - 1)).0.is_empty());
            assert_eq!(q.due(q.instant(tick)).0, vec![round]);
        }
        // The cursor is far past the clock now: a timer due at once comes
        // out of the next drain.
        q.arm(Duration::ZERO, 99);
        assert_eq!(q.due(q.instant(3 * WHEEL)).0, vec![99]);
        assert!(q.is_empty());
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

//! Timers, transport errors, applying the state machines' actions, and
//! removing finished transactions.

use super::*;

impl Core {
    /// A timer fired.
    pub(in crate::proxy) fn on_timer(&self, ev: TimerEvent) -> Option<Step> {
        let id = match ev {
            TimerEvent::Server(id, _)
            | TimerEvent::Client(id, ..)
            | TimerEvent::C(id, ..)
            | TimerEvent::CancelWait(id, _) => id,
        };
        let txn_ref = self.txn.table.by_id(id)?;
        let mut t = lock(&txn_ref);
        let mut steps = Vec::new();
        let timers = &self.txn.config.timers;
        match ev {
            TimerEvent::Server(_, ServerTimer::Trying) => {
                append(&mut steps, self.send_trying(&mut t))
            }
            TimerEvent::Server(_, timer) => {
                let actions = t.server.on_timer(timer, timers);
                append(&mut steps, self.server_actions(&mut t, actions));
            }
            TimerEvent::Client(_, index, timer) => {
                let actions = t.branches.get_mut(index as usize)?.client.on_timer(timer, timers);
                append(&mut steps, self.client_actions(&mut t, index, actions));
            }
            TimerEvent::C(_, index) => {
                let b = t.branches.get_mut(index as usize)?;
                // A provisional reply since the timer was armed restarted
                // it: wait for what is left (rounded up to a tick).
                let left = b.provisional_at.map_or(std::time::Duration::ZERO, |at| {
                    (at + timers.timer_c).saturating_duration_since(std::time::Instant::now())
                });
                if b.client.is_pending() && !left.is_zero() {
                    self.txn.timers.arm(left, ev);
                } else if b.client.is_pending() {
                    if b.provisional {
                        if b.cancel != CancelState::Sent {
                            steps.extend(self.send_cancel(&mut t, index));
                        }
                    } else {
                        append(&mut steps, self.abandon(&mut t, index, 408));
                    }
                }
            }
            TimerEvent::CancelWait(_, index) => {
                if t.branches.get(index as usize)?.client.is_pending() {
                    append(&mut steps, self.abandon(&mut t, index, 408));
                }
            }
        }
        append(&mut steps, self.remove_if_done(&mut t));
        batch(steps)
    }

    /// Sending branch `index` of transaction `id` failed.
    pub(in crate::proxy) fn branch_send_failed(&self, id: u64, index: u32) -> Option<Step> {
        let txn_ref = self.txn.table.by_id(id)?;
        let mut t = lock(&txn_ref);
        let actions = t.branches.get_mut(index as usize)?.client.on_transport_error();
        let mut steps = Vec::new();
        if !actions.is_empty() {
            t.branches[index as usize].code = 503;
            append(&mut steps, self.finish_if_done(&mut t));
        }
        append(&mut steps, self.remove_if_done(&mut t));
        batch(steps)
    }

    /// The branch whose request carried Via branch `via_branch` times out
    /// now, as when its Timer B or F fires without a reply (`sipc test`
    /// uses it instead of waiting 32 s).
    pub fn time_out_branch(&self, via_branch: &str) -> Option<Step> {
        let (id, index, _) = self.txn.parse_branch(via_branch)?;
        let txn_ref = self.txn.table.by_id(id)?;
        let mut t = lock(&txn_ref);
        if !t.branches.get(index as usize)?.client.is_pending() {
            return None;
        }
        let mut steps = self.abandon(&mut t, index, 408);
        append(&mut steps, self.remove_if_done(&mut t));
        batch(steps)
    }

    /// Gives up on a branch as if it answered `code` (a timeout).
    pub(super) fn abandon(&self, t: &mut Txn, index: u32, code: u16) -> Vec<Step> {
        report_final(t, index as usize, 408);
        let b = &mut t.branches[index as usize];
        b.client.abandon();
        b.code = code;
        b.timed_out = true;
        self.finish_if_done(t)
    }

    pub(super) fn client_actions(
        &self,
        t: &mut Txn,
        index: u32,
        actions: impl IntoIterator<Item = ClientAction>,
    ) -> Vec<Step> {
        let mut steps = Vec::new();
        for a in actions {
            match a {
                ClientAction::Retransmit => {
                    let b = &t.branches[index as usize];
                    steps.push(send(b.target, b.kept.clone()));
                }
                ClientAction::Arm(timer, after) => {
                    let handle = self.txn.timers.arm(after, TimerEvent::Client(t.id, index, timer));
                    if matches!(timer, ClientTimer::A | ClientTimer::E) {
                        t.branches[index as usize].retransmit = handle;
                    }
                }
                ClientAction::Timeout => {
                    report_final(t, index as usize, 408);
                    let b = &mut t.branches[index as usize];
                    b.code = 408;
                    b.timed_out = true;
                    append(&mut steps, self.finish_if_done(t));
                }
                ClientAction::SendAck | ClientAction::Deliver | ClientAction::Terminate => {}
            }
        }
        steps
    }

    pub(super) fn server_actions(
        &self,
        t: &mut Txn,
        actions: impl IntoIterator<Item = ServerAction>,
    ) -> Vec<Step> {
        let mut steps = Vec::new();
        for a in actions {
            match a {
                ServerAction::Send(data) => steps.push(reply(t, data)),
                ServerAction::Arm(timer, after) => {
                    self.txn.timers.arm(after, TimerEvent::Server(t.id, timer));
                }
                ServerAction::Terminate => {}
            }
        }
        append(&mut steps, self.remove_if_done(t));
        steps
    }

    /// Compacts the transaction once nothing can be routed in it (see
    /// [`compact`]), and forgets it once its server side and every branch
    /// ended.
    pub(super) fn remove_if_done(&self, t: &mut Txn) -> Vec<Step> {
        compact(t);
        let server_done = t.server.state() == ServerState::Terminated;
        let branches_done = t
            .branches
            .iter()
            .all(|b| matches!(b.client.state(), crate::txn::ClientState::Terminated));
        if server_done && branches_done && t.resolving == 0 && !t.removed {
            t.removed = true;
            self.txn.table.remove(&t.key, t.id);
        }
        Vec::new()
    }

    /// Live transactions.
    pub fn transactions(&self) -> usize {
        self.txn.table.len()
    }

    /// Timers armed and not yet fired.
    pub fn armed_timers(&self) -> usize {
        self.txn.timers.len()
    }

    /// Runs the transaction timers on a thread of their own while the core
    /// lives; after `stop` turns true it ends once no transaction is left
    /// (the server's grace period bounds that). The returned task ends with
    /// the thread. Steps the timers lead to are carried out as a UDP receive
    /// thread does ([`Core::run_step_now`]): UDP sends on the thread, the
    /// rest on the runtime this is called from.
    pub fn start_timers(
        self: &Arc<Self>,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(self);
        let queue = Arc::clone(&self.txn.timers);
        let stopping = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let runtime = tokio::runtime::Handle::current();
        let flag = Arc::clone(&stopping);
        let (ended, mut thread_ended) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new().name("sipc-timers".into()).spawn(move || {
            let _rt = runtime.enter();
            let _ended = ended; // dropped when the thread ends, however it ends
            loop {
                // At most a second between looks at the stop flag.
                let due = queue.wait_due(std::time::Duration::from_secs(1));
                let Some(core) = weak.upgrade() else { return };
                for ev in due {
                    core.fire(ev);
                }
                if flag.load(Ordering::Acquire) && core.transactions() == 0 {
                    return;
                }
            }
        });
        if let Err(e) = thread {
            tracing::error!("cannot start the timer thread: {e}");
        }
        let queue = Arc::clone(&self.txn.timers);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = &mut thread_ended => return,
                    r = stop.changed(), if !stopping.load(Ordering::Acquire) => {
                        if r.is_err() || *stop.borrow() {
                            stopping.store(true, Ordering::Release);
                            queue.interrupt();
                        }
                    }
                }
            }
        })
    }

    /// Runs the due timer `ev` and sends what it leads to. A bug on one
    /// transaction's path must not end the timer thread (every transaction
    /// would then live forever): a panic is caught, counted and logged.
    pub fn fire(self: &Arc<Self>, ev: TimerEvent) {
        let fired = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            if let Some(step) = self.on_timer(ev) {
                self.run_step_now(step);
            }
        }));
        if fired.is_err() {
            self.stats.dropped_malformed.fetch_add(1, Ordering::Relaxed);
            tracing::error!(?ev, "a transaction timer panicked; the timers keep running");
        }
    }

    /// Fires every timer due by `now` on the calling thread (benchmarks
    /// drive the timers this way, without the timer thread).
    pub fn fire_due(self: &Arc<Self>, now: std::time::Instant) {
        let (due, _) = self.txn.timers.due(now);
        for ev in due {
            self.fire(ev);
        }
    }
}

//! Dialog tracking: the calls (INVITE dialogs) a configuration follows
//! with `dlg_manage()`, their profiles, timeouts and call records.
//!
//! A dialog is born when the proxy relays an initial INVITE whose request
//! route called `dlg_manage()` ([`Dialogs::create`]), from what the route
//! left in the transaction ([`Pending`]: dialog variables, profiles, a
//! maximum duration, which accounting flags mean what). The transaction
//! layer then reports the INVITE's fate: a provisional reply with a To tag
//! makes it early, the first 2xx confirms it ([`Dialogs::confirm`]), a
//! final failure ends it ([`Dialogs::fail`]). In-dialog requests are
//! matched by Call-ID and both tags ([`Dialogs::in_dialog`]); a BYE ends
//! the call, and says who hung up by its From tag.
//!
//! A confirmed dialog carries a deadline: its maximum duration when the
//! route set one (`dlg_set_timeout`), else `module dialog {
//! default_timeout }` (12 h, Kamailio's default), counted from the answer
//! and pushed back by every in-dialog request, so a call whose peers
//! vanished without a BYE ends once nothing has crossed it for that long.
//! At the deadline [`Dialogs::expired`] ends it and hands it back, and the
//! proxy sends a BYE to each side (`proxy::dialogs`).
//!
//! Every ending produces one call record ([`crate::acc::Cdr`]) when the
//! flag of its kind is set on the INVITE's transaction (`FLT_ACC` for
//! answered calls, `FLT_ACCFAILED` for failed ones, `FLT_ACCMISSED` for
//! missed ones), handed to the accounting writer, which never blocks.
//!
//! The table is sharded by Call-ID so the UDP workers do not contend on
//! one lock; it lives in [`crate::proxy::services::Services`], so dialogs
//! survive reloads, and `sipc run` writes the live ones to a file on
//! SIGTERM and reads them back at start ([`Dialogs::snapshot`],
//! [`Dialogs::restore`]), so a restart during calls loses no record.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::hash::BuildHasher;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::acc::{Accounting, Cdr, CdrKind};

const SHARDS: usize = 32;

/// The 12 hours Kamailio's dialog module waits by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(12 * 3600);

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// Which transaction flags ask for which kind of call record: the bits of
/// `module acc`'s `log_flag`, `failed_transaction_flag` and
/// `log_missed_flag` in the program the INVITE was routed by.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccMasks {
    pub answered: u64,
    pub failed: u64,
    pub missed: u64,
}

impl AccMasks {
    pub fn is_empty(&self) -> bool {
        self.answered | self.failed | self.missed == 0
    }

    fn wants(&self, kind: CdrKind, flags: u64) -> bool {
        let mask = match kind {
            CdrKind::Answered => self.answered,
            CdrKind::Failed => self.failed,
            CdrKind::Missed => self.missed,
        };
        flags & mask != 0
    }
}

/// What the request route of an initial INVITE decided about its dialog
/// (`dlg_manage()`, `set_dlg_profile`, `$dlg_var(x) = …`,
/// `dlg_set_timeout`), carried by the transaction until the dialog exists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pending {
    /// `dlg_manage()` was called: the relayed INVITE starts a dialog (a
    /// `$dlg_var` set before it is kept, but alone starts none).
    pub managed: bool,
    pub vars: Vec<(Box<str>, Box<str>)>,
    pub profiles: Vec<(Box<str>, Box<str>)>,
    /// Maximum duration after the answer, in milliseconds.
    pub max_ms: Option<u64>,
    /// The transaction's flags when the INVITE was relayed.
    pub flags: u64,
    pub masks: AccMasks,
    /// `topology_hide()`: the Call-ID the callee's side sees instead of
    /// the caller's ([`crate::proxy::topology`]).
    pub hidden: Option<Box<str>>,
}

impl Pending {
    pub fn set_var(&mut self, name: &str, value: &str) {
        set_var(&mut self.vars, name, value);
    }

    pub fn var(&self, name: &str) -> Option<&str> {
        self.vars.iter().find(|(n, _)| &**n == name).map(|(_, v)| &**v)
    }
}

fn set_var(vars: &mut Vec<(Box<str>, Box<str>)>, name: &str, value: &str) {
    match vars.iter_mut().find(|(n, _)| &**n == name) {
        Some((_, v)) => *v = value.into(),
        None => vars.push((name.into(), value.into())),
    }
}

/// One side of a dialog, as the proxy must reach it to send it a BYE.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Leg {
    /// `udp`, `tcp` or `tls`: how its messages came.
    pub transport: Box<str>,
    /// Where its messages came from (where a NATed device is reachable).
    pub addr: Option<SocketAddr>,
    /// Its Contact URI: the Request-URI of a request to it.
    pub contact: Box<str>,
    /// Route header values towards it (the Record-Route entries on its
    /// side of this proxy, nearest first).
    pub route: Vec<Box<str>>,
    /// The highest CSeq number it sent in the dialog.
    pub cseq: u32,
}

/// Where a dialog is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum State {
    /// The INVITE was relayed; nothing came back with a To tag yet.
    Unconfirmed,
    /// A provisional reply with a To tag came back.
    Early,
    /// A 2xx came back.
    Confirmed,
}

impl State {
    pub fn word(self) -> &'static str {
        match self {
            State::Unconfirmed => "unconfirmed",
            State::Early => "early",
            State::Confirmed => "confirmed",
        }
    }
}

/// One call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dialog {
    pub id: u64,
    pub state: State,
    pub call_id: Box<str>,
    pub from_tag: Box<str>,
    /// Empty until a reply brought one.
    pub to_tag: Box<str>,
    /// The From and To header values of the INVITE (To gains the tag of
    /// the answer).
    pub from: Box<str>,
    pub to: Box<str>,
    pub ruri: Box<str>,
    pub caller: Leg,
    pub callee: Leg,
    /// Where the answered branch went (`udp:IP:PORT`).
    pub dst: Box<str>,
    pub start_ms: u64,
    /// 0 until answered.
    pub answer_ms: u64,
    pub flags: u64,
    pub masks: AccMasks,
    pub vars: Vec<(Box<str>, Box<str>)>,
    pub profiles: Vec<(Box<str>, Box<str>)>,
    pub max_ms: Option<u64>,
    /// When the dialog ends unless something happens (ms since the epoch).
    pub deadline_ms: u64,
    /// `topology_hide()`: the Call-ID of the callee's side. Each side then
    /// sees only this proxy (its Via, Record-Route and Contact) and its
    /// own Call-ID; in-dialog requests are rewritten on arrival from the
    /// legs ([`Dialogs::hidden_hop`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hidden: Option<Box<str>>,
}

/// Where an in-dialog request of a hidden dialog goes, in the terms of
/// the side it goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HiddenHop {
    /// The side that sent it.
    pub from: Side,
    /// The Call-ID the receiving side knows the dialog by.
    pub call_id: Box<str>,
    /// The receiving side's Contact URI (no angle brackets).
    pub contact: Box<str>,
    /// Its Route set, nearest first.
    pub route: Vec<Box<str>>,
    /// How it is reached when it has no Route set: where its messages
    /// came from, and over what (`udp`, `tcp`, `tls`).
    pub addr: Option<SocketAddr>,
    pub transport: Box<str>,
}

impl Dialog {
    /// Which side sent a request with these From and To tags.
    pub fn side_of(&self, from_tag: &str, to_tag: &str) -> Option<Side> {
        if *self.from_tag == *from_tag && (self.to_tag.is_empty() || *self.to_tag == *to_tag) {
            Some(Side::Caller)
        } else if *self.from_tag == *to_tag && *self.to_tag == *from_tag {
            Some(Side::Callee)
        } else {
            None
        }
    }
}

/// Why a dialog ended, for the record's `hangup` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hangup {
    Caller,
    Callee,
    /// Nothing crossed the dialog for `default_timeout`.
    Timeout,
    /// Its maximum duration (`dlg_set_timeout`) passed.
    MaxDuration,
    /// The call never connected.
    None,
}

impl Hangup {
    pub fn word(self) -> &'static str {
        match self {
            Hangup::Caller => "caller",
            Hangup::Callee => "callee",
            Hangup::Timeout => "timeout",
            Hangup::MaxDuration => "max_duration",
            Hangup::None => "",
        }
    }
}

/// Which side sent an in-dialog request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Caller,
    Callee,
}

/// Counters for `sipc reload --status` and the tests.
#[derive(Debug, Default)]
pub struct DialogStats {
    pub created: AtomicU64,
    pub answered: AtomicU64,
    pub failed: AtomicU64,
    pub ended: AtomicU64,
    pub timed_out: AtomicU64,
    pub records: AtomicU64,
}

/// Settings of `module dialog`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DialogConfig {
    /// How long a confirmed dialog lives without any in-dialog request.
    pub default_timeout: Duration,
}

impl Default for DialogConfig {
    fn default() -> Self {
        DialogConfig { default_timeout: DEFAULT_TIMEOUT }
    }
}

type Shard = Mutex<HashMap<Box<str>, Dialog>>;
/// A deadline: `(ms since the epoch, dialog id, Call-ID)`.
type Deadline = Reverse<(u64, u64, Box<str>)>;
/// A profile and key.
type ProfileKey = (Box<str>, Box<str>);

/// Every dialog, by Call-ID; see the module docs.
#[derive(Debug)]
pub struct Dialogs {
    shards: Box<[Shard]>,
    hasher: foldhash::fast::FixedState,
    live: AtomicUsize,
    next_id: AtomicU64,
    /// Deadlines: `(ms, dialog id, Call-ID)`; an entry whose dialog is gone
    /// or has a later deadline now is skipped when it comes up.
    deadlines: Mutex<BinaryHeap<Deadline>>,
    /// Profile members by (profile, key).
    profiles: Mutex<HashMap<ProfileKey, u32>>,
    /// The other nodes' profile members, as last told through the
    /// cluster's Redis (`crate::cluster::counters`); empty on a lone node.
    remote_profiles: Mutex<HashMap<ProfileKey, u32>>,
    pub config: Mutex<DialogConfig>,
    pub stats: DialogStats,
    /// Where call records go (`sipc run` sets it when accounting is on).
    acc: OnceLock<Arc<Accounting>>,
    /// The BYEs sent for dialogs that timed out, until answered.
    pub byes: bye::ByeQueue,
    /// Hidden dialogs: the callee side's Call-ID → the dialog's.
    aliases: Mutex<HashMap<Box<str>, Box<str>>>,
    /// How many dialogs are hidden (one load decides whether an in-dialog
    /// request needs looking up before routing).
    hidden: AtomicUsize,
    /// Told when a deadline earlier than every other one is armed: the
    /// timeout task sleeps until the earliest deadline, not on a fixed tick
    /// (`proxy::dialogs::spawn`).
    pub wake: tokio::sync::Notify,
}

impl Default for Dialogs {
    fn default() -> Self {
        Dialogs::new(DialogConfig::default())
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The URI of a name-addr header value (From, To, Contact, Record-Route):
/// inside its angle brackets, or a bare URI up to its parameters.
pub fn uri_of(value: &str) -> &str {
    match (value.find('<'), value.find('>')) {
        (Some(a), Some(b)) if a < b => &value[a + 1..b],
        _ => value.split(';').next().unwrap_or(value).trim(),
    }
}

/// The tag parameter of a From or To header value.
pub fn tag_of(value: &str) -> &str {
    // Parameters after the URI: past a closing `>` when there is one.
    let params = match value.rfind('>') {
        Some(i) => &value[i..],
        None => value,
    };
    params
        .split(';')
        .skip(1)
        .find_map(|p| {
            let (k, v) = p.split_once('=')?;
            k.trim().eq_ignore_ascii_case("tag").then(|| v.trim())
        })
        .unwrap_or("")
}

impl Dialogs {
    pub fn new(config: DialogConfig) -> Dialogs {
        Dialogs {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: foldhash::fast::FixedState::with_seed(0x5eed_d1a1),
            live: AtomicUsize::new(0),
            next_id: AtomicU64::new(1),
            deadlines: Mutex::new(BinaryHeap::new()),
            profiles: Mutex::new(HashMap::new()),
            remote_profiles: Mutex::new(HashMap::new()),
            config: Mutex::new(config),
            stats: DialogStats::default(),
            acc: OnceLock::new(),
            byes: bye::ByeQueue::default(),
            aliases: Mutex::new(HashMap::new()),
            hidden: AtomicUsize::new(0),
            wake: tokio::sync::Notify::new(),
        }
    }

    /// Live dialogs under `topology_hide()`.
    pub fn hidden_len(&self) -> usize {
        self.hidden.load(Ordering::Relaxed)
    }

    /// The dialog's own Call-ID for `call_id`, which may be the one the
    /// callee side of a hidden dialog knows it by.
    fn key<'a>(&self, call_id: &'a str) -> std::borrow::Cow<'a, str> {
        if self.hidden_len() > 0
            && let Some(own) = lock(&self.aliases).get(call_id)
        {
            return std::borrow::Cow::Owned(own.to_string());
        }
        std::borrow::Cow::Borrowed(call_id)
    }

    fn hide(&self, d: &Dialog) {
        if let Some(alias) = &d.hidden {
            lock(&self.aliases).insert(alias.clone(), d.call_id.clone());
            self.hidden.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn unhide(&self, d: &Dialog) {
        if let Some(alias) = &d.hidden
            && lock(&self.aliases).remove(alias).is_some()
        {
            self.hidden.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// An in-dialog request of a hidden dialog, sent by one side with
    /// `call_id` and its tags: where it goes, as the other side must see
    /// it. `contact` is the request's Contact URI, if it has one: a target
    /// refresh (re-INVITE, UPDATE) makes it the sender's new Contact.
    /// `None` when the request belongs to no hidden dialog, or its
    /// receiving side is not known yet.
    pub fn hidden_hop(
        &self,
        call_id: &str,
        from_tag: &str,
        to_tag: &str,
        contact: Option<&str>,
    ) -> Option<HiddenHop> {
        if self.hidden_len() == 0 {
            return None;
        }
        let key = self.key(call_id);
        let mut shard = lock(self.shard(&key));
        let d = shard.get_mut(&*key)?;
        let alias = d.hidden.clone()?;
        let from = d.side_of(from_tag, to_tag)?;
        let (sender, receiver, receiver_call_id) = match from {
            Side::Caller => (&mut d.caller, &d.callee, alias),
            Side::Callee => (&mut d.callee, &d.caller, d.call_id.clone()),
        };
        if let Some(c) = contact.filter(|c| !c.is_empty()) {
            sender.contact = format!("<{c}>").into();
        }
        if receiver.contact.is_empty() {
            return None;
        }
        Some(HiddenHop {
            from,
            call_id: receiver_call_id,
            contact: uri_of(&receiver.contact).into(),
            route: receiver.route.clone(),
            addr: receiver.addr,
            transport: receiver.transport.clone(),
        })
    }

    /// A provisional reply with a To tag on a hidden dialog: the callee's
    /// leg is known early, so requests within the early dialog (PRACK,
    /// UPDATE) reach it.
    pub fn early_leg(&self, call_id: &str, to_tag: &str, callee: Leg, caller_route: Vec<Box<str>>) {
        let key = self.key(call_id);
        if let Some(d) = lock(self.shard(&key)).get_mut(&*key)
            && d.state != State::Confirmed
            && d.hidden.is_some()
        {
            if d.to_tag.is_empty() {
                d.to_tag = to_tag.into();
                d.state = State::Early;
            }
            if *d.to_tag == *to_tag {
                d.callee = callee;
                d.caller.route = caller_route;
            }
        }
    }

    /// Sends call records to `acc` from now on.
    pub fn set_accounting(&self, acc: Arc<Accounting>) {
        let _ = self.acc.set(acc);
    }

    pub fn accounting(&self) -> Option<&Arc<Accounting>> {
        self.acc.get()
    }

    /// Live dialogs (one atomic load: the per-message check of whether
    /// there is anything to match).
    pub fn len(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn shard(&self, call_id: &str) -> &Shard {
        &self.shards[(self.hasher.hash_one(call_id) as usize) % SHARDS]
    }

    fn timeout_ms(&self) -> u64 {
        lock(&self.config).default_timeout.as_millis() as u64
    }

    fn arm(&self, d: &Dialog) {
        self.push_deadline((d.deadline_ms, d.id, d.call_id.clone()));
    }

    /// Queues a deadline; wakes the timeout task when it comes before every
    /// other one (it may be sleeping until a later one, or with none).
    fn push_deadline(&self, e: (u64, u64, Box<str>)) {
        let at = e.0;
        let earliest = {
            let mut heap = lock(&self.deadlines);
            let earliest = heap.peek().is_none_or(|Reverse(top)| at < top.0);
            heap.push(Reverse(e));
            earliest
        };
        if earliest {
            self.wake.notify_one();
        }
    }

    /// The earliest deadline queued (ms since the epoch), if any; it may
    /// belong to a dialog that has ended since ([`Dialogs::expired`]
    /// skips those).
    pub fn next_deadline_ms(&self) -> Option<u64> {
        lock(&self.deadlines).peek().map(|Reverse(e)| e.0)
    }

    /// A dialog for an initial INVITE being relayed. `from`/`to` are the
    /// header values, `caller` how the caller is reached. An older dialog
    /// with the same Call-ID (a re-sent INVITE after a challenge) is
    /// replaced without a record: its transaction already ended.
    #[allow(clippy::too_many_arguments)]
    pub fn create(
        &self,
        call_id: &str,
        from: &str,
        to: &str,
        ruri: &str,
        caller: Leg,
        pending: Pending,
        now: u64,
    ) {
        let d = Dialog {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            state: State::Unconfirmed,
            call_id: call_id.into(),
            from_tag: tag_of(from).into(),
            to_tag: "".into(),
            from: from.into(),
            to: to.into(),
            ruri: ruri.into(),
            caller,
            callee: Leg::default(),
            dst: "".into(),
            start_ms: now,
            answer_ms: 0,
            flags: pending.flags,
            masks: pending.masks,
            vars: pending.vars,
            profiles: pending.profiles,
            max_ms: pending.max_ms,
            hidden: pending.hidden,
            // An INVITE transaction ends long before this; the deadline only
            // guards against a dialog the transaction layer never reported.
            deadline_ms: now + self.timeout_ms(),
        };
        self.add_profiles(&d.profiles);
        self.stats.created.fetch_add(1, Ordering::Relaxed);
        self.arm(&d);
        self.hide(&d);
        let old = lock(self.shard(call_id)).insert(d.call_id.clone(), d);
        match old {
            Some(old) => {
                self.remove_profiles(&old.profiles);
                self.unhide(&old);
            }
            None => {
                self.live.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// A provisional reply with a To tag.
    pub fn provisional(&self, call_id: &str, to_tag: &str) {
        let call_id = &*self.key(call_id);
        if let Some(d) = lock(self.shard(call_id)).get_mut(call_id)
            && d.state == State::Unconfirmed
            && !to_tag.is_empty()
        {
            d.state = State::Early;
            d.to_tag = to_tag.into();
        }
    }

    /// The first 2xx to the INVITE: the call is answered. `to` is the To
    /// header value of the 2xx (with the callee's tag), `flags` the
    /// transaction's flags now (`None`: a 2xx that came without its
    /// transaction, after a restart; the flags of the INVITE's relay
    /// stay). False when the dialog is unknown or was
    /// confirmed already (a second 2xx of a fork).
    #[allow(clippy::too_many_arguments)]
    pub fn confirm(
        &self,
        call_id: &str,
        to: &str,
        callee: Leg,
        caller_route: Vec<Box<str>>,
        dst: &str,
        flags: Option<u64>,
        now: u64,
    ) -> bool {
        let call_id = &*self.key(call_id);
        let mut shard = lock(self.shard(call_id));
        let Some(d) = shard.get_mut(call_id) else { return false };
        if d.state == State::Confirmed {
            return false;
        }
        d.state = State::Confirmed;
        d.to_tag = tag_of(to).into();
        d.to = to.into();
        d.callee = callee;
        d.caller.route = caller_route;
        d.dst = dst.into();
        d.answer_ms = now;
        d.flags = flags.unwrap_or(d.flags);
        d.deadline_ms = now + d.max_ms.unwrap_or_else(|| self.timeout_ms());
        let copy = (d.deadline_ms, d.id, d.call_id.clone());
        drop(shard);
        self.push_deadline(copy);
        self.stats.answered.fetch_add(1, Ordering::Relaxed);
        true
    }

    /// The INVITE failed with `code` (after the caller's CANCEL when
    /// `canceled`): the dialog ends, with a record of a failed or missed
    /// call if its flag is set.
    pub fn fail(
        &self,
        call_id: &str,
        code: u16,
        reason: &str,
        canceled: bool,
        flags: Option<u64>,
        now: u64,
    ) {
        let call_id = &*self.key(call_id);
        let mut shard = lock(self.shard(call_id));
        let Some(d) = shard.get(call_id) else { return };
        if d.state == State::Confirmed {
            return; // another branch answered
        }
        let Some(mut d) = shard.remove(call_id) else { return };
        drop(shard);
        d.flags = flags.unwrap_or(d.flags);
        self.stats.failed.fetch_add(1, Ordering::Relaxed);
        let kind = if canceled || matches!(code, 408 | 480 | 487) {
            CdrKind::Missed
        } else {
            CdrKind::Failed
        };
        self.finish(d, kind, code, reason, Hangup::None, now);
    }

    /// An in-dialog request (`method`, with its From and To tags and CSeq
    /// number) is being relayed: which side sent it, and whether it ended
    /// the call (a BYE). Pushes the deadline back. `None` when it belongs
    /// to no dialog.
    pub fn in_dialog(
        &self,
        call_id: &str,
        from_tag: &str,
        to_tag: &str,
        method: &str,
        cseq: u32,
        now: u64,
    ) -> Option<Side> {
        let call_id = &*self.key(call_id);
        let mut shard = lock(self.shard(call_id));
        let d = shard.get_mut(call_id)?;
        let side = d.side_of(from_tag, to_tag)?;
        let leg = match side {
            Side::Caller => &mut d.caller,
            Side::Callee => &mut d.callee,
        };
        if method != "ACK" && method != "CANCEL" {
            leg.cseq = leg.cseq.max(cseq);
        }
        if method == "BYE" {
            let d = shard.remove(call_id)?;
            drop(shard);
            let hangup = if side == Side::Caller { Hangup::Caller } else { Hangup::Callee };
            self.stats.ended.fetch_add(1, Ordering::Relaxed);
            if d.state == State::Confirmed {
                self.finish(d, CdrKind::Answered, 200, "OK", hangup, now);
            } else {
                // A BYE in an early dialog (RFC 3261 §15) ends it unanswered.
                self.finish(d, CdrKind::Missed, 487, "Request Terminated", Hangup::None, now);
            }
            return Some(side);
        }
        if d.state == State::Confirmed && d.max_ms.is_none() {
            d.deadline_ms = now + self.timeout_ms();
            // The old heap entry finds a later deadline and re-arms then.
        }
        Some(side)
    }

    /// Ends and returns every confirmed dialog whose deadline passed (their
    /// records written), for the proxy to send them BYEs. Unconfirmed
    /// ones past it are dropped with a record of a failed call.
    pub fn expired(&self, now: u64) -> Vec<Dialog> {
        let mut out = Vec::new();
        loop {
            let (at, id, call_id) = {
                let mut heap = lock(&self.deadlines);
                match heap.peek() {
                    Some(Reverse((at, _, _))) if *at <= now => {}
                    _ => break,
                }
                let Some(Reverse(e)) = heap.pop() else { break };
                e
            };
            let mut shard = lock(self.shard(&call_id));
            let Some(d) = shard.get(&*call_id) else { continue };
            if d.id != id {
                continue;
            }
            if d.deadline_ms > at {
                // Pushed back since this entry was armed.
                let e = (d.deadline_ms, d.id, d.call_id.clone());
                drop(shard);
                lock(&self.deadlines).push(Reverse(e));
                continue;
            }
            let Some(d) = shard.remove(&*call_id) else { continue };
            drop(shard);
            self.stats.timed_out.fetch_add(1, Ordering::Relaxed);
            if d.state == State::Confirmed {
                let hangup = if d.max_ms.is_some() { Hangup::MaxDuration } else { Hangup::Timeout };
                self.finish(d.clone(), CdrKind::Answered, 200, "OK", hangup, now);
                out.push(d);
            } else {
                self.finish(d, CdrKind::Failed, 408, "Request Timeout", Hangup::None, now);
            }
        }
        out
    }

    /// Removes the dialog and writes its record.
    fn finish(
        &self,
        d: Dialog,
        kind: CdrKind,
        status: u16,
        reason: &str,
        hangup: Hangup,
        now: u64,
    ) {
        self.live.fetch_sub(1, Ordering::Relaxed);
        self.remove_profiles(&d.profiles);
        self.unhide(&d);
        if !d.masks.wants(kind, d.flags) {
            return;
        }
        let Some(acc) = self.acc.get() else { return };
        self.stats.records.fetch_add(1, Ordering::Relaxed);
        acc.record(Cdr::of(&d, kind, status, reason, hangup.word(), now));
    }

    fn add_profiles(&self, profiles: &[(Box<str>, Box<str>)]) {
        if profiles.is_empty() {
            return;
        }
        let mut map = lock(&self.profiles);
        for p in profiles {
            *map.entry(p.clone()).or_insert(0) += 1;
        }
    }

    fn remove_profiles(&self, profiles: &[(Box<str>, Box<str>)]) {
        if profiles.is_empty() {
            return;
        }
        let mut map = lock(&self.profiles);
        for p in profiles {
            if let Some(n) = map.get_mut(p) {
                *n -= 1;
                if *n == 0 {
                    map.remove(p);
                }
            }
        }
    }

    /// Dialogs in profile `name` under `key`: this node's, and in a
    /// cluster the other nodes' as last told.
    pub fn profile_size(&self, name: &str, key: &str) -> u32 {
        let k = (Box::from(name), Box::from(key));
        let here = lock(&self.profiles).get(&k).copied().unwrap_or(0);
        let remote = lock(&self.remote_profiles);
        if remote.is_empty() {
            return here;
        }
        here + remote.get(&k).copied().unwrap_or(0)
    }

    /// This node's profile members by (profile, key), for the cluster.
    pub fn profile_counts(&self) -> Vec<(String, String, u32)> {
        lock(&self.profiles)
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|((name, key), n)| (name.to_string(), key.to_string(), *n))
            .collect()
    }

    /// The other nodes' profile members (replacing what they told before).
    pub fn set_remote_profiles(&self, counts: HashMap<(String, String), u32>) {
        *lock(&self.remote_profiles) = counts
            .into_iter()
            .map(|((name, key), n)| ((name.into_boxed_str(), key.into_boxed_str()), n))
            .collect();
    }

    /// Reads the dialog of `call_id` (`$dlg_var`, `$dlg_state`, …).
    pub fn with<R>(&self, call_id: &str, f: impl FnOnce(&Dialog) -> R) -> Option<R> {
        let call_id = &*self.key(call_id);
        lock(self.shard(call_id)).get(call_id).map(f)
    }

    /// Sets `$dlg_var(name)` of the dialog of `call_id`; false when none.
    pub fn set_var(&self, call_id: &str, name: &str, value: &str) -> bool {
        let call_id = &*self.key(call_id);
        match lock(self.shard(call_id)).get_mut(call_id) {
            Some(d) => {
                set_var(&mut d.vars, name, value);
                true
            }
            None => false,
        }
    }

    /// Every live dialog (for the snapshot at shutdown and for listing).
    pub fn all(&self) -> Vec<Dialog> {
        let mut out = Vec::with_capacity(self.len());
        for s in self.shards.iter() {
            out.extend(lock(s).values().cloned());
        }
        out.sort_by_key(|d| d.id);
        out
    }

    /// Writes every live dialog to `path` (JSON), for [`Dialogs::restore`]
    /// after a restart. Nothing is written when there is none (and an old
    /// file is removed).
    pub fn snapshot(&self, path: &std::path::Path) -> std::io::Result<usize> {
        let all = self.all();
        if all.is_empty() {
            match std::fs::remove_file(path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => return Ok(0),
            }
        }
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, serde_json::to_vec(&all).map_err(std::io::Error::other)?)?;
        std::fs::rename(&tmp, path)?;
        Ok(all.len())
    }

    /// Reads back what [`Dialogs::snapshot`] wrote and removes the file.
    pub fn restore(&self, path: &std::path::Path) -> std::io::Result<usize> {
        let data = match std::fs::read(path) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(e),
        };
        let all: Vec<Dialog> = serde_json::from_slice(&data).map_err(std::io::Error::other)?;
        let n = all.len();
        for mut d in all {
            d.id = self.next_id.fetch_add(1, Ordering::Relaxed);
            self.add_profiles(&d.profiles);
            self.arm(&d);
            self.hide(&d);
            if lock(self.shard(&d.call_id)).insert(d.call_id.clone(), d).is_none() {
                self.live.fetch_add(1, Ordering::Relaxed);
            }
        }
        std::fs::remove_file(path)?;
        Ok(n)
    }

    /// Ends the dialog of `call_id` at `at` (`sipc ctl dialogs end`): at
    /// its deadline the proxy sends a BYE to each side, and the record
    /// says `max_duration` (a deadline set from outside, which in-dialog
    /// requests do not push back). False when there is none.
    pub fn end_at(&self, call_id: &str, at: u64) -> bool {
        let call_id = &*self.key(call_id);
        let Some(id) = lock(self.shard(call_id)).get_mut(call_id).map(|d| {
            d.deadline_ms = at;
            d.max_ms.get_or_insert(0);
            d.id
        }) else {
            return false;
        };
        self.push_deadline((at, id, call_id.into()));
        true
    }

    /// Sets the deadline of every live dialog to `at` (tests, `sipc ctl`).
    pub fn end_all_at(&self, at: u64) {
        for s in self.shards.iter() {
            for d in lock(s).values_mut() {
                d.deadline_ms = at;
                self.push_deadline((at, d.id, d.call_id.clone()));
            }
        }
    }
}

/// The stats line of `sipc reload --status`.
pub fn status_line(d: &Dialogs) -> String {
    let s = &d.stats;
    format!(
        "dialogs: {} live, {} created, {} answered, {} failed, {} ended by BYE, {} timed out, {} records",
        d.len(),
        s.created.load(Ordering::Relaxed),
        s.answered.load(Ordering::Relaxed),
        s.failed.load(Ordering::Relaxed),
        s.ended.load(Ordering::Relaxed),
        s.timed_out.load(Ordering::Relaxed),
        s.records.load(Ordering::Relaxed),
    )
}

pub mod bye;

#[cfg(test)]
mod tests {
    use super::*;

    fn pending() -> Pending {
        Pending {
            profiles: vec![("per_source".into(), "127.0.0.2".into())],
            masks: AccMasks { answered: 1, failed: 2, missed: 4 },
            ..Pending::default()
        }
    }

    fn create(d: &Dialogs, call_id: &str) {
        d.create(
            call_id,
            "<sip:a@x>;tag=f1",
            "<sip:b@x>",
            "sip:b@x",
            Leg::default(),
            pending(),
            1000,
        );
    }

    #[test]
    fn tags_are_found_after_the_uri() {
        assert_eq!(tag_of("\"A\" <sip:a@x;tag=no>;tag=yes"), "yes");
        assert_eq!(tag_of("sip:a@x;tag=abc"), "abc");
        assert_eq!(tag_of("<sip:a@x>"), "");
        assert_eq!(tag_of("<sip:a@x> ; TAG = t2"), "t2");
    }

    #[test]
    fn a_call_goes_through_its_states_and_profiles_count_it() {
        let d = Dialogs::default();
        create(&d, "c1");
        assert_eq!(d.profile_size("per_source", "127.0.0.2"), 1);
        d.provisional("c1", "t9");
        assert_eq!(d.with("c1", |x| x.state), Some(State::Early));
        assert!(d.confirm(
            "c1",
            "<sip:b@x>;tag=t9",
            Leg::default(),
            vec![],
            "udp:1.2.3.4:5060",
            Some(1),
            2000
        ));
        assert!(
            !d.confirm("c1", "<sip:b@x>;tag=t8", Leg::default(), vec![], "", Some(1), 2001),
            "second 2xx"
        );
        assert_eq!(d.in_dialog("c1", "f1", "t9", "INVITE", 2, 3000), Some(Side::Caller));
        assert_eq!(d.in_dialog("c1", "zz", "t9", "BYE", 3, 3000), None, "wrong tags");
        assert_eq!(d.in_dialog("c1", "t9", "f1", "BYE", 1, 5000), Some(Side::Callee));
        assert!(d.is_empty());
        assert_eq!(d.profile_size("per_source", "127.0.0.2"), 0);
    }

    #[test]
    fn failures_end_the_dialog_unless_a_branch_answered() {
        let d = Dialogs::default();
        create(&d, "c2");
        d.confirm("c2", "<sip:b@x>;tag=t", Leg::default(), vec![], "", Some(0), 1500);
        d.fail("c2", 486, "Busy Here", false, Some(0), 1600);
        assert_eq!(d.len(), 1, "answered by another branch");
        create(&d, "c3");
        d.fail("c3", 487, "Request Terminated", true, Some(0), 1600);
        assert_eq!(d.len(), 1);
        assert_eq!(d.stats.failed.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn deadlines_end_confirmed_dialogs_and_requests_push_them_back() {
        let d = Dialogs::new(DialogConfig { default_timeout: Duration::from_secs(10) });
        create(&d, "c4");
        d.confirm("c4", "<sip:b@x>;tag=t", Leg::default(), vec![], "", Some(0), 2000);
        assert!(d.expired(11_000).is_empty());
        d.in_dialog("c4", "f1", "t", "INFO", 2, 11_000);
        assert!(d.expired(12_500).is_empty(), "pushed back to 21 s");
        let gone = d.expired(21_000);
        assert_eq!(gone.len(), 1);
        assert!(d.is_empty());
        let mut p = pending();
        p.max_ms = Some(1000);
        d.create("c5", "<sip:a@x>;tag=f", "<sip:b@x>", "sip:b@x", Leg::default(), p, 0);
        d.confirm("c5", "<sip:b@x>;tag=t", Leg::default(), vec![], "", Some(0), 100);
        d.in_dialog("c5", "f", "t", "INFO", 2, 900);
        assert_eq!(d.expired(1100).len(), 1, "a maximum duration is not pushed back");
    }

    #[tokio::test]
    async fn only_a_deadline_earlier_than_the_rest_wakes_the_timeout_task() {
        let woken = |d: &Dialogs| {
            let n = d.wake.notified();
            tokio::pin!(n);
            // A permit left by `notify_one` completes it on the first poll.
            n.as_mut().enable()
        };
        let d = Dialogs::new(DialogConfig { default_timeout: Duration::from_secs(10) });
        assert!(!woken(&d), "nothing armed");
        assert_eq!(d.next_deadline_ms(), None);
        create(&d, "w1"); // deadline 1,000 + 10 s
        assert!(woken(&d), "the first deadline");
        assert_eq!(d.next_deadline_ms(), Some(11_000));
        create(&d, "w2");
        d.confirm("w2", "<sip:b@x>;tag=t", Leg::default(), vec![], "", Some(0), 5_000);
        assert!(!woken(&d), "15 s is later than 11 s");
        assert!(d.end_at("w2", 2_000));
        assert!(woken(&d), "2 s is earlier than every other");
        assert_eq!(d.next_deadline_ms(), Some(2_000));
    }

    #[test]
    fn snapshots_restore_dialogs_and_profiles() {
        let dir = std::env::temp_dir().join(format!("sipc-dlg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("dialogs.json");
        let d = Dialogs::default();
        create(&d, "c6");
        d.confirm("c6", "<sip:b@x>;tag=t", Leg::default(), vec![], "", Some(1), 2000);
        assert!(d.set_var("c6", "credit", "30"));
        assert_eq!(d.snapshot(&path).unwrap(), 1);
        let e = Dialogs::default();
        assert_eq!(e.restore(&path).unwrap(), 1);
        assert!(!path.exists());
        assert_eq!(e.profile_size("per_source", "127.0.0.2"), 1);
        assert_eq!(e.with("c6", |x| x.vars.clone()), Some(vec![("credit".into(), "30".into())]));
        assert_eq!(e.in_dialog("c6", "f1", "t", "BYE", 5, 9000), Some(Side::Caller));
        let _ = std::fs::remove_dir_all(dir);
    }
}

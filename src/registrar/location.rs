//! The location table and REGISTER processing; see the module docs of
//! [`crate::registrar`].

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::net::SocketAddr;
use std::sync::Mutex;

use super::canonical_aor;
use crate::proxy::{Reject, Transport};
use crate::sip::{Contact, Message};

/// Registrar settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegistrarConfig {
    /// Shorter non-zero expiries get `423 Interval Too Brief`.
    pub min_expires: u32,
    /// Longer expiries are shortened to this.
    pub max_expires: u32,
    /// Used when neither the Contact nor an Expires header gives one.
    pub default_expires: u32,
    /// Most bindings per AOR (0: unlimited).
    pub max_contacts: usize,
}

impl Default for RegistrarConfig {
    fn default() -> Self {
        Self { min_expires: 60, max_expires: 3600, default_expires: 3600, max_contacts: 0 }
    }
}

/// One registered contact of an AOR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// The contact URI as registered (without `<>` and header parameters).
    pub contact: String,
    /// When it expires, in the caller's clock (seconds).
    pub expires_at: u64,
    /// `q` in thousandths; `None` when not given (sorted as 1.0).
    pub q: Option<u16>,
    pub call_id: String,
    pub cseq: u32,
    /// The Path header values of the REGISTER (RFC 3327), top first.
    pub path: Vec<String>,
    /// The source of the REGISTER when it differs from the contact's
    /// address (a NATed device): requests go there instead.
    /// (Behind NAT: the Via's sent-by is not the source, or the contact
    /// is a private address; see `register`.)
    pub received: Option<SocketAddr>,
    /// The transport the REGISTER arrived over. Requests to `received` use
    /// it: a TCP or TLS client behind NAT can only be reached over the
    /// connection it opened (the proxy reuses connections by peer).
    pub transport: Transport,
    /// `+sip.instance` (RFC 5626), with its `reg-id`.
    pub instance: Option<String>,
    pub reg_id: Option<u32>,
    /// The methods the REGISTER's Allow header listed, as a [`method_bit`]
    /// set; `None` when it had no Allow header (everything allowed).
    pub methods: Option<u32>,
    /// Registered through another node of the cluster (read from the
    /// shared table): that node keeps its NAT mapping alive, not this one.
    pub peer: bool,
}

/// The methods a binding's Allow set can name; others are always allowed.
const METHODS: &[&str] = &[
    "INVITE",
    "ACK",
    "CANCEL",
    "BYE",
    "OPTIONS",
    "REGISTER",
    "INFO",
    "PRACK",
    "UPDATE",
    "SUBSCRIBE",
    "NOTIFY",
    "REFER",
    "MESSAGE",
    "PUBLISH",
];

/// The bit of a method in an Allow set; 0 for methods not in the list.
pub fn method_bit(method: &str) -> u32 {
    METHODS.iter().position(|m| m.eq_ignore_ascii_case(method)).map_or(0, |i| 1 << i)
}

impl Binding {
    /// Where requests for this binding go when it is behind NAT: the source
    /// of its REGISTER as a SIP URI, with the transport it came over
    /// (`sip:198.51.100.7:40312;transport=tcp`), like Kamailio's
    /// `received` column.
    pub fn received_uri(&self) -> Option<String> {
        let r = self.received?;
        Some(match self.transport {
            Transport::Udp => format!("sip:{r}"),
            t => format!("sip:{r};transport={}", t.via_token().to_ascii_lowercase()),
        })
    }

    /// Parses what [`Binding::received_uri`] wrote (or a bare `ip:port`,
    /// as stores written before transports were kept hold: UDP).
    pub fn parse_received(text: &str) -> Option<(SocketAddr, Transport)> {
        let text = text.strip_prefix("sip:").unwrap_or(text);
        let (addr, transport) = match text.split_once(";transport=") {
            Some((a, t)) => (a, Transport::from_name(&t.to_ascii_lowercase())?),
            None => (text, Transport::Udp),
        };
        Some((addr.parse().ok()?, transport))
    }

    /// Whether a request of `method` may be sent to this contact (RFC 3261
    /// §10.2.1: the Allow header of the REGISTER).
    pub fn allows(&self, method: &str) -> bool {
        let bit = method_bit(method);
        bit == 0 || self.methods.is_none_or(|m| m & bit != 0)
    }

    /// Seconds left at `now`.
    pub fn remaining(&self, now: u64) -> u64 {
        self.expires_at.saturating_sub(now)
    }

    /// The Contact header value listing this binding in a 200 OK.
    pub fn contact_value(&self, now: u64) -> String {
        let mut v = format!("<{}>;expires={}", self.contact, self.remaining(now));
        if let Some(q) = self.q {
            v.push_str(&format!(";q={}.{:03}", q / 1000, q % 1000));
        }
        if let Some(i) = &self.instance {
            v.push_str(&format!(";+sip.instance={i}"));
        }
        if let Some(r) = self.reg_id {
            v.push_str(&format!(";reg-id={r}"));
        }
        v
    }
}

/// Why a REGISTER was refused: the response to send (the proxy's [`Reject`]).
pub type RegisterError = Reject;

const SHARDS: usize = 64;

/// The location table.
#[derive(Debug)]
pub struct Location {
    shards: Vec<Mutex<HashMap<String, Vec<Binding>>>>,
    pub config: RegistrarConfig,
    /// AORs changed since the store last wrote them (when persistent).
    dirty: Option<Mutex<HashMap<String, Vec<Binding>>>>,
    /// Changes per binding not yet in the shared table (when the table is
    /// shared with other nodes, [`Location::shared`]).
    journal: Option<Journal>,
}

/// The changes of one AOR's bindings, keyed by contact URI: what a node
/// writes to a shared table. Per binding, not per AOR, so two nodes that
/// change different bindings of one AOR at the same moment both keep theirs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AorChange {
    /// Bindings added or changed.
    pub upsert: Vec<Binding>,
    /// Contacts removed.
    pub delete: Vec<String>,
}

impl AorChange {
    fn upsert(&mut self, b: Binding) {
        self.delete.retain(|c| *c != b.contact);
        match self.upsert.iter_mut().find(|u| u.contact == b.contact) {
            Some(u) => *u = b,
            None => self.upsert.push(b),
        }
    }

    fn delete(&mut self, contact: &str) {
        self.upsert.retain(|u| u.contact != contact);
        if !self.delete.iter().any(|c| c == contact) {
            self.delete.push(contact.to_owned());
        }
    }

    /// This change applied over `bindings` (rows read from the shared table).
    fn apply(&self, bindings: &mut Vec<Binding>) {
        bindings.retain(|b| !self.delete.contains(&b.contact));
        for u in &self.upsert {
            match bindings.iter_mut().find(|b| b.contact == u.contact) {
                Some(b) => *b = u.clone(),
                None => bindings.push(u.clone()),
            }
        }
    }
}

/// Pending [`AorChange`]s, and what wakes the writer.
struct Journal {
    pending: Mutex<HashMap<String, AorChange>>,
    wake: Box<dyn Fn() + Send + Sync>,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal").field("pending", &self.pending).finish_non_exhaustive()
    }
}

impl Location {
    pub fn new(config: RegistrarConfig) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            config,
            dirty: None,
            journal: None,
        }
    }

    /// Keeps a journal of changes per binding for a table shared with other
    /// nodes (`crate::cluster`); `wake` is called after each change.
    pub fn shared(mut self, wake: impl Fn() + Send + Sync + 'static) -> Self {
        self.journal = Some(Journal { pending: Mutex::new(HashMap::new()), wake: Box::new(wake) });
        self
    }

    /// The changes not yet written to the shared table, taken.
    pub fn take_journal(&self) -> HashMap<String, AorChange> {
        match &self.journal {
            Some(j) => std::mem::take(&mut *j.pending.lock().unwrap_or_else(|e| e.into_inner())),
            None => HashMap::new(),
        }
    }

    /// Puts back changes a failed write did not store; changes made since
    /// are newer and win.
    pub fn rejournal(&self, changes: HashMap<String, AorChange>) {
        let Some(j) = &self.journal else { return };
        let mut pending = j.pending.lock().unwrap_or_else(|e| e.into_inner());
        for (aor, old) in changes {
            match pending.remove(&aor) {
                None => {
                    pending.insert(aor, old);
                }
                Some(newer) => {
                    let mut merged = old;
                    newer.delete.iter().for_each(|c| merged.delete(c));
                    newer.upsert.into_iter().for_each(|b| merged.upsert(b));
                    pending.insert(aor, merged);
                }
            }
        }
    }

    /// Whether changes wait to be written to the shared table.
    pub fn journal_len(&self) -> usize {
        self.journal
            .as_ref()
            .map_or(0, |j| j.pending.lock().unwrap_or_else(|e| e.into_inner()).len())
    }

    /// Replaces the bindings of `aor` with `rows`, as the shared table holds
    /// them (another node changed them). This node's own changes that are
    /// not written yet are applied over the rows, so they are not lost.
    /// Nothing is journaled: the change came from the table.
    pub fn apply_shared(&self, aor: &str, mut rows: Vec<Binding>) {
        let mut table = self.shard(aor).lock().unwrap_or_else(|e| e.into_inner());
        if let Some(j) = &self.journal
            && let Some(change) = j.pending.lock().unwrap_or_else(|e| e.into_inner()).get(aor)
        {
            change.apply(&mut rows);
        }
        if rows.is_empty() {
            table.remove(aor);
        } else {
            rows.shrink_to_fit();
            table.insert(aor.to_owned(), rows);
        }
    }

    /// Replaces the whole table with `rows` read from the shared table
    /// (start-up, or a reconnection after which notifications may have
    /// been missed), keeping this node's unwritten changes over them.
    pub fn replace_all_shared(&self, rows: Vec<(String, Binding)>) {
        let mut by_aor: HashMap<String, Vec<Binding>> = HashMap::new();
        for (aor, b) in rows {
            by_aor.entry(aor).or_default().push(b);
        }
        let pending: HashMap<String, AorChange> = match &self.journal {
            Some(j) => j.pending.lock().unwrap_or_else(|e| e.into_inner()).clone(),
            None => HashMap::new(),
        };
        for (aor, change) in &pending {
            change.apply(by_aor.entry(aor.clone()).or_default());
        }
        let mut shards: Vec<HashMap<String, Vec<Binding>>> =
            (0..SHARDS).map(|_| HashMap::new()).collect();
        for (aor, mut b) in by_aor {
            if !b.is_empty() {
                b.shrink_to_fit();
                let i = self.shard_index(&aor);
                shards[i].insert(aor, b);
            }
        }
        for (shard, fresh) in self.shards.iter().zip(shards) {
            *shard.lock().unwrap_or_else(|e| e.into_inner()) = fresh;
        }
    }

    /// Tracks changed AORs for a [`Persister`](super::store::Persister).
    pub fn persistent(mut self) -> Self {
        self.dirty = Some(Mutex::new(HashMap::new()));
        self
    }

    /// The AORs changed since the last call, with their binding sets.
    pub fn take_dirty(&self) -> HashMap<String, Vec<Binding>> {
        match &self.dirty {
            Some(d) => std::mem::take(&mut *d.lock().unwrap_or_else(|e| e.into_inner())),
            None => HashMap::new(),
        }
    }

    /// Puts back changes a failed write did not store (newer ones win).
    pub fn remark_dirty(&self, changes: HashMap<String, Vec<Binding>>) {
        if let Some(d) = &self.dirty {
            let mut d = d.lock().unwrap_or_else(|e| e.into_inner());
            for (aor, b) in changes {
                d.entry(aor).or_insert(b);
            }
        }
    }

    /// Loads bindings read from a store (at startup).
    pub fn restore(&self, bindings: Vec<(String, Binding)>) {
        for (aor, b) in bindings {
            let mut table = self.shard(&aor).lock().unwrap_or_else(|e| e.into_inner());
            table.entry(aor).or_default().push(b);
        }
        for shard in &self.shards {
            let mut table = shard.lock().unwrap_or_else(|e| e.into_inner());
            table.values_mut().for_each(Vec::shrink_to_fit);
        }
    }

    /// Records that `aor`'s bindings went from `before` to `after`: for
    /// the write-behind store (the whole set) and the shared table's
    /// journal (the bindings that changed).
    fn mark(&self, aor: &str, before: &[Binding], after: &[Binding]) {
        if let Some(d) = &self.dirty {
            d.lock().unwrap_or_else(|e| e.into_inner()).insert(aor.to_owned(), after.to_vec());
        }
        if let Some(j) = &self.journal {
            {
                let mut pending = j.pending.lock().unwrap_or_else(|e| e.into_inner());
                let change = pending.entry(aor.to_owned()).or_default();
                for b in before {
                    if !after.iter().any(|a| a.contact == b.contact) {
                        change.delete(&b.contact);
                    }
                }
                for a in after {
                    if !before.contains(a) {
                        change.upsert(a.clone());
                    }
                }
                if change.upsert.is_empty() && change.delete.is_empty() {
                    pending.remove(aor);
                    return;
                }
            }
            (j.wake)();
        }
    }

    fn shard_index(&self, aor: &str) -> usize {
        let mut h = DefaultHasher::new();
        aor.hash(&mut h);
        h.finish() as usize % SHARDS
    }

    fn shard(&self, aor: &str) -> &Mutex<HashMap<String, Vec<Binding>>> {
        &self.shards[self.shard_index(aor)]
    }

    /// Applies a REGISTER received over UDP from `source` at time `now`;
    /// see [`Location::register_from`].
    pub fn register(
        &self,
        req: &Message,
        source: SocketAddr,
        now: u64,
    ) -> Result<(String, Vec<Binding>), RegisterError> {
        self.register_from(req, source, Transport::Udp, now)
    }

    /// Applies a REGISTER received over `transport` from `source` at time
    /// `now`; returns the AOR and its bindings to list in the 200 OK.
    pub fn register_from(
        &self,
        req: &Message,
        source: SocketAddr,
        transport: Transport,
        now: u64,
    ) -> Result<(String, Vec<Binding>), RegisterError> {
        self.register_nat(req, source, transport, now, false)
    }

    /// [`Location::register_from`], where `nated` says the route found the
    /// device behind NAT (`fix_nated_register()`, `add_rcv_param()`): every
    /// contact then gets the source as its `received`, whatever the
    /// addresses look like. A Contact with a `received` header parameter
    /// (added by `add_rcv_param()` on an edge proxy in front of this
    /// registrar) gets that address. Kamailio's registrar does the same
    /// with its `received_avp` and `received_param`; the parameter gives a
    /// UA no more than its Contact already does (it could register any
    /// address as its contact).
    pub fn register_nat(
        &self,
        req: &Message,
        source: SocketAddr,
        transport: Transport,
        now: u64,
        nated: bool,
    ) -> Result<(String, Vec<Binding>), RegisterError> {
        self.register_with_path(req, source, transport, now, nated, None)
    }

    /// [`Location::register_nat`], with `own_path` (`<sip:…;lr;…>`) on top of
    /// the REGISTER's Path set: the Path this proxy would have added had it
    /// relayed the REGISTER (`add_path_received()` before a local `save()`),
    /// so requests from other nodes sharing the table come through here.
    pub fn register_with_path(
        &self,
        req: &Message,
        source: SocketAddr,
        transport: Transport,
        now: u64,
        nated: bool,
        own_path: Option<&str>,
    ) -> Result<(String, Vec<Binding>), RegisterError> {
        let bad = || RegisterError::new(400, "Bad Request");
        let to = req.to().map_err(|_| bad())?.ok_or_else(bad)?;
        let aor = canonical_aor(&to.uri).ok_or_else(bad)?;
        let call_id = req.call_id().map_err(|_| bad())?.ok_or_else(bad)?.to_owned();
        let cseq = req.cseq().map_err(|_| bad())?.ok_or_else(bad)?.seq;
        let header_expires = req.expires().map_err(|_| bad())?;
        let contacts: Vec<Contact<'_>> =
            req.contacts().collect::<Result<_, _>>().map_err(|_| bad())?;
        let path: Vec<String> = own_path
            .map(str::to_owned)
            .into_iter()
            .chain(req.paths().filter_map(Result::ok).map(|p| format!("<{}>", p.uri.raw())))
            .collect();
        let mut methods: Option<u32> = None;
        for h in req.headers_named("Allow") {
            let set = methods.get_or_insert(0);
            for m in req.value_of(h).split(',') {
                *set |= method_bit(m.trim());
            }
        }

        // The device is behind NAT when its Via's sent-by is not where the
        // request came from (Kamailio's nat_uac_test 2|16).
        let via_nat = req
            .via()
            .ok()
            .flatten()
            .and_then(|v| v.host.ip().map(|ip| SocketAddr::new(ip, v.port.unwrap_or(5060))))
            .is_some_and(|v| v != source);

        let mut table = self.shard(&aor).lock().unwrap_or_else(|e| e.into_inner());
        let bindings = table.entry(aor.clone()).or_default();
        bindings.retain(|b| b.expires_at > now);

        if contacts.contains(&Contact::Star) {
            // RFC 3261 §10.3 step 6: `*` alone, with Expires: 0.
            if contacts.len() != 1 || header_expires != Some(0) {
                return Err(bad());
            }
            let before = bindings.clone();
            bindings.retain(|b| b.call_id == call_id && b.cseq >= cseq);
            let left = bindings.clone();
            if bindings.is_empty() {
                table.remove(&aor);
            }
            // Marked under the shard's lock: changes to one AOR reach the
            // journal in the order they were made.
            self.mark(&aor, &before, &left);
            drop(table);
            return Ok((aor, left));
        }

        // Expiry of each contact first, so a 423 changes nothing.
        let mut updates = Vec::with_capacity(contacts.len());
        for c in &contacts {
            let Contact::Addr(na) = c else { continue };
            let expires = c.expires().or(header_expires).unwrap_or(self.config.default_expires);
            if expires != 0 && expires < self.config.min_expires {
                let mut e = RegisterError::new(423, "Interval Too Brief");
                e.extra.push(("Min-Expires", self.config.min_expires.to_string()));
                return Err(e);
            }
            let expires = expires.min(self.config.max_expires);
            let instance = na.params.get("+sip.instance").flatten().map(str::to_owned);
            let reg_id = na
                .params
                .get("reg-id")
                .flatten()
                .and_then(|r| crate::sip::scan::parse_decimal(r, u64::from(u32::MAX)))
                .map(|r| r as u32);
            let contact_addr = na
                .uri
                .host
                .and_then(|h| h.ip())
                .map(|ip| SocketAddr::new(ip, na.uri.port.unwrap_or(5060)));
            let rcv_param = na
                .params
                .get("received")
                .flatten()
                .and_then(|v| Binding::parse_received(v.trim_matches('"')));
            let (received, transport) = match rcv_param {
                Some((addr, t)) => (Some(addr), t),
                // A WebSocket client is reached over its own connection
                // alone (RFC 7118 §5: its Contact host is `.invalid`).
                None if nated || transport.is_websocket() => (Some(source), transport),
                // NATed: a private contact address that is not the
                // source (nat_uac_test 1), or the Via test above. A
                // public contact elsewhere is a third-party
                // registration and is used as it is.
                None => (
                    (contact_addr != Some(source)
                        && (via_nat || contact_addr.is_some_and(|c| is_private(c.ip()))))
                    .then_some(source),
                    transport,
                ),
            };
            updates.push((
                Binding {
                    contact: na.uri.raw().to_owned(),
                    expires_at: now + u64::from(expires),
                    q: c.q(),
                    call_id: call_id.clone(),
                    cseq,
                    path: path.clone(),
                    received,
                    transport,
                    instance,
                    reg_id,
                    methods,
                    peer: false,
                },
                expires,
            ));
        }

        let before = bindings.clone();
        for (new, expires) in updates {
            let existing = bindings.iter().position(|b| same_binding(b, &new));
            match existing {
                Some(i) => {
                    let old = &bindings[i];
                    if old.call_id == new.call_id && old.cseq >= new.cseq {
                        continue; // a retransmission or an older request
                    }
                    if expires == 0 {
                        bindings.remove(i);
                    } else {
                        bindings[i] = new;
                    }
                }
                None if expires == 0 => {}
                None => bindings.push(new),
            }
        }
        if self.config.max_contacts > 0 && bindings.len() > self.config.max_contacts {
            *bindings = before;
            return Err(RegisterError::new(503, "Too Many Registered Contacts"));
        }
        // One binding per AOR is the common case: no spare capacity.
        bindings.shrink_to_fit();
        let left = bindings.clone();
        if bindings.is_empty() {
            table.remove(&aor);
        }
        self.mark(&aor, &before, &left);
        drop(table);
        Ok((aor, left))
    }

    /// Removes every binding of `aor`; returns how many there were.
    pub fn remove(&self, aor: &str) -> usize {
        let mut table = self.shard(aor).lock().unwrap_or_else(|e| e.into_inner());
        let removed = table.remove(aor).unwrap_or_default();
        if !removed.is_empty() {
            self.mark(aor, &removed, &[]);
        }
        removed.len()
    }

    /// Removes the binding of `aor` whose contact is `contact` (the NAT
    /// pinger gave up on it); true when there was one. The store is told,
    /// as for a REGISTER that removed it.
    pub fn remove_contact(&self, aor: &str, contact: &str) -> bool {
        let mut table = self.shard(aor).lock().unwrap_or_else(|e| e.into_inner());
        let Some(bindings) = table.get_mut(aor) else { return false };
        let before = bindings.clone();
        bindings.retain(|b| b.contact != contact);
        if bindings.len() == before.len() {
            return false;
        }
        let left = bindings.clone();
        if left.is_empty() {
            table.remove(aor);
        }
        self.mark(aor, &before, &left);
        true
    }

    /// Removes every binding reached over the `transport` connection from
    /// `peer` (a WebSocket connection that closed: nothing can reach those
    /// contacts any more); returns how many. One shard is locked at a time.
    pub fn remove_flow(&self, transport: Transport, peer: SocketAddr) -> usize {
        let mut removed = 0;
        for shard in &self.shards {
            let mut table = shard.lock().unwrap_or_else(|e| e.into_inner());
            let mut changed = Vec::new();
            table.retain(|aor, bindings| {
                let n = bindings.len();
                if !bindings.iter().any(|b| b.transport == transport && b.received == Some(peer)) {
                    return true;
                }
                let before = bindings.clone();
                bindings.retain(|b| !(b.transport == transport && b.received == Some(peer)));
                removed += n - bindings.len();
                changed.push((aor.clone(), before, bindings.clone()));
                !bindings.is_empty()
            });
            for (aor, before, left) in changed {
                self.mark(&aor, &before, &left);
            }
        }
        removed
    }

    /// Calls `f` with every live binding and its AOR, one shard locked at
    /// a time (a REGISTER waits for at most one shard's walk).
    pub fn for_each_live(&self, now: u64, mut f: impl FnMut(&str, &Binding)) {
        for shard in &self.shards {
            let table = shard.lock().unwrap_or_else(|e| e.into_inner());
            for (aor, bindings) in table.iter() {
                bindings.iter().filter(|b| b.expires_at > now).for_each(|b| f(aor, b));
            }
        }
    }

    /// The live bindings of an AOR, best `q` first (absent q counts as 1.0).
    pub fn lookup(&self, aor: &str, now: u64) -> Vec<Binding> {
        let table = self.shard(aor).lock().unwrap_or_else(|e| e.into_inner());
        let mut found: Vec<Binding> = table
            .get(aor)
            .map(|b| b.iter().filter(|b| b.expires_at > now).cloned().collect())
            .unwrap_or_default();
        found.sort_by_key(|b| std::cmp::Reverse(b.q.unwrap_or(1000)));
        found
    }

    /// Removes expired bindings everywhere; returns how many.
    pub fn purge(&self, now: u64) -> usize {
        let mut removed = 0;
        for shard in &self.shards {
            let mut table = shard.lock().unwrap_or_else(|e| e.into_inner());
            table.retain(|_, bindings| {
                let n = bindings.len();
                bindings.retain(|b| b.expires_at > now);
                removed += n - bindings.len();
                !bindings.is_empty()
            });
        }
        removed
    }

    /// Number of AORs with at least one binding.
    pub fn aor_count(&self) -> usize {
        self.shards.iter().map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).len()).sum()
    }
}

/// The routes' [`crate::proxy::nat::is_private`] (RFC 1918, RFC 6598,
/// link-local, IPv6 unique local …) without loopback: a contact there is
/// unreachable from outside its NAT. Loopback
/// is left out, because this guess runs without the route asking, and a
/// loopback contact registered from another loopback port is a UA on this
/// host registering for another one (test beds), not a NATed device.
fn is_private(ip: std::net::IpAddr) -> bool {
    crate::proxy::nat::is_private(ip) && !ip.is_loopback()
}

/// RFC 5626: the same instance and reg-id is the same flow whatever the
/// contact; otherwise bindings are the same when their URIs are
/// (compared case-insensitively, a simplification of RFC 3261 §19.1.4).
fn same_binding(a: &Binding, b: &Binding) -> bool {
    match (&a.instance, a.reg_id, &b.instance, b.reg_id) {
        (Some(ia), Some(ra), Some(ib), Some(rb)) => ia == ib && ra == rb,
        _ => a.contact.eq_ignore_ascii_case(&b.contact),
    }
}

/// Header values for the 200 OK to a REGISTER: one Contact per binding.
pub fn contact_values(bindings: &[Binding], now: u64) -> Vec<String> {
    bindings.iter().map(|b| b.contact_value(now)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    const SRC: &str = "198.51.100.7:5060";

    fn reg(call_id: &str, cseq: u32, extra: &str) -> Message {
        let text = format!(
            "REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP 198.51.100.7;branch=z9hG4bK{cseq}\r\n\
             To: <sip:bob@example.com>\r\nFrom: <sip:bob@example.com>;tag=1\r\nCall-ID: {call_id}\r\n\
             CSeq: {cseq} REGISTER\r\n{extra}Content-Length: 0\r\n\r\n"
        );
        Message::parse(Bytes::from(text)).unwrap()
    }

    fn loc() -> Location {
        Location::new(RegistrarConfig::default())
    }

    fn src() -> SocketAddr {
        SRC.parse().unwrap()
    }

    #[test]
    fn fix_nated_register_and_the_received_parameter() {
        let l = loc();
        // A public contact that is not the source: a third-party
        // registration, used as it is, unless the route said NAT.
        let m = reg("n1", 1, "Contact: <sip:bob@203.0.113.9:5060>\r\n");
        let (aor, _) = l.register_from(&m, src(), Transport::Udp, 1000).unwrap();
        assert_eq!(l.lookup(&aor, 1000)[0].received, None);
        let m = reg("n1", 2, "Contact: <sip:bob@203.0.113.9:5060>\r\n");
        l.register_nat(&m, src(), Transport::Tcp, 1000, true).unwrap();
        let b = &l.lookup(&aor, 1000)[0];
        assert_eq!(b.received, Some(src()));
        assert_eq!(b.received_uri().as_deref(), Some("sip:198.51.100.7:5060;transport=tcp"));
        // An edge proxy's add_rcv_param() names the device's source.
        let m = reg(
            "n2",
            1,
            "Contact: <sip:carol@192.168.1.20>;received=\"sip:203.0.113.7:40000\"\r\n",
        );
        let m = Message::parse(Bytes::from(
            String::from_utf8(m.as_bytes().to_vec()).unwrap().replace("bob@", "carol@"),
        ))
        .unwrap();
        let (aor, _) = l.register_from(&m, src(), Transport::Udp, 1000).unwrap();
        let b = &l.lookup(&aor, 1000)[0];
        assert_eq!(b.contact, "sip:carol@192.168.1.20");
        assert_eq!(b.received, Some("203.0.113.7:40000".parse().unwrap()));
    }

    #[test]
    fn register_lookup_and_expiry() {
        let l = loc();
        let (aor, b) = l
            .register(&reg("c1", 1, "Contact: <sip:bob@198.51.100.7>;q=0.5, <sip:bob@10.0.0.2:5070>\r\nExpires: 120\r\n"), src(), 1000)
            .unwrap();
        assert_eq!(aor, "sip:bob@example.com");
        assert_eq!(b.len(), 2);
        let found = l.lookup(&aor, 1000);
        assert_eq!(found[0].contact, "sip:bob@10.0.0.2:5070", "higher q (absent = 1.0) first");
        assert_eq!(found[0].received, Some(src()), "NATed contact remembers the source");
        assert_eq!(found[0].received_uri(), Some(format!("sip:{}", src())));
        assert_eq!(found[1].received, None);
        assert_eq!(found[1].contact_value(1060), "<sip:bob@198.51.100.7>;expires=60;q=0.500");
        assert!(l.lookup(&aor, 1120).is_empty(), "expired");
        assert_eq!(l.purge(1120), 2);
        assert_eq!(l.aor_count(), 0);
    }

    #[test]
    fn refresh_remove_and_wildcard() {
        let l = loc();
        let c = "Contact: <sip:bob@198.51.100.7>\r\n";
        l.register(&reg("c1", 1, c), src(), 0).unwrap();
        l.register(&reg("c2", 1, "Contact: <sip:bob@198.51.100.8>\r\n"), src(), 0).unwrap();
        let (_, b) = l.register(&reg("c1", 2, &format!("{c}Expires: 600\r\n")), src(), 10).unwrap();
        assert_eq!(b.len(), 2);
        assert_eq!(b.iter().find(|b| b.call_id == "c1").unwrap().expires_at, 610);
        // An older CSeq from the same Call-ID is ignored.
        let (_, b) = l
            .register(&reg("c1", 1, "Contact: <sip:bob@198.51.100.7>;expires=0\r\n"), src(), 20)
            .unwrap();
        assert_eq!(b.len(), 2);
        let (_, b) = l
            .register(&reg("c1", 3, "Contact: <sip:bob@198.51.100.7>;expires=0\r\n"), src(), 20)
            .unwrap();
        assert_eq!(b.len(), 1);
        assert_eq!(
            l.register(&reg("c3", 1, "Contact: *\r\n"), src(), 30).unwrap_err().code,
            400,
            "* needs Expires: 0"
        );
        let (_, b) = l.register(&reg("c3", 1, "Contact: *\r\nExpires: 0\r\n"), src(), 30).unwrap();
        assert!(b.is_empty());
        assert!(l.lookup("sip:bob@example.com", 30).is_empty());
    }

    #[test]
    fn interval_too_brief_and_limits() {
        let l = Location::new(RegistrarConfig { max_contacts: 2, ..RegistrarConfig::default() });
        let e = l
            .register(&reg("c1", 1, "Contact: <sip:bob@198.51.100.7>;expires=30\r\n"), src(), 0)
            .unwrap_err();
        assert_eq!((e.code, e.extra.clone()), (423, vec![("Min-Expires", "60".to_owned())]));
        let (_, b) = l
            .register(&reg("c1", 2, "Contact: <sip:bob@198.51.100.7>;expires=99999\r\n"), src(), 0)
            .unwrap();
        assert_eq!(b[0].expires_at, 3600, "capped at max_expires");
        let three = "Contact: <sip:a@192.0.2.1>, <sip:b@192.0.2.2>\r\n";
        assert_eq!(l.register(&reg("c9", 1, three), src(), 0).unwrap_err().code, 503);
        assert_eq!(
            l.lookup("sip:bob@example.com", 0).len(),
            1,
            "a refused REGISTER changes nothing"
        );
    }

    #[test]
    fn instance_and_reg_id_replace_the_old_flow_and_path_is_kept() {
        let l = loc();
        let inst = "+sip.instance=\"<urn:uuid:0001>\";reg-id=1";
        l.register(
            &reg(
                "c1",
                1,
                &format!(
                    "Contact: <sip:bob@192.0.2.1>;{inst}\r\nPath: <sip:edge.example.com;lr>\r\n"
                ),
            ),
            src(),
            0,
        )
        .unwrap();
        let (_, b) = l
            .register(&reg("c2", 1, &format!("Contact: <sip:bob@192.0.2.99>;{inst}\r\n")), src(), 5)
            .unwrap();
        assert_eq!(b.len(), 1, "new address, same device: replaced");
        assert_eq!(b[0].contact, "sip:bob@192.0.2.99");
        let l = loc();
        let (_, b) = l
            .register(
                &reg(
                    "c1",
                    1,
                    "Contact: <sip:bob@192.0.2.1>\r\nPath: <sip:edge.example.com;lr>\r\n",
                ),
                src(),
                0,
            )
            .unwrap();
        assert_eq!(b[0].path, ["<sip:edge.example.com;lr>"]);
    }
}

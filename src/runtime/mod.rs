//! The runtime the compiled routes call: per-message state ([`RouteCtx`]),
//! the builtin functions and pseudo-variables of the catalog
//! ([`crate::sema::builtins`]) and the internal operations the code
//! generator needs (string equality, concatenation, regex matching, `$var`
//! and `$avp` slots, the call-depth guard).
//!
//! # Values
//!
//! Every value crosses the boundary as one `i64`:
//! - `int` and `duration`: the value itself;
//! - `bool`: 0 or 1;
//! - `str` and `addr`: a *string handle*. A handle `h >= 0` names
//!   `RouteCtx::strings[h]`, the per-message arena (a string computed while
//!   handling this message: a pseudo-variable read, a concatenation …);
//!   a handle `MSG_BASE < h < 0` names the program's constant pool entry
//!   `-h - 1` (literals); a handle `h <= MSG_BASE` names a slice of the
//!   received message's head (`offset << 24 | len` below `MSG_BASE`), so
//!   reading `$ua`, `$ci`, `$fu`, `$hdr(X)` … of an unedited header copies
//!   nothing. [`ABSENT`] stands for an omitted optional argument.
//!
//! Handles instead of raw `(ptr, len)` pairs keep every runtime function
//! safe Rust: the only `unsafe` on this side of the boundary is turning the
//! context pointer back into a reference ([`abi`]), and a stale or forged
//! handle can at worst read the wrong string (out-of-range handles read as
//! the empty string), never freed memory.
//!
//! # Registrar and authentication
//!
//! `save`, `lookup`, `registered`, `unregister`, `auth_check`,
//! `auth_challenge` and `consume_credentials` live in [`registrar`]; they
//! use the request's long-lived services and, without them (a program run
//! outside a server), return false and change nothing (`save` failing then
//! makes `reply_error()` answer 500). `t_precheck_trans()` is always
//! false: retransmissions are absorbed by the transaction layer before any
//! route runs.

pub mod abi;
pub mod builtins;
pub mod dialog;
pub mod media;
pub mod nat;
pub mod registrar;
pub mod routing;
pub mod security;
pub mod trace;
mod uri_facts;

pub use uri_facts::UriCache;

use std::net::SocketAddr;

use crate::proxy::{Decision, LocalIdentity, Reason, RequestContext};
use crate::sema::ir::{CheckedProgram, Value};

/// Route result: the message handling ends here (`exit`).
pub const RESULT_EXIT: i64 = i64::MIN;
/// Route result: the message is discarded (`drop`).
pub const RESULT_DROP: i64 = i64::MIN + 1;
/// Route result of a route that returns without a value (or falls off its end).
pub const RESULT_TRUE: i64 = 1;
/// Route result of `return false`.
pub const RESULT_FALSE: i64 = -1;
/// Handle of an omitted optional string argument.
pub const ABSENT: i64 = i64::MIN;
/// Handles at or below this are slices of the received message head.
pub const MSG_BASE: i64 = -(1 << 40);
const LEN_BITS: u32 = 24;

/// Does `h` name a constant-pool string (a literal of the program)?
pub fn is_const_handle(h: i64) -> bool {
    h > MSG_BASE && h < 0
}

/// The handle of `part` when it is a slice of `head` (and short enough).
pub fn head_handle(head: &str, part: &str) -> Option<i64> {
    let start = (part.as_ptr() as usize).checked_sub(head.as_ptr() as usize)?;
    if start + part.len() > head.len() || part.len() >= 1 << LEN_BITS || start >= 1 << 30 {
        return None;
    }
    Some(MSG_BASE - (((start as i64) << LEN_BITS) | part.len() as i64))
}

/// The string handle `h` names, from the parts of a [`RouteCtx`] it may
/// live in: a builtin can hold it while it changes other fields (the URI
/// cache) of the context.
pub fn resolve<'s>(
    req: &'s RequestContext,
    shared: &'s Shared,
    strings: &'s [String],
    h: i64,
) -> &'s str {
    if h >= 0 {
        strings.get(h as usize).map_or("", String::as_str)
    } else if h == ABSENT {
        ""
    } else if h <= MSG_BASE {
        let v = MSG_BASE - h;
        let (start, len) = ((v >> LEN_BITS) as usize, (v & ((1 << LEN_BITS) - 1)) as usize);
        req.msg.original().head().get(start..start + len).unwrap_or("")
    } else {
        resolve_const(shared, h)
    }
}

/// The constant-pool string of handle `h` (`MSG_BASE < h < 0`).
pub fn resolve_const(shared: &Shared, h: i64) -> &str {
    shared.consts.get((-(h + 1)) as usize).map_or("", |s| &**s)
}

/// How deeply `route(…)` calls may nest (recursion is already a check error).
pub const MAX_DEPTH: u32 = 100;
/// Default bound on `while` iterations (`max_while_loops`).
pub const DEFAULT_MAX_WHILE: i64 = 100;

/// What the runtime needs from the compiled program: constants, regexes,
/// flags, tables and who "myself" is. Shared by the JIT and the evaluator.
#[derive(Debug)]
pub struct Shared {
    /// The constant string pool: handle `-i - 1` is `consts[i]`. Each is
    /// kept as a reply's reason, so a constant reason leaves with the
    /// decision without a copy ([`Shared::reason`]): a standard phrase as
    /// the phrase table's static text, any other as a shared string.
    pub consts: Vec<Reason>,
    /// `CheckedProgram::regexes`, compiled once.
    pub regexes: Vec<regex::Regex>,
    pub tables: Vec<Vec<(Value, Value)>>,
    /// Routing tables, groups and trunks.
    pub routing: routing::RoutingRt,
    /// Each `limit` declaration and its buckets: the server's (set by
    /// `attach`, so they survive reloads), or the program's own when it
    /// runs without a server.
    pub limits: Vec<(
        crate::security::LimitSpec,
        std::sync::OnceLock<std::sync::Arc<crate::security::Limiter>>,
    )>,
    /// The ban table of a program run without a server.
    pub bans: crate::security::Bans,
    /// `acl` declarations, by index.
    pub acls: Vec<crate::security::acl::Acl>,
    /// What `is_scanner()` recognises.
    pub scanners: crate::security::scanner::Scanners,
    /// The dialog table of a program run without a server.
    pub dialogs: crate::dialog::Dialogs,
    /// The flags that ask for call records (`module acc`).
    pub acc_masks: crate::dialog::AccMasks,
    /// Initial value of every `$var` slot (empty of its type).
    pub var_init: Vec<i64>,
    pub avp_count: usize,
    pub max_while: i64,
    /// Who "myself" is, from the config's `listen` and `domain` lines,
    /// until the server has bound its sockets and set [`Shared::bound`].
    configured: LocalIdentity,
    /// Who "myself" is once bound (ports that were 0 are known). Set once
    /// per program, before or while it serves: `listen` and `domain`
    /// cannot change without a restart, so it never needs replacing, and
    /// reading it is one atomic load.
    bound: std::sync::OnceLock<LocalIdentity>,
    /// Handle of the empty string.
    pub empty: i64,
    /// Constant pool index of each interned string.
    index: std::collections::HashMap<String, usize>,
    /// Handles of the fixed words runtime functions answer with
    /// ([`registrar::RESULT_WORDS`]), so reading one copies nothing.
    words: Vec<i64>,
    /// The statements of an instrumented program, by mark index (empty
    /// for a plain one; see [`trace`]).
    pub marks: Vec<trace::Mark>,
}

impl Shared {
    pub fn new(prog: &CheckedProgram) -> Result<Shared, String> {
        let mut regexes = Vec::new();
        for r in &prog.regexes {
            regexes.push(regex::Regex::new(r).map_err(|e| format!("regex `{r}`: {e}"))?);
        }
        let mut local = LocalIdentity::new();
        for l in &prog.listens {
            if let Value::Addr(a) = &l.addr
                && let Ok(sa) = a.parse::<SocketAddr>()
            {
                local.add_socket(sa);
                for d in &prog.domains {
                    local.add_name(d, sa.port());
                }
            }
        }
        let max_while = prog
            .settings
            .iter()
            .find(|s| s.module.is_empty() && s.name == "max_while_loops")
            .and_then(|s| if let Value::Int(i) = s.value { Some(i) } else { None })
            .unwrap_or(DEFAULT_MAX_WHILE);
        let mut shared = Shared {
            consts: vec![Reason::Fixed("")],
            regexes,
            tables: prog.tables.iter().map(|t| t.entries.clone()).collect(),
            routing: routing::RoutingRt::new(&prog.routing)?,
            limits: prog.limits.iter().map(|s| (s.clone(), std::sync::OnceLock::new())).collect(),
            bans: crate::security::Bans::default(),
            acls: prog.acls.clone(),
            scanners: crate::security::scanner::Scanners::new(
                prog.settings
                    .iter()
                    .find(|s| s.module == "security" && s.name == "scanner_user_agents")
                    .and_then(
                        |s| if let Value::Str(v) = &s.value { Some(v.as_str()) } else { None },
                    )
                    .unwrap_or(""),
            ),
            dialogs: crate::dialog::Dialogs::default(),
            acc_masks: crate::acc::masks(prog),
            var_init: Vec::new(),
            avp_count: prog.avps.len(),
            max_while,
            configured: local,
            bound: std::sync::OnceLock::new(),
            empty: -1,
            index: std::collections::HashMap::from([(String::new(), 0)]),
            words: Vec::new(),
            marks: Vec::new(),
        };
        shared.words = registrar::RESULT_WORDS.iter().map(|w| shared.intern(w)).collect();
        shared.var_init = prog
            .msg_vars
            .iter()
            .map(|v| match v.ty {
                crate::sema::builtins::Ty::Str | crate::sema::builtins::Ty::Addr => shared.empty,
                _ => 0,
            })
            .collect();
        Ok(shared)
    }

    /// The string of handle `h` as a reply's reason: a constant's own
    /// [`Reason`] (a standard phrase's static text or the shared
    /// constant), anything else copied once.
    pub fn reason(&self, req: &RequestContext, strings: &[String], h: i64) -> Reason {
        if is_const_handle(h) {
            self.consts.get((-(h + 1)) as usize).cloned().unwrap_or(Reason::Fixed(""))
        } else {
            Reason::Shared(resolve(req, self, strings, h).into())
        }
    }

    /// The handle of [`registrar::RESULT_WORDS`]`[index]`.
    pub fn result_word(&self, index: usize) -> i64 {
        self.words.get(index).copied().unwrap_or(self.empty)
    }

    pub fn intern(&mut self, s: &str) -> i64 {
        let i = match self.index.get(s) {
            Some(&i) => i,
            None => {
                self.consts.push(match crate::sip::status::standard_phrase(s) {
                    Some(fixed) => Reason::Fixed(fixed),
                    None => Reason::Shared(s.into()),
                });
                self.index.insert(s.to_owned(), self.consts.len() - 1);
                self.consts.len() - 1
            }
        };
        -(i as i64) - 1
    }

    /// Sets who "myself" is after binding (when ports were 0). Only the
    /// first call counts: a program is bound to one server.
    pub fn set_local(&self, local: LocalIdentity) {
        if self.bound.set(local).is_err() {
            tracing::debug!("local identity already set for this program");
        }
    }

    /// Who "myself" is (see [`Shared::set_local`]).
    pub fn local(&self) -> &LocalIdentity {
        self.bound.get().unwrap_or(&self.configured)
    }
}

/// Per-message value slots (`$var`, `$avp`).
pub type Slots = smallvec::SmallVec<[i64; 8]>;

/// The state of one message being routed. Created fresh for every message,
/// so `$var`s, captures and flags never leak from one message to the next.
#[derive(Debug)]
pub struct RouteCtx<'a> {
    pub req: &'a mut RequestContext,
    pub shared: &'a Shared,
    /// The per-message string arena (non-negative handles).
    pub strings: Vec<String>,
    /// `$var` and `$avp` slots live inline for the usual handful (no
    /// allocation per message).
    pub vars: Slots,
    /// `$avp(x)`: loaded from and saved back to the transaction scope
    /// ([`crate::proxy::router::TxnScope`]), so failure and reply routes
    /// see what the request route set.
    pub avps: Slots,
    /// `$match(N)` of the last successful `=~`.
    pub captures: Vec<i64>,
    /// Transaction flags. Compiled code reads and writes this field in
    /// place (`setflag`/`isflagset` of a declared flag; see
    /// `codegen::lower`), so it stays a plain `u64`.
    pub flags: u64,
    /// [`Method::bit`](crate::sip::Method::bit) of the request's method,
    /// set once here and read in place by compiled `is_method(…)` tests.
    pub method_bit: u64,
    pub decision: Option<Decision>,
    /// URIs this message's routes looked into, parsed once each.
    pub uris: UriCache,
    pub depth: u32,
    /// `$lookup_result`: the outcome of the last `lookup()` ("" before any).
    pub lookup_result: Option<registrar::LookupResult>,
    /// `$auth_result`: the outcome of the last `auth_check()` ("" before any).
    pub auth_result: Option<crate::auth::AuthResult>,
    /// `$rtpengine_result`: the outcome of the last `rtpengine_*` call.
    pub media_result: Option<media::MediaResult>,
    /// A runtime function panicked or the depth guard tripped: the message
    /// is answered 500 and the rest of the route sees neutral values.
    pub failed: bool,
    /// The kind of the route that was entered (`request_route` unless the
    /// transaction layer runs a hook: see `Program::run_route`).
    pub kind: crate::sema::builtins::Kinds,
}

/// Stores `s` in a message's string arena and returns its handle (the
/// shared empty string for "").
fn push_string(strings: &mut Vec<String>, shared: &Shared, s: String) -> i64 {
    if s.is_empty() {
        return shared.empty;
    }
    strings.push(s);
    (strings.len() - 1) as i64
}

impl<'a> RouteCtx<'a> {
    /// Inlined so the context is built in its caller's frame rather than
    /// built and then copied there. The struct literal is the last
    /// expression, with the transaction's `$avp`s loaded before it: a
    /// context mutated after it is built was built on this function's stack
    /// and then copied (520 bytes) into the caller's.
    #[inline]
    pub fn new(req: &'a mut RequestContext, shared: &'a Shared) -> RouteCtx<'a> {
        let flags = req.txn.flags;
        let method_bit = u64::from(req.msg.original().method().map_or(0, crate::sip::Method::bit));
        let mut strings = Vec::new();
        let mut avps: Slots = smallvec::smallvec![shared.empty; shared.avp_count];
        // `$avp`s set by an earlier route of the same transaction.
        for slot in 0..avps.len().min(req.txn.avps.len()) {
            avps[slot] = push_string(&mut strings, shared, std::mem::take(&mut req.txn.avps[slot]));
        }
        RouteCtx {
            req,
            shared,
            strings,
            vars: Slots::from_slice(&shared.var_init),
            avps,
            captures: Vec::new(),
            flags,
            method_bit,
            decision: None,
            uris: UriCache::default(),
            depth: 0,
            lookup_result: None,
            auth_result: None,
            media_result: None,
            failed: false,
            kind: crate::sema::builtins::Kinds::REQUEST,
        }
    }

    /// The Call-ID of the message as received (empty when it has none):
    /// every log line written while a route runs carries it, so an
    /// operator finds a call's lines by its Call-ID.
    pub fn call_id(&self) -> &str {
        self.req.msg.original().call_id().ok().flatten().unwrap_or("")
    }

    /// The string a handle names (empty for unknown handles).
    pub fn str(&self, h: i64) -> &str {
        resolve(self.req, self.shared, &self.strings, h)
    }

    /// Stores a string in the arena and returns its handle.
    pub fn alloc(&mut self, s: impl Into<String>) -> i64 {
        push_string(&mut self.strings, self.shared, s.into())
    }

    /// The decision for the core, given the route's result.
    pub fn finish(&mut self, result: i64) -> Decision {
        let decision = if self.failed {
            Decision::Reply { code: 500, reason: "Server Internal Error".into() }
        } else if result == RESULT_DROP {
            Decision::Drop
        } else {
            self.decision.take().unwrap_or(Decision::Drop)
        };
        // Transaction-scoped values outlive this context when there is a
        // transaction to keep them: the request is relayed, or this route
        // is a hook of one (its `$avp`s were loaded from it). A stateless
        // answer or forward has none, and copying them out would be waste.
        self.req.txn.flags = self.flags;
        let in_txn = !self.req.txn.avps.is_empty() || decision == Decision::Relay;
        if !self.avps.is_empty() && in_txn {
            let avps = self.avps.iter().map(|&h| self.str(h).to_owned()).collect();
            self.req.txn.avps = avps;
        }
        decision
    }
}

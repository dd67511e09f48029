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
pub mod registrar;
pub mod routing;

use std::net::SocketAddr;

use crate::proxy::{Decision, LocalIdentity, RequestContext};
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

/// The handle of `part` when it is a slice of `head` (and short enough).
pub fn head_handle(head: &str, part: &str) -> Option<i64> {
    let start = (part.as_ptr() as usize).checked_sub(head.as_ptr() as usize)?;
    if start + part.len() > head.len() || part.len() >= 1 << LEN_BITS || start >= 1 << 30 {
        return None;
    }
    Some(MSG_BASE - (((start as i64) << LEN_BITS) | part.len() as i64))
}

/// How deeply `route(…)` calls may nest (recursion is already a check error).
pub const MAX_DEPTH: u32 = 100;
/// Default bound on `while` iterations (`max_while_loops`).
pub const DEFAULT_MAX_WHILE: i64 = 100;

/// What the runtime needs from the compiled program: constants, regexes,
/// flags, tables and who "myself" is. Shared by the JIT and the evaluator.
#[derive(Debug)]
pub struct Shared {
    /// The constant string pool: handle `-i - 1` is `consts[i]`.
    pub consts: Vec<String>,
    /// `CheckedProgram::regexes`, compiled once.
    pub regexes: Vec<regex::Regex>,
    pub tables: Vec<Vec<(Value, Value)>>,
    /// Routing tables, groups and trunks.
    pub routing: routing::RoutingRt,
    /// Initial value of every `$var` slot (empty of its type).
    pub var_init: Vec<i64>,
    pub avp_count: usize,
    pub max_while: i64,
    pub local: std::sync::RwLock<LocalIdentity>,
    /// Handle of the empty string.
    pub empty: i64,
    /// Constant pool index of each interned string.
    index: std::collections::HashMap<String, usize>,
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
            consts: vec![String::new()],
            regexes,
            tables: prog.tables.iter().map(|t| t.entries.clone()).collect(),
            routing: routing::RoutingRt::new(&prog.routing)?,
            var_init: Vec::new(),
            avp_count: prog.avps.len(),
            max_while,
            local: std::sync::RwLock::new(local),
            empty: -1,
            index: std::collections::HashMap::from([(String::new(), 0)]),
        };
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

    /// Interns a constant string, returning its (negative) handle.
    pub fn intern(&mut self, s: &str) -> i64 {
        let i = match self.index.get(s) {
            Some(&i) => i,
            None => {
                self.consts.push(s.to_owned());
                self.index.insert(s.to_owned(), self.consts.len() - 1);
                self.consts.len() - 1
            }
        };
        -(i as i64) - 1
    }

    /// Replaces who "myself" is (after binding, when ports were 0).
    pub fn set_local(&self, local: LocalIdentity) {
        *self.local.write().unwrap_or_else(|e| e.into_inner()) = local;
    }
}

/// What the routes of one message asked about one URI string: `$rU`,
/// `$rd`, `$rp` and `is_myself(…)` are typically read several times per
/// message (default.route reads `$rU` four times and asks `is_myself($ru)`
/// three times), and parsing was a quarter of its routing time. Keyed by
/// the text itself, so an edited R-URI is simply another entry.
#[derive(Debug, Clone)]
pub struct UriFacts {
    pub text: String,
    /// `None`: `text` is not a URI.
    pub parsed: Option<UriParts>,
    /// `is_myself(text)`, once asked.
    pub local: Option<bool>,
}

/// The parts of a URI the routes read, as byte ranges of its text.
#[derive(Debug, Clone, Copy)]
pub struct UriParts {
    pub user: Option<(usize, usize)>,
    pub host: (usize, usize),
    pub port: Option<u16>,
}

/// The state of one message being routed. Created fresh for every message,
/// so `$var`s, captures and flags never leak from one message to the next.
#[derive(Debug)]
pub struct RouteCtx<'a> {
    pub req: &'a mut RequestContext,
    pub shared: &'a Shared,
    /// The per-message string arena (non-negative handles).
    pub strings: Vec<String>,
    pub vars: Vec<i64>,
    /// `$avp(x)`: loaded from and saved back to the transaction scope
    /// ([`crate::proxy::router::TxnScope`]), so failure and reply routes
    /// see what the request route set.
    pub avps: Vec<i64>,
    /// `$match(N)` of the last successful `=~`.
    pub captures: Vec<i64>,
    pub flags: u64,
    pub decision: Option<Decision>,
    /// URIs this message's routes looked into, parsed once each (see
    /// [`UriFacts`]).
    pub uris: Vec<UriFacts>,
    pub depth: u32,
    /// `$lookup_result`: the outcome of the last `lookup()` ("" before any).
    pub lookup_result: &'static str,
    /// `$auth_result`: the outcome of the last `auth_check()` ("" before any).
    pub auth_result: &'static str,
    /// A runtime function panicked or the depth guard tripped: the message
    /// is answered 500 and the rest of the route sees neutral values.
    pub failed: bool,
}

impl<'a> RouteCtx<'a> {
    pub fn new(req: &'a mut RequestContext, shared: &'a Shared) -> RouteCtx<'a> {
        let flags = req.txn.flags;
        let mut ctx = RouteCtx {
            req,
            shared,
            strings: Vec::new(),
            vars: shared.var_init.clone(),
            avps: vec![shared.empty; shared.avp_count],
            captures: Vec::new(),
            flags,
            decision: None,
            uris: Vec::new(),
            depth: 0,
            lookup_result: "",
            auth_result: "",
            failed: false,
        };
        // `$avp`s set by an earlier route of the same transaction.
        for slot in 0..ctx.avps.len().min(ctx.req.txn.avps.len()) {
            let v = std::mem::take(&mut ctx.req.txn.avps[slot]);
            ctx.avps[slot] = ctx.alloc(v);
        }
        ctx
    }

    /// The string a handle names (empty for unknown handles).
    pub fn str(&self, h: i64) -> &str {
        if h >= 0 {
            self.strings.get(h as usize).map_or("", String::as_str)
        } else if h == ABSENT {
            ""
        } else if h <= MSG_BASE {
            let v = MSG_BASE - h;
            let (start, len) = ((v >> LEN_BITS) as usize, (v & ((1 << LEN_BITS) - 1)) as usize);
            self.req.msg.original().head().get(start..start + len).unwrap_or("")
        } else {
            self.shared.consts.get((-(h + 1)) as usize).map_or("", String::as_str)
        }
    }

    /// Stores a string in the arena and returns its handle.
    pub fn alloc(&mut self, s: impl Into<String>) -> i64 {
        let s = s.into();
        if s.is_empty() {
            return self.shared.empty;
        }
        self.strings.push(s);
        (self.strings.len() - 1) as i64
    }

    /// The decision for the core, given the route's result.
    pub fn finish(&mut self, result: i64) -> Decision {
        // Transaction-scoped values outlive this context.
        self.req.txn.flags = self.flags;
        if !self.avps.is_empty() {
            let avps = self.avps.iter().map(|&h| self.str(h).to_owned()).collect();
            self.req.txn.avps = avps;
        }
        if self.failed {
            return Decision::Reply { code: 500, reason: "Server Internal Error".into() };
        }
        if result == RESULT_DROP {
            return Decision::Drop;
        }
        self.decision.take().unwrap_or(Decision::Drop)
    }
}

//! The checker's output: a resolved, typed program for the code generator.
//!
//! Nothing in here refers to a name that still has to be looked up: routes
//! are indexed by [`RouteId`], route calls carry the callee's index,
//! builtin calls and pseudo-variables carry their index into the catalog
//! tables in [`super::builtins`], `let` locals are numbered per route and
//! `$var(x)` slots per program (they live for one message), constants are
//! folded to [`Value`]s and regexes are numbered. A code generator can walk
//! a [`CheckedProgram`] top-down without a symbol table; each route becomes
//! one `extern "C" fn(*mut RouteCtx) -> i32`.

use super::builtins::Ty;
use crate::syntax::ast::{BinOp, RouteKind, UnOp};
use crate::syntax::span::Span;

pub type RouteId = u32;

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(String),
    Int(i64),
    Bool(bool),
    Duration(u64),
    Addr(String),
}

impl Value {
    pub fn ty(&self) -> Ty {
        match self {
            Value::Str(_) => Ty::Str,
            Value::Int(_) => Ty::Int,
            Value::Bool(_) => Ty::Bool,
            Value::Duration(_) => Ty::Duration,
            Value::Addr(_) => Ty::Addr,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct CheckedProgram {
    /// Indexed by [`RouteId`].
    pub routes: Vec<Route>,
    pub request_route: Option<RouteId>,
    pub reply_route: Option<RouteId>,
    /// `$var(x)` slots, reset for every message.
    pub msg_vars: Vec<Var>,
    /// `$avp(x)` names, kept per transaction.
    pub avps: Vec<String>,
    pub flags: Vec<Flag>,
    pub tables: Vec<Table>,
    /// Trunks, trunk groups and routing tables (`table … by prefix(…)`).
    pub routing: Routing,
    /// `limit` declarations, indexed by [`ExprKind::LimitRef`].
    pub limits: Vec<crate::security::LimitSpec>,
    /// `acl` declarations, indexed by [`ExprKind::AclRef`].
    pub acls: Vec<crate::security::acl::Acl>,
    /// Regex sources, already validated; indexed by the `regex` fields below.
    pub regexes: Vec<String>,
    pub listens: Vec<Listen>,
    pub domains: Vec<String>,
    pub settings: Vec<SettingValue>,
}

impl CheckedProgram {
    /// The catalog indices of the builtins some route calls (reachable or
    /// not): what decides which services `sipc run` starts.
    pub fn called_builtins(&self) -> std::collections::BTreeSet<usize> {
        let mut out = std::collections::BTreeSet::new();
        for r in &self.routes {
            visit_exprs(&r.body, &mut |e| {
                if let ExprKind::Call { func, .. } = e.kind {
                    out.insert(func);
                }
            });
        }
        out
    }

    /// Where some route first calls one of the builtins named (in route
    /// order, then source order).
    pub fn first_call_of(&self, names: &[&str]) -> Option<Span> {
        let mut found: Option<Span> = None;
        for r in &self.routes {
            visit_exprs(&r.body, &mut |e| {
                if let ExprKind::Call { func, .. } = e.kind {
                    let first =
                        found.is_none_or(|f| e.span.start < f.start && e.span.file == f.file);
                    if names.contains(&super::builtins::FUNCTIONS[func].name) && first {
                        found = Some(e.span);
                    }
                }
            });
            if found.is_some() {
                break;
            }
        }
        found
    }

    /// Whether some route calls one of the builtins named.
    pub fn calls_any(&self, names: &[&str]) -> bool {
        self.called_builtins()
            .into_iter()
            .any(|i| names.contains(&super::builtins::FUNCTIONS[i].name))
    }
}

#[derive(Debug, Clone)]
pub struct Route {
    pub kind: RouteKind,
    /// Empty for `request_route` and `reply_route`.
    pub name: String,
    pub span: Span,
    /// `let` locals of this route, numbered by [`ExprKind::Local`].
    pub locals: Vec<Var>,
    pub body: Vec<Stmt>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Var {
    pub name: String,
    pub ty: Ty,
}

#[derive(Debug, Clone)]
pub struct Flag {
    pub name: String,
    pub bit: u32,
}

#[derive(Debug, Clone)]
pub struct Table {
    pub name: String,
    pub entries: Vec<(Value, Value)>,
}

/// The routing declarations, resolved: groups and rows name trunks and
/// groups by index, tables are already compiled to their lookup structure.
#[derive(Debug, Clone, Default)]
pub struct Routing {
    pub trunks: Vec<Trunk>,
    pub groups: Vec<Group>,
    pub tables: Vec<RouteTable>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Trunk {
    pub name: String,
    /// `sip:host:port`, with `;transport=` when one was given.
    pub uri: String,
    pub weight: u32,
    pub priority: i64,
    /// 0: no limit.
    pub max_calls: u32,
    /// Source networks that identify an incoming call from this trunk.
    pub from: Vec<(std::net::IpAddr, u8)>,
    pub attrs: Vec<(String, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    RoundRobin,
    Weighted,
    Priority,
    Hash(HashKey),
    LeastCalls,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashKey {
    CallId,
    FromUser,
    RuriUser,
}

/// OPTIONS health probing of a group's members.
#[derive(Debug, Clone, PartialEq)]
pub struct Probe {
    pub interval_ms: u64,
    /// Failed probes (or passive failures) in a row before a trunk is down.
    pub down: u32,
    /// Good probes in a row before a down trunk is up again.
    pub up: u32,
    /// Regex over the status code of replies that count as alive.
    pub alive: String,
}

/// What `select` does when every member of a group is down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AllDown {
    /// No destination: `select` returns false.
    Fail,
    /// Ignore health and try every member anyway.
    TryAll,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    pub name: String,
    pub strategy: Strategy,
    /// Trunk indices, in declaration order.
    pub members: Vec<u32>,
    pub probe: Option<Probe>,
    pub all_down: AllDown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Target {
    Group(u32),
    Trunk(u32),
}

/// What a table row yields: a destination plus number translation.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RowAction {
    pub target: Target,
    /// Leading characters of the key value removed.
    pub strip: u32,
    /// Put in front after stripping.
    pub prefix: String,
    /// A regex substitution applied last (`replace "^0" "+49"`).
    pub replace: Option<(String, String)>,
    pub attrs: Vec<(String, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchKind {
    Prefix,
    Exact,
    Range,
}

#[derive(Debug, Clone)]
pub enum TableIndex {
    Prefix(std::sync::Arc<crate::routing::index::PrefixIndex>),
    Exact(std::sync::Arc<crate::routing::index::ExactIndex>),
    Range(std::sync::Arc<crate::routing::index::RangeIndex>),
}

#[derive(Debug, Clone)]
pub struct RouteTable {
    pub name: String,
    pub kind: MatchKind,
    /// The key: a message pseudo-variable (catalog index) and its argument.
    pub key_pv: usize,
    pub key_arg: Option<String>,
    /// Distinct row actions; the index maps keys to positions in here.
    pub actions: Vec<RowAction>,
    pub index: TableIndex,
    pub rows: usize,
    /// The database and query the rows came from (`from "postgres://…"
    /// query "…"`), for the watcher that reloads when they change.
    pub source: Option<crate::routing::sql::SqlSource>,
}

#[derive(Debug, Clone)]
pub struct Listen {
    pub proto: String,
    pub addr: Value,
    pub advertise: Option<Value>,
}

#[derive(Debug, Clone)]
pub struct SettingValue {
    /// Empty for global settings.
    pub module: String,
    pub name: String,
    pub value: Value,
}

#[derive(Debug, Clone)]
pub enum Stmt {
    Expr(Expr),
    Assign {
        target: Place,
        value: Expr,
    },
    If {
        cond: Expr,
        then_body: Vec<Stmt>,
        else_body: Vec<Stmt>,
    },
    Switch {
        scrutinee: Expr,
        cases: Vec<(CaseTest, Vec<Stmt>)>,
        default: Option<Vec<Stmt>>,
    },
    /// Bounded at run time by the `max_while_loops` setting.
    While {
        cond: Expr,
        body: Vec<Stmt>,
    },
    Return(Option<Expr>),
    Exit,
    Drop,
    Break,
    /// The next statement starts here: no effect on its own; instrumented
    /// builds (coverage, `sipc trace`) note it when it runs.
    Mark(Span),
}

/// Calls `f` on every expression in `body`, nested ones included
/// (conditions, statement bodies, call arguments, operands, interpolated
/// parts), for analyses that only look at expressions.
pub fn visit_exprs<'a>(body: &'a [Stmt], f: &mut impl FnMut(&'a Expr)) {
    visit_stmts(body, &mut |s| match s {
        Stmt::Expr(e)
        | Stmt::Assign { value: e, .. }
        | Stmt::Return(Some(e))
        | Stmt::If { cond: e, .. }
        | Stmt::Switch { scrutinee: e, .. }
        | Stmt::While { cond: e, .. } => visit_expr(e, f),
        Stmt::Return(None) | Stmt::Exit | Stmt::Drop | Stmt::Break | Stmt::Mark(_) => {}
    });
}

/// Calls `f` on `e` and every expression nested in it.
pub fn visit_expr<'a>(e: &'a Expr, f: &mut impl FnMut(&'a Expr)) {
    fn expr<'a>(e: &'a Expr, f: &mut impl FnMut(&'a Expr)) {
        f(e);
        match &e.kind {
            ExprKind::Call { args, .. } => args.iter().for_each(|a| expr(a, f)),
            ExprKind::Interp(parts) => {
                for p in parts {
                    if let InterpPart::Expr(x) = p {
                        expr(x, f);
                    }
                }
            }
            ExprKind::Unary { expr: x, .. } | ExprKind::Matches { lhs: x, .. } => expr(x, f),
            ExprKind::Binary { lhs, rhs, .. } => {
                expr(lhs, f);
                expr(rhs, f);
            }
            _ => {}
        }
    }
    expr(e, f)
}

/// Calls `f` on every statement in `body`, those of nested bodies (`if`,
/// `switch` cases, `while`) included, each before the ones it contains.
pub fn visit_stmts<'a>(body: &'a [Stmt], f: &mut impl FnMut(&'a Stmt)) {
    for s in body {
        f(s);
        match s {
            Stmt::If { then_body, else_body, .. } => {
                visit_stmts(then_body, f);
                visit_stmts(else_body, f);
            }
            Stmt::Switch { cases, default, .. } => {
                cases.iter().for_each(|(_, b)| visit_stmts(b, f));
                if let Some(d) = default {
                    visit_stmts(d, f);
                }
            }
            Stmt::While { body, .. } => visit_stmts(body, f),
            _ => {}
        }
    }
}

#[derive(Debug, Clone)]
pub enum CaseTest {
    Str(String),
    Int(i64),
    Regex(u32),
}

#[derive(Debug, Clone)]
pub enum Place {
    /// A writable pseudo-variable (`$ru`, `$du`, `$dlg_var(x)` …): catalog
    /// index and argument.
    Pv(usize, Option<String>),
    MsgVar(u32),
    Avp(u32),
    Local(u32),
}

#[derive(Debug, Clone)]
pub struct Expr {
    pub kind: ExprKind,
    pub ty: Ty,
    pub span: Span,
}

#[derive(Debug, Clone)]
pub enum InterpPart {
    Lit(String),
    Expr(Expr),
}

#[derive(Debug, Clone)]
pub enum ExprKind {
    Lit(Value),
    /// A string with `$pv`s to expand.
    Interp(Vec<InterpPart>),
    /// A message pseudo-variable: catalog index and argument (`$hdr(Name)`).
    Pv {
        pv: usize,
        arg: Option<String>,
    },
    MsgVar(u32),
    Avp(u32),
    /// `$match(N)`.
    Capture(u32),
    Local(u32),
    /// A builtin call: index into [`super::builtins::FUNCTIONS`].
    Call {
        func: usize,
        args: Vec<Expr>,
    },
    CallRoute(RouteId),
    /// A route named as an argument (`on_failure(NAME)`).
    RouteRef(RouteId),
    FlagRef(u32),
    TableRef(u32),
    /// A `limit` named as an argument (`within_limit(NAME)`): its index in
    /// [`CheckedProgram::limits`].
    LimitRef(u32),
    /// An `acl` named as an argument (`in_acl(NAME)`).
    AclRef(u32),
    /// A routing destination named as an argument (`select(outbound)`):
    /// [`DestRef::encode`]d.
    DestRef(DestRef),
    /// Index into [`super::builtins::LOG_LEVELS`], or into the word list
    /// of a [`Param::Word`](super::builtins::Param::Word) argument, or the
    /// bit set of a [`Param::Words`](super::builtins::Param::Words) one.
    Level(u8),
    /// A constant regex argument.
    Regex(u32),
    Unary {
        op: UnOp,
        expr: Box<Expr>,
    },
    Binary {
        op: BinOp,
        lhs: Box<Expr>,
        rhs: Box<Expr>,
    },
    /// `lhs =~ "regex"`; sets `$match(N)` on success.
    Matches {
        lhs: Box<Expr>,
        regex: u32,
    },
    /// Stands where an error was reported.
    Error,
}

/// A routing table, trunk group or trunk named as a builtin's argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DestRef {
    Table(u32),
    Group(u32),
    Trunk(u32),
}

impl DestRef {
    /// The `i64` the runtime receives: kind in bits 32.., index below.
    pub fn encode(self) -> i64 {
        let (kind, i) = match self {
            DestRef::Table(i) => (1, i),
            DestRef::Group(i) => (2, i),
            DestRef::Trunk(i) => (3, i),
        };
        (kind << 32) | i64::from(i)
    }

    pub fn decode(v: i64) -> Option<DestRef> {
        let i = (v & 0xffff_ffff) as u32;
        match v >> 32 {
            1 => Some(DestRef::Table(i)),
            2 => Some(DestRef::Group(i)),
            3 => Some(DestRef::Trunk(i)),
            _ => None,
        }
    }
}

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
    /// Regex sources, already validated; indexed by the `regex` fields below.
    pub regexes: Vec<String>,
    pub listens: Vec<Listen>,
    pub domains: Vec<String>,
    pub settings: Vec<SettingValue>,
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
}

#[derive(Debug, Clone)]
pub enum CaseTest {
    Str(String),
    Int(i64),
    Regex(u32),
}

#[derive(Debug, Clone)]
pub enum Place {
    /// A writable message pseudo-variable (`$ru`, `$du`, …): catalog index.
    Pv(usize),
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
    /// Index into [`super::builtins::LOG_LEVELS`].
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

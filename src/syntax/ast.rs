//! The syntax tree, exactly as written.
//!
//! Every node carries a [`Span`]. The tree keeps the source's shape (ifdefs,
//! includes, `else if` chains) and resolves nothing: names are plain strings
//! until the checker turns the tree into a `CheckedProgram`. `Error` variants
//! stand where the parser recovered from a syntax error, so later passes can
//! skip them without reporting follow-on errors.

use super::span::Span;

#[derive(Debug, Clone, PartialEq)]
pub struct File {
    pub items: Vec<Item>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ident {
    pub name: String,
    pub span: Span,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouteKind {
    Request,
    Reply,
    OnReply,
    Failure,
    Branch,
    Sub,
    Event,
}

impl RouteKind {
    pub fn keyword(self) -> &'static str {
        match self {
            RouteKind::Request => "request_route",
            RouteKind::Reply => "reply_route",
            RouteKind::OnReply => "onreply_route",
            RouteKind::Failure => "failure_route",
            RouteKind::Branch => "branch_route",
            RouteKind::Sub => "route",
            RouteKind::Event => "event_route",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub kind: ItemKind,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ItemKind {
    /// `listen udp 127.0.0.1:5060 advertise 203.0.113.5:5060;`
    Listen {
        proto: Ident,
        addr: Expr,
        advertise: Option<Expr>,
    },
    /// `domain "example.com", "example.net";` (`alias` is a synonym).
    Domain(Vec<Expr>),
    /// `settings { children = 4; }`
    Settings(Vec<Setting>),
    /// `module tm { fr_timer = 5s; }`
    Module {
        name: Ident,
        params: Vec<Setting>,
    },
    /// `include "other.route";`
    Include(StrLit),
    /// `const NAME = expr;`
    Const {
        name: Ident,
        value: Expr,
    },
    /// `define NAME;` or `define NAME = false;`: a feature switch.
    Define {
        name: Ident,
        value: Option<Expr>,
    },
    /// `flag NAME;` or `flag NAME = 3;`
    Flag {
        name: Ident,
        value: Option<Expr>,
    },
    /// `table NAME { "key" => "value"; }`
    Table {
        name: Ident,
        entries: Vec<(Expr, Expr)>,
    },
    /// `table NAME by prefix($rU) [from "file.csv"] { "0086" => group cn strip 2; }`:
    /// a routing table; the head and row values are words the checker reads.
    RouteTable {
        name: Ident,
        head: Vec<Expr>,
        rows: Vec<RouteRow>,
    },
    /// `trunk NAME "sip:host:port" weight 50 from 10.0.0.0/24;`
    Trunk(TrunkDecl),
    /// `trunk_group NAME strategy round_robin probe every 2s { trunk …; }`
    TrunkGroup {
        name: Ident,
        words: Vec<Expr>,
        members: Vec<TrunkDecl>,
    },
    /// `limit NAME by $si rate 50 per 1s burst 100 ban 5m;`: a rate limit;
    /// its words are read by the checker (src/sema/security.rs).
    Limit {
        name: Ident,
        words: Vec<Expr>,
    },
    /// `acl NAME 10.0.0.0/8 "2001:db8::/32" from "peers.txt";`: an address
    /// group (src/sema/security.rs reads the words); `blocklist NAME …` is
    /// one whose sources are dropped (`block`).
    Acl {
        name: Ident,
        words: Vec<Expr>,
        block: bool,
    },
    Route(RouteDef),
    /// `ifdef NAME { items } else { items }` (`negate` for `ifndef`).
    Ifdef {
        negate: bool,
        name: Ident,
        then_items: Vec<Item>,
        else_items: Vec<Item>,
    },
    Error,
}

/// `trunk NAME words…;`, at top level or inside a `trunk_group`.
#[derive(Debug, Clone, PartialEq)]
pub struct TrunkDecl {
    pub name: Ident,
    pub words: Vec<Expr>,
    pub span: Span,
}

/// `KEY => words…;` in a routing table.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteRow {
    pub key: Expr,
    pub words: Vec<Expr>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Setting {
    pub name: Ident,
    pub value: Expr,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RouteDef {
    pub kind: RouteKind,
    /// `None` for `request_route` and `reply_route`.
    pub name: Option<Ident>,
    pub body: Block,
    /// The header (`failure_route NAME`), for labels.
    pub head: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Block {
    pub stmts: Vec<Stmt>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Stmt {
    pub kind: StmtKind,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum StmtKind {
    /// A call used as a statement: `record_route();`, `route(RELAY);`.
    Expr(Expr),
    Assign {
        target: Place,
        value: Expr,
    },
    Let {
        name: Ident,
        value: Expr,
    },
    If {
        cond: Expr,
        then_block: Block,
        /// `else if` is an else block holding one `If` statement.
        else_block: Option<Block>,
    },
    Switch {
        scrutinee: Expr,
        cases: Vec<Case>,
    },
    While {
        cond: Expr,
        body: Block,
    },
    Return(Option<Expr>),
    Exit,
    Drop,
    Break,
    Block(Block),
    Ifdef {
        negate: bool,
        name: Ident,
        then_block: Block,
        else_block: Option<Block>,
    },
    Error,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Case {
    pub label: CaseLabel,
    pub body: Vec<Stmt>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum CaseLabel {
    Str(StrLit),
    Int(i64, Span),
    Regex(StrLit),
    Default(Span),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Place {
    Pv(Pv),
    Local(Ident),
}

impl Place {
    pub fn span(&self) -> Span {
        match self {
            Place::Pv(p) => p.span,
            Place::Local(i) => i.span,
        }
    }
}

/// A pseudo-variable reference: `$ru`, `$hdr(User-Agent)`, `$var(x)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pv {
    pub name: String,
    pub arg: Option<String>,
    pub span: Span,
}

/// A string literal: its value without interpolation (used for regexes and
/// constants) and its parts with `$pv`s split out.
#[derive(Debug, Clone, PartialEq)]
pub struct StrLit {
    pub value: String,
    pub parts: Vec<StrPart>,
    pub span: Span,
}

impl StrLit {
    pub fn is_plain(&self) -> bool {
        self.parts.iter().all(|p| matches!(p, StrPart::Lit(_)))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum StrPart {
    Lit(String),
    Pv(Pv),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnOp {
    Not,
    Neg,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    Or,
    And,
    Eq,
    Ne,
    Match,
    Lt,
    Gt,
    Le,
    Ge,
    Add,
    Sub,
    Mul,
    Div,
    Rem,
}

impl BinOp {
    pub fn symbol(self) -> &'static str {
        match self {
            BinOp::Or => "||",
            BinOp::And => "&&",
            BinOp::Eq => "==",
            BinOp::Ne => "!=",
            BinOp::Match => "=~",
            BinOp::Lt => "<",
            BinOp::Gt => ">",
            BinOp::Le => "<=",
            BinOp::Ge => ">=",
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Rem => "%",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum ExprKind {
    Str(StrLit),
    Int(i64),
    Bool(bool),
    /// A duration literal, in milliseconds.
    Duration(u64),
    /// `a.b.c.d`, `a.b.c.d:port` or `a.b.c.d/prefix`, as written.
    Addr(String),
    Pv(Pv),
    /// A bare name: a `let` local, a constant, a flag, route or table argument.
    Name(Ident),
    Call {
        name: Ident,
        args: Vec<Expr>,
    },
    /// `route(NAME)`.
    RouteCall(Ident),
    Unary {
        op: UnOp,
        expr: Box<Expr>,
    },
    Binary {
        op: BinOp,
        lhs: Box<Expr>,
        rhs: Box<Expr>,
    },
    Error,
}

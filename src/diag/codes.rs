//! The registry of diagnostic codes.
//!
//! Codes are stable identifiers (`sipc::E0203`) that users can search for and
//! tests can assert on. [`ALL`] lists each once with a one-line description;
//! `docs/diagnostics.md` is generated from it and a test keeps the two equal.

use super::Severity;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Code {
    // Lexical and syntax errors.
    SyntaxError,
    UnexpectedEof,
    InvalidToken,
    UnterminatedString,
    UnterminatedComment,
    InvalidNumber,
    InvalidInterpolation,
    InvalidAddress,
    // Files and names.
    IncludeNotFound,
    IncludeCycle,
    UnknownRoute,
    DuplicateDefinition,
    UnknownFunction,
    UnknownPseudoVar,
    UnknownName,
    UnknownFlag,
    UnknownTable,
    UnknownFeature,
    WrongRouteKind,
    UnknownSetting,
    BadDefineOption,
    UnknownTrunk,
    BadDeclaration,
    DuplicateKey,
    EmptyGroup,
    BadCsvRow,
    UnservedTransport,
    VarNeverWritten,
    VarAcrossMessages,
    UnknownEvent,
    UnknownLimit,
    // Types and values.
    TypeMismatch,
    WrongArgCount,
    OutOfRange,
    ReadOnly,
    InvalidRegex,
    BadOperands,
    ReturnZero,
    BreakOutsideLoop,
    NotConstant,
    DuplicateCase,
    MissingRequestRoute,
    InvalidUri,
    InvalidNgFlag,
    // Route-kind rules.
    NotAllowedInRoute,
    Recursion,
    DropInFailureRoute,
    DialogWithoutRecordRoute,
    // Warnings.
    Unreachable,
    UnusedRoute,
    UnusedConst,
    UnusedFlag,
    UnusedTable,
    ReadBeforeWrite,
    NoFinalAction,
    ShadowedRow,
    UnreachableFailover,
    FailoverStops,
    MisspelledHeader,
    UnusedModule,
}

/// Every code, in documentation order.
pub const ALL: &[Code] = &[
    Code::SyntaxError,
    Code::UnexpectedEof,
    Code::InvalidToken,
    Code::UnterminatedString,
    Code::UnterminatedComment,
    Code::InvalidNumber,
    Code::InvalidInterpolation,
    Code::InvalidAddress,
    Code::IncludeNotFound,
    Code::IncludeCycle,
    Code::UnknownRoute,
    Code::DuplicateDefinition,
    Code::UnknownFunction,
    Code::UnknownPseudoVar,
    Code::UnknownName,
    Code::UnknownFlag,
    Code::UnknownTable,
    Code::UnknownFeature,
    Code::WrongRouteKind,
    Code::UnknownSetting,
    Code::BadDefineOption,
    Code::UnknownTrunk,
    Code::BadDeclaration,
    Code::DuplicateKey,
    Code::EmptyGroup,
    Code::BadCsvRow,
    Code::UnservedTransport,
    Code::VarNeverWritten,
    Code::VarAcrossMessages,
    Code::UnknownEvent,
    Code::UnknownLimit,
    Code::TypeMismatch,
    Code::WrongArgCount,
    Code::OutOfRange,
    Code::ReadOnly,
    Code::InvalidRegex,
    Code::BadOperands,
    Code::ReturnZero,
    Code::BreakOutsideLoop,
    Code::NotConstant,
    Code::DuplicateCase,
    Code::MissingRequestRoute,
    Code::InvalidUri,
    Code::InvalidNgFlag,
    Code::NotAllowedInRoute,
    Code::Recursion,
    Code::DropInFailureRoute,
    Code::DialogWithoutRecordRoute,
    Code::Unreachable,
    Code::UnusedRoute,
    Code::UnusedConst,
    Code::UnusedFlag,
    Code::UnusedTable,
    Code::ReadBeforeWrite,
    Code::NoFinalAction,
    Code::ShadowedRow,
    Code::UnreachableFailover,
    Code::FailoverStops,
    Code::MisspelledHeader,
    Code::UnusedModule,
];

impl Code {
    /// The short identifier without the `sipc::` prefix, e.g. `E0203`.
    pub fn id(self) -> &'static str {
        self.info().0
    }

    /// One-line description for the code registry.
    pub fn description(self) -> &'static str {
        self.info().1
    }

    /// The full code shown to users, e.g. `sipc::E0203`.
    pub fn full(self) -> String {
        format!("sipc::{}", self.id())
    }

    pub fn severity(self) -> Severity {
        if self.id().starts_with('W') { Severity::Warning } else { Severity::Error }
    }

    /// Looks a code up by its identifier (`E0203` or `sipc::E0203`).
    pub fn from_id(id: &str) -> Option<Code> {
        let id = id.strip_prefix("sipc::").unwrap_or(id);
        ALL.iter().copied().find(|c| c.id() == id)
    }

    fn info(self) -> (&'static str, &'static str) {
        match self {
            Code::SyntaxError => ("E0101", "the parser found a token it did not expect"),
            Code::UnexpectedEof => ("E0102", "the file ended in the middle of an item or block"),
            Code::InvalidToken => ("E0103", "a character that starts no token"),
            Code::UnterminatedString => ("E0104", "a string literal without its closing quote"),
            Code::UnterminatedComment => ("E0105", "a `/*` comment without its closing `*/`"),
            Code::InvalidNumber => {
                ("E0106", "an integer or duration literal that does not fit in 64 bits")
            }
            Code::InvalidInterpolation => (
                "E0107",
                "a `$` in a string that starts no pseudo-variable (write `\\$` for a dollar)",
            ),
            Code::InvalidAddress => ("E0108", "an IP address, port or CIDR prefix out of range"),
            Code::IncludeNotFound => {
                ("E0201", "a file to check, or one an `include` names, cannot be read")
            }
            Code::IncludeCycle => ("E0202", "files include each other in a cycle"),
            Code::UnknownRoute => {
                ("E0203", "`route(NAME)` or `on_failure(NAME)` names a route that is not defined")
            }
            Code::DuplicateDefinition => {
                ("E0204", "a route, constant, flag, table or switch is defined twice")
            }
            Code::UnknownFunction => {
                ("E0205", "a call to a function that is not in the builtin catalog")
            }
            Code::UnknownPseudoVar => ("E0206", "a `$name` that is not a known pseudo-variable"),
            Code::UnknownName => {
                ("E0207", "a bare name that is not a local, constant or feature switch")
            }
            Code::UnknownFlag => ("E0208", "a flag function names an undeclared flag"),
            Code::UnknownTable => ("E0209", "a table function names an undeclared table"),
            Code::UnknownFeature => {
                ("E0210", "`ifdef`/`ifndef` names a switch that no `define` declared")
            }
            Code::WrongRouteKind => (
                "E0211",
                "a route of the wrong kind is named (e.g. `on_failure` of a plain `route`)",
            ),
            Code::UnknownSetting => {
                ("E0212", "a setting, module or module parameter that does not exist")
            }
            Code::BadDefineOption => (
                "E0213",
                "a `-D NAME=VALUE` option that matches no `const` or `define`, or has the wrong type",
            ),
            Code::UnknownTrunk => {
                ("E0214", "a table row or group names a trunk or trunk group that is not declared")
            }
            Code::BadDeclaration => (
                "E0215",
                "a trunk, trunk group or routing table declaration with a word it does not understand or a missing value",
            ),
            Code::DuplicateKey => {
                ("E0216", "two rows of a routing table have the same key, or their ranges overlap")
            }
            Code::EmptyGroup => ("E0217", "a trunk group without members"),
            Code::BadCsvRow => (
                "E0218",
                "a routing table's CSV file cannot be read, or one of its rows is malformed",
            ),
            Code::VarNeverWritten => (
                "E0220",
                "a `$var` that some route reads and no route ever writes (a misspelt name)",
            ),
            Code::VarAcrossMessages => (
                "E0221",
                "a `$var` written while routing the request and read in a failure or reply route, where it is always empty (use `$avp`)",
            ),
            Code::UnknownEvent => {
                ("E0222", "an `event_route` for an event sipc does not raise: it would never run")
            }
            Code::UnknownLimit => (
                "E0223",
                "`within_limit(NAME)` or `in_acl(NAME)` names a limit or address group that is not declared",
            ),
            Code::UnservedTransport => {
                ("E0219", "a `listen` transport that `sipc run` does not serve")
            }
            Code::TypeMismatch => ("E0301", "a value of one type where another is required"),
            Code::WrongArgCount => ("E0302", "a call with too few or too many arguments"),
            Code::OutOfRange => (
                "E0303",
                "a constant outside the range the parameter accepts (e.g. reply codes 100..=699)",
            ),
            Code::ReadOnly => ("E0304", "assignment to a read-only pseudo-variable or constant"),
            Code::InvalidRegex => ("E0305", "a regular expression that does not compile"),
            Code::BadOperands => {
                ("E0306", "an operator applied to operand types it does not accept")
            }
            Code::ReturnZero => ("E0307", "`return 0`, which Kamailio treats as `exit`"),
            Code::BreakOutsideLoop => ("E0308", "`break` outside `while` or `switch`"),
            Code::NotConstant => {
                ("E0309", "a value that must be known at check time is not a constant")
            }
            Code::DuplicateCase => ("E0310", "two `case` labels of one `switch` are equal"),
            Code::MissingRequestRoute => ("E0311", "the configuration has no `request_route`"),
            Code::InvalidUri => {
                ("E0312", "a constant string used as a URI that the proxy's URI parser rejects")
            }
            Code::InvalidNgFlag => {
                ("E0313", "an rtpengine flag or option that rtpengine does not document")
            }
            Code::NotAllowedInRoute => (
                "E0401",
                "a function or variable used in a route kind where it is not allowed, possibly through sub-routes",
            ),
            Code::Recursion => ("E0402", "routes call each other recursively"),
            Code::DropInFailureRoute => (
                "E0403",
                "`drop` in a failure route, which cannot suppress the reply sent upstream (use `reply(…)`)",
            ),
            Code::DialogWithoutRecordRoute => (
                "E0404",
                "`dlg_manage()` in a configuration that never calls `record_route()`: the dialog's in-dialog requests and BYE would not come through the proxy",
            ),
            Code::Unreachable => {
                ("W0501", "statements after `exit`, `drop`, `return` or `break` never run")
            }
            Code::UnusedRoute => ("W0502", "a route that is never called or armed"),
            Code::UnusedConst => ("W0503", "a constant that is never used"),
            Code::UnusedFlag => ("W0504", "a flag that is never set or tested"),
            Code::UnusedTable => ("W0505", "a table that is never looked up"),
            Code::ReadBeforeWrite => (
                "W0506",
                "a message-scoped variable read where it was never written for this message",
            ),
            Code::NoFinalAction => {
                ("W0507", "a `request_route` path that ends without relaying, replying or dropping")
            }
            Code::ShadowedRow => ("W0508", "a routing table row that can never be chosen"),
            Code::UnreachableFailover => {
                ("W0509", "a trunk listed twice in a group: the second place is never tried")
            }
            Code::FailoverStops => (
                "W0510",
                "a failure route relays to a next destination without arming a failure route again: serial failover stops after one retry",
            ),
            Code::MisspelledHeader => {
                ("W0511", "a header name that is no known SIP header but one edit away from one")
            }
            Code::UnusedModule => {
                ("W0512", "a `module` block for a feature that nothing in the configuration uses")
            }
        }
    }
}

/// The registry as Markdown, the content of `docs/diagnostics.md`.
pub fn markdown() -> String {
    let mut out = String::from(
        "# sipc diagnostics\n\n<!-- Generated from src/diag/codes.rs; regenerate with `SIPC_BLESS=1 cargo test --test docs`. -->\n\n| code | severity | meaning |\n| --- | --- | --- |\n",
    );
    for c in ALL {
        let sev = match c.severity() {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        out.push_str(&format!(
            "| `sipc::{}` | {} | {} |\n",
            c.id(),
            sev,
            c.description().replace('|', "\\|")
        ));
    }
    out
}

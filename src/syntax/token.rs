//! The token type shared by the logos lexer and the lalrpop grammar.
//!
//! Tokens borrow their text from the source so lexing allocates nothing; the
//! grammar's `extern` block names every variant. Literal *values* (escapes,
//! integer overflow, IP octets) are validated by the lexer wrapper in
//! [`super::lexer`], so grammar actions can convert text without failing.

use logos::Logos;

/// Lexer output. `Error` stands for input the lexer could not understand;
/// the lexer has already reported it, and the parser stays silent about it.
#[derive(Logos, Debug, Clone, Copy, PartialEq, Eq)]
#[logos(skip r"[ \t\r\n\f]+")]
#[logos(skip(r"(#|//)[^\n]*", allow_greedy = true))]
pub enum Tok<'a> {
    // Block comments are lexed by a callback so an unterminated one can be
    // reported instead of silently eating the file; the wrapper drops them.
    #[token("/*", block_comment)]
    BlockComment(bool),

    #[token("request_route")]
    RequestRoute,
    #[token("reply_route")]
    ReplyRoute,
    #[token("onreply_route")]
    OnReplyRoute,
    #[token("failure_route")]
    FailureRoute,
    #[token("branch_route")]
    BranchRoute,
    #[token("event_route")]
    EventRoute,
    #[token("route")]
    Route,
    #[token("if")]
    If,
    #[token("else")]
    Else,
    /// Not part of the language: lexed only to suggest `else if`.
    #[token("elif")]
    #[token("elsif")]
    #[token("elseif")]
    Elif,
    #[token("switch")]
    Switch,
    #[token("case")]
    Case,
    #[token("default")]
    Default,
    #[token("while")]
    While,
    #[token("return")]
    Return,
    #[token("exit")]
    Exit,
    #[token("drop")]
    Drop,
    #[token("break")]
    Break,
    #[token("let")]
    Let,
    #[token("true")]
    True,
    #[token("false")]
    False,
    #[token("listen")]
    Listen,
    #[token("advertise")]
    Advertise,
    #[token("domain")]
    Domain,
    #[token("alias")]
    Alias,
    #[token("settings")]
    Settings,
    #[token("module")]
    Module,
    #[token("include")]
    Include,
    #[token("const")]
    Const,
    #[token("define")]
    Define,
    #[token("ifdef")]
    Ifdef,
    #[token("ifndef")]
    Ifndef,
    #[token("flag")]
    Flag,
    #[token("table")]
    Table,
    #[token("trunk")]
    Trunk,
    #[token("trunk_group")]
    TrunkGroup,
    #[token("limit")]
    Limit,
    #[token("acl")]
    Acl,
    #[token("blocklist")]
    Blocklist,

    #[token("{")]
    LBrace,
    #[token("}")]
    RBrace,
    #[token("(")]
    LParen,
    #[token(")")]
    RParen,
    #[token(",")]
    Comma,
    #[token(";")]
    Semi,
    #[token(":")]
    Colon,
    #[token("=>")]
    FatArrow,
    #[token("=")]
    Assign,
    #[token("==")]
    EqEq,
    #[token("!=")]
    NotEq,
    #[token("=~")]
    Match,
    #[token("<")]
    Lt,
    #[token(">")]
    Gt,
    #[token("<=")]
    Le,
    #[token(">=")]
    Ge,
    #[token("&&")]
    AndAnd,
    #[token("||")]
    OrOr,
    #[token("!")]
    Bang,
    #[token("+")]
    Plus,
    #[token("-")]
    Minus,
    #[token("*")]
    Star,
    #[token("/")]
    Slash,
    #[token("%")]
    Percent,

    #[regex("[A-Za-z_][A-Za-z0-9_]*")]
    Ident(&'a str),
    #[regex("[0-9]+")]
    Int(&'a str),
    #[regex("[0-9]+(ms|s|m|h)")]
    Duration(&'a str),
    #[regex(r"[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+(:[0-9]+|/[0-9]+)?")]
    Ip(&'a str),
    /// A complete string literal, quotes included.
    #[regex(r#""([^"\\\n]|\\[^\n])*""#)]
    Str(&'a str),
    /// A string that hits a newline or the end of input before its closing quote.
    #[regex(r#""([^"\\\n]|\\[^\n])*"#)]
    UnterminatedStr(&'a str),
    /// `$name` or `$name(arg)`.
    #[regex(r"\$[A-Za-z_][A-Za-z0-9_]*(\([^()\n]*\))?")]
    Pv(&'a str),

    Error,
}

fn block_comment<'a>(lex: &mut logos::Lexer<'a, Tok<'a>>) -> bool {
    let rest = lex.remainder();
    match rest.find("*/") {
        Some(i) => {
            lex.bump(i + 2);
            true
        }
        None => {
            lex.bump(rest.len());
            false
        }
    }
}

impl Tok<'_> {
    /// How the token is named in "found …" parts of messages.
    pub fn describe(&self) -> String {
        match self {
            Tok::Ident(s) => format!("`{s}`"),
            Tok::Int(s) | Tok::Duration(s) | Tok::Ip(s) | Tok::Pv(s) => format!("`{s}`"),
            Tok::Str(_) | Tok::UnterminatedStr(_) => "a string".to_string(),
            Tok::Error | Tok::BlockComment(_) => "invalid input".to_string(),
            other => format!("`{}`", other.keyword_text()),
        }
    }

    fn keyword_text(&self) -> &'static str {
        match self {
            Tok::RequestRoute => "request_route",
            Tok::ReplyRoute => "reply_route",
            Tok::OnReplyRoute => "onreply_route",
            Tok::FailureRoute => "failure_route",
            Tok::BranchRoute => "branch_route",
            Tok::EventRoute => "event_route",
            Tok::Route => "route",
            Tok::If => "if",
            Tok::Else => "else",
            Tok::Elif => "elif",
            Tok::Switch => "switch",
            Tok::Case => "case",
            Tok::Default => "default",
            Tok::While => "while",
            Tok::Return => "return",
            Tok::Exit => "exit",
            Tok::Drop => "drop",
            Tok::Break => "break",
            Tok::Let => "let",
            Tok::True => "true",
            Tok::False => "false",
            Tok::Listen => "listen",
            Tok::Advertise => "advertise",
            Tok::Domain => "domain",
            Tok::Alias => "alias",
            Tok::Settings => "settings",
            Tok::Module => "module",
            Tok::Include => "include",
            Tok::Const => "const",
            Tok::Define => "define",
            Tok::Ifdef => "ifdef",
            Tok::Ifndef => "ifndef",
            Tok::Flag => "flag",
            Tok::Table => "table",
            Tok::Trunk => "trunk",
            Tok::TrunkGroup => "trunk_group",
            Tok::Limit => "limit",
            Tok::Acl => "acl",
            Tok::Blocklist => "blocklist",
            Tok::LBrace => "{",
            Tok::RBrace => "}",
            Tok::LParen => "(",
            Tok::RParen => ")",
            Tok::Comma => ",",
            Tok::Semi => ";",
            Tok::Colon => ":",
            Tok::FatArrow => "=>",
            Tok::Assign => "=",
            Tok::EqEq => "==",
            Tok::NotEq => "!=",
            Tok::Match => "=~",
            Tok::Lt => "<",
            Tok::Gt => ">",
            Tok::Le => "<=",
            Tok::Ge => ">=",
            Tok::AndAnd => "&&",
            Tok::OrOr => "||",
            Tok::Bang => "!",
            Tok::Plus => "+",
            Tok::Minus => "-",
            Tok::Star => "*",
            Tok::Slash => "/",
            Tok::Percent => "%",
            _ => "?",
        }
    }
}

/// How editors classify a keyword. The highlighting grammars under
/// `editors/` and the language server's keyword completion are generated
/// from [`KEYWORDS`]; tests keep them in step with the lexer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeywordClass {
    /// Starts a route block: `request_route`, `route`, …
    RouteKind,
    /// Statement keywords: `if`, `exit`, …
    Control,
    /// Top-level items and `let`: `listen`, `const`, `table`, …
    Declaration,
    /// `true`, `false`.
    Constant,
    /// Lexed only to suggest a correction (`elif` for `else if`).
    Misspelling,
}

/// Every word the lexer reads as a keyword rather than a name.
pub const KEYWORDS: &[(&str, KeywordClass)] = {
    use KeywordClass::*;
    &[
        ("request_route", RouteKind),
        ("reply_route", RouteKind),
        ("onreply_route", RouteKind),
        ("failure_route", RouteKind),
        ("branch_route", RouteKind),
        ("event_route", RouteKind),
        ("route", RouteKind),
        ("if", Control),
        ("else", Control),
        ("switch", Control),
        ("case", Control),
        ("default", Control),
        ("while", Control),
        ("return", Control),
        ("exit", Control),
        ("drop", Control),
        ("break", Control),
        ("let", Declaration),
        ("listen", Declaration),
        ("advertise", Declaration),
        ("domain", Declaration),
        ("alias", Declaration),
        ("settings", Declaration),
        ("module", Declaration),
        ("include", Declaration),
        ("const", Declaration),
        ("define", Declaration),
        ("ifdef", Declaration),
        ("ifndef", Declaration),
        ("flag", Declaration),
        ("table", Declaration),
        ("trunk", Declaration),
        ("trunk_group", Declaration),
        ("limit", Declaration),
        ("acl", Declaration),
        ("blocklist", Declaration),
        ("true", Constant),
        ("false", Constant),
        ("elif", Misspelling),
        ("elsif", Misspelling),
        ("elseif", Misspelling),
    ]
};

#[cfg(test)]
mod tests {
    use super::*;

    /// Each listed word lexes as one keyword token, never as a name.
    #[test]
    fn keywords_are_lexed_as_keywords() {
        for (word, _) in KEYWORDS {
            let toks: Vec<_> = Tok::lexer(word).collect();
            assert_eq!(toks.len(), 1, "{word}");
            let tok = toks[0].expect("a token");
            assert!(!matches!(tok, Tok::Ident(_)), "`{word}` lexes as a name");
            if tok != Tok::Elif {
                assert_eq!(tok.describe(), format!("`{word}`"));
            }
        }
    }

    /// Every alphabetic terminal of the grammar's `extern` block is listed.
    #[test]
    fn grammar_keywords_are_listed() {
        let grammar = include_str!("../../grammar/route.lalrpop");
        for line in grammar.lines() {
            let line = line.trim();
            let Some(rest) = line.strip_prefix('"') else { continue };
            let Some((word, tail)) = rest.split_once('"') else { continue };
            if !tail.trim_start().starts_with("=> Tok::") {
                continue;
            }
            if word.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
                assert!(KEYWORDS.iter().any(|(k, _)| *k == word), "`{word}` missing from KEYWORDS");
            }
        }
    }
}

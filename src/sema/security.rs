//! Checking `limit` declarations.
//!
//! `limit NAME by KEY rate N [per DURATION] [burst N] [keys N] [ban DURATION];`
//! is a name and a list of words, read here like trunk declarations
//! ([`super::routing`]): a typo is one E0215 naming the option. The key
//! (`$si`, `$fU`, `"$fU@$fd"` …) is checked where `within_limit(NAME)` is
//! called, in that route's kind, as if written there.

use super::check::Checker;
use super::ir;
use crate::diag::{Code, Diagnostic};
use crate::security::LimitSpec;
use crate::syntax::ast::{self, ExprKind, Item, ItemKind};
use crate::syntax::span::Span;

/// A declared limit, as calls see it.
#[derive(Debug, Clone)]
pub struct LimitInfo<'a> {
    pub index: u32,
    pub key: &'a ast::Expr,
    pub span: Span,
    pub used: bool,
}

const OPTIONS: &[&str] = &["by", "rate", "per", "burst", "keys", "ban"];

fn bad(c: &mut Checker<'_>, span: Span, msg: impl Into<String>, help: &str) {
    let mut d = Diagnostic::new(Code::BadDeclaration, msg).at(span, "here");
    if !help.is_empty() {
        d = d.with_help(help.to_string());
    }
    c.error(d);
}

/// Declares every limit into `c.limits` and `program.limits`.
pub fn declare_limits<'a>(
    c: &mut Checker<'a>,
    items: &[&'a Item],
    program: &mut ir::CheckedProgram,
) {
    for item in items {
        let ItemKind::Limit { name, words } = &item.kind else { continue };
        let Some((spec, key)) = limit(c, name, words, item.span) else { continue };
        if let Some(prev) = c.limits.get(&name.name) {
            let prev = prev.span;
            c.error(
                Diagnostic::new(
                    Code::DuplicateDefinition,
                    format!("limit `{}` is declared twice", name.name),
                )
                .at(name.span, "declared again here")
                .with_label(prev, "first declared here"),
            );
            continue;
        }
        let index = program.limits.len() as u32;
        c.limits.insert(name.name.clone(), LimitInfo { index, key, span: name.span, used: false });
        program.limits.push(spec);
    }
}

fn limit<'a>(
    c: &mut Checker<'_>,
    name: &ast::Ident,
    words: &'a [ast::Expr],
    span: Span,
) -> Option<(LimitSpec, &'a ast::Expr)> {
    let mut key: Option<&ast::Expr> = None;
    let mut rate: Option<i64> = None;
    let (mut per, mut burst, mut keys, mut ban) = (1000u64, None, None, None);
    let mut ok = true;
    let mut i = 0;
    while i < words.len() {
        let w = &words[i];
        let opt = match &w.kind {
            ExprKind::Name(n) => n.name.as_str(),
            _ => {
                bad(c, w.span, "expected an option of the limit", &help());
                return None;
            }
        };
        let value = words.get(i + 1);
        i += 2;
        let Some(v) = value else {
            bad(c, w.span, format!("`{opt}` needs a value after it"), &help());
            return None;
        };
        match (opt, &v.kind) {
            ("by", ExprKind::Pv(_)) => key = Some(v),
            ("by", ExprKind::Str(s)) if !s.is_plain() => key = Some(v),
            ("by", _) => {
                bad(
                    c,
                    v.span,
                    "a limit's key is a pseudo-variable or a string with pseudo-variables",
                    "e.g. `by $si` (the source address), `by $fU`, `by \"$fU@$fd\"`",
                );
                ok = false;
            }
            ("rate", ExprKind::Int(n)) if (1..=1_000_000).contains(n) => rate = Some(*n),
            ("burst", ExprKind::Int(n)) if (1..=1_000_000).contains(n) => burst = Some(*n),
            ("keys", ExprKind::Int(n)) if (1..=10_000_000).contains(n) => keys = Some(*n),
            ("rate" | "burst", _) => {
                bad(c, v.span, format!("`{opt}` takes a count from 1 to 1000000"), "");
                ok = false;
            }
            ("keys", _) => {
                bad(c, v.span, "`keys` takes a count from 1 to 10000000", "");
                ok = false;
            }
            ("per", ExprKind::Duration(ms)) if *ms > 0 => per = *ms,
            ("ban", ExprKind::Duration(ms)) if *ms > 0 => ban = Some(*ms),
            ("per" | "ban", _) => {
                bad(c, v.span, format!("`{opt}` takes a duration like `1s` or `5m`"), "");
                ok = false;
            }
            _ => {
                let mut d = Diagnostic::new(
                    Code::BadDeclaration,
                    format!("unknown option `{opt}` of a limit"),
                )
                .at(w.span, "not an option");
                d = match super::resolve::suggest(opt, OPTIONS.iter().copied()) {
                    Some(s) => d.with_help(format!("did you mean `{s}`? {}", help())),
                    None => d.with_help(help()),
                };
                c.error(d);
                return None;
            }
        }
    }
    if !ok {
        return None;
    }
    let Some(key) = key else {
        bad(c, span, format!("limit `{}` has no key", name.name), &help());
        return None;
    };
    let Some(rate) = rate else {
        bad(c, span, format!("limit `{}` has no rate", name.name), &help());
        return None;
    };
    let spec = LimitSpec {
        name: name.name.clone(),
        key: c.map.snippet(key.span).to_string(),
        rate: rate as u32,
        per: std::time::Duration::from_millis(per),
        burst: burst.unwrap_or(rate) as u32,
        keys: keys.map_or(LimitSpec::DEFAULT_KEYS, |k| k as u32),
        ban: ban.map(std::time::Duration::from_millis),
    };
    Some((spec, key))
}

fn help() -> String {
    "write `limit NAME by $si rate 50 per 1s burst 100;` (`per` 1s and `burst` = rate by default; `keys N` caps the keys tracked, 65536 by default; `ban 5m` bans a key that goes over)".into()
}

/// Declares every address group into `c.acls` and `program.acls`.
pub fn declare_acls(
    c: &mut Checker<'_>,
    items: &[&Item],
    csv: &std::collections::HashMap<Span, Result<crate::syntax::span::FileId, String>>,
    program: &mut ir::CheckedProgram,
) {
    for item in items {
        let ItemKind::Acl { name, words, block } = &item.kind else { continue };
        let mut nets = Vec::new();
        let mut feed: Option<crate::security::acl::Feed> = None;
        let mut i = 0;
        while i < words.len() {
            let w = &words[i];
            i += 1;
            let text = match &w.kind {
                ExprKind::Addr(a) => a.as_str(),
                ExprKind::Str(s) if s.is_plain() => s.value.as_str(),
                ExprKind::Name(n) if n.name == "from" => {
                    let Some(file) = words.get(i) else {
                        bad(c, w.span, "`from` needs a file name", "like `from \"peers.txt\"`");
                        break;
                    };
                    i += 1;
                    if let ExprKind::Str(url) = &file.kind
                        && (url.value.starts_with("https://") || url.value.starts_with("http://"))
                    {
                        if url.value.starts_with("http://") {
                            bad(c, file.span, "a feed is fetched over HTTPS only", FEED_HELP);
                        } else if !*block {
                            bad(
                                c,
                                file.span,
                                "only a `blocklist` is fetched from a URL",
                                FEED_HELP,
                            );
                        } else {
                            feed = Some(crate::security::acl::Feed {
                                url: url.value.clone(),
                                refresh_ms: 300_000,
                                key: None,
                            });
                        }
                        continue;
                    }
                    // Rows from a database: `from "postgres://…" query "SELECT net …"`.
                    let database = matches!(&file.kind, ExprKind::Str(u) if crate::routing::sql::is_database(&u.value));
                    if database {
                        match (words.get(i).map(|w| &w.kind), words.get(i + 1).map(|w| &w.kind)) {
                            (Some(ExprKind::Name(q)), Some(ExprKind::Str(_)))
                                if q.name == "query" =>
                            {
                                i += 2
                            }
                            _ => {
                                bad(
                                    c,
                                    file.span,
                                    "addresses from a database need a `query`",
                                    "like `from \"postgres://…\" query \"SELECT net FROM peers\"`",
                                );
                                continue;
                            }
                        }
                    }
                    match csv.get(&file.span) {
                        Some(Ok(id)) => acl_file(c, *id, &mut nets),
                        Some(Err(e)) if database => c.error(
                            Diagnostic::new(Code::BadCsvRow, format!("cannot read the addresses: {e}"))
                                .at(file.span, "here")
                                .with_help("the query gives one column, an address or network; on a reload the previous addresses keep serving"),
                        ),
                        Some(Err(e)) => c.error(
                            Diagnostic::new(
                                Code::BadCsvRow,
                                format!("cannot read the address file: {e}"),
                            )
                            .at(file.span, "here")
                            .with_help("the path is relative to the file declaring the acl"),
                        ),
                        None => bad(
                            c,
                            file.span,
                            "`from` needs a file name",
                            "like `from \"peers.txt\"`",
                        ),
                    }
                    continue;
                }
                ExprKind::Name(n) if n.name == "refresh" || n.name == "key" => {
                    let value = words.get(i);
                    i += 1;
                    let Some(f) = feed.as_mut() else {
                        bad(
                            c,
                            w.span,
                            format!("`{}` goes after `from \"https://…\"`", n.name),
                            FEED_HELP,
                        );
                        continue;
                    };
                    match (n.name.as_str(), value.map(|v| &v.kind)) {
                        ("refresh", Some(ExprKind::Duration(ms))) if *ms >= 1000 => {
                            f.refresh_ms = *ms
                        }
                        ("key", Some(ExprKind::Str(k))) if k.is_plain() => {
                            f.key = Some(k.value.clone())
                        }
                        _ => bad(
                            c,
                            value.map_or(w.span, |v| v.span),
                            format!(
                                "`{}` needs {}",
                                n.name,
                                if n.name == "key" {
                                    "a string"
                                } else {
                                    "a duration of at least 1s"
                                }
                            ),
                            FEED_HELP,
                        ),
                    }
                    continue;
                }
                _ => {
                    bad(c, w.span, "expected an address or a network", ACL_HELP);
                    continue;
                }
            };
            match crate::security::acl::parse_net(text) {
                Some(net) => nets.push(net),
                // The lexer reported a malformed address token already (E0108).
                None if matches!(w.kind, ExprKind::Addr(_)) => {}
                None => bad(c, w.span, format!("`{text}` is not an address or network"), ACL_HELP),
            }
        }
        if c.acls.contains_key(&name.name) || c.limits.contains_key(&name.name) {
            c.error(
                Diagnostic::new(
                    Code::DuplicateDefinition,
                    format!("`{}` is declared twice", name.name),
                )
                .at(name.span, "declared again here"),
            );
            continue;
        }
        let index = program.acls.len() as u32;
        c.acls
            .insert(name.name.clone(), super::check::Named { index, span: name.span, used: false });
        let mut acl = crate::security::acl::Acl::new(&name.name, &nets);
        acl.block = *block;
        acl.feed = feed;
        program.acls.push(acl);
    }
}

const FEED_HELP: &str = "write `blocklist NAME from \"https://feed.example/list\" refresh 5m key \"…\";` (`module security { feed_ca }` for a private CA)";

const ACL_HELP: &str = "write `acl NAME 10.0.0.0/8 192.0.2.7 \"2001:db8::/32\" from \"peers.txt\";` (a file has one address or network a line, `#` comments)";

/// The networks of an address file: one a line (a CSV's first column),
/// `#` comments and blank lines skipped; a bad line is E0218 at that line.
fn acl_file(
    c: &mut Checker<'_>,
    id: crate::syntax::span::FileId,
    out: &mut Vec<(std::net::IpAddr, u8)>,
) {
    let text = c.map.get(id).text.clone();
    let mut start = 0;
    for line in text.split_inclusive('\n') {
        let at = start;
        start += line.len();
        let first = line.split([',', '#']).next().unwrap_or("").trim();
        if first.is_empty() {
            continue;
        }
        match crate::security::acl::parse_net(first) {
            Some(net) => out.push(net),
            None => {
                let end = at + line.trim_end_matches(['\n', '\r']).len();
                c.error(
                    Diagnostic::new(
                        Code::BadCsvRow,
                        format!("`{first}` is not an address or network"),
                    )
                    .at(Span::new(id, at, end), "this line")
                    .with_help(ACL_HELP),
                );
            }
        }
    }
}

//! Expressions: name lookup, operator typing, builtin calls and regexes.
//!
//! Each `ast::Expr` becomes an `ir::Expr` with its type. A subexpression that
//! already failed gets type `Unknown`, which fits everywhere, so one mistake
//! yields one diagnostic. Builtin arguments are checked against the catalog's
//! parameter kinds: names of flags, routes and tables are resolved here,
//! constant ints are range-checked, and regexes are compiled now, with errors
//! pointing inside the string literal.

use super::builtins::{
    self, Func, KAMAILIO_NAMES, LOG_LEVEL_ALIASES, LOG_LEVELS, Param, PseudoVar, PvArg, Scope, Ty,
};
use super::check::{Checker, Use};
use super::ir::{self, ExprKind as K, InterpPart, Value};
use super::resolve::suggest;
use crate::diag::{Code, Diagnostic};
use crate::syntax::ast::{self, BinOp, ExprKind, RouteKind, StrPart, UnOp};
use crate::syntax::span::Span;

fn mk(kind: K, ty: Ty, span: Span) -> ir::Expr {
    ir::Expr { kind, ty, span }
}

fn err(span: Span) -> ir::Expr {
    mk(K::Error, Ty::Unknown, span)
}

/// The value of a constant expression, if it is one.
pub fn fold(e: &ir::Expr) -> Option<Value> {
    match &e.kind {
        K::Lit(v) => Some(v.clone()),
        K::Unary { op, expr } => match (op, fold(expr)?) {
            (UnOp::Neg, Value::Int(i)) => Some(Value::Int(i.checked_neg()?)),
            (UnOp::Not, Value::Bool(b)) => Some(Value::Bool(!b)),
            _ => None,
        },
        K::Binary { op, lhs, rhs } => match (op, fold(lhs)?, fold(rhs)?) {
            (BinOp::Add, Value::Int(a), Value::Int(b)) => Some(Value::Int(a.checked_add(b)?)),
            (BinOp::Sub, Value::Int(a), Value::Int(b)) => Some(Value::Int(a.checked_sub(b)?)),
            (BinOp::Mul, Value::Int(a), Value::Int(b)) => Some(Value::Int(a.checked_mul(b)?)),
            (BinOp::Div, Value::Int(a), Value::Int(b)) => Some(Value::Int(a.checked_div(b)?)),
            (BinOp::Rem, Value::Int(a), Value::Int(b)) => Some(Value::Int(a.checked_rem(b)?)),
            (BinOp::Add, Value::Str(a), Value::Str(b)) => Some(Value::Str(a + &b)),
            (BinOp::Add, Value::Duration(a), Value::Duration(b)) => {
                Some(Value::Duration(a.checked_add(b)?))
            }
            _ => None,
        },
        _ => None,
    }
}

impl Checker<'_> {
    pub fn expr(&mut self, e: &ast::Expr) -> ir::Expr {
        let span = e.span;
        match &e.kind {
            ExprKind::Str(lit) => self.string(lit),
            ExprKind::Int(i) => mk(K::Lit(Value::Int(*i)), Ty::Int, span),
            ExprKind::Bool(b) => mk(K::Lit(Value::Bool(*b)), Ty::Bool, span),
            ExprKind::Duration(ms) => mk(K::Lit(Value::Duration(*ms)), Ty::Duration, span),
            ExprKind::Addr(a) => mk(K::Lit(Value::Addr(a.clone())), Ty::Addr, span),
            ExprKind::Pv(pv) => self.pv_read(pv),
            ExprKind::Name(id) => self.name(id),
            ExprKind::Call { name, args } => self.call(name, args, span),
            ExprKind::RouteCall(name) => match self.route_ref(name, RouteKind::Sub) {
                Some(id) => {
                    self.facts.calls.push((self.route, id, span));
                    mk(K::CallRoute(id), Ty::Bool, span)
                }
                None => err(span),
            },
            ExprKind::Unary { op, expr } => {
                let x = self.expr(expr);
                let want = match op {
                    UnOp::Not => Ty::Bool,
                    UnOp::Neg => Ty::Int,
                };
                if !x.ty.fits(want) {
                    let sym = if *op == UnOp::Not { "!" } else { "-" };
                    self.error(
                        Diagnostic::new(
                            Code::BadOperands,
                            format!("`{sym}` needs {}, found {}", want.name(), x.ty.name()),
                        )
                        .at(x.span, format!("this is {}", x.ty.name())),
                    );
                    return err(span);
                }
                mk(K::Unary { op: *op, expr: Box::new(x) }, want, span)
            }
            ExprKind::Binary { op, lhs, rhs } => self.binary(*op, lhs, rhs, span),
            ExprKind::Error => err(span),
        }
    }

    fn string(&mut self, lit: &ast::StrLit) -> ir::Expr {
        if lit.is_plain() {
            return mk(K::Lit(Value::Str(lit.value.clone())), Ty::Str, lit.span);
        }
        let parts = lit
            .parts
            .iter()
            .map(|p| match p {
                StrPart::Lit(s) => InterpPart::Lit(s.clone()),
                StrPart::Pv(pv) => InterpPart::Expr(self.pv_read(pv)),
            })
            .collect();
        mk(K::Interp(parts), Ty::Str, lit.span)
    }

    fn name(&mut self, id: &ast::Ident) -> ir::Expr {
        if let Some(slot) = self.lookup_local(&id.name) {
            let ty = self.locals[slot as usize].ty;
            return mk(K::Local(slot), ty, id.span);
        }
        if let Some(c) = self.consts.get_mut(&id.name) {
            c.used = true;
            return match &c.value {
                Some(v) => mk(K::Lit(v.clone()), v.ty(), id.span),
                None => err(id.span),
            };
        }
        let mut d = Diagnostic::new(Code::UnknownName, format!("cannot find `{}`", id.name))
            .at(id.span, "not a local or constant");
        if self.flags.contains_key(&id.name) {
            d = d.with_help(format!("`{0}` is a flag: test it with `isflagset({0})`", id.name));
        } else if id.name == "myself" {
            d = d.with_help("Kamailio's `uri == myself` is `is_myself($ru)` here");
        } else {
            let mut names: Vec<String> =
                self.scopes.iter().flatten().map(|(n, _)| n.clone()).collect();
            names.extend(self.consts.keys().cloned());
            if let Some(s) = suggest(&id.name, names.iter().map(String::as_str)) {
                d = d.with_help(format!("a similar name exists: `{s}`"));
            }
        }
        self.error(d);
        err(id.span)
    }

    pub fn unknown_pv(&mut self, pv: &ast::Pv) {
        let mut d = Diagnostic::new(
            Code::UnknownPseudoVar,
            format!("unknown pseudo-variable `${}`", pv.name),
        )
        .at(pv.span, "not in the builtin catalog");
        if pv.name == "null" {
            d = d.with_help("there is no `$null`: compare with the empty string `\"\"`");
        } else if let Some(s) = suggest(&pv.name, builtins::PSEUDO_VARS.iter().map(|p| p.name)) {
            d = d.with_help(format!("did you mean `${s}`?"));
        }
        self.error(d);
    }

    pub fn pv_arg_ok(&mut self, pv: &ast::Pv, def: &PseudoVar) -> bool {
        let ok = match def.arg {
            PvArg::None => pv.arg.is_none(),
            PvArg::Name | PvArg::Header => pv.arg.as_deref().is_some_and(|a| !a.is_empty()),
            PvArg::Index => pv.arg.as_deref().is_some_and(|a| a.parse::<u32>().is_ok()),
        };
        if !ok {
            let want = match def.arg {
                PvArg::None => format!("`${}` takes no argument", def.name),
                PvArg::Name | PvArg::Header => {
                    format!("`${}` needs a name: `${}(name)`", def.name, def.name)
                }
                PvArg::Index => format!("`${}` needs a number: `${}(1)`", def.name, def.name),
            };
            self.error(
                Diagnostic::new(Code::UnknownPseudoVar, want.clone()).at(pv.span, "wrong argument"),
            );
        }
        ok
    }

    pub fn pv_read(&mut self, pv: &ast::Pv) -> ir::Expr {
        let Some((idx, def)) = builtins::pseudo_var(&pv.name) else {
            self.unknown_pv(pv);
            return err(pv.span);
        };
        if !self.pv_arg_ok(pv, def) {
            return err(pv.span);
        }
        if def.arg == PvArg::Header {
            self.header_pv(pv);
        }
        let arg = pv.arg.clone().unwrap_or_default();
        match def.scope {
            Scope::MessageLocal if def.name == "var" => {
                let slot = self.msg_var_slot(&arg);
                self.facts.var_reads.push((self.route, slot, pv.span));
                mk(K::MsgVar(slot), self.msg_vars[slot as usize].ty, pv.span)
            }
            Scope::MessageLocal => mk(K::Capture(arg.parse().unwrap_or(0)), Ty::Str, pv.span),
            // `$avp(x)` lives in the transaction's slots; other
            // transaction-scoped pseudo-variables (`$out_trunk`) are read
            // through their runtime getters like message ones.
            Scope::Transaction if def.name == "avp" => {
                let slot = self.avp_slot(&arg);
                mk(K::Avp(slot), Ty::Str, pv.span)
            }
            Scope::Message | Scope::Transaction => {
                self.facts.uses.push(Use {
                    route: self.route,
                    allowed: def.read,
                    what: format!("`${}`", def.name),
                    span: pv.span,
                });
                mk(K::Pv { pv: idx, arg: pv.arg.clone() }, def.ty, pv.span)
            }
        }
    }

    fn binary(&mut self, op: BinOp, lhs: &ast::Expr, rhs: &ast::Expr, span: Span) -> ir::Expr {
        let l = self.expr(lhs);
        if op == BinOp::Match {
            if !l.ty.fits(Ty::Str) {
                self.bad_operands(op, &l, None);
            }
            let regex = match &rhs.kind {
                ExprKind::Str(lit) if lit.is_plain() => self.regex_literal(lit),
                ExprKind::Name(id) if self.str_const(&id.name).is_some() => {
                    let pattern = self.str_const(&id.name).unwrap_or_default();
                    self.regex_const(&pattern, id.span)
                }
                _ => {
                    self.error(
                        Diagnostic::new(
                            Code::NotConstant,
                            "the right side of `=~` must be a string literal or constant",
                        )
                        .at(rhs.span, "not a constant regex")
                        .with_help("regexes are compiled when the configuration is checked"),
                    );
                    None
                }
            };
            return match regex {
                Some(r) => mk(K::Matches { lhs: Box::new(l), regex: r }, Ty::Bool, span),
                None => err(span),
            };
        }
        let r = self.expr(rhs);
        let (lt, rt) = (l.ty, r.ty);
        let unknown = lt == Ty::Unknown || rt == Ty::Unknown;
        let ty = match op {
            BinOp::Or | BinOp::And => (lt.fits(Ty::Bool) && rt.fits(Ty::Bool)).then_some(Ty::Bool),
            BinOp::Eq | BinOp::Ne => {
                (lt.fits(rt) && lt != Ty::Void && rt != Ty::Void).then_some(Ty::Bool)
            }
            BinOp::Lt | BinOp::Gt | BinOp::Le | BinOp::Ge => (lt.fits(rt)
                && matches!(
                    if lt == Ty::Unknown { rt } else { lt },
                    Ty::Int | Ty::Duration | Ty::Unknown
                ))
            .then_some(Ty::Bool),
            BinOp::Add => match (lt, rt) {
                (Ty::Str, Ty::Str) => Some(Ty::Str),
                (Ty::Int, Ty::Int) => Some(Ty::Int),
                (Ty::Duration, Ty::Duration) => Some(Ty::Duration),
                _ if unknown => Some(Ty::Unknown),
                _ => None,
            },
            BinOp::Sub | BinOp::Mul | BinOp::Div | BinOp::Rem => {
                (lt.fits(Ty::Int) && rt.fits(Ty::Int)).then_some(Ty::Int)
            }
            BinOp::Match => unreachable!("handled above"),
        };
        match ty {
            Some(ty) => mk(K::Binary { op, lhs: Box::new(l), rhs: Box::new(r) }, ty, span),
            None => {
                self.bad_operands(op, &l, Some(&r));
                err(span)
            }
        }
    }

    fn bad_operands(&mut self, op: BinOp, l: &ir::Expr, r: Option<&ir::Expr>) {
        let sym = op.symbol();
        let (msg, help) = match (op, r) {
            (BinOp::Match, _) => (format!("`=~` matches a str, found {}", l.ty.name()), None),
            (BinOp::Add, Some(r)) => (
                format!("cannot add {} and {}", l.ty.name(), r.ty.name()),
                Some(
                    "`+` adds two ints or joins two strs; convert with `to_str(…)` or `to_int(…)`",
                ),
            ),
            (BinOp::Or | BinOp::And, Some(r)) => (
                format!("`{sym}` needs two bools, found {} and {}", l.ty.name(), r.ty.name()),
                None,
            ),
            (_, Some(r)) => (
                format!("`{sym}` cannot compare or combine {} and {}", l.ty.name(), r.ty.name()),
                None,
            ),
            (_, None) => (format!("`{sym}` cannot apply to {}", l.ty.name()), None),
        };
        let mut d =
            Diagnostic::new(Code::BadOperands, msg).at(l.span, format!("this is {}", l.ty.name()));
        if let Some(r) = r {
            d = d.with_label(r.span, format!("this is {}", r.ty.name()));
        }
        if let Some(h) = help {
            d = d.with_help(h);
        }
        self.error(d);
    }

    fn call(&mut self, name: &ast::Ident, args: &[ast::Expr], span: Span) -> ir::Expr {
        let Some((idx, f)) = builtins::function(&name.name) else {
            let mut d = Diagnostic::new(
                Code::UnknownFunction,
                format!("cannot find function `{}`", name.name),
            )
            .at(name.span, "not a builtin function");
            if let Some((_, ours)) = KAMAILIO_NAMES.iter().find(|(k, _)| *k == name.name) {
                d = d.with_help(format!("Kamailio's `{}` is called `{ours}` here", name.name));
            } else if let Some(s) = suggest(&name.name, builtins::FUNCTIONS.iter().map(|f| f.name))
            {
                d = d.with_help(format!("did you mean `{s}`?"));
            } else if self.route_names.contains_key(&(RouteKind::Sub, name.name.clone())) {
                d = d.with_help(format!("to run the route, write `route({})`", name.name));
            }
            self.error(d);
            for a in args {
                self.expr(a);
            }
            return err(span);
        };
        if args.len() < f.min_args || args.len() > f.params.len() {
            let sig = signature(f);
            let count = if f.min_args == f.params.len() {
                format!("{}", f.params.len())
            } else {
                format!("{} to {}", f.min_args, f.params.len())
            };
            self.error(
                Diagnostic::new(
                    Code::WrongArgCount,
                    format!(
                        "`{}` takes {count} argument{}, but {} {} given",
                        f.name,
                        if f.params.len() == 1 && f.min_args == 1 { "" } else { "s" },
                        args.len(),
                        if args.len() == 1 { "was" } else { "were" }
                    ),
                )
                .at(span, format!("expected {count}"))
                .with_help(format!("signature: {sig}")),
            );
            for a in args {
                self.expr(a);
            }
            return err(span);
        }
        self.facts.uses.push(Use {
            route: self.route,
            allowed: f.kinds,
            what: format!("`{}()`", f.name),
            span,
        });
        let mut lowered: Vec<ir::Expr> =
            args.iter().zip(f.params).map(|(a, (_, p))| self.arg(a, *p, f)).collect();
        if let (Some((_, Param::Limit)), [limit]) = (f.params.first(), lowered.as_slice()) {
            // `within_limit(NAME)`: the declaration's key, checked here as
            // if written at the call (its pseudo-variables must be readable
            // in this route's kind).
            if let K::LimitRef(i) = limit.kind
                && let Some(key) = self.limits.values().find(|l| l.index == i).map(|l| l.key)
            {
                let e = self.expr(key);
                if !matches!(e.ty, Ty::Str | Ty::Addr | Ty::Unknown) {
                    self.error(
                        Diagnostic::new(
                            Code::TypeMismatch,
                            format!("a limit's key is a str, this one is {}", e.ty.name()),
                        )
                        .at(key.span, "the limit's key")
                        .with_label(span, "checked for this call")
                        .with_help("key the limit by a str: `$si`, `$fU`, `\"$rs\"`"),
                    );
                }
                lowered.push(e);
            }
        }
        mk(K::Call { func: idx, args: lowered }, f.ret, span)
    }

    fn arg(&mut self, a: &ast::Expr, p: Param, f: &Func) -> ir::Expr {
        let span = a.span;
        match p {
            Param::Str => {
                let e = self.expr(a);
                self.expect_ty(&e, Ty::Str, None);
                e
            }
            Param::Uri(_) | Param::Header | Param::HeaderLine | Param::NgFlags => {
                let e = self.expr(a);
                if self.expect_ty(&e, Ty::Str, None) {
                    match p {
                        Param::Uri(usage) => self.uri_value(a, &e, usage),
                        Param::Header => self.header_name_value(a, &e),
                        Param::NgFlags => self.ng_flags_value(a, &e),
                        _ => self.header_lines_value(a, &e),
                    }
                }
                e
            }
            Param::Bool | Param::Duration | Param::Int => {
                let want = match p {
                    Param::Bool => Ty::Bool,
                    Param::Duration => Ty::Duration,
                    _ => Ty::Int,
                };
                let e = self.expr(a);
                self.expect_ty(&e, want, None);
                e
            }
            Param::IntRange(lo, hi) => {
                let e = self.expr(a);
                if e.ty == Ty::Str {
                    let mut d = Diagnostic::new(
                        Code::TypeMismatch,
                        format!("`{}` expects an int here, found str", f.name),
                    )
                    .at(span, format!("expected an int in {lo}..={hi}"));
                    if let K::Lit(Value::Str(s)) = &e.kind {
                        d = if s.parse::<i64>().is_ok() {
                            d.with_help(format!("write the number without quotes: `{s}`"))
                        } else {
                            d.with_help(format!("`{s}` is not a number"))
                        };
                    }
                    self.error(d);
                    return err(span);
                }
                if self.expect_ty(&e, Ty::Int, None) {
                    if let Some(Value::Int(v)) = fold(&e) {
                        if v < lo || v > hi {
                            self.error(
                                Diagnostic::new(
                                    Code::OutOfRange,
                                    format!("`{v}` is out of range for `{}`", f.name),
                                )
                                .at(span, format!("expected {lo}..={hi}")),
                            );
                        }
                    }
                }
                e
            }
            Param::Regex => match &a.kind {
                ExprKind::Str(lit) if lit.is_plain() => match self.regex_literal(lit) {
                    Some(r) => mk(K::Regex(r), Ty::Str, span),
                    None => err(span),
                },
                _ => {
                    self.error(
                        Diagnostic::new(
                            Code::NotConstant,
                            format!("`{}` needs a constant regex", f.name),
                        )
                        .at(span, "expected a string literal")
                        .with_help("regexes are compiled when the configuration is checked"),
                    );
                    err(span)
                }
            },
            Param::Flag => self.named_arg(a, "flag", |c, n| {
                c.flags.get_mut(n).map(|f| {
                    f.used = true;
                    K::FlagRef(f.index)
                })
            }),
            Param::Table => self.named_arg(a, "table", |c, n| {
                c.tables.get_mut(n).map(|t| {
                    t.used = true;
                    K::TableRef(t.index)
                })
            }),
            Param::Acl => self.named_arg(a, "acl", |c, n| {
                c.acls.get_mut(n).map(|l| {
                    l.used = true;
                    K::AclRef(l.index)
                })
            }),
            Param::Limit => self.named_arg(a, "limit", |c, n| {
                c.limits.get_mut(n).map(|l| {
                    l.used = true;
                    K::LimitRef(l.index)
                })
            }),
            Param::Dest => self.named_arg(a, "destination", |c, n| {
                c.dests.get_mut(n).map(|d| {
                    d.2 = true;
                    K::DestRef(d.0)
                })
            }),
            Param::Route(kind) => match &a.kind {
                ExprKind::Name(id) => match self.route_ref(id, kind) {
                    Some(r) => {
                        self.facts.arms.push((self.route, r, span));
                        mk(K::RouteRef(r), Ty::Void, span)
                    }
                    None => err(span),
                },
                _ => {
                    self.error(
                        Diagnostic::new(
                            Code::TypeMismatch,
                            format!("expected the name of a {}", kind.keyword()),
                        )
                        .at(span, "not a route name"),
                    );
                    err(span)
                }
            },
            Param::Word(words) => self.word_arg(a, words, f),
            Param::Words(words) => self.words_arg(a, words, f),
            Param::Level => {
                let text = match &a.kind {
                    ExprKind::Name(id) => Some(id.name.as_str()),
                    ExprKind::Str(lit) if lit.is_plain() => Some(lit.value.as_str()),
                    _ => None,
                };
                let lvl = text.map(|t| t.trim_start_matches("L_").to_ascii_lowercase());
                let lvl = lvl.map(|l| match LOG_LEVEL_ALIASES.iter().find(|(k, _)| *k == l) {
                    Some((_, ours)) => (*ours).to_owned(),
                    None => l,
                });
                match lvl.as_deref().and_then(|t| LOG_LEVELS.iter().position(|l| *l == t)) {
                    Some(i) => mk(K::Level(i as u8), Ty::Void, span),
                    None => {
                        self.error(
                            Diagnostic::new(Code::TypeMismatch, "expected a log level")
                                .at(span, "not a log level")
                                .with_help(format!("log levels: {}", LOG_LEVELS.join(", "))),
                        );
                        err(span)
                    }
                }
            }
        }
    }

    /// A [`Param::Word`]: a name or a plain string literal that is one of
    /// `words`, passed on as its index.
    fn word_arg(&mut self, a: &ast::Expr, words: &[&str], f: &Func) -> ir::Expr {
        let text = match &a.kind {
            ExprKind::Name(id) => Some(id.name.as_str()),
            ExprKind::Str(lit) if lit.is_plain() => Some(lit.value.as_str()),
            _ => None,
        };
        if let Some(i) = text.and_then(|t| words.iter().position(|w| *w == t)) {
            return mk(K::Level(i as u8), Ty::Void, a.span);
        }
        let help = match text.and_then(|t| suggest(t, words.iter().copied())) {
            Some(s) => format!("did you mean `\"{s}\"`?"),
            None => {
                let list: Vec<String> = words.iter().map(|w| format!("`\"{w}\"`")).collect();
                format!("write one of {}", list.join(", "))
            }
        };
        self.error(
            Diagnostic::new(
                Code::TypeMismatch,
                format!("`{}` expects one of {}", f.name, words.join(", ")),
            )
            .at(
                a.span,
                if text.is_some() {
                    "not one of the accepted words"
                } else {
                    "not a constant word"
                },
            )
            .with_help(help),
        );
        err(a.span)
    }

    /// A [`Param::Words`]: a name or a plain string literal of
    /// `|`-separated words of `words`, passed on as a bit mask.
    fn words_arg(&mut self, a: &ast::Expr, words: &[&str], f: &Func) -> ir::Expr {
        let text = match &a.kind {
            ExprKind::Name(id) => Some(id.name.as_str()),
            ExprKind::Str(lit) if lit.is_plain() => Some(lit.value.as_str()),
            _ => None,
        };
        let mut mask = 0u8;
        let mut bad = None;
        if let Some(t) = text {
            for w in t.split('|').map(str::trim) {
                match words.iter().position(|x| *x == w) {
                    Some(i) if i < 8 => mask |= 1 << i,
                    _ => {
                        bad = Some(w.to_owned());
                        break;
                    }
                }
            }
        }
        if text.is_some() && bad.is_none() {
            return mk(K::Level(mask), Ty::Void, a.span);
        }
        // A bit mask as Kamailio writes it (`nat_uac_test("19")`): name its bits.
        let mask_words = bad.as_deref().and_then(|t| t.parse::<u32>().ok()).and_then(|n| {
            let names: Vec<&str> =
                (0..words.len()).filter(|i| n & (1 << i) != 0).map(|i| words[i]).collect();
            (n != 0 && n >> words.len() == 0).then(|| names.join("|"))
        });
        let help = match bad.as_deref().and_then(|t| suggest(t, words.iter().copied())) {
            Some(s) => format!("did you mean `{s}`?"),
            None if mask_words.is_some() => format!(
                "the checks are named here: the bit mask {} is `\"{}\"`",
                bad.as_deref().unwrap_or_default(),
                mask_words.unwrap_or_default()
            ),
            None => {
                let list: Vec<String> = words.iter().map(|w| format!("`{w}`")).collect();
                format!("write one or more of {}, separated by `|`", list.join(", "))
            }
        };
        let label = match &bad {
            Some(w) => format!("`{w}` is not one of the accepted words"),
            None => "not a constant string of words".to_owned(),
        };
        self.error(
            Diagnostic::new(
                Code::TypeMismatch,
                format!("`{}` expects `|`-separated words of {}", f.name, words.join(", ")),
            )
            .at(a.span, label)
            .with_help(help),
        );
        err(a.span)
    }

    fn named_arg(
        &mut self,
        a: &ast::Expr,
        what: &str,
        find: impl Fn(&mut Self, &str) -> Option<K>,
    ) -> ir::Expr {
        let ExprKind::Name(id) = &a.kind else {
            self.error(
                Diagnostic::new(Code::TypeMismatch, format!("expected the name of a {what}"))
                    .at(a.span, format!("not a {what} name"))
                    .with_help(format!("declare it with `{what} NAME …;` and pass NAME")),
            );
            return err(a.span);
        };
        if let Some(k) = find(self, &id.name) {
            return mk(k, Ty::Void, a.span);
        }
        let (code, names): (Code, Vec<&str>) = if what == "flag" {
            (Code::UnknownFlag, self.flags.keys().map(String::as_str).collect())
        } else if what == "destination" {
            (Code::UnknownTrunk, self.dests.keys().map(String::as_str).collect())
        } else if what == "limit" {
            (Code::UnknownLimit, self.limits.keys().map(String::as_str).collect())
        } else if what == "acl" {
            (Code::UnknownLimit, self.acls.keys().map(String::as_str).collect())
        } else {
            (Code::UnknownTable, self.tables.keys().map(String::as_str).collect())
        };
        let mut d = Diagnostic::new(code, format!("cannot find {what} `{}`", id.name))
            .at(id.span, format!("no `{what}` declares this"));
        d = match suggest(&id.name, names.into_iter()) {
            Some(s) => {
                let a = if what.starts_with(['a', 'e', 'i', 'o', 'u']) { "an" } else { "a" };
                d.with_help(format!("{a} {what} with a similar name exists: `{s}`"))
            }
            None => d.with_help(format!("declare it with `{what} {} …;`", id.name)),
        };
        self.error(d);
        err(a.span)
    }

    /// Resolves a route name of the given kind, reporting unknown or
    /// wrong-kind names.
    pub fn route_ref(&mut self, id: &ast::Ident, kind: RouteKind) -> Option<u32> {
        if let Some(&r) = self.route_names.get(&(kind, id.name.clone())) {
            return Some(r);
        }
        let other =
            self.route_names.iter().find(|((_, n), _)| *n == id.name).map(|((k, _), r)| (*k, *r));
        if let Some((k, r)) = other {
            let def_span = self.route_defs[r as usize].head;
            self.error(
                Diagnostic::new(
                    Code::WrongRouteKind,
                    format!("`{}` is a {}, not a {}", id.name, k.keyword(), kind.keyword()),
                )
                .at(id.span, format!("expected a {}", kind.keyword()))
                .with_label(def_span, format!("defined as a {} here", k.keyword())),
            );
            return None;
        }
        let names: Vec<&str> =
            self.route_names.keys().filter(|(k, _)| *k == kind).map(|(_, n)| n.as_str()).collect();
        let mut d = Diagnostic::new(
            Code::UnknownRoute,
            format!("cannot find {} `{}`", kind.keyword(), id.name),
        )
        .at(id.span, "no route with this name");
        d = match suggest(&id.name, names.into_iter()) {
            Some(s) => {
                d.with_help(format!("a {} with a similar name exists: `{s}`", kind.keyword()))
            }
            None => d.with_help(format!("define it with `{} {} {{ … }}`", kind.keyword(), id.name)),
        };
        self.error(d);
        None
    }
}

/// `name(a: str, b?: int) -> bool`, for help lines.
pub fn signature(f: &Func) -> String {
    format!("{}({}) -> {}", f.name, f.params_text().join(", "), f.ret.name())
}

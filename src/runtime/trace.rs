//! What an instrumented program records while it routes one message: the
//! routes entered and left, each statement run (with the values of the
//! pseudo-variables, `$var`s and `$avp`s it reads), each condition's
//! outcome, each value written and each call's result.
//!
//! Only a program compiled with instrumentation
//! ([`crate::codegen::Program::compile_instrumented`]) calls these
//! functions, and they record only for a request that carries a
//! [`Trace`] ([`crate::proxy::RequestContext::trace`]): `sipc test
//! --coverage` and `sipc trace` run such a program on the messages they
//! look at, while every other message runs the plain program at its
//! usual cost.

use super::{RouteCtx, resolve};
use crate::sema::builtins::{PSEUDO_VARS, Ty};
use crate::syntax::span::Span;

/// One statement of an instrumented program.
#[derive(Debug, Clone)]
pub struct Mark {
    pub span: Span,
    /// What the statement reads, evaluated when it runs.
    pub reads: Vec<Read>,
    /// The place the statement assigns, by name (`$du`, `$var(x)` …).
    pub writes: Option<String>,
}

/// A value a statement reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Read {
    Pv { pv: usize, arg: Option<String> },
    MsgVar { slot: u32, name: String, ty: Ty },
    Avp { slot: u32, name: String },
}

impl Read {
    pub fn name(&self) -> String {
        match self {
            Read::Pv { pv, arg: Some(a) } => format!("${}({a})", PSEUDO_VARS[*pv].name),
            Read::Pv { pv, arg: None } => format!("${}", PSEUDO_VARS[*pv].name),
            Read::MsgVar { name, .. } => format!("$var({name})"),
            Read::Avp { name, .. } => format!("$avp({name})"),
        }
    }
}

/// One thing an instrumented route did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A route started (request, hook or `route(NAME)`).
    Enter(u32),
    /// The route that started last ended: `exit`, `drop`, or its value.
    Leave(String),
    /// Statement `Mark` index ran.
    Stmt(u32),
    /// A value the last statement read.
    Read { name: String, value: String },
    /// The last statement's condition was true or false.
    Cond(bool),
    /// The last statement wrote this value (to its mark's `writes`).
    Wrote(String),
    /// The last statement's call returned this.
    Result(String),
    /// The value a `switch` compared.
    Matched(String),
}

/// The events of one message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Trace {
    pub events: Vec<Event>,
}

/// Type tags the code generator passes with a traced value.
pub const TY_INT: i64 = 0;
pub const TY_BOOL: i64 = 1;
pub const TY_STR: i64 = 2;
pub const TY_DURATION: i64 = 3;
pub const TY_OTHER: i64 = 4;

/// The tag of a value of type `ty`.
pub fn ty_tag(ty: Ty) -> i64 {
    match ty {
        Ty::Int => TY_INT,
        Ty::Bool => TY_BOOL,
        Ty::Str | Ty::Addr => TY_STR,
        Ty::Duration => TY_DURATION,
        _ => TY_OTHER,
    }
}

/// What kind of traced value ([`trace_value`]'s first argument).
pub const VALUE_WROTE: i64 = 0;
pub const VALUE_COND: i64 = 1;
pub const VALUE_RESULT: i64 = 2;
pub const VALUE_MATCHED: i64 = 3;

fn push(ctx: &mut RouteCtx<'_>, e: Event) {
    if let Some(t) = ctx.req.trace.as_deref_mut() {
        t.events.push(e);
    }
}

fn show(ctx: &RouteCtx<'_>, tag: i64, v: i64) -> String {
    match tag {
        TY_INT => v.to_string(),
        TY_BOOL => (v != 0).to_string(),
        TY_DURATION => format!("{v}ms"),
        TY_STR => format!("{:?}", resolve(ctx.req, ctx.shared, &ctx.strings, v)),
        _ => String::new(),
    }
}

/// `sipc_rt_trace_enter(route)`.
pub fn trace_enter(ctx: &mut RouteCtx<'_>, a: &[i64]) -> i64 {
    push(ctx, Event::Enter(a[0] as u32));
    0
}

/// `sipc_rt_trace_leave(result)`.
pub fn trace_leave(ctx: &mut RouteCtx<'_>, a: &[i64]) -> i64 {
    let how = match a[0] {
        super::RESULT_EXIT => "exit".to_owned(),
        super::RESULT_DROP => "drop".to_owned(),
        super::RESULT_TRUE => "return".to_owned(),
        super::RESULT_FALSE => "return false".to_owned(),
        v => format!("return {v}"),
    };
    push(ctx, Event::Leave(how));
    0
}

/// `sipc_rt_trace_stmt(mark)`: the statement and the values it reads.
pub fn trace_stmt(ctx: &mut RouteCtx<'_>, a: &[i64]) -> i64 {
    if ctx.req.trace.is_none() {
        return 0;
    }
    let id = a[0] as u32;
    push(ctx, Event::Stmt(id));
    let reads = ctx.shared.marks.get(id as usize).map(|m| m.reads.clone()).unwrap_or_default();
    for r in reads {
        let value = match &r {
            Read::Pv { pv, arg } => {
                format!("{:?}", super::routing::pv_text(ctx, *pv, arg.as_deref()))
            }
            Read::MsgVar { slot, ty, .. } => {
                let v = ctx.vars.get(*slot as usize).copied().unwrap_or(0);
                let tag = if *ty == Ty::Unknown { TY_STR } else { ty_tag(*ty) };
                show(ctx, tag, v)
            }
            Read::Avp { slot, .. } => {
                let v = ctx.avps.get(*slot as usize).copied().unwrap_or(ctx.shared.empty);
                show(ctx, TY_STR, v)
            }
        };
        push(ctx, Event::Read { name: r.name(), value });
    }
    0
}

/// `sipc_rt_trace_value(kind, type tag, value)`.
pub fn trace_value(ctx: &mut RouteCtx<'_>, a: &[i64]) -> i64 {
    if ctx.req.trace.is_none() {
        return 0;
    }
    let text = show(ctx, a[1], a[2]);
    let e = match a[0] {
        VALUE_COND => Event::Cond(a[2] != 0),
        VALUE_WROTE => Event::Wrote(text),
        VALUE_MATCHED => Event::Matched(text),
        _ => Event::Result(text),
    };
    push(ctx, e);
    0
}

/// The source text of a statement, as a trace shows it: its first line,
/// trimmed, at most 72 characters.
pub fn statement_text(sources: &crate::syntax::span::SourceMap, span: Span) -> String {
    let text = sources.snippet(span);
    let line = text.lines().next().unwrap_or("").trim();
    match line.char_indices().nth(72) {
        Some((i, _)) => format!("{}…", &line[..i]),
        None => line.to_owned(),
    }
}

/// A trace as lines of text: each route entered, each statement run (file,
/// line, its text, the values it read and what came of it), indented by
/// route depth, and how each route ended.
pub fn render(
    events: &[Event],
    marks: &[Mark],
    prog: &crate::sema::ir::CheckedProgram,
    sources: &crate::syntax::span::SourceMap,
) -> Vec<String> {
    // Each line with the notes (values read, outcome) that follow it.
    let mut lines: Vec<(String, Vec<String>)> = Vec::new();
    let mut depth = 0usize;
    let pad = |d: usize| "  ".repeat(d);
    let note = |lines: &mut Vec<(String, Vec<String>)>, what: String| {
        if let Some(last) = lines.last_mut() {
            last.1.push(what);
        }
    };
    for e in events {
        match e {
            Event::Enter(r) => {
                let name = prog.routes.get(*r as usize).map_or("?".to_owned(), |r| {
                    if r.name.is_empty() {
                        r.kind.keyword().to_owned()
                    } else {
                        format!("{} {}", r.kind.keyword(), r.name)
                    }
                });
                lines.push((format!("{}{name}", pad(depth)), Vec::new()));
                depth += 1;
            }
            Event::Leave(how) => {
                lines.push((format!("{}-> {how}", pad(depth)), Vec::new()));
                depth = depth.saturating_sub(1);
            }
            Event::Stmt(id) => {
                let Some(m) = marks.get(*id as usize) else { continue };
                let file = sources.get(m.span.file);
                let (line, _) = file.line_col(m.span.start);
                let name = std::path::Path::new(&file.name)
                    .file_name()
                    .map_or(file.name.clone(), |n| n.to_string_lossy().into_owned());
                let text = statement_text(sources, m.span);
                lines.push((format!("{}{name}:{line}  {text}", pad(depth)), Vec::new()));
            }
            Event::Read { name, value } => note(&mut lines, format!("{name} = {value}")),
            Event::Cond(c) => note(&mut lines, format!("-> {c}")),
            Event::Result(v) if !v.is_empty() => note(&mut lines, format!("-> {v}")),
            Event::Result(_) => {}
            Event::Wrote(v) => note(&mut lines, format!("<- {v}")),
            Event::Matched(v) => note(&mut lines, format!("on {v}")),
        }
    }
    lines
        .into_iter()
        .map(|(l, n)| if n.is_empty() { l } else { format!("{l}      [{}]", n.join("; ")) })
        .collect()
}

//! Running one test: a fresh world, the compiled program inside a real
//! proxy [`Core`] without sockets, the test's messages fed to it, and what
//! it sends and what its routes decided compared with the expectations.
//!
//! The core is the one `sipc run` serves (RFC 3261 checks, `received`,
//! route preprocessing, transactions, failure routes, the forwarding
//! edits): a test sees the bytes the proxy would put on the wire. Its
//! router is the compiled [`Program`] wrapped in a [`Recorder`] that notes
//! which routes ran and what they left armed, flagged and stored.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use super::compare::compare;
use super::spec::{
    DEFAULT_SOURCE, FollowUp, RequestSpec, Test, World, parse_endpoint, show_endpoint,
};
use super::{uac, world};
use crate::codegen::Program;
use crate::proxy::core::{Core, Outgoing, Step};
use crate::proxy::router::{RouteId, TxnScope};
use crate::proxy::transport::Outbound;
use crate::proxy::{Decision, Inbound, LocalIdentity, RequestContext, Router, Transport};
use crate::runtime::trace::{self, Event};
use crate::sema::ir::CheckedProgram;
use crate::sip::{Message, ParseLimits};
use crate::syntax::span::Span;

/// One expectation that did not hold.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Mismatch {
    /// 1 for the test's first message, 2… for its follow-ups.
    pub step: usize,
    /// What the step was (`INVITE sip:bob@…`, `486 from udp:…`).
    pub event: String,
    /// The expectation's key (`reply`, `relay`, `headers.Route` …).
    pub key: String,
    pub expected: String,
    pub actual: String,
}

/// The outcome of one test.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Outcome {
    pub name: String,
    /// The line of the test's `[[test]]` header in its file (1-based; 0
    /// when unknown), where editors show its failures.
    pub line: usize,
    /// Every expectation held (set once the test has run).
    pub passed: bool,
    /// The test could not run (a bad message, an unknown trunk …).
    pub error: Option<String>,
    pub mismatches: Vec<Mismatch>,
    /// With [`Options::trace`]: what the routes did, step by step.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub trace: Vec<String>,
    /// With [`Options::coverage`]: the statements that ran.
    #[serde(skip)]
    pub ran: HashSet<Span>,
}

/// How tests run.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Note which statements run (an instrumented program).
    pub coverage: bool,
    /// Record what the routes did, for the report.
    pub trace: bool,
}

impl Outcome {
    pub fn passed(&self) -> bool {
        self.passed
    }
}

/// A route that ran: which, what it decided, and the transaction scope it
/// left (armed routes, flags, `$avp`s).
#[derive(Debug, Clone)]
pub(super) struct RouteRun {
    pub(super) route: Option<RouteId>,
    pub(super) decision: Decision,
    pub(super) scope: TxnScope,
}

/// The program as the core's router, noting every route run (and, for an
/// instrumented program, what each did).
struct Recorder {
    program: Arc<Program>,
    request_route: Option<RouteId>,
    runs: Mutex<Vec<RouteRun>>,
    events: Mutex<Vec<Event>>,
}

impl Recorder {
    fn note(&self, route: Option<RouteId>, decision: &Decision, ctx: &mut RequestContext) {
        let run = RouteRun { route, decision: decision.clone(), scope: ctx.txn.clone() };
        self.runs.lock().unwrap_or_else(|e| e.into_inner()).push(run);
        if let Some(t) = ctx.trace.take() {
            self.events.lock().unwrap_or_else(|e| e.into_inner()).extend(t.events);
        }
    }

    /// Gives the request a trace to fill when the program is instrumented.
    fn arm(&self, ctx: &mut RequestContext) {
        if !self.program.marks().is_empty() {
            ctx.trace = Some(Box::default());
        }
    }

    fn take_events(&self) -> Vec<Event> {
        std::mem::take(&mut *self.events.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn take(&self) -> Vec<RouteRun> {
        std::mem::take(&mut *self.runs.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl Router for Recorder {
    fn route_request(&self, ctx: &mut RequestContext) -> Decision {
        self.arm(ctx);
        let d = self.program.route_request(ctx);
        self.note(self.request_route, &d, ctx);
        d
    }

    fn run_hook(&self, route: RouteId, ctx: &mut RequestContext) -> Decision {
        self.arm(ctx);
        let d = self.program.run_hook(route, ctx);
        self.note(Some(route), &d, ctx);
        d
    }

    fn reply_route(&self) -> Option<RouteId> {
        self.program.reply_route()
    }
}

/// A message the proxy sent.
pub(super) struct Sent {
    pub(super) transport: Transport,
    pub(super) peer: SocketAddr,
    pub(super) msg: Message,
}

/// A request the proxy sent on a branch, and whether it got its final answer.
struct Branch {
    sent: Sent,
    done: bool,
}

/// The state of one running test.
struct Run {
    core: Core,
    recorder: Arc<Recorder>,
    listens: Vec<(Transport, SocketAddr)>,
    branches: Vec<Branch>,
    /// The test's first request and where it came from (for CANCEL).
    first: Option<(String, Transport, SocketAddr)>,
    /// The caller's latest request (for `authenticate`).
    last: Option<(String, Transport, SocketAddr)>,
    /// The last 401/407 the caller got: its code and challenge.
    challenge: Option<(u16, String)>,
    /// Numbers messages so Call-IDs, tags and branches are unique.
    counter: usize,
}

/// Runs one test of the checked config `checked` in `world`.
pub fn run_test(
    checked: &crate::sema::Output,
    world: &World,
    test: &Test,
    opts: Options,
) -> Outcome {
    let prog = &checked.program;
    let mut outcome = Outcome {
        name: test.name.clone(),
        line: 0,
        passed: false,
        error: None,
        mismatches: Vec::new(),
        trace: Vec::new(),
        ran: HashSet::new(),
    };
    let mut run = match Run::new(prog, world, opts.coverage || opts.trace) {
        Ok(r) => r,
        Err(e) => {
            outcome.error = Some(e);
            return outcome;
        }
    };
    let first = FollowUp {
        request: test.request.clone(),
        expect: test.expect.clone(),
        ..FollowUp::default()
    };
    for (i, step) in std::iter::once(&first).chain(&test.then).enumerate() {
        match run.step(step) {
            Ok((event, sent, runs, events)) => {
                let marks = run.recorder.program.marks();
                outcome.ran.extend(events.iter().filter_map(|e| match e {
                    Event::Stmt(id) => marks.get(*id as usize).map(|m| m.span),
                    _ => None,
                }));
                if opts.trace {
                    outcome.trace.push(format!("step {} ({event}):", i + 1));
                    let lines = trace::render(&events, marks, prog, &checked.sources);
                    outcome.trace.extend(lines.into_iter().map(|l| format!("  {l}")));
                    for s in &sent {
                        outcome.trace.push(format!("  sent {}", describe(s)));
                    }
                }
                let generated_acks = step.reply.is_some() || step.timeout;
                outcome.mismatches.extend(compare(
                    prog,
                    i + 1,
                    &event,
                    &step.expect,
                    &sent,
                    &runs,
                    generated_acks,
                ));
                run.note_sent(sent);
            }
            Err(e) => {
                outcome.error = Some(format!("step {}: {e}", i + 1));
                break;
            }
        }
    }
    outcome.passed = outcome.error.is_none() && outcome.mismatches.is_empty();
    outcome
}

impl Run {
    fn new(prog: &CheckedProgram, world: &World, instrument: bool) -> Result<Run, String> {
        let program =
            if instrument { Program::compile_instrumented(prog) } else { Program::compile(prog) };
        let program = Arc::new(program.map_err(|e| e.to_string())?);
        let listens = world::listens(prog)?;
        let mut local = LocalIdentity::new();
        for (_, a) in &listens {
            local.add_socket(*a);
            for d in &prog.domains {
                local.add_name(d, a.port());
            }
        }
        let services = Arc::new(world::services(prog, world)?);
        let recorder = Arc::new(Recorder {
            program,
            request_route: prog.request_route,
            runs: Mutex::new(Vec::new()),
            events: Mutex::new(Vec::new()),
        });
        let core = Core::new(
            local,
            ParseLimits::default(),
            Arc::clone(&recorder) as Arc<dyn Router>,
            Arc::new(Outbound::offline(listens.clone())),
            crate::cli::run::txn_config(prog),
        )
        .with_services(services);
        Ok(Run {
            core,
            recorder,
            listens,
            branches: Vec::new(),
            first: None,
            last: None,
            challenge: None,
            counter: 0,
        })
    }

    fn inbound(&self, transport: Transport, peer: SocketAddr) -> Inbound {
        let local = self
            .listens
            .iter()
            .find(|(t, a)| *t == transport && a.is_ipv4() == peer.is_ipv4())
            .or_else(|| self.listens.first())
            .map_or(peer, |(_, a)| *a);
        Inbound { transport, local, peer }
    }

    /// Feeds one step to the core: what it was, what the proxy sent, and
    /// which routes ran.
    #[allow(clippy::type_complexity)]
    fn step(
        &mut self,
        step: &FollowUp,
    ) -> Result<(String, Vec<Sent>, Vec<RouteRun>, Vec<Event>), String> {
        self.counter += 1;
        let kinds = [
            step.request.is_given(),
            step.reply.is_some(),
            step.timeout,
            step.cancel,
            step.authenticate.is_some(),
        ];
        if kinds.iter().filter(|k| **k).count() != 1 {
            return Err("a step is exactly one of: a request (`message` or `method`), \
                        `reply = CODE`, `timeout = true`, `cancel = true`, `authenticate = {…}`"
                .into());
        }
        let (event, result) = if step.request.is_given() {
            self.request(&step.request)?
        } else if let Some(c) = &step.authenticate {
            self.authenticate(c)?
        } else if let Some(code) = step.reply {
            self.reply(code, step)?
        } else if step.timeout {
            let i = self.branch_index(step.branch)?;
            let b = &mut self.branches[i];
            b.done = true;
            let via = b.sent.msg.via().ok().flatten().and_then(|v| v.branch().map(str::to_owned));
            let event = format!("timeout of {}", describe(&b.sent));
            (event, via.and_then(|v| self.core.time_out_branch(&v)))
        } else {
            self.cancel()?
        };
        let mut sent = Vec::new();
        flatten(result, &mut sent)?;
        // A challenge to the caller, for a later `authenticate`.
        for s in &sent {
            if let Some(code @ (401 | 407)) = s.msg.status() {
                let name = if code == 401 { "WWW-Authenticate" } else { "Proxy-Authenticate" };
                if let Some(h) = s.msg.headers_named(name).next() {
                    self.challenge = Some((code, s.msg.value_of(h).to_owned()));
                }
            }
        }
        Ok((event, sent, self.recorder.take(), self.recorder.take_events()))
    }

    fn request(&mut self, spec: &RequestSpec) -> Result<(String, Option<Step>), String> {
        let (transport, source) = parse_endpoint(spec.source.as_deref().unwrap_or(DEFAULT_SOURCE))?;
        let text = spec.build(source, transport, self.counter)?;
        let msg = Message::parse(Bytes::from(text.clone())).map_err(|e| {
            format!("the test's request does not parse: {e}\n{}", text.replace("\r\n", "\n"))
        })?;
        let event = match (msg.method_str(), msg.request_uri_str()) {
            (Some(m), Some(u)) => format!("{m} {u}"),
            _ => return Err("the test's message is not a request".into()),
        };
        if self.first.is_none() {
            self.first = Some((text.clone(), transport, source));
        }
        self.last = Some((text.clone(), transport, source));
        let step = self.core.process(Bytes::from(text), self.inbound(transport, source));
        Ok((event, step))
    }

    /// The caller's last request again (next CSeq, new branch) with the
    /// credentials that answer the last challenge it got.
    fn authenticate(
        &mut self,
        who: &super::spec::Credentials,
    ) -> Result<(String, Option<Step>), String> {
        let (text, transport, source) =
            self.last.clone().ok_or("`authenticate`: the test sent no request yet")?;
        let (code, challenge) = self
            .challenge
            .clone()
            .ok_or("`authenticate`: the caller got no 401 or 407 challenge")?;
        let (out, event) = uac::with_credentials(&text, code, &challenge, who, self.counter)?;
        self.last = Some((out.clone(), transport, source));
        let step = self.core.process(Bytes::from(out), self.inbound(transport, source));
        Ok((event, step))
    }

    /// The index of the branch a follow-up answers.
    fn branch_index(&self, given: Option<usize>) -> Result<usize, String> {
        match given {
            Some(i) if i < self.branches.len() => Ok(i),
            Some(i) => Err(format!(
                "`branch = {i}`: the proxy sent {} request(s) so far",
                self.branches.len()
            )),
            None => self
                .branches
                .iter()
                .rposition(|b| !b.done)
                .ok_or_else(|| "no request the proxy sent is waiting for an answer".into()),
        }
    }

    fn reply(&mut self, code: u16, step: &FollowUp) -> Result<(String, Option<Step>), String> {
        let i = self.branch_index(step.branch)?;
        let n = self.counter;
        let b = &mut self.branches[i];
        if code >= 200 {
            b.done = true;
        }
        let reason =
            step.reason.clone().unwrap_or_else(|| crate::sip::status::phrase_of(code).to_owned());
        let text =
            uac::response_to(&b.sent.msg, code, &reason, &step.request.headers, n, b.sent.peer);
        let event =
            format!("{code} {reason} from {}", show_endpoint(b.sent.transport, b.sent.peer));
        let (transport, peer) = (b.sent.transport, b.sent.peer);
        let step = self.core.process(Bytes::from(text), self.inbound(transport, peer));
        Ok((event, step))
    }

    fn cancel(&mut self) -> Result<(String, Option<Step>), String> {
        let (text, transport, source) =
            self.first.clone().ok_or("`cancel`: the test sent no request to cancel")?;
        let (out, event) = uac::cancel_of(&text)?;
        let step = self.core.process(Bytes::from(out), self.inbound(transport, source));
        Ok((event, step))
    }

    /// Remembers the requests the proxy sent, for later replies.
    fn note_sent(&mut self, sent: Vec<Sent>) {
        for s in sent {
            if s.msg.is_request() && !matches!(s.msg.method_str(), Some("ACK" | "CANCEL")) {
                self.branches.push(Branch { sent: s, done: false });
            }
        }
    }
}

fn flatten(step: Option<Step>, out: &mut Vec<Sent>) -> Result<(), String> {
    match step {
        None => Ok(()),
        Some(Step::Send(Outgoing { transport, peer, data, .. })) => {
            let msg = Message::parse(data).map_err(|e| format!("the proxy sent garbage: {e}"))?;
            out.push(Sent { transport, peer, msg });
            Ok(())
        }
        Some(Step::Batch(steps)) => steps.into_iter().try_for_each(|s| flatten(Some(s), out)),
        Some(Step::Resolve(p)) => Err(format!(
            "the next hop `{}` is a host name: tests resolve no names (use an IP address)",
            p.hop.host
        )),
    }
}

/// `INVITE sip:… to udp:…` / `486 Busy Here to udp:…`.
pub(super) fn describe(s: &Sent) -> String {
    let what = match (s.msg.method_str(), s.msg.request_uri_str(), s.msg.status()) {
        (Some(m), Some(u), _) => format!("{m} {u}"),
        (_, _, Some(c)) => format!("{c} {}", s.msg.reason().unwrap_or_default()),
        _ => "?".into(),
    };
    format!("{what} to {}", show_endpoint(s.transport, s.peer))
}

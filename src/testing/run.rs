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

use super::spec::{
    DEFAULT_SOURCE, Expect, FollowUp, RequestSpec, Test, World, parse_endpoint, show_endpoint,
};
use crate::auth::{NonceKey, Subscriber, SubscriberStore};
use crate::codegen::Program;
use crate::proxy::core::{Core, Outgoing, Step};
use crate::proxy::router::{RouteId, TxnScope};
use crate::proxy::services::Services;
use crate::proxy::transport::Outbound;
use crate::proxy::{Decision, Inbound, LocalIdentity, RequestContext, Router, Transport};
use crate::registrar::{Binding, Location};
use crate::runtime::trace::{self, Event};
use crate::sema::ir::{CheckedProgram, Value};
use crate::sip::{Message, ParseLimits, Uri};
use crate::syntax::ast::RouteKind;
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
struct RouteRun {
    route: Option<RouteId>,
    decision: Decision,
    scope: TxnScope,
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
struct Sent {
    transport: Transport,
    peer: SocketAddr,
    msg: Message,
}

/// A request the proxy sent on a branch, and whether it got its final answer.
struct Branch {
    sent: Sent,
    done: bool,
}

/// The listen addresses of a program (`listen ws` and friends are not
/// served, and the checker refuses them).
fn listens(prog: &CheckedProgram) -> Result<Vec<(Transport, SocketAddr)>, String> {
    let mut out = Vec::new();
    for l in &prog.listens {
        let t = Transport::from_name(&l.proto)
            .ok_or_else(|| format!("`listen {}` is not served by `sipc run`", l.proto))?;
        let text = match &l.addr {
            Value::Addr(s) | Value::Str(s) => s.clone(),
            other => return Err(format!("`listen`: not an address: {other:?}")),
        };
        let addr = text
            .parse::<SocketAddr>()
            .or_else(|_| text.parse::<std::net::IpAddr>().map(|ip| SocketAddr::new(ip, 5060)))
            .map_err(|_| format!("`listen {} {text}`: not an IP address", l.proto))?;
        out.push((t, addr));
    }
    if out.is_empty() {
        return Err("the config has no `listen` item".into());
    }
    Ok(out)
}

/// The services of a test's world, in memory.
fn services(prog: &CheckedProgram, world: &World) -> Result<Services, String> {
    use crate::cli::services as cs;
    let mut s = Services::default();
    let now = crate::runtime::registrar::unix_now();
    if cs::uses_location(prog) || !world.location.is_empty() {
        let location = Location::new(cs::registrar_config(prog));
        let mut bindings = Vec::new();
        for (i, b) in world.location.iter().enumerate() {
            let aor = Uri::parse(&b.aor)
                .ok()
                .and_then(|u| crate::registrar::canonical_aor(&u))
                .ok_or_else(|| format!("world.location: `{}` is not a SIP AOR", b.aor))?;
            let received = b.received.as_deref().map(parse_endpoint).transpose()?;
            let binding = Binding {
                contact: b.contact.clone(),
                expires_at: now + b.expires.unwrap_or(3600),
                q: b.q.map(|q| (q.clamp(0.0, 1.0) * 1000.0).round() as u16),
                call_id: format!("world-{i}@sipc.test"),
                cseq: 1,
                path: b.path.clone(),
                received: received.map(|r| r.1),
                transport: received.map_or(Transport::Udp, |r| r.0),
                instance: None,
                reg_id: None,
                methods: None,
            };
            bindings.push((aor, binding));
        }
        location.restore(bindings);
        s.location = Some(Arc::new(location));
    }
    if cs::uses_auth(prog) || !world.subscriber.is_empty() {
        let subs = SubscriberStore::in_memory();
        for u in &world.subscriber {
            subs.put(&u.user, &u.domain, Subscriber::new(&u.user, &u.domain, &u.password))
                .map_err(|e| format!("world.subscriber `{}`: {e}", u.user))?;
        }
        s.auth = Some(Arc::new(cs::auth_service(prog, subs, NonceKey::random())?));
    }
    for name in &world.trunks_down {
        let t = prog
            .routing
            .trunks
            .iter()
            .find(|t| &t.name == name)
            .ok_or_else(|| format!("world.trunks_down: no trunk `{name}` in the config"))?;
        s.trunks.register(&t.name, &t.uri).set_up(false);
    }
    Ok(s)
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
        let listens = listens(prog)?;
        let mut local = LocalIdentity::new();
        for (_, a) in &listens {
            local.add_socket(*a);
            for d in &prog.domains {
                local.add_name(d, a.port());
            }
        }
        let services = Arc::new(services(prog, world)?);
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
        use crate::auth::digest::{self, Algorithm};
        let (text, transport, source) =
            self.last.clone().ok_or("`authenticate`: the test sent no request yet")?;
        let (code, challenge) = self
            .challenge
            .clone()
            .ok_or("`authenticate`: the caller got no 401 or 407 challenge")?;
        let param = |name: &str| {
            challenge.split(&format!("{name}=")).nth(1).map(|v| {
                v.trim_start_matches('"').split(['"', ',']).next().unwrap_or("").to_owned()
            })
        };
        let realm = param("realm").unwrap_or_default();
        let nonce = param("nonce").ok_or("`authenticate`: the challenge has no nonce")?;
        let alg = Algorithm::parse(param("algorithm").as_deref())
            .ok_or("`authenticate`: the challenge names an unknown algorithm")?;
        let qop = param("qop").filter(|q| q.split(',').any(|x| x.trim() == "auth"));
        let msg = Message::parse(Bytes::from(text.clone())).map_err(|e| e.to_string())?;
        let method = msg.method_str().unwrap_or("").to_owned();
        let uri = msg.request_uri_str().unwrap_or("").to_owned();
        let c = digest::Credentials {
            username: &who.user,
            realm: &realm,
            nonce: &nonce,
            uri: &uri,
            qop: qop.as_ref().map(|_| "auth"),
            nc: qop.as_ref().map(|_| "00000001"),
            cnonce: qop.as_ref().map(|_| "5170c0ff"),
            ..digest::Credentials::default()
        };
        let ha1 = digest::ha1(alg, &who.user, &realm, &who.password);
        let response = digest::response(alg, &ha1, &c, &method);
        let mut value = format!(
            "Digest username=\"{}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", \
             response=\"{response}\", algorithm={}",
            who.user,
            alg.name()
        );
        if qop.is_some() {
            value.push_str(", qop=auth, nc=00000001, cnonce=\"5170c0ff\"");
        }
        let name = if code == 401 { "Authorization" } else { "Proxy-Authorization" };
        let n = self.counter;
        // The same request as a new transaction: next CSeq, a fresh branch.
        let mut out = String::new();
        let mut via_done = false;
        for line in text.split("\r\n") {
            let lower = line.to_ascii_lowercase();
            if line.is_empty() {
                break;
            }
            if !via_done && (lower.starts_with("via:") || lower.starts_with("v:")) {
                via_done = true;
                let (head, params) = line.split_once(';').unwrap_or((line, ""));
                let params: Vec<&str> =
                    params.split(';').filter(|p| !p.trim().starts_with("branch=")).collect();
                out.push_str(head);
                out.push_str(&format!(";branch=z9hG4bK-test-{n}-auth"));
                for p in params.iter().filter(|p| !p.is_empty()) {
                    out.push(';');
                    out.push_str(p);
                }
            } else if lower.starts_with("cseq:") {
                let seq = msg.cseq().ok().flatten().map_or(1, |c| c.seq) + 1;
                out.push_str(&format!("CSeq: {seq} {method}"));
            } else if lower.starts_with("authorization:")
                || lower.starts_with("proxy-authorization:")
            {
                continue;
            } else {
                out.push_str(line);
            }
            out.push_str("\r\n");
        }
        out.push_str(&format!("{name}: {value}\r\n\r\n"));
        out.push_str(text.split_once("\r\n\r\n").map_or("", |(_, b)| b));
        self.last = Some((out.clone(), transport, source));
        let step = self.core.process(Bytes::from(out), self.inbound(transport, source));
        Ok((format!("{method} {uri} with credentials of {}", who.user), step))
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
        let text = response_to(&b.sent.msg, code, &reason, &step.request.headers, n, b.sent.peer);
        let event =
            format!("{code} {reason} from {}", show_endpoint(b.sent.transport, b.sent.peer));
        let (transport, peer) = (b.sent.transport, b.sent.peer);
        let step = self.core.process(Bytes::from(text), self.inbound(transport, peer));
        Ok((event, step))
    }

    fn cancel(&mut self) -> Result<(String, Option<Step>), String> {
        let (text, transport, source) =
            self.first.clone().ok_or("`cancel`: the test sent no request to cancel")?;
        let msg = Message::parse(Bytes::from(text)).map_err(|e| e.to_string())?;
        let ruri = msg.request_uri_str().unwrap_or_default().to_owned();
        let mut out = format!("CANCEL {ruri} SIP/2.0\r\n");
        if let Some(v) = msg.headers_named("Via").next() {
            out.push_str(&format!("Via: {}\r\n", msg.value_of(v)));
        }
        for name in ["From", "To", "Call-ID"] {
            if let Some(h) = msg.headers_named(name).next() {
                out.push_str(&format!("{name}: {}\r\n", msg.value_of(h)));
            }
        }
        let seq = msg.cseq().ok().flatten().map_or(1, |c| c.seq);
        out.push_str(&format!(
            "CSeq: {seq} CANCEL\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        ));
        let step = self.core.process(Bytes::from(out), self.inbound(transport, source));
        Ok((format!("CANCEL {ruri}"), step))
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
fn describe(s: &Sent) -> String {
    let what = match (s.msg.method_str(), s.msg.request_uri_str(), s.msg.status()) {
        (Some(m), Some(u), _) => format!("{m} {u}"),
        (_, _, Some(c)) => format!("{c} {}", s.msg.reason().unwrap_or_default()),
        _ => "?".into(),
    };
    format!("{what} to {}", show_endpoint(s.transport, s.peer))
}

/// The reply a UAS at `peer` gives to `req`.
fn response_to(
    req: &Message,
    code: u16,
    reason: &str,
    extra: &[String],
    n: usize,
    peer: SocketAddr,
) -> String {
    let mut out = format!("SIP/2.0 {code} {reason}\r\n");
    let named = |name: &str, compact: &str| {
        req.headers()
            .iter()
            .filter(|h| {
                let n = req.name_of(h);
                n.eq_ignore_ascii_case(name) || n.eq_ignore_ascii_case(compact)
            })
            .map(|h| req.value_of(h).to_owned())
            .collect::<Vec<_>>()
    };
    for v in named("Via", "v") {
        out.push_str(&format!("Via: {v}\r\n"));
    }
    for v in named("From", "f") {
        out.push_str(&format!("From: {v}\r\n"));
    }
    for v in named("To", "t") {
        let tagged = v.to_ascii_lowercase().contains(";tag=");
        let tag = if code > 100 && !tagged { format!(";tag=uas-{n}") } else { String::new() };
        out.push_str(&format!("To: {v}{tag}\r\n"));
    }
    for v in named("Call-ID", "i") {
        out.push_str(&format!("Call-ID: {v}\r\n"));
    }
    for v in named("CSeq", "") {
        out.push_str(&format!("CSeq: {v}\r\n"));
    }
    if (101..300).contains(&code) {
        for v in named("Record-Route", "") {
            out.push_str(&format!("Record-Route: {v}\r\n"));
        }
        // A Contact the test gives replaces this default one.
        let given = extra.iter().any(|h| {
            h.split_once(':').is_some_and(|(n, _)| {
                let n = n.trim();
                n.eq_ignore_ascii_case("Contact") || n.eq_ignore_ascii_case("m")
            })
        });
        if !given {
            out.push_str(&format!("Contact: <sip:uas@{peer}>\r\n"));
        }
    }
    for h in extra {
        out.push_str(h.trim_end());
        out.push_str("\r\n");
    }
    out.push_str("Content-Length: 0\r\n\r\n");
    out
}

/// The name a route is known by in expectations.
fn route_name(prog: &CheckedProgram, id: Option<RouteId>) -> String {
    match id.and_then(|i| prog.routes.get(i as usize)) {
        Some(r) if r.name.is_empty() => r.kind.keyword().to_owned(),
        Some(r) => format!("{} {}", r.kind.keyword(), r.name),
        None => "?".into(),
    }
}

fn armed(prog: &CheckedProgram, id: Option<RouteId>) -> String {
    match id.and_then(|i| prog.routes.get(i as usize)) {
        Some(r) => r.name.clone(),
        None => String::new(),
    }
}

fn quote_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("{s:?}")).collect();
    format!("[{}]", quoted.join(", "))
}

/// The expectations of one step against what happened.
fn compare(
    prog: &CheckedProgram,
    step: usize,
    event: &str,
    expect: &Expect,
    sent: &[Sent],
    runs: &[RouteRun],
    generated_acks: bool,
) -> Vec<Mismatch> {
    let mut out = Vec::new();
    let mut check = |key: &str, expected: String, actual: String| {
        if expected != actual {
            out.push(Mismatch {
                step,
                event: event.to_owned(),
                key: key.to_owned(),
                expected,
                actual,
            });
        }
    };
    // ACKs the proxy makes for a non-2xx final are not routing decisions.
    let shown: Vec<&Sent> =
        sent.iter().filter(|s| !(generated_acks && s.msg.method_str() == Some("ACK"))).collect();
    // The proxy's own 100 Trying is not the answer a test is about.
    let trying = expect.reply == Some(100);
    let reply =
        shown.iter().find(|s| !s.msg.is_request() && (trying || s.msg.status() != Some(100)));
    let requests: Vec<&&Sent> = shown.iter().filter(|s| s.msg.is_request()).collect();
    let nothing = || "nothing sent".to_owned();
    if let Some(d) = expect.drop {
        check("drop", d.to_string(), shown.is_empty().to_string());
    }
    if let Some(code) = expect.reply {
        let actual = match reply {
            Some(r) => r.msg.status().unwrap_or(0).to_string(),
            None if shown.is_empty() => nothing(),
            None => format!("no reply ({})", describe(shown[0])),
        };
        check("reply", code.to_string(), actual);
    }
    if let Some(reason) = &expect.reason {
        let actual = reply.map_or_else(nothing, |r| r.msg.reason().unwrap_or_default().to_owned());
        check("reason", reason.clone(), actual);
    }
    if let Some(relay) = &expect.relay {
        let expected: Vec<String> = relay
            .to_vec()
            .iter()
            .map(|r| parse_endpoint(r).map_or_else(|e| e, |(t, a)| show_endpoint(t, a)))
            .collect();
        let actual: Vec<String> =
            requests.iter().map(|s| show_endpoint(s.transport, s.peer)).collect();
        check("relay", quote_list(&expected), quote_list(&actual));
    }
    if let Some(ruri) = &expect.ruri {
        let actual = requests.first().map_or_else(
            || "no request sent".into(),
            |s| s.msg.request_uri_str().unwrap_or_default().to_owned(),
        );
        check("ruri", ruri.clone(), actual);
    }
    // Headers are those of the reply when one is expected, else of the
    // first request sent, else of whatever was sent first.
    let first = match (expect.reply, reply, requests.first()) {
        (Some(_), Some(r), _) => Some(r),
        (_, _, Some(r)) => Some(*r),
        _ => reply.or(shown.first()),
    };
    for (name, value) in &expect.headers {
        let actual = match first {
            None => nothing(),
            Some(s) => s
                .msg
                .headers_named(name)
                .next()
                .map_or_else(|| "(absent)".to_owned(), |h| s.msg.value_of(h).to_owned()),
        };
        check(&format!("headers.{name}"), value.clone(), actual);
    }
    for (name, pattern) in &expect.matches {
        let re = match regex::Regex::new(pattern) {
            Ok(re) => re,
            Err(e) => {
                check(&format!("matches.{name}"), pattern.clone(), format!("a bad regex: {e}"));
                continue;
            }
        };
        let actual =
            first.and_then(|s| s.msg.headers_named(name).next().map(|h| s.msg.value_of(h)));
        match actual {
            Some(v) if re.is_match(v) => {}
            Some(v) => check(&format!("matches.{name}"), format!("/{pattern}/"), v.to_owned()),
            None => check(&format!("matches.{name}"), format!("/{pattern}/"), "(absent)".into()),
        }
    }
    for name in &expect.absent {
        if let Some(s) = first
            && let Some(h) = s.msg.headers_named(name).next()
        {
            check(&format!("absent.{name}"), "(absent)".into(), s.msg.value_of(h).to_owned());
        }
    }
    if let Some(st) = expect.stateful {
        // `relay()`, or a final reply after `t_newtran()`: both make a
        // transaction.
        let actual = runs.iter().any(|r| match &r.decision {
            Decision::Relay => true,
            Decision::Reply { code, .. } => r.scope.newtran && *code >= 200,
            _ => false,
        });
        check("stateful", st.to_string(), actual.to_string());
    }
    if let Some(routes) = &expect.routes {
        let actual: Vec<String> = runs.iter().map(|r| route_name(prog, r.route)).collect();
        check("routes", quote_list(routes), quote_list(&actual));
    }
    // The scope a request or failure route left (branch and reply routes
    // run later and see it, but do not decide it).
    let decisive = runs
        .iter()
        .rev()
        .find(|r| {
            r.route
                .and_then(|i| prog.routes.get(i as usize))
                .is_some_and(|x| matches!(x.kind, RouteKind::Request | RouteKind::Failure))
        })
        .or(runs.last());
    let scope = decisive.map(|r| &r.scope);
    let no_route = || "no route ran".to_owned();
    let hooks = [
        ("failure_route", &expect.failure_route, scope.map(|s| s.on_failure)),
        ("onreply_route", &expect.onreply_route, scope.map(|s| s.on_reply)),
        ("branch_route", &expect.branch_route, scope.map(|s| s.on_branch)),
    ];
    for (key, want, got) in hooks {
        if let Some(want) = want {
            check(key, want.clone(), got.map_or_else(no_route, |id| armed(prog, id)));
        }
    }
    if let Some(flags) = &expect.flags {
        let actual = scope.map_or_else(no_route, |s| {
            let names: Vec<String> = prog
                .flags
                .iter()
                .filter(|f| s.flags & (1u64 << f.bit) != 0)
                .map(|f| f.name.clone())
                .collect();
            quote_list(&names)
        });
        let mut want = flags.clone();
        want.sort_by_key(|n| prog.flags.iter().position(|f| &f.name == n).unwrap_or(usize::MAX));
        check("flags", quote_list(&want), actual);
    }
    for (name, value) in &expect.avps {
        let actual = match (scope, prog.avps.iter().position(|a| a == name)) {
            (None, _) => no_route(),
            (_, None) => format!("(no `$avp({name})` in the config)"),
            (Some(s), Some(slot)) => s.avps.get(slot).cloned().unwrap_or_default(),
        };
        check(&format!("avps.{name}"), value.clone(), actual);
    }
    out
}

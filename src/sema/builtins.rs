//! THE builtin catalog: every function, pseudo-variable and setting, once.
//!
//! The checker, the code generator (through `symbol`), the language server
//! (hover and completion from `doc`) and `docs/builtins.md` all read these
//! tables; nothing else lists builtins. An entry says what a builtin takes
//! and returns, in which route kinds it may run, whether it ends the
//! handling of a request (relays, replies) and which runtime function
//! implements it. A test regenerates docs/builtins.md from here and fails
//! when the committed copy drifts.

use crate::syntax::ast::RouteKind;

/// Value types of the language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Ty {
    Str,
    Int,
    Bool,
    /// Milliseconds, written `500ms`, `30s`.
    Duration,
    /// An IP address, optionally with port or prefix.
    Addr,
    Void,
    /// The type of an expression that already produced an error; it is
    /// compatible with everything so one mistake is reported once.
    Unknown,
}

impl Ty {
    pub fn name(self) -> &'static str {
        match self {
            Ty::Str => "str",
            Ty::Int => "int",
            Ty::Bool => "bool",
            Ty::Duration => "duration",
            Ty::Addr => "addr",
            Ty::Void => "nothing",
            Ty::Unknown => "unknown",
        }
    }

    /// Whether a value of type `self` is accepted where `want` is expected.
    pub fn fits(self, want: Ty) -> bool {
        self == want || self == Ty::Unknown || want == Ty::Unknown
    }
}

/// A set of route kinds, as a bit set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Kinds(pub u8);

impl Kinds {
    pub const NONE: Kinds = Kinds(0);
    pub const REQUEST: Kinds = Kinds(1);
    pub const REPLY: Kinds = Kinds(2);
    pub const ONREPLY: Kinds = Kinds(4);
    pub const FAILURE: Kinds = Kinds(8);
    pub const BRANCH: Kinds = Kinds(16);
    pub const EVENT: Kinds = Kinds(32);
    pub const ALL: Kinds = Kinds(63);
    /// Routes that handle a request: request, failure and branch routes.
    pub const REQ_SIDE: Kinds = Kinds(1 | 8 | 16);
    /// Routes that handle a reply.
    pub const REPLY_SIDE: Kinds = Kinds(2 | 4);

    pub const fn or(self, other: Kinds) -> Kinds {
        Kinds(self.0 | other.0)
    }

    pub fn contains(self, other: Kinds) -> bool {
        self.0 & other.0 == other.0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn minus(self, other: Kinds) -> Kinds {
        Kinds(self.0 & !other.0)
    }

    /// The entry kind a route kind runs as (`Sub` runs as its callers).
    pub fn of(kind: RouteKind) -> Kinds {
        match kind {
            RouteKind::Request => Kinds::REQUEST,
            RouteKind::Reply => Kinds::REPLY,
            RouteKind::OnReply => Kinds::ONREPLY,
            RouteKind::Failure => Kinds::FAILURE,
            RouteKind::Branch => Kinds::BRANCH,
            RouteKind::Event => Kinds::EVENT,
            RouteKind::Sub => Kinds::NONE,
        }
    }

    /// The members, named by their route keyword.
    pub fn names(self) -> Vec<&'static str> {
        let all = [
            (Kinds::REQUEST, "request_route"),
            (Kinds::REPLY, "reply_route"),
            (Kinds::ONREPLY, "onreply_route"),
            (Kinds::FAILURE, "failure_route"),
            (Kinds::BRANCH, "branch_route"),
            (Kinds::EVENT, "event_route"),
        ];
        all.iter().filter(|(k, _)| self.contains(*k)).map(|(_, n)| *n).collect()
    }
}

/// What a function parameter accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Param {
    Str,
    Int,
    /// An int that, when constant, must lie in the inclusive range.
    IntRange(i64, i64),
    Bool,
    Duration,
    /// A constant string compiled as a regex at check time.
    Regex,
    /// The name of a declared flag.
    Flag,
    /// The name of a route of the given kind.
    Route(RouteKind),
    /// The name of a declared table.
    Table,
    /// The name of a routing table, trunk group or trunk.
    Dest,
    /// The name of a `limit` declaration.
    Limit,
    /// The name of an `acl` declaration.
    Acl,
    /// A log level name: `err`, `warn`, `notice`, `info`, `debug`.
    Level,
    /// A str holding a URI; a constant must be one the proxy accepts for
    /// this use.
    Uri(UriUse),
    /// A str naming a header; a constant is compared with the known SIP
    /// headers.
    Header,
    /// A str holding header lines, `"Name: value\r\n"`; the names of a
    /// constant's lines are compared with the known SIP headers.
    HeaderLine,
    /// One of a fixed set of words, as a name or a string literal
    /// (`t_is_set("failure_route")`); the runtime receives its index.
    Word(&'static [&'static str]),
    /// One or more of a fixed set of words (at most 8), as a name or a
    /// string literal of `|`-separated words
    /// (`nat_uac_test("private_contact|via_port_differs")`); the runtime
    /// receives the set as a bit mask, bit `i` for word `i`.
    Words(&'static [&'static str]),
    /// A str of rtpengine flags (`"replace-origin ICE=remove"`); a
    /// constant is parsed at check time ([`crate::rtpengine::flags`]).
    NgFlags,
}

/// How a URI-valued string is used, which decides what a constant must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UriUse {
    /// Any URI the proxy's parser accepts (`sip:`, `sips:`, `tel:` or
    /// another scheme): a request URI, an address of record.
    Any,
    /// Where a request is sent: a `sip:` or `sips:` URI (the only ones the
    /// proxy resolves to a next hop), or empty for "no destination".
    NextHop,
}

impl Param {
    pub fn describe(self) -> String {
        match self {
            // URIs and header names are strs; the checker looks closer at
            // constants passed for them.
            Param::Str | Param::Uri(_) | Param::Header | Param::HeaderLine => "str".into(),
            Param::NgFlags => "str of rtpengine flags".into(),
            Param::Int => "int".into(),
            Param::IntRange(lo, hi) => format!("int {lo}..={hi}"),
            Param::Bool => "bool".into(),
            Param::Duration => "duration".into(),
            Param::Regex => "regex (constant str)".into(),
            Param::Flag => "flag name".into(),
            Param::Route(k) => format!("{} name", k.keyword()),
            Param::Table => "table name".into(),
            Param::Dest => "routing table, trunk group or trunk name".into(),
            Param::Limit => "limit name".into(),
            Param::Acl => "acl name".into(),
            Param::Level => "log level".into(),
            Param::Word(words) => {
                words.iter().map(|w| format!("\"{w}\"")).collect::<Vec<_>>().join(" | ")
            }
            Param::Words(words) => format!("words joined by | from {}", words.join(", ")),
        }
    }
}

pub const LOG_LEVELS: &[&str] = &["err", "warn", "notice", "info", "debug"];

/// Syslog facilities by name (RFC 5424 §6.2.1), as `log_facility` takes
/// them: `LOG_LOCAL0` or `local0`, any case.
pub const SYSLOG_FACILITIES: &[(&str, u8)] = &[
    ("kern", 0),
    ("user", 1),
    ("mail", 2),
    ("daemon", 3),
    ("auth", 4),
    ("syslog", 5),
    ("lpr", 6),
    ("news", 7),
    ("uucp", 8),
    ("cron", 9),
    ("authpriv", 10),
    ("ftp", 11),
    ("local0", 16),
    ("local1", 17),
    ("local2", 18),
    ("local3", 19),
    ("local4", 20),
    ("local5", 21),
    ("local6", 22),
    ("local7", 23),
];

/// The code of facility `name` (`LOG_LOCAL0`, `local0`, …).
pub fn syslog_facility(name: &str) -> Option<u8> {
    let lower = name.to_ascii_lowercase();
    let bare = lower.strip_prefix("log_").unwrap_or(&lower);
    SYSLOG_FACILITIES.iter().find(|(n, _)| *n == bare).map(|&(_, c)| c)
}

/// Kamailio's other log level names and the level each logs at here.
pub const LOG_LEVEL_ALIASES: &[(&str, &str)] =
    &[("alert", "err"), ("bug", "err"), ("crit", "err"), ("crit2", "err"), ("dbg", "debug")];

/// The hooks `t_is_set` asks about, in the order of its argument's index.
pub const HOOK_KINDS: &[&str] = &["failure_route", "branch_route", "onreply_route"];

/// The checks `nat_uac_test` takes, in the order of their bits; Kamailio's
/// flag of each is `1 << index` (1, 2, 4, 8, 16, 32, 64).
pub const NAT_TESTS: &[&str] = &[
    "private_contact",
    "via_ip_differs",
    "private_via",
    "private_sdp",
    "via_port_differs",
    "private_source",
    "websocket",
];

/// What calling a function does to the fate of the request, for the
/// "request_route ends without relay, reply or drop" warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    None,
    /// Relays, forwards or replies: the request has been handled.
    Handles,
}

#[derive(Debug)]
pub struct Func {
    pub name: &'static str,
    pub params: &'static [(&'static str, Param)],
    /// Trailing parameters beyond this count may be omitted.
    pub min_args: usize,
    pub ret: Ty,
    pub kinds: Kinds,
    pub effect: Effect,
    pub doc: &'static str,
    /// The runtime function the code generator calls: `sipc_rt_<name>`.
    pub symbol: &'static str,
}

impl Func {
    /// Each parameter as `name: type`, with `?` on optional ones; shared by
    /// help lines and the generated reference.
    pub fn params_text(&self) -> Vec<String> {
        self.params
            .iter()
            .enumerate()
            .map(|(i, (n, p))| {
                let opt = if i >= self.min_args { "?" } else { "" };
                format!("{n}{opt}: {}", p.describe())
            })
            .collect()
    }
}

macro_rules! func {
    ($name:ident ( $($p:ident : $t:expr),* ) $(min $min:literal)? -> $ret:ident, $kinds:expr, $eff:ident, $doc:literal) => {
        Func {
            name: stringify!($name),
            params: &[$((stringify!($p), $t)),*],
            min_args: func!(@min [$($p)*] $($min)?),
            ret: Ty::$ret,
            kinds: $kinds,
            effect: Effect::$eff,
            doc: $doc,
            symbol: concat!("sipc_rt_", stringify!($name)),
        }
    };
    (@min [$($p:ident)*] $min:literal) => { $min };
    (@min [$($p:ident)*]) => { 0 $(+ func!(@one $p))* };
    (@one $p:ident) => { 1 };
}

use Param as P;
const RQ: Kinds = Kinds::REQUEST;
const RQF: Kinds = Kinds::REQUEST.or(Kinds::FAILURE);
const RQFB: Kinds = Kinds::REQ_SIDE;
const ANY: Kinds = Kinds::ALL;
const TXN_REPLY: Kinds = Kinds::ONREPLY.or(Kinds::FAILURE);
/// Where the media builtins run: every route of a request or reply.
const MEDIA: Kinds = Kinds::REQ_SIDE.or(Kinds::REPLY_SIDE);

pub static FUNCTIONS: &[Func] = &[
    // REQINIT
    func!(maxfwd_ok(limit: P::IntRange(1, 255)) -> Bool, RQ, None,
        "Decrements Max-Forwards (adding it with `limit` if absent) and returns false when it reached zero; reply 483 then. Kamailio: `mf_process_maxfwd_header`."),
    func!(sanity_check() -> Bool, RQ.or(Kinds::REPLY), None,
        "Checks the message for malformed headers, URIs and lengths; on failure it has already replied (or dropped) and the route should `exit` (`drop` in reply_route). The core validates every message before any route sees it, so this is true wherever it runs. Kamailio: `sanity_check` (its check masks are not taken: every check runs)."),
    func!(force_rport() -> Void, RQ, None,
        "Acts as if the top Via had an empty `rport` (RFC 3581 §4, symmetric signalling): the Via gets `received` and `rport` set to the source address and port, so replies (relayed or this proxy's own) go back to the port the request came from, not to the Via's sent-by port. Kamailio: `force_rport`."),
    func!(set_reply_no_connect() -> Void, RQ, None,
        "Replies to this request over TCP or TLS are sent only on a connection that is still open; when the caller's connection is gone the reply is not sent (no new connection is opened to a UA that may be behind NAT). Replies relayed statelessly (after `forward()`) have no state to carry this and are not affected. Kamailio: `set_reply_no_connect`."),
    func!(is_request() -> Bool, ANY, None,
        "True when the message being routed is a request (request, failure and branch routes), false for a reply."),
    func!(is_reply() -> Bool, ANY, None,
        "True when the message being routed is a reply (reply and onreply routes)."),
    func!(is_first_hop() -> Bool, ANY, None,
        "A request: true when it has exactly one Via, i.e. it comes straight from the UA that sent it. A reply: true when it has no Record-Route or its top Record-Route names this proxy, i.e. this proxy is the first one on the callee's side. Kamailio: siputils `is_first_hop`."),
    func!(is_method(methods: P::Str) -> Bool, ANY, None,
        "True when the method (of the request, or of the request a reply answers) is one of the `|`-separated names, e.g. `\"INVITE|SUBSCRIBE\"`."),
    func!(is_myself(uri: P::Uri(UriUse::Any)) -> Bool, ANY, None,
        "True when the URI's host and port are one of this proxy's listen addresses or `domain` names. Kamailio: `uri == myself`."),
    // WITHINDLG
    func!(has_to_tag() -> Bool, ANY, None,
        "True when the To header carries a tag, i.e. the request is within a dialog. Kamailio: `has_totag`."),
    func!(loose_route() -> Bool, RQ, None,
        "Processes the Route header set of an in-dialog request (RFC 3261 loose routing), setting the next hop; true when routing was done."),
    func!(record_route() -> Bool, RQFB, None,
        "Adds a Record-Route header so that in-dialog requests come through this proxy."),
    // CANCEL / transactions
    func!(t_check_trans() -> Bool, RQ, None,
        "True when the request belongs to an existing transaction; for CANCEL, the INVITE transaction it cancels. Retransmissions are absorbed here."),
    func!(t_precheck_trans() -> Bool, RQ, None,
        "True when another process is already handling a retransmission of this request."),
    func!(t_is_canceled() -> Bool, Kinds::FAILURE, None,
        "True in a failure route when the transaction was canceled by the caller."),
    func!(t_check_status(pattern: P::Regex) -> Bool, TXN_REPLY, None,
        "True when the reply status code matches the regex, e.g. `\"3[0-9][0-9]\"`."),
    func!(t_branch_timeout() -> Bool, Kinds::FAILURE, None,
        "True in a failure route when the branch failed because of a timeout."),
    func!(t_newtran() -> Bool, RQ, None,
        "Creates the transaction now (Kamailio: `t_newtran`): a final reply the request route then decides (`reply`, `reply_error`, `save`, `auth_challenge`) is sent through a server transaction, which absorbs retransmissions of the request by resending that reply and, over UDP, retransmits a non-2xx reply to an INVITE until its ACK (RFC 3261 §17.2). `relay()` after it relays as usual. A provisional reply, `forward()` or a drop after it stays stateless (nothing could answer the request later). True; retransmissions never reach the route (the transaction layer absorbs them first)."),
    func!(t_is_set(hook: P::Word(HOOK_KINDS)) -> Bool, ANY, None,
        "True when the transaction has that hook armed: `\"failure_route\"` (`on_failure`), `\"branch_route\"` (`on_branch`), `\"onreply_route\"` (`on_reply`). A failure route is disarmed when it runs, so in a failure route `t_is_set(\"failure_route\")` is true only after `on_failure` armed one again. Kamailio: `t_is_set`."),
    func!(t_is_branch_route() -> Bool, ANY, None,
        "True when the running route is a branch_route (or a route called from one). Kamailio: `t_is_branch_route`."),
    // RELAY
    func!(relay(destination: P::Uri(UriUse::NextHop)) min 0 -> Bool, RQF, Handles,
        "Relays the request statefully (creating a transaction) to `$du`, or the request URI, or the optional `destination` (`\"sip:host:port\"`). False when it could not be sent. Kamailio: `t_relay`."),
    func!(forward(destination: P::Uri(UriUse::NextHop)) min 0 -> Bool, RQF, Handles,
        "Forwards the request statelessly to `$du`, or the request URI, or the optional `destination`. Kamailio: `forward`."),
    func!(reply(code: P::IntRange(100, 699), reason: P::Str) -> Bool, RQF, Handles,
        "Sends a reply with the status code and reason phrase, statefully if a transaction exists. Only request-side routes can reply. Kamailio: `sl_send_reply`/`send_reply`."),
    func!(reply_error() -> Bool, RQF, Handles,
        "Sends the reply matching the last internal error (e.g. 500). Kamailio: `sl_reply_error`."),
    func!(on_failure(route: P::Route(RouteKind::Failure)) -> Void, RQFB, None,
        "Arms a failure_route for the transaction: it runs when all branches fail. Kamailio: `t_on_failure`."),
    func!(on_reply(route: P::Route(RouteKind::OnReply)) -> Void, RQFB, None,
        "Arms an onreply_route for replies of this transaction. Kamailio: `t_on_reply`."),
    func!(on_branch(route: P::Route(RouteKind::Branch)) -> Void, RQF, None,
        "Arms a branch_route that runs for each outgoing branch. Kamailio: `t_on_branch`."),
    func!(append_branch(uri: P::Uri(UriUse::Any)) min 0 -> Bool, RQF, None,
        "Adds a new branch to the request (with `uri`, or the current request URI) for parallel forking."),
    // NATDETECT / NATMANAGE (Kamailio's nathelper)
    func!(nat_uac_test(checks: P::Words(NAT_TESTS)) -> Bool, ANY, None,
        "True when any of the named checks finds the sender behind NAT. `private_contact` (Kamailio flag 1): the first Contact's host is a private address; `via_ip_differs` (2): the source IP is not the top Via's sent-by host (a host name counts as different); `private_via` (4): the top Via's sent-by is a private address; `private_sdp` (8): a `c=` line of an SDP body has a private address; `via_port_differs` (16): the source port is not the top Via's sent-by port (5060, 5061 over TLS, when absent); `private_source` (32): the source address is private; `websocket` (64): the message came over WebSocket (`ws` or `wss`; its Via and Contact hosts are made-up `.invalid` names). Private: RFC 1918, RFC 6598 (100.64/10), 192.0.0.0/29, loopback, link-local, IPv6 unique local (fc00::/7) and link-local. Loopback counts, as in Kamailio, so on a test bed where everything runs on 127.0.0.1 `private_source` is always true: the Via and Contact checks are the ones that tell a NATed UA. On a reply (reply and onreply routes) the Via checks are false, since the top Via left is not the sender's; the others look at the reply and the address it came from. Kamailio's `nat_uac_test(\"19\")` is `nat_uac_test(\"private_contact|via_ip_differs|via_port_differs\")`. Kamailio: nathelper `nat_uac_test`."),
    func!(fix_nated_contact() -> Bool, RQFB.or(Kinds::REPLY_SIDE), None,
        "Rewrites the first Contact's URI host and port to the source address of the message (of a request: the sender; in reply and onreply routes: the address the reply came from), keeping its user and parameters; over TCP or TLS a URI without `transport` gains the one the message came over. An addr-spec Contact is put in angle brackets. `save()` reads the REGISTER as received, so for a registration use `fix_nated_register()` (as in Kamailio, whose registrar does not see this edit either). True when the Contact changed. Kamailio: nathelper `fix_nated_contact`."),
    func!(fix_nated_register() -> Bool, RQ, None,
        "For a REGISTER: the following `save()` stores the source address (and transport) as each binding's `received`, so `lookup()` sends requests for it there (`$du`) whatever its Contact says; the Contact itself is stored as registered. Without it `save()` still does so when the Contact is private or the Via's sent-by is not the source. True for a REGISTER, false otherwise. Kamailio: nathelper `fix_nated_register` (with `received_avp`)."),
    func!(add_rcv_param() -> Bool, RQ, None,
        "Adds the header parameter `received=\"sip:IP:PORT\"` (`;transport=tcp` or `tls` inside the quotes for stream transports) with the source address to the first Contact, for a registrar behind this proxy; a registrar (`save()`) stores a Contact's `received` parameter as the binding's `received`, and `save()` here also takes the source as `fix_nated_register()` does. True when the Contact changed. Kamailio: nathelper `add_rcv_param`."),
    func!(set_contact_alias() -> Bool, RQFB.or(Kinds::REPLY_SIDE), None,
        "Adds `;alias=IP~PORT~PROTO` with the source address (PROTO 1 UDP, 2 TCP, 3 TLS, 5 WS, 6 WSS) to the first Contact's URI, unless that URI already reaches the source (or has an alias): the peer then sends in-dialog requests to a Request-URI carrying it, and `handle_ruri_alias()` sends them to the NATed device. In reply and onreply routes the source is the address the reply came from. True when the Contact changed. Kamailio: nathelper `set_contact_alias`."),
    func!(handle_ruri_alias() -> Bool, RQF, None,
        "When the Request-URI has an `alias` parameter (`set_contact_alias()`), sets `$du` to the address it names (`sip:IP:PORT`, with `;transport=` for TCP, TLS, WS and WSS) and removes the parameter from the Request-URI. True when it did; false when there is no (valid) alias. Kamailio: nathelper `handle_ruri_alias`."),
    // RTPENGINE (Kamailio's rtpengine module)
    func!(rtpengine_offer(flags: P::NgFlags) min 0 -> Bool, MEDIA, None,
        "Sends the SDP body to rtpengine as an ng `offer` and puts the SDP rtpengine returns (its own addresses and ports) in its place; Content-Length follows, and every branch of a fork carries it. Tags: the From tag as `from-tag` (in a reply, an offer is a late offer: the To tag is the sender's). `received-from` is the message's source address. `flags` are Kamailio's (`\"replace-origin replace-session-connection ICE=remove RTP/AVP\"`), checked against the flags rtpengine documents (docs/builtins.md). True when rtpengine answered with an SDP; false, with `$rtpengine_result` telling why, when there is no SDP body (`no_sdp`), rtpengine answered an error (`error`) or garbage (`malformed`), none answered (`timeout`) or none is up or configured (`unavailable`); the body is then unchanged. Kamailio: rtpengine `rtpengine_offer`."),
    func!(rtpengine_answer(flags: P::NgFlags) min 0 -> Bool, MEDIA, None,
        "As `rtpengine_offer` with an ng `answer`: for the SDP answer (a 183/200 to an INVITE, or an ACK after a late offer). Tags: From then To in a reply, the other way round in a request. Kamailio: rtpengine `rtpengine_answer`."),
    func!(rtpengine_delete(flags: P::NgFlags) min 0 -> Bool, MEDIA, None,
        "Ends the call's media session in rtpengine (ng `delete` with the Call-ID and From tag; the To tag too with the `to-tag` flag). True when rtpengine deleted it; false with `$rtpengine_result` (`error` when it had no such call). Kamailio: rtpengine `rtpengine_delete`."),
    func!(rtpengine_manage(flags: P::NgFlags) min 0 -> Bool, MEDIA, None,
        "Does what the message calls for, as Kamailio's `rtpengine_manage`: an INVITE or UPDATE with SDP → offer; an ACK with SDP → answer; BYE or CANCEL → delete; in a failure route → delete; a reply ≥ 300 → delete; a 1xx/2xx with SDP to an INVITE or UPDATE → answer, or offer when no offer was made for the request (late negotiation). True when the command succeeded or none was needed (`$rtpengine_result` is then `nothing`). Kamailio: rtpengine `rtpengine_manage`."),
    // SECURITY
    func!(within_limit(limit: P::Limit, key: P::Str) min 1 -> Bool, RQFB, None,
        "Takes one token from the bucket of `key` (by default the key the `limit` declares, e.g. `$si`) in limit `limit`: true when the message is within the limit. A key that goes over a limit declared with `ban DURATION` is banned that long (an address: its datagrams are then dropped before parsing). Buckets survive reloads while the declaration is unchanged. Kamailio: pike `pike_check_req`, pipelimit `pl_check`."),
    func!(ban(key: P::Str, duration: P::Duration) -> Bool, ANY, None,
        "Bans `key` for `duration`: an IP address (`ban($si, 5m)`) has its UDP datagrams dropped and its new TCP/TLS connections closed before any parsing; any other key (`$fU`) is what `is_banned` tests. A ban already longer is kept. Bans survive reloads. Kamailio: htable `sht_setex` on an `ipban` table, or `pike` with `pike_check_req`."),
    func!(in_acl(acl: P::Acl, address: P::Str) min 1 -> Bool, ANY, None,
        "Whether `address` (by default the source address, `$si`) is in address group `acl` (`acl NAME 10.0.0.0/8 \"2001:db8::/32\" from \"peers.txt\";`). Kamailio: permissions `allow_source_address(group)`, `ds_is_from_list`."),
    func!(is_scanner() -> Bool, ANY, None,
        "Whether the message comes from a known SIP scanner: its User-Agent or From display name contains one of the fragments sipc ships (`friendly-scanner`, `sipvicious`, `sipcli`, … in src/security/scanner.rs) or of `module security { scanner_user_agents }`, compared without case. Kamailio: `$ua =~ \"friendly-scanner|sipcli|…\"` in the default configuration, secfilter `secf_check_ua`."),
    func!(is_banned(key: P::Str) -> Bool, ANY, None,
        "Whether `key` (an address or any string) is banned now. Kamailio: htable `$sht(ipban=>$si) != $null`."),
    func!(unban(key: P::Str) -> Bool, ANY, None,
        "Lifts the ban on `key`; true when there was one. Kamailio: htable `sht_rm`."),
    // DIALOG (Kamailio's dialog and acc modules)
    func!(dlg_manage() -> Bool, RQ, None,
        "Follows the call an initial INVITE starts as a dialog (early, confirmed, ended), once the request is relayed: it counts in the profiles `set_dlg_profile` names, keeps `$dlg_var` values for its in-dialog requests, ends after `dlg_set_timeout` seconds from the answer or `module dialog { default_timeout }` without any in-dialog request (the proxy then sends BYE to both sides), and writes a call record when it ends if the flag of its kind is set (`module acc`: `FLT_ACC` answered, `FLT_ACCFAILED` failed, `FLT_ACCMISSED` missed). The configuration must `record_route()` (E0404) so in-dialog requests and the BYE come through. For an in-dialog request: true when it belongs to a tracked dialog. Kamailio: dialog `dlg_manage`."),
    func!(set_dlg_profile(profile: P::Str, key: P::Str) min 1 -> Bool, RQ, None,
        "Counts the dialog `dlg_manage()` starts in profile `profile` under `key` (default: no key) until it ends, e.g. `set_dlg_profile(\"caller\", $si)`; `dlg_profile_size` reads the count. False when no `dlg_manage()` came first. Kamailio: dialog `set_dlg_profile`."),
    func!(dlg_profile_size(profile: P::Str, key: P::Str) min 1 -> Int, ANY, None,
        "How many live dialogs (early or confirmed) are in profile `profile` under `key` (default: no key). Compare it before `dlg_manage()` to cap concurrent calls: `if (dlg_profile_size(\"caller\", $si) >= 10) { reply(486, \"Too Many Calls\"); exit; }`. Kamailio: dialog `get_profile_size`."),
    func!(dlg_set_timeout(seconds: P::IntRange(1, 604_800)) -> Bool, RQ, None,
        "The longest the dialog `dlg_manage()` starts may last after its answer: then the proxy sends BYE to both sides and its record says `max_duration` (prepaid or credit-limited calls: `dlg_set_timeout(to_int($avp(credit)))`). In-dialog requests do not extend it. False when no `dlg_manage()` came first. Kamailio: dialog `dlg_set_timeout`."),
    func!(is_known_dlg() -> Bool, ANY, None,
        "True when the message belongs to a tracked dialog (by Call-ID and tags). Kamailio: dialog `is_known_dlg`."),
    func!(hep_capture(on: P::Bool) -> Bool, RQ, None,
        "Whether this request, and what the proxy sends for it now (its relayed copies, the replies the route makes), go to the HEP collector of `module hep`: `hep_capture(false)` leaves out, say, OPTIONS keepalives when `capture_all` is on; `hep_capture(true)` picks requests when it is off. Replies and retransmissions follow `capture_all`. False when no `module hep` is configured. Kamailio: siptrace `sip_trace()`."),
    func!(topology_hide() -> Bool, RQ, None,
        "Hides each side of the request from the other (an SBC's topology hiding): the copies relayed carry this proxy's Via, Record-Route and Contact alone and, towards the callee, a Call-ID of their own; replies get back the Vias, Call-ID and Record-Route entries their side sent. On an initial INVITE it starts a hidden dialog (it is `dlg_manage()` as well, and needs `record_route()`, E0404): its in-dialog requests, from either side, are rewritten on arrival to the other side's Call-ID, Contact and Route set, so `loose_route()` and `relay()` take them there. On MESSAGE, OPTIONS and other requests outside a dialog it hides that transaction. Needs `relay()` (a stateless `forward()` keeps the Vias). False, and nothing hidden, for REGISTER and the requests that start subscriptions (SUBSCRIBE, REFER), whose Contact must stay. From, To and the SDP pass as they are (`rtpengine_manage()` relays the media). Kamailio: topos, topoh."),
    // REGISTRAR / LOCATION
    func!(save(table: P::Str) -> Bool, RQ, Handles,
        "Applies a REGISTER to the location table (RFC 3261 §10.3: expiry limits, `*`, CSeq order, Path, `+sip.instance`/`reg-id`) and replies itself: 200 listing every current binding with its remaining expiry, or the error (400, 423 with Min-Expires, 503). True on 200; false when it replied an error (a later `reply_error()` is then ignored) or when no registrar is running (nothing replied: `reply_error()` answers 500). sipc keeps one location table; `table` is accepted for Kamailio parity. Kamailio: registrar `save`."),
    func!(lookup(table: P::Str) -> Bool, RQF, None,
        "Looks the request URI's address of record up in the location table. Found: the R-URI becomes the best contact (`$du` its NAT source address over the transport it registered on, or its Path as Route headers), other contacts of the same q become parallel branches and lower q groups are tried serially, best first. True when found; `$lookup_result` tells `found`, `not_found`, `method_not_allowed` (the contacts registered an Allow list without this method) or `error`. Kamailio: registrar `lookup` (1, -1, -2, -3)."),
    func!(registered(table: P::Str) -> Bool, RQF, None,
        "True when the request URI's address of record has a live binding in the location table. Changes nothing."),
    func!(add_path() -> Bool, RQ, None,
        "Adds a Path header naming this proxy (`<sip:ADDR;lr>`, the address the request leaves from) on top of the Path set when the request is relayed or forwarded (RFC 3327 §5.1), so the registrar routes requests for the registered contact through this proxy. True. Kamailio: path `add_path`."),
    func!(add_path_received() -> Bool, RQ, None,
        "Like `add_path()`, with the request's source address as the Path URI's `received` parameter (`<sip:ADDR;lr;received=sip:SRC_IP:SRC_PORT>`, `%3Btransport%3Dtcp` after the port over TCP, `tls` over TLS), for UAs behind NAT. A request routed back through this Path (its top Route is this proxy with `received`) is sent to that address: `$du` is set to it before request_route runs. True. Kamailio: path `add_path_received`."),
    func!(unregister(table: P::Str, aor: P::Uri(UriUse::Any)) -> Bool, RQF, None,
        "Removes every binding of the address of record `aor` (a SIP URI; reduced to `sip:user@host`). True when there were bindings. Kamailio: registrar `unregister`."),
    // AUTH
    func!(auth_check(realm: P::Str, table: P::Str) -> Bool, RQ, None,
        "Verifies the request's digest credentials (RFC 7616: MD5 or SHA-256, qop=auth; Authorization for REGISTER, else Proxy-Authorization) for `realm` (empty: `module auth { realm }`, else the From host) against the subscriber table, and that the user is the From user (To for REGISTER). True when valid; `$auth_result` tells `ok`, `no_credentials`, `wrong_password`, `stale_nonce`, `unknown_user`, `user_mismatch` or `invalid`. Failures other than `no_credentials` and `stale_nonce` log one warn line (see docs/auth.md). `table` is accepted for Kamailio parity. Kamailio: `auth_check`."),
    func!(auth_challenge(realm: P::Str) -> Bool, RQ, Handles,
        "Replies 401 (REGISTER, WWW-Authenticate) or 407 (others, Proxy-Authenticate) with a digest challenge per algorithm of `module auth { algorithms }` (default SHA-256 then MD5) for `realm` (empty: as in `auth_check`), qop=auth; `stale=true` when `auth_check` found a stale nonce. Kamailio: `auth_challenge`."),
    func!(consume_credentials() -> Bool, RQ, None,
        "Removes the Authorization and Proxy-Authorization headers, so credentials are not forwarded. True when one was removed."),
    // Headers
    func!(is_present_hf(name: P::Header) -> Bool, ANY, None,
        "True when the message has at least one header called `name`."),
    func!(append_hf(header: P::HeaderLine) -> Bool, ANY, None,
        "Appends a header line, e.g. `\"X-Foo: bar\\r\\n\"`; `$pv`s in it are expanded."),
    func!(remove_hf(name: P::Header) -> Int, ANY, None,
        "Removes every header called `name`; returns how many were removed."),
    func!(replace_hf(name: P::Header, value: P::Str) -> Bool, ANY, None,
        "Replaces the value of every header called `name` (appending one when none exists)."),
    // Strings
    func!(str_len(s: P::Str) -> Int, ANY, None, "Length of `s` in bytes."),
    func!(str_lower(s: P::Str) -> Str, ANY, None, "`s` in ASCII lower case."),
    func!(str_upper(s: P::Str) -> Str, ANY, None, "`s` in ASCII upper case."),
    func!(str_substr(s: P::Str, start: P::Int, len: P::Int) -> Str, ANY, None,
        "`len` bytes of `s` from byte `start` (clamped to the string)."),
    func!(str_contains(s: P::Str, needle: P::Str) -> Bool, ANY, None, "True when `needle` occurs in `s`."),
    func!(str_starts_with(s: P::Str, prefix: P::Str) -> Bool, ANY, None, "True when `s` starts with `prefix`."),
    func!(to_str(i: P::Int) -> Str, ANY, None, "The decimal text of `i`."),
    func!(to_int(s: P::Str) -> Int, ANY, None, "`s` parsed as a decimal integer, 0 when it is not one."),
    // Logging
    func!(log(level: P::Level, message: P::Str) -> Void, ANY, None,
        "Logs `message` at `level` (`err`, `warn`, `notice`, `info`, `debug`; Kamailio's `L_ALERT`, `L_BUG`, `L_CRIT` log as `err`, `L_DBG` as `debug`); `$pv`s in the message are expanded. Kamailio: `xlog`."),
    // Flags
    func!(setflag(flag: P::Flag) -> Void, ANY, None, "Sets a declared transaction flag."),
    func!(resetflag(flag: P::Flag) -> Void, ANY, None, "Clears a declared transaction flag."),
    func!(isflagset(flag: P::Flag) -> Bool, ANY, None, "True when the declared transaction flag is set."),
    // Tables
    func!(table_get(table: P::Table, key: P::Str) -> Str, ANY, None,
        "The value stored under `key` in a declared table, or the empty string."),
    func!(table_has(table: P::Table, key: P::Str) -> Bool, ANY, None,
        "True when a declared table has an entry for `key`."),
    // Routing tables and trunks
    func!(select(dest: P::Dest) -> Bool, RQF, None,
        "Chooses where the request goes: for a routing table, looks its key up (longest prefix, exact or range) and applies the row's translation (strip, prefix, replace) to the key; then orders the row's group (or the named group) by its strategy, skipping members that are down or at `max_calls`. Sets `$du` to the first and keeps the rest for `next_destination()`. False when nothing matches or every member is unavailable."),
    func!(next_destination() -> Bool, RQF, None,
        "Serial failover: sets `$du` to the next member chosen by the last `select`, skipping members that went down meanwhile; false when none is left. Call it in a failure_route, then `relay()` (and arm `on_failure` again for another round)."),
    func!(fork(dest: P::Dest) -> Bool, RQF, None,
        "Like `select`, but forks the request in parallel to every available member (the first as the main branch, the others as extra branches)."),
    func!(route_attr(name: P::Str) -> Str, ANY, None,
        "An attribute (`attr NAME \"value\"`) of the table row or trunk chosen by the last `select`/`next_destination`, or of the incoming trunk; empty when none."),
    func!(trunk_stat(trunk: P::Str, counter: P::Str) -> Int, ANY, None,
        "A counter of a trunk: `calls`, `answered`, `failed`, `active`, `probes` or `up` (1/0); -1 for an unknown trunk or counter. Counters survive reloads."),
    func!(trunk_is_up(trunk: P::Str) -> Bool, ANY, None,
        "True when the trunk is healthy (probing and passive marking decide)."),
    func!(trunk_set_up(trunk: P::Str, up: P::Bool) -> Bool, ANY, None,
        "Marks a trunk up or down by hand (until probing decides otherwise); false for an unknown trunk."),
];

/// How a pseudo-variable takes an argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PvArg {
    None,
    /// `$var(x)`, `$avp(x)`: a name.
    Name,
    /// `$hdr(Name)`: a header name, compared with the known SIP headers.
    Header,
    /// `$match(1)`: a number.
    Index,
}

/// Where a variable's value lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Read from (or written to) the SIP message.
    Message,
    /// `$var(x)`: a local of the current message, reset for every message.
    MessageLocal,
    /// `$avp(x)`: kept for the life of the transaction.
    Transaction,
}

#[derive(Debug)]
pub struct PseudoVar {
    pub name: &'static str,
    pub arg: PvArg,
    /// `Unknown` for `$var`, whose type is fixed by its first assignment.
    pub ty: Ty,
    pub read: Kinds,
    /// Route kinds where it may be assigned; empty when read-only.
    pub write: Kinds,
    /// Set when the value is a URI: a constant assigned to it must be one
    /// the proxy accepts for this use.
    pub uri: Option<UriUse>,
    pub scope: Scope,
    pub doc: &'static str,
    pub symbol: &'static str,
}

macro_rules! pv {
    ($name:literal, $arg:ident, $ty:ident, $read:expr, $write:expr, $scope:ident, $doc:literal) => {
        pv!(@ $name, $arg, $ty, $read, $write, None, $scope, $doc)
    };
    ($name:literal, $arg:ident, $ty:ident, $read:expr, $write:expr, uri $uri:ident, $scope:ident, $doc:literal) => {
        pv!(@ $name, $arg, $ty, $read, $write, Some(UriUse::$uri), $scope, $doc)
    };
    (@ $name:literal, $arg:ident, $ty:ident, $read:expr, $write:expr, $uri:expr, $scope:ident, $doc:literal) => {
        PseudoVar {
            name: $name,
            arg: PvArg::$arg,
            ty: Ty::$ty,
            read: $read,
            write: $write,
            uri: $uri,
            scope: Scope::$scope,
            doc: $doc,
            symbol: concat!("sipc_rt_pv_", $name),
        }
    };
}

const RO: Kinds = Kinds::NONE;

pub static PSEUDO_VARS: &[PseudoVar] = &[
    pv!(
        "ru",
        None,
        Str,
        ANY,
        RQFB,
        uri Any,
        Message,
        "Request URI. Writing it changes where the request goes."
    ),
    pv!("rU", None, Str, ANY, RQFB, Message, "User part of the request URI."),
    pv!("rd", None, Str, ANY, RQFB, Message, "Host (domain) part of the request URI."),
    pv!("rp", None, Int, ANY, RQFB, Message, "Port of the request URI (5060 when absent)."),
    pv!(
        "du",
        None,
        Str,
        ANY,
        RQFB,
        uri NextHop,
        Message,
        "Destination URI: the next hop, overriding the request URI for sending."
    ),
    pv!("fu", None, Str, ANY, RO, uri Any, Message, "URI of the From header."),
    pv!("fU", None, Str, ANY, RO, Message, "User part of the From URI."),
    pv!("fd", None, Str, ANY, RO, Message, "Host part of the From URI."),
    pv!("tu", None, Str, ANY, RO, uri Any, Message, "URI of the To header."),
    pv!("tU", None, Str, ANY, RO, Message, "User part of the To URI."),
    pv!("td", None, Str, ANY, RO, Message, "Host part of the To URI."),
    pv!("si", None, Str, ANY, RO, Message, "Source IP address of the message."),
    pv!("sp", None, Int, ANY, RO, Message, "Source port of the message."),
    pv!(
        "rm",
        None,
        Str,
        ANY,
        RO,
        Message,
        "Method of the request (or of the request a reply answers)."
    ),
    pv!("rs", None, Int, Kinds::REPLY_SIDE, RO, Message, "Status code of the reply."),
    pv!("rr", None, Str, Kinds::REPLY_SIDE, RO, Message, "Reason phrase of the reply."),
    pv!("ci", None, Str, ANY, RO, Message, "Call-ID."),
    pv!("ua", None, Str, ANY, RO, Message, "User-Agent header value."),
    pv!("cs", None, Int, ANY, RO, Message, "CSeq number."),
    pv!("ct", None, Str, ANY, RO, Message, "Contact header value."),
    pv!(
        "au",
        None,
        Str,
        RQF,
        RO,
        Message,
        "User name in the Authorization/Proxy-Authorization credentials."
    ),
    pv!(
        "ar",
        None,
        Str,
        RQF,
        RO,
        Message,
        "Realm in the Authorization/Proxy-Authorization credentials."
    ),
    pv!(
        "lookup_result",
        None,
        Str,
        RQF,
        RO,
        Message,
        "Outcome of the last `lookup()` in this message: `found`, `not_found`, `method_not_allowed`, `error`; empty before any."
    ),
    pv!(
        "auth_result",
        None,
        Str,
        RQF,
        RO,
        Message,
        "Outcome of the last `auth_check()` in this message: `ok`, `no_credentials`, `wrong_password`, `stale_nonce`, `unknown_user`, `user_mismatch`, `invalid`; empty before any."
    ),
    pv!(
        "rtpengine_result",
        None,
        Str,
        MEDIA,
        RO,
        Message,
        "Outcome of the last `rtpengine_*` call in this message: `ok`, `nothing` (`rtpengine_manage` had nothing to do), `no_sdp` (no SDP body: skipped), `error` (rtpengine refused: the log line gives its reason and the Call-ID), `malformed` (its reply was not an ng reply), `timeout` (no instance answered), `unavailable` (no instance up, or no `module rtpengine`), `bad_flags` (a flags string built at run time has a word rtpengine does not know); empty before any."
    ),
    pv!("ml", None, Int, ANY, RO, Message, "Length of the message in bytes."),
    pv!(
        "in_trunk",
        None,
        Str,
        ANY,
        RO,
        Message,
        "Name of the trunk whose `from` networks contain the source address; empty when none."
    ),
    pv!(
        "out_trunk",
        None,
        Str,
        ANY,
        RO,
        Transaction,
        "Name of the trunk chosen by the last `select`/`next_destination` of the transaction."
    ),
    pv!(
        "proto",
        None,
        Str,
        ANY,
        RO,
        Message,
        "Transport the message arrived on: `udp`, `tcp`, `tls`, `ws`, `wss`."
    ),
    pv!("Ri", None, Str, ANY, RO, Message, "Local IP address the message arrived on."),
    pv!("Rp", None, Int, ANY, RO, Message, "Local port the message arrived on."),
    pv!(
        "T_branch_idx",
        None,
        Int,
        ANY,
        RO,
        Message,
        "Index of the transaction's branch, from 0 in the order branches are started: in a branch_route the branch being prepared, in an onreply_route (and reply_route) the branch the reply came on, in a failure_route the branch whose reply won (the one `$T_reply_code` is from); 0 elsewhere."
    ),
    pv!(
        "T_reply_code",
        None,
        Int,
        TXN_REPLY,
        RO,
        Message,
        "Status code of the reply that triggered this onreply or failure route (the winning reply in failure routes)."
    ),
    pv!(
        "hdr",
        Header,
        Str,
        ANY,
        RO,
        Message,
        "Value of the first header called `Name`, empty when absent. Use `append_hf`/`replace_hf`/`remove_hf` to change headers."
    ),
    pv!(
        "var",
        Name,
        Unknown,
        ANY,
        ANY,
        MessageLocal,
        "A message-scoped variable: reset to empty for every message, shared by the routes handling that message. Its type is fixed by its first assignment."
    ),
    pv!(
        "avp",
        Name,
        Str,
        ANY,
        ANY,
        Transaction,
        "A transaction-scoped string: set while handling the request, still there in its onreply and failure routes."
    ),
    pv!(
        "dlg_var",
        Name,
        Str,
        ANY,
        ANY,
        Message,
        "A variable of the message's dialog (`dlg_manage()`): set while routing the INVITE or any in-dialog request, read by every later request, reply and failure route of the call, and written into its call record as an extra field (`$dlg_var(src) = $si;`). Empty outside a tracked dialog. Kamailio: `$dlg_var(key)`."
    ),
    pv!(
        "dlg_state",
        None,
        Str,
        ANY,
        RO,
        Message,
        "State of the message's dialog: `unconfirmed` (the INVITE was relayed), `early` (a provisional reply with a To tag), `confirmed` (answered); empty when the message belongs to none. Kamailio: `$dlg(state)`."
    ),
    pv!(
        "dlg_start",
        None,
        Int,
        ANY,
        RO,
        Message,
        "When the message's dialog began (its INVITE was relayed), in seconds since the Unix epoch; 0 when it belongs to none. Kamailio: `$dlg(start_ts)`."
    ),
    pv!(
        "match",
        Index,
        Str,
        ANY,
        RO,
        MessageLocal,
        "Capture group `N` of the last successful `=~` match in this message (`$match(0)` is the whole match)."
    ),
];

/// A global setting (`module` empty) or a module parameter.
#[derive(Debug)]
pub struct SettingDef {
    pub module: &'static str,
    pub name: &'static str,
    pub ty: Ty,
    pub doc: &'static str,
}

macro_rules! setting {
    ($module:literal, $name:ident, $ty:ident, $doc:literal) => {
        SettingDef { module: $module, name: stringify!($name), ty: Ty::$ty, doc: $doc }
    };
}

pub static SETTINGS: &[SettingDef] = &[
    setting!(
        "",
        children,
        Int,
        "Routing workers: UDP receive threads per `listen udp` (each on its own `SO_REUSEPORT` socket) and TCP/TLS routing tasks; 0 or unset: one per core; `sipc run -n N` overrides it. Kamailio: `children`."
    ),
    setting!("", debug, Int, "Log level: -1 errors only … 3 debug. Kamailio: `debug`."),
    setting!(
        "",
        log_stderror,
        Bool,
        "Log to stderr (true, the default: systemd's journal or a container runtime collects it), or to the local syslog daemon (false) with `log_facility` and `log_name`. Kamailio: `log_stderror`."
    ),
    setting!(
        "",
        log_format,
        Str,
        "The shape of log lines: \"text\" (the default), or \"json\", one JSON object per line with its fields (`call_id`, …) as keys. Read at start. Kamailio: `log_engine_type = \"json\"`."
    ),
    setting!(
        "",
        log_facility,
        Str,
        "The syslog facility when `log_stderror = false`: \"LOG_DAEMON\" (the default), \"LOG_LOCAL0\" … \"LOG_LOCAL7\", \"LOG_USER\", …. Kamailio: `log_facility`."
    ),
    setting!(
        "",
        log_name,
        Str,
        "The program name on syslog lines (default \"sipc\"). Kamailio: `log_name`."
    ),
    setting!(
        "",
        syslog_socket,
        Str,
        "The local syslog daemon's datagram socket (default \"/dev/log\"); when nothing listens there the log goes to stderr."
    ),
    setting!("", maxbuffer, Int, "Upper bound when probing the UDP receive buffer size."),
    setting!(
        "",
        tcp_max_connections,
        Int,
        "Open TCP, TLS and WebSocket connections at most, both directions (default 4096); a connection past it is closed at once. Kamailio: `tcp_max_connections`."
    ),
    setting!(
        "",
        tcp_max_connections_per_source,
        Int,
        "Open TCP, TLS and WebSocket connections from one source address at most (default 256: an office of browsers behind one NAT fits, one host holding thousands does not); more are closed before any handshake and counted as `refused`."
    ),
    setting!("", dns, Bool, "Resolve the source IP to compare with Via hosts."),
    setting!("", rev_dns, Bool, "Reverse-resolve source addresses."),
    setting!("", auto_aliases, Bool, "Add the listen addresses' names to the local domains."),
    setting!("", max_while_loops, Int, "Bound on iterations of every `while` loop (default 100)."),
    setting!(
        "",
        user_agent,
        Str,
        "Accepted for Kamailio parity and not used: no request sipc makes discloses a version (trunk probes say `User-Agent: sipc probe (TRUNK)`, so the far end can tell them apart; NAT pings and the BYEs that end timed-out dialogs carry no User-Agent). Kamailio: `user_agent_header`."
    ),
    setting!(
        "",
        server,
        Str,
        "Accepted for Kamailio parity and not sent: the replies sipc makes carry no Server header, so a scanner learns neither the software nor its version. Kamailio: `server_header`."
    ),
    setting!(
        "tm",
        fr_timer,
        Duration,
        "Time to wait for a final reply to a non-INVITE (and any reply to an INVITE): timers B and F, 64·T1 (32 s) by default."
    ),
    setting!(
        "tm",
        fr_inv_timer,
        Duration,
        "Time to wait for a final reply to an INVITE after a provisional one: timer C (RFC 3261 §16.6), 180 s by default."
    ),
    setting!(
        "tm",
        t1,
        Duration,
        "RFC 3261 T1, the round-trip estimate (500 ms); timers A, E, G start at T1 and D, H, J, L, M are 64·T1."
    ),
    setting!(
        "tm",
        trying_delay,
        Duration,
        "How long a relayed INVITE waits for a provisional reply from downstream before the proxy sends its own 100 Trying (RFC 3261 §17.2.1 allows up to 200 ms: a relayed 180 quenches the caller's retransmissions too, so a fast callee's calls carry one datagram fewer; a retransmitted INVITE gets the 100 at once). 0, the default, sends it immediately, as Kamailio's tm does."
    ),
    setting!(
        "security",
        feed_ca,
        Str,
        "PEM CA certificates that blocklist feeds (`blocklist NAME from \"https://…\"`) are verified against, instead of the web's roots (path, relative to the config; read at start)."
    ),
    setting!(
        "security",
        scanner_user_agents,
        Str,
        "More User-Agent fragments `is_scanner()` recognises, separated by `|` and compared without case (added to the built-in list)."
    ),
    setting!(
        "websocket",
        origins,
        Str,
        "The `Origin`s a browser may open a WebSocket connection from, separated by spaces (`\"https://app.example.com https://admin.example.com\"`); others get `403 Forbidden`. Unset: any origin. Kamailio: an `event_route[xhttp:request]` checking `$hdr(Origin)`."
    ),
    setting!(
        "websocket",
        keepalive_interval,
        Duration,
        "A WebSocket connection silent this long gets a ping (default 30s, at least 1s). Kamailio: websocket `keepalive_interval`."
    ),
    setting!(
        "websocket",
        keepalive_timeout,
        Duration,
        "A WebSocket connection silent this long (no message, no pong) is closed (default 180s). Kamailio: websocket `keepalive_timeout`."
    ),
    setting!(
        "websocket",
        keep_bindings,
        Bool,
        "Keep the bindings registered over a WebSocket connection after it closes, until they expire (true), or remove them at once (false, the default: nothing can reach them any more). Kamailio: websocket's `ws_close` event and `unregister` in the route."
    ),
    setting!(
        "hep",
        destination,
        Str,
        "Where `sipc run` sends a HEP v3 copy of every SIP message it receives and sends (`\"udp:IP:PORT\"`, a datagram per message, or `\"tcp:IP:PORT\"`, batched every 20 ms and cheaper per message; a Homer or heplify-server collector), with addresses, ports, transport, time and the Call-ID to correlate them (docs/operations.md). Kamailio: siptrace `duplicate_uri` with `hep_mode_on`."
    ),
    setting!(
        "hep",
        capture_id,
        Int,
        "The capture agent id in each HEP packet (default 1), telling this proxy's packets from others'. Kamailio: siptrace `hep_capture_id`."
    ),
    setting!(
        "hep",
        password,
        Str,
        "The authentication key sent in each HEP packet, when the collector asks for one. Kamailio: siptrace `auth_key`."
    ),
    setting!(
        "hep",
        capture_all,
        Bool,
        "Capture every message (true, the default; a route stops it for its message with `hep_capture(false)`), or only the requests whose route calls `hep_capture(true)` (false). Kamailio: siptrace `trace_on` and `sip_trace()`."
    ),
    setting!(
        "metrics",
        listen,
        Str,
        "Where `sipc run` serves Prometheus metrics (`GET /metrics`, OpenMetrics text), e.g. `\"127.0.0.1:9090\"`: requests by method, replies by class, drops by reason, transactions, route run times, reloads, registrations, trunks, dialogs, bans, CPU and memory (docs/operations.md). Keep it on loopback or a management network. Kamailio: xhttp_prom."
    ),
    setting!(
        "dialog",
        default_timeout,
        Duration,
        "How long an answered dialog lives without any in-dialog request before the proxy ends it with a BYE to both sides (12h, Kamailio's default; each in-dialog request starts it again, so a call whose phones vanished without a BYE ends that long after the last one). Kamailio: dialog `default_timeout`."
    ),
    setting!(
        "dialog",
        snapshot,
        Str,
        "The file (relative to the configuration) where `sipc run` writes the live dialogs on SIGTERM and reads them back at start, so a restart loses no call and no record (`dialogs.json`)."
    ),
    setting!(
        "acc",
        db_url,
        Str,
        "Where call records go: `sqlite:FILE` (the default, `sqlite:cdr.db`, relative to the configuration), `jsonl:FILE` (one JSON object per line) or `postgres://USER@HOST/DB`. Kamailio: acc `db_url`."
    ),
    setting!(
        "acc",
        db_table,
        Str,
        "The table of the records in an SQL store (`cdr`). Kamailio: acc `db_table_acc`."
    ),
    setting!(
        "acc",
        log_flag,
        Str,
        "The flag that asks for a record of an answered call (`FLT_ACC` when declared). Kamailio: acc `log_flag`."
    ),
    setting!(
        "acc",
        failed_transaction_flag,
        Str,
        "The flag that asks for a record of a failed call, final status ≥ 300 (`FLT_ACCFAILED` when declared). Kamailio: acc `failed_transaction_flag`."
    ),
    setting!(
        "acc",
        log_missed_flag,
        Str,
        "The flag that asks for a record of a missed call: cancelled, or 408, 480 or 487 (`FLT_ACCMISSED` when declared). Kamailio: acc `log_missed_flag`."
    ),
    setting!(
        "acc",
        queue_size,
        Int,
        "Records waiting for the writer beyond which new ones are dropped and counted (65536); routing never waits on the store."
    ),
    setting!(
        "acc",
        spool,
        Str,
        "The file records go to while the store refuses them, replayed in order when it is back (the store's file with `.spool`, or `cdr.spool` beside the configuration for PostgreSQL)."
    ),
    setting!("tm", t2, Duration, "RFC 3261 T2, the longest retransmission interval (4 s)."),
    setting!(
        "tm",
        t4,
        Duration,
        "RFC 3261 T4, how long a message may live in the network (5 s); timers I and K."
    ),
    setting!(
        "tm",
        max_transactions,
        Int,
        "Live transactions beyond which new requests are answered 503 with Retry-After (1000000: a 2xx'd INVITE and its BYE stay 32 s, RFC 6026, so 4,000 calls/s keep about 260,000 alive, 500-800 bytes each once answered)."
    ),
    setting!("rr", append_fromtag, Bool, "Put the From tag into Record-Route headers."),
    setting!("rr", enable_full_lr, Bool, "Write `lr=on` instead of `lr` in Record-Route."),
    setting!(
        "usrloc",
        db_path,
        Str,
        "SQLite database of the location table and the `subscriber` table (path; relative to the config file). Default `sipc.db` next to the config."
    ),
    setting!(
        "usrloc",
        db_mode,
        Int,
        "0: bindings only in memory (lost on restart); 1: kept in memory and written through to the shared table at once (with `db_url`); 2 (default): kept in memory and written behind, every `write_delay`, to `db_path` or the shared table. Lookups are always served from memory; with `db_url` every node's memory follows the shared table (docs/cluster.md). Kamailio: `db_mode`."
    ),
    setting!(
        "usrloc",
        db_url,
        Str,
        "`postgres://USER:PASSWORD@HOST/DB`: the location table is shared with every node that names the same table, in PostgreSQL; unset, it is this node's alone (`db_path`). Kamailio: usrloc `db_url`."
    ),
    setting!(
        "cluster",
        redis,
        Str,
        "`redis://HOST:PORT[/DB]`: bans and rate limits are shared with every node that names the same Redis and `prefix`; when Redis cannot be reached each node counts alone and says so (docs/cluster.md)."
    ),
    setting!(
        "cluster",
        prefix,
        Str,
        "Prefix of the Redis keys and channels of this cluster (default `sipc`): clusters sharing one Redis need their own."
    ),
    setting!(
        "cluster",
        sync_interval,
        Duration,
        "How often rate-limit counts are exchanged through Redis (default 100ms): a limit holds for the cluster give or take what the nodes let through in one interval."
    ),
    setting!(
        "usrloc",
        db_table,
        Str,
        "The shared location table's name (default `location`; lower-case letters, digits and `_`); also its notification channel. Kamailio: registrar's table argument."
    ),
    setting!(
        "usrloc",
        write_delay,
        Duration,
        "Write-behind period (default 1s): at most this much of registration changes is lost when the process is killed without a chance to flush."
    ),
    setting!("registrar", max_contacts, Int, "Most bindings per address of record (0: unlimited)."),
    setting!(
        "usrloc",
        hash_size,
        Int,
        "Accepted for Kamailio parity; the location table is sharded and grows as needed."
    ),
    setting!("registrar", max_expires, Duration, "Largest registration lifetime accepted."),
    setting!("registrar", min_expires, Duration, "Smallest registration lifetime accepted."),
    setting!(
        "registrar",
        default_expires,
        Duration,
        "Lifetime of a registration that asks for none."
    ),
    setting!(
        "auth",
        nonce_expire,
        Duration,
        "How long a digest nonce stays valid (default 300s); an older one gets a new challenge with `stale=true`."
    ),
    setting!(
        "tls",
        certificate,
        Str,
        "PEM certificate chain for `listen tls` (path; relative to the config file)."
    ),
    setting!(
        "tls",
        private_key,
        Str,
        "PEM private key of that certificate (path; relative to the config file)."
    ),
    setting!(
        "tls",
        ca_list,
        Str,
        "PEM CA certificates trusted for outgoing TLS (path); without it outgoing TLS is refused. With `require_certificate`, also the CAs that vouch for clients. Kamailio: tls `ca_list`."
    ),
    setting!(
        "tls",
        min_version,
        Str,
        "The lowest TLS version spoken: \"1.2\" (the default) or \"1.3\". Nothing before 1.2 is ever spoken (RFC 8996). Kamailio: tls `tls_method = TLSv1.2+`."
    ),
    setting!(
        "tls",
        cipher_suites,
        Str,
        "The cipher suites offered and accepted, by IANA name, separated by spaces (`\"TLS13_AES_256_GCM_SHA384 TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384\"`); by default every suite rustls has, all AEAD with forward secrecy. Kamailio: tls `cipher_list`."
    ),
    setting!(
        "tls",
        require_certificate,
        Bool,
        "Incoming TLS connections must present a certificate that `ca_list` vouches for (mutual TLS for trunks); outgoing connections present this proxy's certificate whenever one is set. Kamailio: tls `verify_certificate` with `require_certificate`."
    ),
    setting!(
        "nathelper",
        natping_interval,
        Duration,
        "NAT keepalives: every binding to ping (see `ping_nated_only`) gets one ping per interval, the bindings spread evenly over it (100,000 bindings over 30s: about 3,300 pings a second in 50 ms batches, never one burst); 0 or unset: no pings. UDP bindings get an OPTIONS from the proxy's own listening socket (so the NAT mapping the device opened towards it is the one kept open) or a CRLFCRLF datagram (`ping_method`); TCP and TLS bindings get the RFC 5626 §4.4.1 CRLFCRLF keepalive on their open connection (never a new one). Counters: `sipc reload --status`. Kamailio: nathelper `natping_interval`."
    ),
    setting!(
        "nathelper",
        ping_method,
        Str,
        "How UDP bindings are pinged: `\"options\"` (default; Kamailio's `sipping_bflag` pinging): an OPTIONS request, run through `event_route \"tm:local-request\"` (which may add headers or `drop` it), whose reply of any status counts as alive and whose silence past half the interval (at most 5s) as a failure; `\"crlf\"`: a CRLFCRLF datagram, which gets no answer and so never fails."
    ),
    setting!(
        "nathelper",
        ping_nated_only,
        Bool,
        "true (default): ping only bindings behind NAT (those with a `received` address: `fix_nated_register()`, or a private Contact or a Via that is not the source at `save()`); false: every binding, at its `received` address if it has one, else at its Contact's (IP literals only). Kamailio: nathelper `ping_nated_only`."
    ),
    setting!(
        "nathelper",
        sipping_from,
        Str,
        "From URI of the OPTIONS pings (default `\"sip:pinger@\"` and the proxy's address). Kamailio: nathelper `sipping_from`."
    ),
    setting!(
        "nathelper",
        max_failures,
        Int,
        "A binding whose pings failed this many times in a row (OPTIONS unanswered; over TCP or TLS, no open connection) is removed from the location table and its store; 0 (default): never removed. Kamailio: nathelper `remove_on_timeout_bflag` with `max_pings_lost`."
    ),
    setting!(
        "rtpengine",
        instances,
        Str,
        "The rtpengine ng sockets, separated by spaces: `\"udp:127.0.0.1:22222\"`, with a weight `\"udp:10.0.0.2:22222=2 udp:10.0.0.3:22222=1\"`, IPv6 `udp6:[::1]:22222` (IP literals). A call's commands all go to the live instance its Call-ID hashes to (weighted); an instance that does not answer is marked down, its calls move to the next live one, and it is pinged until it answers. Required by the `rtpengine_*` builtins. Kamailio: rtpengine `rtpengine_sock`."
    ),
    setting!(
        "rtpengine",
        timeout,
        Duration,
        "How long to wait for rtpengine's reply to one send before sending again (500ms by default). Kamailio: rtpengine `rtpengine_tout_ms`."
    ),
    setting!(
        "rtpengine",
        retries,
        Int,
        "Sends again to the same instance after the first, before it is marked down and the command goes to the next live instance (2 by default). A routing thread waits at most timeout × (retries + 1) × instances for a command. Kamailio: rtpengine `rtpengine_retr`."
    ),
    setting!(
        "rtpengine",
        ping_interval,
        Duration,
        "How often an instance marked down is pinged until it answers (1s by default). Kamailio: rtpengine `rtpengine_disable_tout`."
    ),
    setting!("auth", realm, Str, "Default realm for challenges."),
    setting!(
        "auth",
        db_url,
        Str,
        "`postgres://USER:PASSWORD@HOST/DB`: the subscriber table is shared with every node naming the same table, in PostgreSQL, and so is the key that signs nonces (a challenge from one node is answered on another); unset, users are in `module usrloc { db_path }`. `sipc user … --db postgres://…` manages them. Kamailio: auth_db `db_url`."
    ),
    setting!(
        "auth",
        db_table,
        Str,
        "The shared subscriber table's name (default `subscriber`; lower-case letters, digits and `_`). Kamailio: auth_db's table argument."
    ),
    setting!(
        "auth",
        algorithms,
        Str,
        "Digest algorithms challenges offer, most preferred first (default `\"SHA-256, MD5\"`). `\"MD5\"` for clients that only read the first challenge and know only MD5 (SIPp 3.6). Both are always verified."
    ),
];

/// The builtins that use the location table: `sipc run` starts it (and
/// reads `module registrar` and `module usrloc`) only for a program that
/// calls one of them.
pub const LOCATION_FUNCTIONS: &[&str] = &["save", "lookup", "registered", "unregister"];

/// The builtins that authenticate: `sipc run` opens the subscriber table
/// (`module usrloc { db_path }`) and reads `module auth` only for a
/// program that calls one of them.
pub const AUTH_FUNCTIONS: &[&str] = &["auth_check", "auth_challenge"];

/// The builtins that talk to rtpengine: `sipc run` starts the ng client
/// (`module rtpengine`) only for a program that calls one of them.
pub const MEDIA_FUNCTIONS: &[&str] =
    &["rtpengine_offer", "rtpengine_answer", "rtpengine_delete", "rtpengine_manage"];

/// The builtin that starts dialog tracking: `sipc run` reads `module
/// dialog` and `module acc` only for a program that calls it.
pub const DIALOG_FUNCTIONS: &[&str] = &["dlg_manage", "topology_hide"];

pub fn function(name: &str) -> Option<(usize, &'static Func)> {
    FUNCTIONS.iter().enumerate().find(|(_, f)| f.name == name)
}

pub fn pseudo_var(name: &str) -> Option<(usize, &'static PseudoVar)> {
    PSEUDO_VARS.iter().enumerate().find(|(_, p)| p.name == name)
}

pub fn setting(module: &str, name: &str) -> Option<&'static SettingDef> {
    SETTINGS.iter().find(|s| s.module == module && s.name == name)
}

/// The catalog as Markdown: the content of `docs/builtins.md`.
pub fn markdown() -> String {
    let mut out = String::from(
        "# sipc builtins\n\n<!-- Generated from src/sema/builtins.rs; regenerate with `SIPC_BLESS=1 cargo test --test docs`. -->\n\n## Functions\n\n",
    );
    for f in FUNCTIONS {
        let params = f.params_text();
        out.push_str(&format!(
            "### `{}({})` → {}\n\n{}\n\n- allowed in: {}\n- runtime symbol: `{}`\n\n",
            f.name,
            params.join(", "),
            f.ret.name(),
            f.doc,
            f.kinds.names().join(", "),
            f.symbol
        ));
    }
    out.push_str("## Pseudo-variables\n\n| name | type | readable in | writable in | scope | meaning |\n| --- | --- | --- | --- | --- | --- |\n");
    for p in PSEUDO_VARS {
        let name = match p.arg {
            PvArg::None => format!("`${}`", p.name),
            PvArg::Name | PvArg::Header => format!("`${}(name)`", p.name),
            PvArg::Index => format!("`${}(N)`", p.name),
        };
        let kinds = |k: Kinds| {
            if k == Kinds::ALL {
                "all".to_string()
            } else if k.is_empty() {
                "read-only".to_string()
            } else {
                k.names().join(", ")
            }
        };
        let ty = if p.ty == Ty::Unknown { "first assignment" } else { p.ty.name() };
        out.push_str(&format!(
            "| {name} | {ty} | {} | {} | {:?} | {} |\n",
            kinds(p.read),
            kinds(p.write),
            p.scope,
            p.doc
        ));
    }
    out.push_str("\n## Settings\n\n| block | name | type | meaning |\n| --- | --- | --- | --- |\n");
    for s in SETTINGS {
        let block = if s.module.is_empty() {
            "settings".to_string()
        } else {
            format!("module {}", s.module)
        };
        out.push_str(&format!("| {block} | `{}` | {} | {} |\n", s.name, s.ty.name(), s.doc));
    }
    out.push_str(&crate::rtpengine::flags::markdown());
    out.push_str(
        "\n## Kamailio's default kamailio.cfg, line by line\n\n\
         What each function, pseudo-variable and parameter of Kamailio 5.6's default \
         `kamailio.cfg` (every `#!ifdef` variant) is here. `examples/default.route` is \
         that config translated. An empty sipc column: no counterpart yet, and the note \
         says which feature brings it.\n",
    );
    let cell = |s: &str| s.replace('|', "\\|");
    for (heading, items) in super::kamailio::DEFAULT_CFG {
        out.push_str(&format!(
            "\n### {heading}\n\n| kamailio.cfg | sipc | note |\n| --- | --- | --- |\n"
        ));
        for i in *items {
            out.push_str(&format!(
                "| {} | {} | {} |\n",
                cell(i.kamailio),
                cell(i.sipc),
                cell(i.note)
            ));
        }
    }
    out
}

/// Kamailio function names and what this language calls them, for
/// "did you mean" help when a Kamailio user types the name they know.
pub static KAMAILIO_NAMES: &[(&str, &str)] = &[
    ("t_relay", "relay"),
    ("pike_check_req", "within_limit"),
    ("pl_check", "within_limit"),
    ("sl_send_reply", "reply"),
    ("send_reply", "reply"),
    ("t_reply", "reply"),
    ("sl_reply_error", "reply_error"),
    ("send_reply_error", "reply_error"),
    ("xlog", "log"),
    ("xinfo", "log"),
    ("xerr", "log"),
    ("xdbg", "log"),
    ("xnotice", "log"),
    ("xwarn", "log"),
    ("xalert", "log"),
    ("starts_with", "str_starts_with"),
    ("mf_process_maxfwd_header", "maxfwd_ok"),
    ("has_totag", "has_to_tag"),
    ("t_on_failure", "on_failure"),
    ("t_on_reply", "on_reply"),
    ("t_on_branch", "on_branch"),
    ("www_authorize", "auth_check"),
    ("proxy_authorize", "auth_check"),
    ("www_challenge", "auth_challenge"),
    ("proxy_challenge", "auth_challenge"),
    ("www_authenticate", "auth_check"),
    ("proxy_authenticate", "auth_check"),
    ("subst_hf", "replace_hf"),
    ("is_uri_host_local", "is_myself"),
];

/// The events sipc raises, with when: the names `event_route "NAME"` may
/// take (Kamailio's names for the same moments).
pub const EVENTS: &[(&str, &str)] = &[
    (
        "core:worker-one-init",
        "once at startup, after the sockets are bound and before the first message is routed (the message is a stand-in OPTIONS)",
    ),
    (
        "tm:local-request",
        "for each request sipc sends on its own (trunk OPTIONS probes, NAT keepalive OPTIONS), before it is sent: the route may add or remove headers; `drop` keeps it from being sent",
    ),
];

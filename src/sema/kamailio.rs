//! Kamailio's default `kamailio.cfg` (5.6, every `#!ifdef` variant), item
//! by item, with what each is in this language.
//!
//! Rendered into `docs/builtins.md` by [`super::builtins::markdown`], so the
//! table sits beside the catalog it points into; `tests/docs.rs` checks
//! that every builtin the sipc column names is in the catalog and, where
//! `/etc/kamailio/kamailio.cfg` is installed, that every function and
//! pseudo-variable that file uses has a row.

/// One item of the default config and its translation.
#[derive(Debug, Clone, Copy)]
pub struct CfgItem {
    /// As written in kamailio.cfg (the `#!ifdef` it sits under in `note`).
    pub kamailio: &'static str,
    /// The equivalent here, or empty when there is none yet.
    pub sipc: &'static str,
    /// How it differs, or which feature brings it.
    pub note: &'static str,
}

macro_rules! item {
    ($k:literal, $s:literal, $n:literal) => {
        CfgItem { kamailio: $k, sipc: $s, note: $n }
    };
}

/// The sections of the table: a heading and its rows.
pub static DEFAULT_CFG: &[(&str, &[CfgItem])] = &[
    ("Preprocessor and global parameters", GLOBALS),
    ("Modules and their parameters", MODULES),
    ("Route blocks and control flow", BLOCKS),
    ("Functions", FUNCTIONS),
    ("Pseudo-variables and expressions", PSEUDO_VARS),
];

static GLOBALS: &[CfgItem] = &[
    item!(
        "`#!define WITH_AUTH`, `#!ifdef WITH_AUTH … #!else … #!endif`",
        "`define WITH_AUTH = false;` with `-D WITH_AUTH`; `ifdef WITH_AUTH { … } else { … }`",
        "switches are declared, and checked: an `ifdef` of an undeclared name is an error"
    ),
    item!(
        "`#!define FLT_ACC 1`",
        "`flag FLT_ACC;`",
        "flags are declared by name, their bits are assigned"
    ),
    item!(
        "`#!define DBGLEVEL 3`, `#!trydef DBURL \"…\"`",
        "`const NAME = …;`",
        "typed constants; `-D NAME=VALUE` overrides one"
    ),
    item!(
        "`import_file \"kamailio-local.cfg\"`",
        "`include \"local.route\";`",
        "a missing file is an error (`import_file` ignores it)"
    ),
    item!(
        "`debug=DBGLEVEL`, `log_stderror=no`, `children=8`",
        "`settings { debug = 2; log_stderror = false; children = 8; }`",
        ""
    ),
    item!(
        "`listen=udp:10.0.0.10:5060 advertise 11.0.0.10:5060`",
        "`listen udp 10.0.0.10:5060 advertise 11.0.0.10:5060;`",
        ""
    ),
    item!(
        "`alias=\"sip.mydomain.com\"`, `auto_aliases=no`",
        "`domain \"sip.mydomain.com\";`, `settings { auto_aliases = false; }`",
        ""
    ),
    item!("`memdbg=5`, `memlog=5`", "", "no counterpart: no memory debugging levels to set"),
    item!(
        "`log_facility=LOG_LOCAL0`, `log_prefix=\"{$mt $hdr(CSeq) $ci} \"`",
        "",
        "no counterpart: logs go to stderr through `tracing`; route log lines have the target `sipc::route`"
    ),
    item!(
        "`tcp_connection_lifetime=3605`, `tcp_max_connections=2048`, `tls_max_connections=2048`",
        "",
        "no setting: idle TCP/TLS connections close after 120 s, at most 4096 are open; a lifetime for NATed TCP registrations lands with NAT traversal"
    ),
    item!(
        "`enable_tls=yes`",
        "`listen tls ADDRESS;` with `module tls { certificate = …; private_key = …; }`",
        ""
    ),
    item!("`enable_sctp=no`", "", "not needed: there is no SCTP transport"),
    item!(
        "`tcp_accept_no_cl=yes` (WITH_JSONRPC)",
        "",
        "not needed: there is no HTTP server (see `xhttp_reply`)"
    ),
    item!(
        "`pstn.gw_ip = \"\" desc \"PSTN GW Address\"` and `$sel(cfg_get.pstn.gw_ip)` (WITH_PSTN, WITH_VOICEMAIL)",
        "`const PSTN_GW = \"203.0.113.20:5060\";` and `PSTN_GW`",
        "changed by editing the file (the running proxy reloads it) instead of over RPC"
    ),
];

static MODULES: &[CfgItem] = &[
    item!("`loadmodule \"….so\"`, `mpath`", "", "not needed: every builtin is always there"),
    item!(
        "`modparam(\"tm\", \"fr_timer\", 30000)`, `modparam(\"tm\", \"fr_inv_timer\", 120000)`",
        "`module tm { fr_timer = 30s; fr_inv_timer = 120s; }`",
        ""
    ),
    item!(
        "`modparam(\"tm\", \"failure_reply_mode\", 3)`",
        "",
        "no setting: the best reply is chosen among every branch of the transaction"
    ),
    item!(
        "`modparam(\"rr\", \"enable_full_lr\", 0)`, `modparam(\"rr\", \"append_fromtag\", 0)`",
        "`module rr { enable_full_lr = false; append_fromtag = false; }`",
        ""
    ),
    item!(
        "`modparam(\"registrar\", \"max_expires\", 3600)`",
        "`module registrar { max_expires = 3600s; }`",
        ""
    ),
    item!(
        "`modparam(\"registrar\", \"method_filtering\", 1)`",
        "`lookup()`",
        "always on: contacts that registered an Allow list without the method are skipped (`$lookup_result == \"method_not_allowed\"`)"
    ),
    item!(
        "`modparam(\"registrar\", \"gruu_enabled\", 0)`",
        "",
        "no GRUU (RFC 5627) support, as with 0"
    ),
    item!(
        "`modparam(\"registrar\", \"use_path\", 1)`, `modparam(\"registrar\", \"path_mode\", 0)`",
        "`save()`",
        "always: Path is stored whether or not Supported lists `path`"
    ),
    item!(
        "`modparam(\"usrloc\", \"db_mode\", 2)`, `modparam(\"usrloc\", \"db_url\", DBURL)` (WITH_USRLOCDB)",
        "`module usrloc { db_mode = 2; db_path = \"sipc.db\"; write_delay = 1s; }`",
        "SQLite, written behind"
    ),
    item!(
        "`modparam(\"usrloc\", \"timer_interval\", 60)`, `modparam(\"usrloc\", \"timer_procs\", 1)`",
        "",
        "no setting: expired bindings are purged every 10 s by one thread"
    ),
    item!(
        "`modparam(\"usrloc\", \"use_domain\", MULTIDOMAIN)`",
        "",
        "always 1: an address of record is `sip:user@domain`"
    ),
    item!(
        "`modparam(\"auth_db\", …)` (WITH_AUTH)",
        "`module auth { … }`, users added with `sipc user add`",
        "HA1 is stored, not the password (see docs/auth.md)"
    ),
    item!(
        "`modparam(\"sanity\", \"autodrop\", 0)`",
        "",
        "not needed: malformed requests are answered 400 by the core before routing"
    ),
    item!(
        "`modparam(\"acc\", …)`: `log_flag`, `log_missed_flag`, `failed_transaction_flag`, `log_extra`, `db_*` (WITH_ACCDB)",
        "",
        "lands with accounting (acc/dialog): the flags are set already (`FLT_ACC` …)"
    ),
    item!(
        "`modparam(\"tls\", \"config\", \"/etc/kamailio/tls.cfg\")` (WITH_TLS)",
        "`module tls { certificate = \"…\"; private_key = \"…\"; ca_list = \"…\"; }`",
        ""
    ),
    item!(
        "`modparam(\"jsonrpcs\", …)`, `ctl`, `cfg_rpc`",
        "`sipc reload`, `sipc reload --status`, `sipc trace`",
        "a Unix control socket instead of RPC"
    ),
    item!(
        "`modparam(\"debugger\", \"cfgtrace\", 1)` (WITH_DEBUG)",
        "`sipc trace`, `sipc test --trace`",
        ""
    ),
    item!(
        "`modparam(\"domain\", …)` (WITH_MULTIDOMAIN)",
        "`domain \"a.example\", \"b.example\";`",
        "domains are listed in the config, not in a database"
    ),
    item!(
        "`modparam(\"nathelper|registrar\", \"received_avp\", \"$avp(RECEIVED)\")` (WITH_NAT)",
        "`fix_nated_register()` before `save()`",
        "no AVP: `fix_nated_register()` tells `save()` to store the source as the binding's `received`, which `lookup()` sends to (`save()` also does so by itself for a private Contact or a Via that is not the source)"
    ),
    item!(
        "`modparam(\"nathelper\", \"natping_interval\", 30)`, `ping_nated_only`, `sipping_bflag`, `sipping_from` (WITH_NAT, WITH_NATSIPPING)",
        "`module nathelper { natping_interval = 30s; ping_nated_only = true; sipping_from = \"sip:pinger@kamailio.org\"; }`",
        "no `sipping_bflag`: `ping_method = \"options\"` (the default) pings every NATed binding with OPTIONS, `\"crlf\"` with a CRLFCRLF datagram; TCP and TLS bindings get RFC 5626 CRLFCRLF keepalives on their connection; the pings are spread over the interval, and `max_failures` removes a binding that stops answering"
    ),
    item!(
        "`modparam(\"usrloc\", \"nat_bflag\", FLB_NATB)` (WITH_NAT)",
        "",
        "lands with branch flags; a binding's NAT source is kept in any case (`received`)"
    ),
    item!(
        "`modparam(\"rtpproxy\", …)`, `modparam(\"rtpengine\", …)` (WITH_NAT)",
        "`module rtpengine { instances = \"udp:127.0.0.1:2223\"; }`",
        "rtpengine only, over its ng protocol (rtpproxy's protocol is not spoken); `rtpengine_sock` is `instances`, `rtpengine_tout_ms` `timeout`, `rtpengine_retr` `retries`, `rtpengine_disable_tout` `ping_interval`"
    ),
    item!(
        "`modparam(\"pike\", …)`, `modparam(\"htable\", \"htable\", \"ipban=>…\")` (WITH_ANTIFLOOD)",
        "",
        "lands with flood protection (pike/htable)"
    ),
    item!("`modparam(\"permissions\", …)` (WITH_IPAUTH)", "", "lands with permissions"),
    item!(
        "`modparam(\"alias_db\", …)`, `modparam(\"speeddial\", …)`, `modparam(\"presence\", …)`",
        "",
        "see `alias_db_lookup`, `sd_lookup`, `handle_publish` below"
    ),
];

static BLOCKS: &[CfgItem] = &[
    item!("`request_route { … }`", "`request_route { … }`", ""),
    item!("`route[RELAY] { … }`, `route(RELAY);`", "`route RELAY { … }`, `route(RELAY);`", ""),
    item!(
        "`branch_route[MANAGE_BRANCH]`, `onreply_route[MANAGE_REPLY]`, `failure_route[MANAGE_FAILURE]`, `reply_route`",
        "`branch_route MANAGE_BRANCH`, `onreply_route MANAGE_REPLY`, `failure_route MANAGE_FAILURE`, `reply_route`",
        ""
    ),
    item!("`event_route[xhttp:request]` (WITH_JSONRPC)", "", "not needed: there is no HTTP server"),
    item!(
        "`exit;`, `drop;`, `return;`",
        "`exit;`, `drop;`, `return;`",
        "`return(0)` is refused: write `exit`"
    ),
    item!("`if (…) { … }`", "`if … { … }`", "parentheses are optional"),
    item!(
        "`switch ($var(rc)) { case -1: case -3: …; case -2: … }`",
        "`switch $lookup_result { case \"not_found\": … case \"method_not_allowed\": … }`",
        "cases do not fall through: give each label its statements"
    ),
];

static FUNCTIONS: &[CfgItem] = &[
    item!("`set_reply_no_connect()`", "`set_reply_no_connect()`", ""),
    item!("`force_rport()`", "`force_rport()`", ""),
    item!("`src_ip!=myself` (WITH_ANTIFLOOD)", "", "lands with flood protection"),
    item!("`pike_check_req()` (WITH_ANTIFLOOD)", "", "lands with flood protection (pike)"),
    item!("`xdbg(\"…\")`", "`log(debug, \"…\")`", ""),
    item!(
        "`xlog(\"…\")`, `xlog(\"L_ALERT\", \"…\")`",
        "`log(err, \"…\")`, `log(alert, \"…\")`",
        "`xlog` without a level logs at `L_ERR`; `alert` logs as `err`"
    ),
    item!("`mf_process_maxfwd_header(\"10\")`", "`maxfwd_ok(10)`", "the limit is an int"),
    item!(
        "`sl_send_reply(\"483\",\"Too Many Hops\")`",
        "`reply(483, \"Too Many Hops\")`",
        "the code is an int"
    ),
    item!(
        "`send_reply(\"404\", \"Not Found\")`, `t_reply(\"404\",\"Not found\")`",
        "`reply(404, \"Not Found\")`",
        "through the transaction after `t_newtran()` and in a failure route"
    ),
    item!("`sl_reply_error()`", "`reply_error()`", ""),
    item!("`is_method(\"INVITE|SUBSCRIBE\")`", "`is_method(\"INVITE|SUBSCRIBE\")`", ""),
    item!(
        "`sanity_check(\"17895\", \"7\")`, `sanity_check(\"17604\", \"6\")`",
        "`sanity_check()`",
        "the check masks are not taken: the core checks every message before routing"
    ),
    item!("`has_totag()`", "`has_to_tag()`", ""),
    item!("`loose_route()`", "`loose_route()`", ""),
    item!("`isdsturiset()`", "`$du != \"\"`", ""),
    item!(
        "`handle_ruri_alias()` (WITH_NAT)",
        "`handle_ruri_alias()`",
        "true only when an alias was found and `$du` set"
    ),
    item!("`record_route()`", "`record_route()`", ""),
    item!(
        "`setflag(FLT_ACC)`, `isflagset(FLT_NATS)`",
        "`setflag(FLT_ACC)`, `isflagset(FLT_NATS)`",
        ""
    ),
    item!(
        "`setbflag(FLB_NATB)`, `isbflagset(FLB_NATB)` (WITH_NAT)",
        "",
        "branch flags land with NAT traversal"
    ),
    item!("`t_check_trans()`", "`t_check_trans()`", ""),
    item!(
        "`t_precheck_trans()`",
        "`t_precheck_trans()`",
        "always false: retransmissions are absorbed before any route runs"
    ),
    item!("`t_newtran()`", "`t_newtran()`", ""),
    item!("`t_relay()`", "`relay()`", ""),
    item!(
        "`t_on_branch(\"MANAGE_BRANCH\")`, `t_on_reply(\"MANAGE_REPLY\")`, `t_on_failure(\"MANAGE_FAILURE\")`",
        "`on_branch(MANAGE_BRANCH)`, `on_reply(MANAGE_REPLY)`, `on_failure(MANAGE_FAILURE)`",
        "the route name is checked"
    ),
    item!("`t_is_set(\"branch_route\")`", "`t_is_set(\"branch_route\")`", ""),
    item!("`t_is_canceled()`", "`t_is_canceled()`", ""),
    item!(
        "`t_check_status(\"3[0-9][0-9]\")`",
        "`t_check_status(\"3[0-9][0-9]\")`",
        "the regex is checked when the config is"
    ),
    item!("`t_is_branch_route()`", "`t_is_branch_route()`", ""),
    item!(
        "`t_release()` (WITH_PRESENCE)",
        "",
        "comes with a presence server (see `handle_publish`)"
    ),
    item!("`save(\"location\")`", "`save(\"location\")`", ""),
    item!("`lookup(\"location\")`", "`lookup(\"location\")`", ""),
    item!(
        "`sd_lookup(\"speed_dial\")` (WITH_SPEEDDIAL)",
        "`table SPEED_DIAL { … }` and `$ru = table_get(SPEED_DIAL, $rU)`",
        "a table in the config instead of a database"
    ),
    item!(
        "`alias_db_lookup(\"dbaliases\")` (WITH_ALIASDB)",
        "`table ALIASES { … }` and `table_get(ALIASES, $rU)`",
        "a table in the config instead of a database"
    ),
    item!(
        "`msg_apply_changes()` (WITH_MSGREBUILD)",
        "",
        "not needed: reads see the edits made before them"
    ),
    item!(
        "`handle_publish()`, `handle_subscribe()` (WITH_PRESENCE)",
        "",
        "no counterpart: sipc has no presence server; relay PUBLISH and SUBSCRIBE to one"
    ),
    item!(
        "`allow_source_address()` (WITH_IPAUTH)",
        "`$in_trunk != \"\"` with `trunk … from NETWORKS`",
        "address lists from the config; the permissions module's database tables land with permissions"
    ),
    item!(
        "`auth_check(\"$fd\", \"subscriber\", \"1\")`",
        "`auth_check($fd, \"subscriber\")`",
        "always checks that the user is the From (To for REGISTER) user"
    ),
    item!("`auth_challenge(\"$fd\", \"0\")`", "`auth_challenge($fd)`", ""),
    item!("`consume_credentials()`", "`consume_credentials()`", ""),
    item!(
        "`nat_uac_test(\"19\")`, `nat_uac_test(\"8\")` (WITH_NAT)",
        "`nat_uac_test(\"private_contact|via_ip_differs|via_port_differs\")`, `nat_uac_test(\"private_sdp\")`",
        "the checks are named, checked when the config is: 1 `private_contact`, 2 `via_ip_differs`, 4 `private_via`, 8 `private_sdp`, 16 `via_port_differs`, 32 `private_source`, 64 `websocket`"
    ),
    item!("`fix_nated_register()` (WITH_NAT)", "`fix_nated_register()`", ""),
    item!(
        "`set_contact_alias()` (WITH_NAT)",
        "`set_contact_alias()`",
        "also in reply routes, with the address the reply came from"
    ),
    item!(
        "`add_rr_param(\";nat=yes\")`, `check_route_param(\"nat=yes\")`, `set_forward_no_connect()` (WITH_NAT)",
        "",
        "land with branch flags (FLB_NATB); default.route leaves a comment where they go"
    ),
    item!(
        "`rtpproxy_manage(\"co\")`, `rtpengine_manage(\"…\")` (WITH_NAT)",
        "`rtpengine_manage(\"…\")`",
        "the flags are checked against rtpengine's (E0313); `rtpproxy_manage` has no counterpart: use rtpengine"
    ),
    item!("`is_first_hop()`", "`is_first_hop()`", ""),
    item!("`is_request()`, `is_reply()`", "`is_request()`, `is_reply()`", ""),
    item!("`remove_hf(\"Route\")`", "`remove_hf(\"Route\")`", ""),
    item!("`append_hf(\"P-Hint: outbound\\r\\n\")`", "`append_hf(\"P-Hint: outbound\\r\\n\")`", ""),
    item!(
        "`strempty($sel(cfg_get.pstn.gw_ip))`",
        "`PSTN_GW == \"\"`",
        "a constant comparison, folded when the config is checked"
    ),
    item!("`starts_with(\"$rU\", \"00\")`", "`str_starts_with($rU, \"00\")`", ""),
    item!("`strip(2); prefix(\"+\");`", "`$rU = \"+\" + str_substr($rU, 2, 64);`", ""),
    item!(
        "`set_reply_close()`, `xhttp_reply(…)`, `jsonrpc_dispatch()` (WITH_JSONRPC)",
        "",
        "not needed: `sipc reload` and `sipc trace` talk to the proxy over a Unix socket"
    ),
    item!(
        "`fix_nated_contact()`, `add_rcv_param()`",
        "`fix_nated_contact()`, `add_rcv_param()`",
        "not in the default config; nathelper's other Contact fixes (`add_rcv_param()` for a registrar behind this proxy, which `save()` honours)"
    ),
    item!(
        "`add_path_received()`",
        "`add_path_received()`",
        "not in the default config; for an edge proxy in front of a registrar (Kamailio's path module)"
    ),
];

static PSEUDO_VARS: &[CfgItem] = &[
    item!("`uri==myself`, `uri!=myself`", "`is_myself($ru)`, `!is_myself($ru)`", ""),
    item!("`from_uri==myself`", "`is_myself($fu)`", ""),
    item!(
        "`$rU==$null`, `$avp(oexten)==$null`, `$du = $null`",
        "`$rU == \"\"`, `$avp(oexten) == \"\"`, `$du = \"\"`",
        "there is no null: absent is the empty string"
    ),
    item!("`status=~\"[12][0-9][0-9]\"`", "`t_check_status(\"[12][0-9][0-9]\")` or `$rs`", ""),
    item!(
        "`$ru`, `$rU`, `$rd`, `$du`, `$fu`, `$fU`, `$fd`, `$tU`, `$si`, `$sp`, `$rm`, `$ci`, `$ua`",
        "the same",
        ""
    ),
    item!("`$hdr(Event)`, `$hdr(CSeq)`", "`$hdr(Event)`, `$hdr(CSeq)`", ""),
    item!(
        "`$avp(oexten)`",
        "`$avp(oexten)`",
        "kept for the transaction's failure and reply routes"
    ),
    item!("`$var(rc)`", "`$var(rc)`", "its type is fixed by its first assignment"),
    item!(
        "`$rc` after `lookup()`",
        "`$lookup_result`",
        "`found`, `not_found`, `method_not_allowed`, `error` instead of 1, -1, -2, -3"
    ),
    item!("`$T_branch_idx`", "`$T_branch_idx`", ""),
    item!("`$mt` (in `log_prefix`)", "`is_request()`", ""),
    item!("`$sht(ipban=>$si)` (WITH_ANTIFLOOD)", "", "lands with flood protection (htable)"),
    item!("`$hu` (WITH_JSONRPC)", "", "not needed: there is no HTTP server"),
    item!(
        "`$sel(cfg_get.voicemail.srv_ip)` (WITH_VOICEMAIL)",
        "`const VOICEMAIL = \"…\";`",
        "see `pstn.gw_ip`"
    ),
];

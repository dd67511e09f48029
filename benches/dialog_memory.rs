//! Heap bytes per live dialog, counted by the allocator (not timed, not
//! RSS): `DIALOGS` calls shaped like SIPp's (its Call-IDs, tags and URIs,
//! a Record-Route entry on each side, two `$dlg_var`s and a profile, as
//! examples/accounting.route keeps them) are created and confirmed in a
//! [`Dialogs`] table; the live heap after, minus before, divided by the
//! dialogs, is what one answered call costs while it lasts: the dialog,
//! its table entry, its deadline and its share of the profile counts.
//! The goal (issue: dialogs and accounting) is under 2 KB.
//!
//! `cargo bench --bench dialog_memory` (prints one line).

use std::alloc::System;
use std::net::SocketAddr;

use sipc::dialog::{AccMasks, DialogConfig, Dialogs, Leg, Pending};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const DIALOGS: usize = 100_000;

fn main() {
    let table = Dialogs::new(DialogConfig::default());
    let caller_addr: SocketAddr = "127.0.0.1:5070".parse().unwrap();
    let callee_addr: SocketAddr = "127.0.0.1:5080".parse().unwrap();
    let region = Region::new(GLOBAL);
    for i in 0..DIALOGS {
        let call_id = format!("{i}-21186@127.0.0.1");
        let from = format!("sipp <sip:sipp@127.0.0.1:5070>;tag=21186SIPpTag00{i}");
        let to = "<sip:service@127.0.0.1:5060>";
        let caller = Leg {
            transport: "udp".into(),
            addr: Some(caller_addr),
            contact: "<sip:sipp@127.0.0.1:5070>".into(),
            route: Vec::new(),
            cseq: 1,
        };
        let pending = Pending {
            managed: true,
            vars: vec![
                ("user_agent".into(), "sipp-mix".into()),
                ("dialed".into(), "service".into()),
            ],
            profiles: vec![("per_source".into(), format!("127.0.0.{}", i % 200).into())],
            max_ms: None,
            flags: 7,
            masks: AccMasks { answered: 1, failed: 4, missed: 2 },
            hidden: None,
        };
        table.create(&call_id, &from, to, "sip:service@127.0.0.1:5060", caller, pending, 1000);
        let callee = Leg {
            transport: "udp".into(),
            addr: Some(callee_addr),
            contact: "<sip:127.0.0.1:5080;transport=UDP>".into(),
            route: Vec::new(),
            cseq: 0,
        };
        table.confirm(
            &call_id,
            &format!("<sip:service@127.0.0.1:5060>;tag=21181SIPpTag01{i}"),
            callee,
            Vec::new(),
            "udp:127.0.0.1:5080",
            Some(7),
            1200,
        );
    }
    let stats = region.change();
    // A reallocation's growth or shrinking is counted in these two already.
    let live = stats.bytes_allocated as i64 - stats.bytes_deallocated as i64;
    assert_eq!(table.len(), DIALOGS);
    println!(
        "{DIALOGS} confirmed dialogs: {:.0} bytes per live dialog (goal under 2048)",
        live as f64 / DIALOGS as f64
    );
}

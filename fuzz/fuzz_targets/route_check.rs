//! Arbitrary bytes (as lossy UTF-8) through the whole route-language front
//! end: lex, parse with recovery, check, and render every diagnostic both
//! ways. Nothing may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sipc::diag::render::{self, Style};
use sipc::sema::{self, Options};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let out = sema::check_source("fuzz.route", &text, &Options::default());
    for d in &out.diagnostics {
        let _ = render::human(&out.sources, d, Style::plain());
        let _ = render::json(&out.sources, d);
    }
});

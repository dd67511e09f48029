//! sipc: a SIP proxy whose routing logic is a checked, compiled language.
//!
//! The crate is laid out like the pipeline it implements (see docs/architecture.md):
//! the SIP message layer in [`sip`], and the command line in [`cli`]. Later stages
//! (syntax, sema, codegen, runtime, reload, proxy) sit beside them as they land.

pub mod cli;
pub mod proxy;
pub mod sip;

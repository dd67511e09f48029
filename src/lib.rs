//! sipc: a SIP proxy whose routing logic is a checked, compiled language.
//!
//! The crate is laid out like the pipeline it implements (see docs/architecture.md):
//! the SIP message layer in [`sip`], the route language front end in
//! [`syntax`] (lexer, parser, AST), [`sema`] (builtin catalog, name
//! resolution, type and route-kind checking) and [`diag`] (diagnostics), the
//! stateless proxy core in [`proxy`], and the command line in [`cli`]. Later
//! stages (codegen, runtime, reload) sit beside them as they land.

pub mod acc;
pub mod auth;
pub mod cli;
pub mod cluster;
pub mod codegen;
pub mod diag;
pub mod dialog;
pub mod fmt;
pub mod lsp;
pub mod metrics;
pub mod proxy;
pub mod registrar;
pub mod reload;
pub mod routing;
pub mod rtpengine;
pub mod runtime;
pub mod security;
pub mod sema;
pub mod sip;
pub mod syntax;
pub mod testing;
pub mod txn;

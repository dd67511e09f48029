//! Declarative routing: trunks, trunk groups and routing tables.
//!
//! The pieces are split by lifetime (DESIGN.md, "where state lives"):
//! [`index`] holds the compiled lookup structures of one Program (built by
//! the checker, immutable); [`select`] orders a group's members for one
//! call (pure); [`health`] is the state that outlives a config, trunk
//! health and counters, kept in [`crate::proxy::services::Services`] by
//! trunk name and URI; [`probe`] sends the OPTIONS probes on its own task.

pub mod health;
pub mod index;
pub mod probe;
pub mod select;
pub mod sql;

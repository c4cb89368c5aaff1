//! hatang-agent: collects one machine's evidence and pushes it to the collector.
//!
//! Push only: agencies sit behind NAT, so nothing ever connects to the agent. Every report is
//! written to the on-disk spool before it is sent and leaves it only once the collector
//! acknowledged it (see [`spool`]).

#[cfg(windows)]
mod acl;
pub mod collect;
pub mod commands;
pub mod config;
pub mod identity;
pub mod push;
pub mod report;
#[cfg(windows)]
pub mod service;
pub mod speed;
pub mod spool;
pub mod state;
pub mod tls;

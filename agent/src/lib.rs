//! hatang-agent: collects one machine's evidence and pushes it to the collector.

pub mod collect;

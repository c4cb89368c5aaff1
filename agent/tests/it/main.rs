//! hatang-agent's integration tests: the library's push against a real local HTTP server, and
//! the binary end to end against the same fake collector.

mod cli;
mod crash;
mod enroll;
mod flush;
mod once;
mod probe;
mod run;
mod support;

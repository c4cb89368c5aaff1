//! hatang-agent's integration tests: the library's push against a real local HTTP server, and
//! the binary end to end against the same fake collector.

mod cli;
mod crash;
mod enroll;
mod flush;
mod once;
mod probe;
// Unix only: `run` is stopped with SIGTERM, how Unix stops a daemon. Windows has no SIGTERM;
// the service control manager stops the agent there.
#[cfg(unix)]
mod run;
mod support;

//! Integration tests of hatang-collector: the HTTP contract through the router, the store and
//! the command-line actions, each against a fresh SQLite database in a temporary directory.

mod api;
mod cli;
mod enroll;
mod ingest;
mod metrics;
mod store;
mod support;

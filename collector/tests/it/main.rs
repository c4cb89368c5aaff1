//! Integration tests of hatang-collector: the HTTP contract through the router, the store and
//! the command-line actions, each against a fresh SQLite database in a temporary directory.

mod api;
mod checks;
mod cli;
mod connectivity;
mod enroll;
mod group_commit;
mod history;
mod hostile;
mod hosts;
mod ingest;
mod metrics;
mod openapi;
mod paging;
mod reorganisation;
mod speedtest;
mod store;
mod support;
mod tls;
mod tokens;
mod web;

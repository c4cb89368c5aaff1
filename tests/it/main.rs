//! End-to-end tests: the real `hatang-collector` and `hatang-agent` binaries, driven as an
//! operator would, against a collector on loopback.

mod browser;
mod crash;
mod dashboards;
mod foundation;
mod outage;
mod scaleout;
mod support;
mod systemd;
mod tls;
mod windows;

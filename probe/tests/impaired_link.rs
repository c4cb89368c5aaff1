//! Loss, delay and jitter measured for real: the test makes its own network namespace joined to
//! this one by a veth pair and impairs the link; the probes must see what was done to it.
//! Nothing leaves the machine: the namespace is the only peer.
//!
//! Loss comes from an nftables rule in the namespace dropping a random share of what arrives
//! (`numgen random`); delay and jitter from `tc netem` on our side of the link. Some kernels
//! (this project's CI machines among them) are built without `sch_netem`: the delay test then
//! says so and passes, and the round-trip and jitter arithmetic stays covered by the unit tests
//! on recorded times. Needs root, iproute2 and nftables; without them a test says why and passes,
//! except under `CI`, where the namespace and the loss must work.

use std::net::IpAddr;
use std::process::{Command, Output};
use std::time::Duration;

use hatang_probe::{ProbeSpec, Target, check_gateway, run};
use hatang_protocol::{ProbeClass, ProbeResult};
use tokio::time::Instant;

/// A namespace with one veth link to this one, deleted (with the link) on drop.
struct Link {
    namespace: String,
    host_side: String,
    /// The namespace's address, across the link.
    peer: IpAddr,
}

fn ip(args: &[&str]) -> Result<Output, String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip: {e}"))?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl Link {
    /// `tag` tells apart the links of tests running at once in one process.
    fn new(tag: u8) -> Result<Self, String> {
        let id = std::process::id() % 100_000;
        let namespace = format!("hatang-netem-{id}-{tag}");
        let (host_side, peer_side) = (format!("hn{id}{tag}a"), format!("hn{id}{tag}b"));
        // A /30 of a private range no real network here uses, one per test process and tag.
        let (net, octet) = (210 + u32::from(tag), id % 250 + 1);
        let (host_addr, peer_addr) = (
            format!("10.{net}.{octet}.1/30"),
            format!("10.{net}.{octet}.2/30"),
        );
        ip(&["netns", "add", &namespace])?;
        let link = Self {
            namespace,
            host_side,
            peer: format!("10.{net}.{octet}.2").parse().unwrap(),
        };
        let ns = link.namespace.as_str();
        ip(&[
            "link",
            "add",
            &link.host_side,
            "type",
            "veth",
            "peer",
            "name",
            &peer_side,
        ])?;
        ip(&["link", "set", &peer_side, "netns", ns])?;
        ip(&["addr", "add", &host_addr, "dev", &link.host_side])?;
        ip(&["link", "set", &link.host_side, "up"])?;
        ip(&["-n", ns, "addr", "add", &peer_addr, "dev", &peer_side])?;
        ip(&["-n", ns, "link", "set", &peer_side, "up"])?;
        ip(&["-n", ns, "link", "set", "lo", "up"])?;
        Ok(link)
    }

    /// The namespace drops `percent` % of the packets that reach it, at random (all at 100).
    fn lose(&self, percent: u32) -> Result<(), String> {
        use std::io::Write;
        let verdict = if percent >= 100 {
            "drop".to_string()
        } else {
            format!("numgen random mod 100 < {percent} drop")
        };
        let rules = format!(
            "table inet hatang_loss {{\n  chain input {{\n    type filter hook input priority 0;\n    \
             {verdict}\n  }}\n}}\n"
        );
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.namespace, "nft", "-f", "-"])
            .stdin(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .map_err(|e| format!("nft: {e}"))?;
        child
            .stdin
            .take()
            .expect("piped")
            .write_all(rules.as_bytes())
            .map_err(|e| format!("nft: {e}"))?;
        let out = child.wait_with_output().map_err(|e| format!("nft: {e}"))?;
        out.status.success().then_some(()).ok_or_else(|| {
            format!(
                "nft in the namespace: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )
        })
    }

    /// Delays what this side sends into the namespace by `delay_ms` ± `jitter_ms`; `Ok(false)`
    /// when the kernel has no netem.
    fn delay(&self, delay_ms: u32, jitter_ms: u32) -> Result<bool, String> {
        let out = Command::new("tc")
            .args(["qdisc", "replace", "dev", &self.host_side, "root", "netem"])
            .args(["delay", &format!("{delay_ms}ms"), &format!("{jitter_ms}ms")])
            .output()
            .map_err(|e| format!("tc: {e}"))?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.success() {
            Ok(true)
        } else if stderr.contains("qdisc kind is unknown") {
            Ok(false)
        } else {
            Err(format!("tc netem: {}", stderr.trim()))
        }
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        // Deleting the namespace deletes its end of the pair, and with it ours.
        let _ = ip(&["netns", "del", &self.namespace]);
        let _ = ip(&["link", "del", &self.host_side]);
    }
}

fn link_or_skip(tag: u8) -> Option<Link> {
    match Link::new(tag) {
        Ok(link) => Some(link),
        Err(why) if std::env::var_os("CI").is_some() => {
            panic!("CI is set and the netem test cannot make its namespace: {why}")
        }
        Err(why) => {
            eprintln!("skipped: no network namespace for the netem test ({why}; needs root)");
            None
        }
    }
}

fn icmp(peer: IpAddr, attempts: u32) -> ProbeSpec {
    ProbeSpec {
        name: "peer".into(),
        class: ProbeClass::GovWan,
        target: Target::parse("icmp", &peer.to_string()).unwrap(),
        target_text: peer.to_string(),
        attempts,
        timeout: Duration::from_millis(500),
    }
}

fn probe(spec: &ProbeSpec) -> ProbeResult {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(run(spec, Instant::now() + Duration::from_secs(60)))
}

#[test]
fn loss_on_the_link_is_measured() {
    let Some(link) = link_or_skip(1) else { return };

    // The clean link first: everything answers, fast.
    let clean = probe(&icmp(link.peer, 10));
    assert_eq!(clean.successes, 10, "{clean:?}");
    assert!(clean.rtt_avg_seconds.unwrap() < 0.02, "{clean:?}");

    // Half of what reaches the namespace dropped: 20 of 40 lost, give or take; outside 8-32
    // with a chance of about one in ten thousand.
    link.lose(50).unwrap();
    let lossy = probe(&icmp(link.peer, 40));
    eprintln!(
        "50 % loss: {} of {} answered ({:?}), loss ratio {:.2}",
        lossy.successes,
        lossy.attempts,
        lossy.kind,
        lossy.loss_ratio()
    );
    assert_eq!(lossy.attempts, 40);
    assert!(
        (8..=32).contains(&lossy.successes),
        "50 % loss should lose about half of 40: {lossy:?}"
    );
    assert!(lossy.error.is_some(), "the last failure is told: {lossy:?}");
}

#[test]
fn delay_and_jitter_on_the_link_are_measured() {
    let Some(link) = link_or_skip(2) else { return };
    // 60 ± 20 ms one way: no round trip under 40 ms, and they differ.
    if !link.delay(60, 20).unwrap() {
        eprintln!(
            "skipped: this kernel has no sch_netem (CONFIG_NET_SCH_NETEM), so no delay can be \
             put on the link; the round-trip and jitter arithmetic is unit-tested"
        );
        return;
    }
    let slow = probe(&icmp(link.peer, 20));
    eprintln!(
        "netem 60±20 ms: rtt min/avg/max {:?}/{:?}/{:?} s, jitter {:?} s",
        slow.rtt_min_seconds, slow.rtt_avg_seconds, slow.rtt_max_seconds, slow.jitter_seconds
    );
    assert_eq!(slow.successes, 20, "{slow:?}");
    assert!(slow.rtt_min_seconds.unwrap() >= 0.035, "{slow:?}");
    assert!(slow.rtt_avg_seconds.unwrap() >= 0.045, "{slow:?}");
    assert!(slow.jitter_seconds.unwrap() > 0.002, "{slow:?}");
}

#[test]
fn the_gateway_check_answers_on_a_clean_link_and_fails_on_a_dead_one() {
    let Some(link) = link_or_skip(3) else { return };
    let check = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(check_gateway(
                link.peer,
                Instant::now() + Duration::from_secs(30),
            ))
    };
    // The namespace has no listener: its refusals are the answers.
    let clean = check();
    assert_eq!(clean.successes, clean.attempts, "{clean:?}");
    link.lose(100).unwrap();
    let dead = check();
    eprintln!(
        "gateway on a link dropping everything: {} of {} answered, last error {:?}",
        dead.successes, dead.attempts, dead.error
    );
    assert_eq!(dead.successes, 0, "{dead:?}");
    assert!(dead.error.is_some(), "{dead:?}");
}

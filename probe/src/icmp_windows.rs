//! ICMP echo probes on Windows, through the ICMP helper API (`IcmpSendEcho2`,
//! `Icmp6SendEcho2`), which any user may call: no raw socket, no privilege.
//!
//! surge-ping's sockets do not work on Windows (its receive task panics there), so this module
//! replaces `icmp.rs` on Windows with the same interface. Each echo is one blocking call with
//! its own timeout, run on tokio's blocking pool; the ICMP handle is opened and closed around
//! it, as it is cheap and a raw `HANDLE` may not cross threads in safe code. This is the probe
//! crate's only `unsafe`.
#![allow(unsafe_code)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use windows_sys::Win32::Foundation::{HANDLE, INVALID_HANDLE_VALUE};
use windows_sys::Win32::NetworkManagement::IpHelper::{
    ICMP_ECHO_REPLY, ICMPV6_ECHO_REPLY_LH, IP_SUCCESS, Icmp6CreateFile, Icmp6SendEcho2,
    IcmpCloseHandle, IcmpCreateFile, IcmpSendEcho2,
};
use windows_sys::Win32::Networking::WinSock::{AF_INET6, SOCKADDR_IN6};

/// Ports the TCP stand-in asks; a refusal counts as the host answering, as an echo reply would.
pub(super) const FALLBACK_PORTS: [u16; 2] = [443, 80];

/// Payload of each echo request: 32 bytes, as Windows' `ping` sends.
const PAYLOAD: [u8; 32] = *b"hatang-agent connectivity probe.";

/// `IP_REQ_TIMED_OUT` (ipexport.h): no reply within the timeout.
const IP_REQ_TIMED_OUT: u32 = 11010;

/// One target's echo requests.
#[derive(Debug)]
pub(super) struct Pinger {
    host: IpAddr,
    timeout_ms: u32,
}

/// An open ICMP handle, closed on drop.
struct Icmp(HANDLE);

impl Icmp {
    fn open(v6: bool) -> Result<Self, String> {
        // SAFETY: both take no arguments and return a handle or INVALID_HANDLE_VALUE.
        let handle = unsafe {
            if v6 {
                Icmp6CreateFile()
            } else {
                IcmpCreateFile()
            }
        };
        if handle == INVALID_HANDLE_VALUE || handle.is_null() {
            Err(format!(
                "cannot open the ICMP helper: {}",
                std::io::Error::last_os_error()
            ))
        } else {
            Ok(Self(handle))
        }
    }
}

impl Drop for Icmp {
    fn drop(&mut self) {
        // SAFETY: a handle from Icmp(6)CreateFile, closed once.
        unsafe { IcmpCloseHandle(self.0) };
    }
}

/// The status of a reply (or of a call that got none) as an operator reads it.
fn failure(status: u32) -> String {
    match status {
        IP_REQ_TIMED_OUT => "timed out".to_owned(),
        other => format!(
            "no echo reply: {}",
            std::io::Error::from_raw_os_error(other as i32)
        ),
    }
}

/// Bytes the reply buffer needs: one reply structure, the echoed payload, 8 bytes for an ICMP
/// error, and an `IO_STATUS_BLOCK` (16 bytes) `IcmpSendEcho2` may write (its documentation).
const REPLY_BYTES: usize = size_of::<ICMP_ECHO_REPLY>() + PAYLOAD.len() + 8 + 16;

/// A buffer for the replies, of u64s so the reply structure is aligned.
type Replies = [u64; REPLY_BYTES.div_ceil(8)];

/// The outcome of one echo call that wrote into `replies` and returned their count; `status`
/// reads the first reply's status (its structure differs between IPv4 and IPv6).
fn outcome(count: u32, replies: &Replies, status: fn(&Replies) -> u32) -> Result<(), String> {
    if count == 0 {
        // The call's own error: the reason no reply came.
        let error = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
        return Err(failure(error as u32));
    }
    match status(replies) {
        IP_SUCCESS => Ok(()),
        other => Err(failure(other)),
    }
}

fn echo_v4(host: Ipv4Addr, timeout_ms: u32) -> Result<(), String> {
    let icmp = Icmp::open(false)?;
    let mut replies: Replies = [0; REPLY_BYTES.div_ceil(8)];
    // SAFETY: no event or APC, so the call is synchronous; the payload and reply buffer are
    // valid for the sizes passed; the address is in network byte order as the API wants.
    let count = unsafe {
        IcmpSendEcho2(
            icmp.0,
            std::ptr::null_mut(),
            None,
            std::ptr::null(),
            u32::from_ne_bytes(host.octets()),
            PAYLOAD.as_ptr().cast(),
            PAYLOAD.len() as u16,
            std::ptr::null(),
            replies.as_mut_ptr().cast(),
            size_of::<Replies>() as u32,
            timeout_ms,
        )
    };
    outcome(count, &replies, |r| {
        // SAFETY: read only when a reply came: the buffer starts with an ICMP_ECHO_REPLY.
        unsafe { r.as_ptr().cast::<ICMP_ECHO_REPLY>().read() }.Status
    })
}

fn echo_v6(host: Ipv6Addr, timeout_ms: u32) -> Result<(), String> {
    let icmp = Icmp::open(true)?;
    let source = SOCKADDR_IN6 {
        sin6_family: AF_INET6,
        ..SOCKADDR_IN6::default()
    };
    let mut destination = source;
    destination.sin6_addr.u.Byte = host.octets();
    let mut replies: Replies = [0; REPLY_BYTES.div_ceil(8)];
    // SAFETY: as for IPv4; both socket addresses are complete SOCKADDR_IN6 values (the source
    // is the unspecified address: the system chooses).
    let count = unsafe {
        Icmp6SendEcho2(
            icmp.0,
            std::ptr::null_mut(),
            None,
            std::ptr::null(),
            &source,
            &destination,
            PAYLOAD.as_ptr().cast(),
            PAYLOAD.len() as u16,
            std::ptr::null(),
            replies.as_mut_ptr().cast(),
            size_of::<Replies>() as u32,
            timeout_ms,
        )
    };
    outcome(count, &replies, |r| {
        // SAFETY: read only when a reply came: the buffer starts with an ICMPV6_ECHO_REPLY.
        unsafe { r.as_ptr().cast::<ICMPV6_ECHO_REPLY_LH>().read() }.Status
    })
}

impl Pinger {
    /// Checks that the ICMP helper opens for `host`'s family; an error sends the caller to the
    /// TCP stand-in, as on Linux.
    pub(super) async fn new(host: IpAddr, timeout: Duration) -> Result<Self, String> {
        Icmp::open(host.is_ipv6())?;
        Ok(Self {
            host,
            timeout_ms: u32::try_from(timeout.as_millis())
                .unwrap_or(u32::MAX)
                .max(1),
        })
    }

    /// One echo request and its reply.
    pub(super) async fn attempt(&mut self) -> Result<(), String> {
        let (host, timeout_ms) = (self.host, self.timeout_ms);
        tokio::task::spawn_blocking(move || match host {
            IpAddr::V4(v4) => echo_v4(v4, timeout_ms),
            IpAddr::V6(v6) => echo_v6(v6, timeout_ms),
        })
        .await
        .map_err(|e| format!("the echo did not complete: {e}"))?
    }
}

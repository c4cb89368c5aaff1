//! CPU use from `GetSystemTimes`.
//!
//! sysinfo measures Windows CPU use through a PDH performance-counter query: slow to open, and
//! missing from Wine, where its retry path crashes the process. The system-wide idle, kernel
//! and user times answer the same question with one call and no query to keep open.

/// CPU time of all processors since boot, in 100 ns units, as `GetSystemTimes` gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SystemTimes {
    pub(crate) idle: u64,
    /// Kernel time, idle time included.
    pub(crate) kernel: u64,
    pub(crate) user: u64,
}

/// Share of CPU time that was busy between two readings; `None` when no time passed or the
/// counters went backwards (they never should; a wrong figure is worse than none).
pub(crate) fn busy_ratio(before: SystemTimes, after: SystemTimes) -> Option<f64> {
    let idle = after.idle.checked_sub(before.idle)?;
    let total = after.kernel.checked_sub(before.kernel)? + after.user.checked_sub(before.user)?;
    if total == 0 || idle > total {
        return None;
    }
    Some((total - idle) as f64 / total as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_share_counts_kernel_time_without_idle() {
        let before = SystemTimes {
            idle: 9_000_000,
            kernel: 12_000_000,
            user: 4_000_000,
        };
        // One second on 4 CPUs (40 000 000 units): 30 M idle, 4 M kernel work, 6 M user work.
        let after = SystemTimes {
            idle: 39_000_000,
            kernel: 46_000_000,
            user: 10_000_000,
        };
        assert_eq!(busy_ratio(before, after), Some(0.25));
        assert_eq!(busy_ratio(after, after), None);
    }

    #[test]
    fn counters_going_backwards_or_idle_beyond_total_give_nothing() {
        let a = SystemTimes {
            idle: 10,
            kernel: 20,
            user: 5,
        };
        let earlier = SystemTimes {
            idle: 5,
            kernel: 10,
            user: 1,
        };
        assert_eq!(busy_ratio(a, earlier), None);
        let idle_jump = SystemTimes {
            idle: 100,
            kernel: 21,
            user: 6,
        };
        assert_eq!(busy_ratio(a, idle_jump), None);
    }
}

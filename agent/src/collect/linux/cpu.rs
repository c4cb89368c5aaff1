//! The CPU's rated maximum frequency from cpufreq.
//!
//! sysinfo reports the current frequency, which moves with load and power saving; an inventory
//! that changed every time a laptop throttled would look like new hardware, so the inventory
//! prefers the stable maximum when the driver publishes it.

use std::path::Path;

use super::read_number;

pub(crate) fn read_max_frequency_hz(root: &Path) -> Option<u64> {
    let khz: u64 = read_number(&root.join("sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq"))?;
    (khz > 0).then(|| khz.saturating_mul(1000))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::linux::fixture;

    #[test]
    fn fixtures() {
        assert_eq!(
            read_max_frequency_hz(&fixture("desktop")),
            Some(4_800_000_000)
        );
        assert_eq!(
            read_max_frequency_hz(&fixture("laptop")),
            Some(4_200_000_000)
        );
        // Guests rarely get cpufreq.
        assert_eq!(read_max_frequency_hz(&fixture("vm")), None);
    }
}

//! What Windows exposes beyond sysinfo: the registry (`MachineGuid`, the edition and build),
//! the SMBIOS table, physical disks, drive letters, the network adapter table, CPU times, the
//! device registry (monitors, display adapters) and the installed software.
//!
//! Calls into the Windows API are confined to [`sys`] (the agent's only `unsafe`), the registry
//! is read through Microsoft's safe `windows-registry`, and turning what they return into
//! protocol types is done by the pure modules below, whose tests run on Linux too. Anything
//! unreadable is absent, never an error, as on Linux.

mod adapters;
mod cpu;
mod display;
mod drives;
mod os;
mod physical_disks;
mod rsmb;
mod software;

#[cfg(windows)]
mod live;
#[cfg(windows)]
mod sys;

#[cfg(windows)]
pub(crate) use live::*;

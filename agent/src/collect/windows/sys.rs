//! The Windows API calls behind the inventory: the only `unsafe` in the agent.
//!
//! Each function makes one call (or one two-step sized call), copies what it returned into
//! plain Rust values and frees what it allocated; the mapping of those values to protocol types
//! is safe code elsewhere in this module tree, unit-tested on every platform.
#![allow(unsafe_code)]

use std::ffi::OsStr;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::windows::ffi::OsStrExt;

use windows_sys::Win32::Foundation::{
    CloseHandle, ERROR_BUFFER_OVERFLOW, ERROR_NO_DATA, ERROR_SUCCESS, FILETIME, HANDLE,
    INVALID_HANDLE_VALUE,
};
use windows_sys::Win32::NetworkManagement::IpHelper::{
    GAA_FLAG_INCLUDE_GATEWAYS, GAA_FLAG_SKIP_ANYCAST, GAA_FLAG_SKIP_DNS_SERVER,
    GAA_FLAG_SKIP_MULTICAST, GetAdaptersAddresses, IP_ADAPTER_ADDRESSES_LH,
};
use windows_sys::Win32::NetworkManagement::Ndis::IfOperStatusUp;
use windows_sys::Win32::Networking::WinSock::{
    AF_INET, AF_INET6, AF_UNSPEC, SOCKADDR, SOCKADDR_IN, SOCKADDR_IN6, SOCKET_ADDRESS,
};
use windows_sys::Win32::Storage::FileSystem::{
    CreateFileW, FILE_SHARE_READ, FILE_SHARE_WRITE, GetDiskFreeSpaceExW, GetDriveTypeW,
    GetLogicalDrives, GetVolumeInformationW, OPEN_EXISTING,
};
use windows_sys::Win32::System::IO::DeviceIoControl;
use windows_sys::Win32::System::Ioctl::{
    DISK_GEOMETRY_EX, IOCTL_DISK_GET_DRIVE_GEOMETRY_EX, IOCTL_STORAGE_QUERY_PROPERTY,
    PropertyStandardQuery, STORAGE_PROPERTY_ID, STORAGE_PROPERTY_QUERY, StorageDeviceProperty,
    StorageDeviceSeekPenaltyProperty,
};
use windows_sys::Win32::System::SystemInformation::{GetSystemFirmwareTable, RSMB};
use windows_sys::Win32::System::Threading::GetSystemTimes;

use super::adapters::Adapter;
use super::cpu::SystemTimes;
use super::drives::{Drive, FreeSpace};
use super::physical_disks::RawDrive;

/// `text` as a NUL-terminated UTF-16 string.
fn wide(text: &str) -> Vec<u16> {
    OsStr::new(text).encode_wide().chain(Some(0)).collect()
}

/// The text before the first NUL of a filled UTF-16 buffer.
fn from_wide(buffer: &[u16]) -> String {
    let end = buffer.iter().position(|&c| c == 0).unwrap_or(buffer.len());
    String::from_utf16_lossy(&buffer[..end])
}

/// The raw SMBIOS table (`RawSMBIOSData`); `None` where the firmware gives none.
pub(crate) fn smbios_table() -> Option<Vec<u8>> {
    // SAFETY: a null buffer of size 0 asks only for the size needed.
    let size = unsafe { GetSystemFirmwareTable(RSMB, 0, std::ptr::null_mut(), 0) };
    if size == 0 {
        return None;
    }
    let mut buffer = vec![0u8; size as usize];
    // SAFETY: `buffer` is writable for `size` bytes, the size passed.
    let written = unsafe { GetSystemFirmwareTable(RSMB, 0, buffer.as_mut_ptr(), size) };
    // The table can grow between the calls (firmware updates do not happen at run time, but
    // a larger answer means "too small" and is treated as no table rather than trusted).
    (written > 0 && written <= size).then(|| {
        buffer.truncate(written as usize);
        buffer
    })
}

/// The `GetLogicalDrives` bit mask (bit 0 is `A:`); 0 on failure.
pub(crate) fn logical_drives() -> u32 {
    // SAFETY: takes no arguments.
    unsafe { GetLogicalDrives() }
}

/// Free and total bytes of the volume `path` is on; `None` when unreadable (no media, no
/// access).
pub(crate) fn free_space(path: &str) -> Option<FreeSpace> {
    let path = wide(path);
    let (mut available, mut total, mut free) = (0u64, 0u64, 0u64);
    // SAFETY: `path` is NUL-terminated; the three out-pointers are valid u64s.
    let ok = unsafe { GetDiskFreeSpaceExW(path.as_ptr(), &mut available, &mut total, &mut free) };
    (ok != 0).then_some(FreeSpace {
        available,
        total,
        free,
    })
}

/// One drive letter's type, label, filesystem and space. `root` is like `C:\`.
pub(crate) fn drive(root: &str) -> Drive {
    let path = wide(root);
    // SAFETY: `path` is a NUL-terminated root path.
    let drive_type = unsafe { GetDriveTypeW(path.as_ptr()) };
    let mut label = [0u16; 261];
    let mut fs_name = [0u16; 261];
    // SAFETY: both buffers are writable for the lengths passed; the optional out-pointers
    // (serial number, component length, flags) are null, which the API allows.
    let ok = unsafe {
        GetVolumeInformationW(
            path.as_ptr(),
            label.as_mut_ptr(),
            label.len() as u32,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            fs_name.as_mut_ptr(),
            fs_name.len() as u32,
        )
    };
    let (label, fs_type) = if ok != 0 {
        (Some(from_wide(&label)), Some(from_wide(&fs_name)))
    } else {
        (None, None)
    };
    Drive {
        root: root.to_owned(),
        drive_type,
        label,
        fs_type: fs_type.filter(|f| !f.is_empty()),
        space: free_space(root),
    }
}

/// A handle closed when dropped.
struct Owned(HANDLE);

impl Drop for Owned {
    fn drop(&mut self) {
        // SAFETY: the handle was opened by `CreateFileW` and is closed only here.
        unsafe { CloseHandle(self.0) };
    }
}

/// `\\.\PhysicalDrive{index}`'s device descriptor and size; `None` when there is no such drive
/// or it answers no descriptor.
pub(crate) fn physical_drive(index: u32) -> Option<RawDrive> {
    let path = wide(&format!(r"\\.\PhysicalDrive{index}"));
    // SAFETY: `path` is NUL-terminated; access 0 asks for no read or write right (the
    // queries below need none), no security attributes, no template.
    let handle = unsafe {
        CreateFileW(
            path.as_ptr(),
            0,
            FILE_SHARE_READ | FILE_SHARE_WRITE,
            std::ptr::null(),
            OPEN_EXISTING,
            0,
            std::ptr::null_mut(),
        )
    };
    if handle == INVALID_HANDLE_VALUE {
        return None;
    }
    let device = Owned(handle);
    // Descriptors are a few hundred bytes; a larger one is read as far as this buffer goes, and
    // the parser leaves out what it cuts.
    let descriptor = storage_property(&device, StorageDeviceProperty, 1024)?;
    let seek_penalty = storage_property(&device, StorageDeviceSeekPenaltyProperty, 64);
    let mut returned = 0u32;
    let mut geometry = DISK_GEOMETRY_EX::default();
    // SAFETY: `geometry` is writable for its size; no input buffer; no OVERLAPPED.
    let ok = unsafe {
        DeviceIoControl(
            device.0,
            IOCTL_DISK_GET_DRIVE_GEOMETRY_EX,
            std::ptr::null(),
            0,
            (&raw mut geometry).cast(),
            size_of::<DISK_GEOMETRY_EX>() as u32,
            &mut returned,
            std::ptr::null_mut(),
        )
    };
    Some(RawDrive {
        index,
        descriptor,
        seek_penalty,
        size_bytes: (ok != 0)
            .then(|| u64::try_from(geometry.DiskSize).ok())
            .flatten(),
    })
}

/// The standard query of one storage property, as many bytes as the driver wrote (at most
/// `capacity`); `None` when the driver does not answer it.
fn storage_property(device: &Owned, id: STORAGE_PROPERTY_ID, capacity: usize) -> Option<Vec<u8>> {
    let query = STORAGE_PROPERTY_QUERY {
        PropertyId: id,
        QueryType: PropertyStandardQuery,
        AdditionalParameters: [0],
    };
    let mut answer = vec![0u8; capacity];
    let mut returned = 0u32;
    // SAFETY: the query is a valid STORAGE_PROPERTY_QUERY of the size passed; `answer` is
    // writable for the length passed; `returned` is a valid out-pointer; no OVERLAPPED.
    let ok = unsafe {
        DeviceIoControl(
            device.0,
            IOCTL_STORAGE_QUERY_PROPERTY,
            (&raw const query).cast(),
            size_of::<STORAGE_PROPERTY_QUERY>() as u32,
            answer.as_mut_ptr().cast(),
            answer.len() as u32,
            &mut returned,
            std::ptr::null_mut(),
        )
    };
    (ok != 0).then(|| {
        answer.truncate(returned as usize);
        answer
    })
}

/// Idle, kernel (idle included) and user time of all CPUs since boot.
pub(crate) fn system_times() -> Option<SystemTimes> {
    let ticks = |t: FILETIME| (u64::from(t.dwHighDateTime) << 32) | u64::from(t.dwLowDateTime);
    let (mut idle, mut kernel, mut user) = (
        FILETIME::default(),
        FILETIME::default(),
        FILETIME::default(),
    );
    // SAFETY: three valid FILETIME out-pointers.
    let ok = unsafe { GetSystemTimes(&mut idle, &mut kernel, &mut user) };
    (ok != 0).then(|| SystemTimes {
        idle: ticks(idle),
        kernel: ticks(kernel),
        user: ticks(user),
    })
}

/// Every adapter `GetAdaptersAddresses` lists, IPv4 and IPv6, with gateways.
pub(crate) fn adapters() -> io::Result<Vec<Adapter>> {
    let flags = GAA_FLAG_INCLUDE_GATEWAYS
        | GAA_FLAG_SKIP_ANYCAST
        | GAA_FLAG_SKIP_MULTICAST
        | GAA_FLAG_SKIP_DNS_SERVER;
    // 15 KB is Microsoft's suggested first size; u64 elements keep the list 8-byte aligned.
    let mut size: u32 = 15 * 1024;
    for _ in 0..4 {
        let mut buffer = vec![0u64; (size as usize).div_ceil(8)];
        let first = buffer.as_mut_ptr().cast::<IP_ADAPTER_ADDRESSES_LH>();
        // SAFETY: `buffer` is writable and aligned for `size` bytes; on overflow the API
        // writes the size it needs to `size` and nothing else.
        let status = unsafe {
            GetAdaptersAddresses(
                u32::from(AF_UNSPEC),
                flags,
                std::ptr::null(),
                first,
                &mut size,
            )
        };
        match status {
            ERROR_SUCCESS => {
                let mut list = Vec::new();
                let mut next = first.cast_const();
                while !next.is_null() {
                    // SAFETY: on success the buffer holds a linked list of adapters whose
                    // pointers all point into the buffer, which outlives this loop.
                    let adapter = unsafe { &*next };
                    list.push(copy_adapter(adapter));
                    next = adapter.Next;
                }
                return Ok(list);
            }
            ERROR_BUFFER_OVERFLOW => continue,
            ERROR_NO_DATA => return Ok(Vec::new()),
            other => return Err(io::Error::from_raw_os_error(other as i32)),
        }
    }
    Err(io::Error::other(
        "the adapter list kept growing while it was read",
    ))
}

fn copy_adapter(adapter: &IP_ADAPTER_ADDRESSES_LH) -> Adapter {
    let name = if adapter.FriendlyName.is_null() {
        String::new()
    } else {
        // SAFETY: FriendlyName is a NUL-terminated UTF-16 string inside the adapter buffer.
        let len = unsafe {
            (0..)
                .take_while(|&i| *adapter.FriendlyName.add(i) != 0)
                .count()
        };
        // SAFETY: `len` UTF-16 units were just read at that address.
        String::from_utf16_lossy(unsafe { std::slice::from_raw_parts(adapter.FriendlyName, len) })
    };
    let mut addresses = Vec::new();
    let mut unicast = adapter.FirstUnicastAddress.cast_const();
    while !unicast.is_null() {
        // SAFETY: a list node inside the adapter buffer.
        let node = unsafe { &*unicast };
        if let Some(ip) = socket_ip(&node.Address) {
            addresses.push((ip, node.OnLinkPrefixLength));
        }
        unicast = node.Next;
    }
    let mut gateways = Vec::new();
    let mut gateway = adapter.FirstGatewayAddress.cast_const();
    while !gateway.is_null() {
        // SAFETY: a list node inside the adapter buffer.
        let node = unsafe { &*gateway };
        gateways.extend(socket_ip(&node.Address));
        gateway = node.Next;
    }
    let length = (adapter.PhysicalAddressLength as usize).min(adapter.PhysicalAddress.len());
    Adapter {
        name,
        hardware_address: adapter.PhysicalAddress[..length].to_vec(),
        if_type: adapter.IfType,
        up: adapter.OperStatus == IfOperStatusUp,
        mtu: adapter.Mtu,
        speeds_bps: [adapter.TransmitLinkSpeed, adapter.ReceiveLinkSpeed],
        addresses,
        gateways,
        ipv4_metric: adapter.Ipv4Metric,
    }
}

fn socket_ip(address: &SOCKET_ADDRESS) -> Option<IpAddr> {
    let length = usize::try_from(address.iSockaddrLength).ok()?;
    if address.lpSockaddr.is_null() || length < size_of::<SOCKADDR>() {
        return None;
    }
    // SAFETY: a non-null sockaddr of `length` bytes inside the adapter buffer; the family says
    // which larger structure it is, and the length is checked before reading as that.
    unsafe {
        match (*address.lpSockaddr).sa_family {
            AF_INET if length >= size_of::<SOCKADDR_IN>() => {
                let v4 = &*address.lpSockaddr.cast::<SOCKADDR_IN>();
                Some(IpAddr::V4(Ipv4Addr::from(
                    v4.sin_addr.S_un.S_addr.to_ne_bytes(),
                )))
            }
            AF_INET6 if length >= size_of::<SOCKADDR_IN6>() => {
                let v6 = &*address.lpSockaddr.cast::<SOCKADDR_IN6>();
                Some(IpAddr::V6(Ipv6Addr::from(v6.sin6_addr.u.Byte)))
            }
            _ => None,
        }
    }
}

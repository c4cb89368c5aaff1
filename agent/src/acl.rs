//! The state folder's access list on Windows: the agent's key in it must be readable by the
//! service and administrators only.
//!
//! `%ProgramData%` lets every local user read what is created under it, so `agent.json` (the
//! key the collector knows this machine by) and the spool were readable by anyone logged on,
//! who could then send reports as this machine. Unix gets mode 0700/0600 ([`crate::state`]);
//! Windows gets a protected access list, inherited by everything created in the folder: full
//! control for SYSTEM (the service), the Administrators group and the folder's owner, nobody
//! else.
#![allow(unsafe_code)]

use std::io;
use std::os::windows::ffi::OsStrExt;
use std::path::Path;

use windows_sys::Win32::Foundation::{ERROR_SUCCESS, LocalFree};
use windows_sys::Win32::Security::Authorization::{
    ConvertStringSecurityDescriptorToSecurityDescriptorW, SDDL_REVISION_1, SE_FILE_OBJECT,
    SetNamedSecurityInfoW,
};
use windows_sys::Win32::Security::{
    ACL, DACL_SECURITY_INFORMATION, GetSecurityDescriptorDacl, PROTECTED_DACL_SECURITY_INFORMATION,
    PSECURITY_DESCRIPTOR,
};

/// SYSTEM, Administrators and the owner, full control, inherited by files and folders; `P`:
/// nothing inherited from the parent.
pub(crate) const STATE_DACL: &str = "D:P(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)(A;OICI;FA;;;OW)";

fn wide(text: &std::ffi::OsStr) -> Vec<u16> {
    text.encode_wide().chain(std::iter::once(0)).collect()
}

/// Gives `dir` the [`STATE_DACL`] access list, replacing what it inherited.
pub(crate) fn restrict(dir: &Path) -> io::Result<()> {
    let sddl = wide(STATE_DACL.as_ref());
    let mut descriptor: PSECURITY_DESCRIPTOR = std::ptr::null_mut();
    // SAFETY: `sddl` is a NUL-terminated UTF-16 string that outlives the call; on success the
    // descriptor is allocated by the system and freed with LocalFree below.
    let made = unsafe {
        ConvertStringSecurityDescriptorToSecurityDescriptorW(
            sddl.as_ptr(),
            SDDL_REVISION_1,
            &mut descriptor,
            std::ptr::null_mut(),
        )
    };
    if made == 0 {
        return Err(io::Error::last_os_error());
    }
    let result = set_dacl(dir, descriptor);
    // SAFETY: `descriptor` came from the conversion above and is not used after this.
    unsafe { LocalFree(descriptor) };
    result
}

fn set_dacl(dir: &Path, descriptor: PSECURITY_DESCRIPTOR) -> io::Result<()> {
    let (mut present, mut defaulted) = (0, 0);
    let mut dacl: *mut ACL = std::ptr::null_mut();
    // SAFETY: `descriptor` is a valid self-relative descriptor; the DACL pointer it yields
    // points into it and is used only while it lives (the caller frees it after).
    let found =
        unsafe { GetSecurityDescriptorDacl(descriptor, &mut present, &mut dacl, &mut defaulted) };
    if found == 0 || present == 0 {
        return Err(io::Error::last_os_error());
    }
    let path = wide(dir.as_os_str());
    // SAFETY: `path` is NUL-terminated UTF-16; `dacl` is valid for the call; owner, group and
    // SACL are not changed (null).
    let status = unsafe {
        SetNamedSecurityInfoW(
            path.as_ptr(),
            SE_FILE_OBJECT,
            DACL_SECURITY_INFORMATION | PROTECTED_DACL_SECURITY_INFORMATION,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            dacl,
            std::ptr::null(),
        )
    };
    if status == ERROR_SUCCESS {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(status as i32))
    }
}

#[cfg(test)]
mod tests {
    use windows_sys::Win32::Security::Authorization::{
        ConvertSecurityDescriptorToStringSecurityDescriptorW, GetNamedSecurityInfoW,
    };

    use super::*;

    /// The access list `dir` has now, as SDDL.
    fn dacl_of(dir: &Path) -> String {
        let path = wide(dir.as_os_str());
        let mut descriptor: PSECURITY_DESCRIPTOR = std::ptr::null_mut();
        // SAFETY: as in `restrict`: NUL-terminated path; the descriptor is freed below.
        let status = unsafe {
            GetNamedSecurityInfoW(
                path.as_ptr(),
                SE_FILE_OBJECT,
                DACL_SECURITY_INFORMATION,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                &mut descriptor,
            )
        };
        assert_eq!(status, ERROR_SUCCESS);
        let mut text: windows_sys::core::PWSTR = std::ptr::null_mut();
        let mut len = 0u32;
        // SAFETY: `descriptor` is valid; the string is allocated by the system, copied, freed.
        let converted = unsafe {
            ConvertSecurityDescriptorToStringSecurityDescriptorW(
                descriptor,
                SDDL_REVISION_1,
                DACL_SECURITY_INFORMATION,
                &mut text,
                &mut len,
            )
        };
        assert_ne!(converted, 0, "{}", io::Error::last_os_error());
        // SAFETY: `text` holds `len` UTF-16 units (with the NUL) from the call above.
        let sddl = unsafe { std::slice::from_raw_parts(text, len as usize) };
        let sddl = String::from_utf16_lossy(sddl)
            .trim_end_matches('\0')
            .to_owned();
        // SAFETY: both were allocated by the system for this caller and are not used after.
        unsafe {
            LocalFree(text.cast());
            LocalFree(descriptor);
        }
        sddl
    }

    #[test]
    fn the_state_folder_is_closed_to_other_users() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("hatang");
        crate::state::ensure_dir(&state).unwrap();
        // Wine accepts an access list and keeps none (its files live on a Unix filesystem), so
        // what follows can only be checked on Windows itself; CI runs the agent under Wine.
        if windows_registry::CURRENT_USER
            .open("Software\\Wine")
            .is_ok()
        {
            eprintln!("skipped under Wine: it does not keep access lists");
            return;
        }
        let dacl = dacl_of(&state);
        assert!(dacl.starts_with("D:P"), "inherits nothing: {dacl}");
        for ace in ["(A;OICI;FA;;;SY)", "(A;OICI;FA;;;BA)"] {
            assert!(dacl.contains(ace), "{ace} in {dacl}");
        }
        // Users (BU), Authenticated Users (AU), Everyone (WD): none of them.
        for group in [";BU)", ";AU)", ";WD)"] {
            assert!(!dacl.contains(group), "{group} in {dacl}");
        }
    }
}

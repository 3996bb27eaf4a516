//! `iscsi-read URL [LBA [BYTES]]`: reads BYTES (default 512) from block LBA (default 0) of an iSCSI
//! LUN with libiscsi (READ(10), 512-byte blocks) and writes them raw to stdout. libiscsi-bin has no
//! reader tool; this is the lab client's way to read data through the floating address.
//! URL: `iscsi://HOST[:PORT]/IQN/LUN`.

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::io::Write;

#[repr(C)]
struct ScsiIovec {
    iov_base: *mut c_void,
    iov_len: usize,
}

const MAX_STRING: usize = 256; // MAX_STRING_SIZE + 1 in iscsi.h

/// `struct iscsi_url` of libiscsi 1.19 (Debian 12).
#[repr(C)]
struct IscsiUrl {
    portal: [c_char; MAX_STRING],
    target: [c_char; MAX_STRING],
    user: [c_char; MAX_STRING],
    passwd: [c_char; MAX_STRING],
    target_user: [c_char; MAX_STRING],
    target_passwd: [c_char; MAX_STRING],
    lun: c_int,
}

#[link(name = "iscsi")]
extern "C" {
    fn iscsi_create_context(initiator: *const c_char) -> *mut c_void;
    fn iscsi_destroy_context(ctx: *mut c_void) -> c_int;
    fn iscsi_get_error(ctx: *mut c_void) -> *const c_char;
    fn iscsi_parse_full_url(ctx: *mut c_void, url: *const c_char) -> *mut IscsiUrl;
    fn iscsi_destroy_url(url: *mut IscsiUrl);
    fn iscsi_set_targetname(ctx: *mut c_void, name: *const c_char) -> c_int;
    fn iscsi_set_session_type(ctx: *mut c_void, t: c_int) -> c_int;
    fn iscsi_full_connect_sync(ctx: *mut c_void, portal: *const c_char, lun: c_int) -> c_int;
    fn iscsi_logout_sync(ctx: *mut c_void) -> c_int;
    #[allow(clippy::too_many_arguments)]
    fn iscsi_read10_iov_sync(
        ctx: *mut c_void,
        lun: c_int,
        lba: u32,
        datalen: u32,
        blocksize: c_int,
        rdprotect: c_int,
        dpo: c_int,
        fua: c_int,
        fua_nv: c_int,
        group: c_int,
        iov: *mut ScsiIovec,
        niov: c_int,
    ) -> *mut c_void;
    fn scsi_free_scsi_task(task: *mut c_void);
}

fn err(ctx: *mut c_void, what: &str) -> ! {
    // SAFETY: ctx is a live context; iscsi_get_error returns a NUL-terminated string it owns.
    let msg = unsafe { CStr::from_ptr(iscsi_get_error(ctx)) }.to_string_lossy();
    eprintln!("iscsi-read: {what}: {msg}");
    std::process::exit(1)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(url) = args.get(1) else {
        eprintln!("usage: iscsi-read iscsi://HOST[:PORT]/IQN/LUN [LBA [BYTES]]");
        std::process::exit(2)
    };
    let lba: u32 = args.get(2).and_then(|v| v.parse().ok()).unwrap_or(0);
    let bytes: u32 = args.get(3).and_then(|v| v.parse().ok()).unwrap_or(512);
    let len = bytes.div_ceil(512).max(1) * 512;
    let (Ok(curl), Ok(ini)) = (
        CString::new(url.as_str()),
        CString::new("iqn.2024-01.lab:client"),
    ) else {
        eprintln!("iscsi-read: NUL in argument");
        std::process::exit(2)
    };
    // SAFETY: plain libiscsi calls on pointers it returned; buffers outlive the synchronous calls.
    unsafe {
        let ctx = iscsi_create_context(ini.as_ptr());
        if ctx.is_null() {
            eprintln!("iscsi-read: cannot create context");
            std::process::exit(1)
        }
        let u = iscsi_parse_full_url(ctx, curl.as_ptr());
        if u.is_null() {
            err(ctx, "bad URL");
        }
        iscsi_set_targetname(ctx, (*u).target.as_ptr());
        iscsi_set_session_type(ctx, 2); // ISCSI_SESSION_NORMAL
        let lun = (*u).lun;
        if iscsi_full_connect_sync(ctx, (*u).portal.as_ptr(), lun) != 0 {
            err(ctx, "login");
        }
        let mut buf = vec![0u8; len as usize];
        let mut iov = ScsiIovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        let task = iscsi_read10_iov_sync(ctx, lun, lba, len, 512, 0, 0, 0, 0, 0, &mut iov, 1);
        if task.is_null() {
            err(ctx, "READ(10)");
        }
        // `status` is the first field of struct scsi_task; 0 = SCSI_STATUS_GOOD.
        let status = *(task as *const c_int);
        scsi_free_scsi_task(task);
        if status != 0 {
            eprintln!("iscsi-read: READ(10) status {status:#x}");
            std::process::exit(1)
        }
        iscsi_logout_sync(ctx);
        iscsi_destroy_url(u);
        iscsi_destroy_context(ctx);
        let out = buf.get(..bytes as usize).unwrap_or(&buf);
        let _ = std::io::stdout().write_all(out);
    }
}

//! A small safe wrapper over libiscsi 1.19 (Debian 12 `libiscsi-dev`, `-liscsi`): the lab's own
//! iSCSI initiator for `iscsi-read` and `iscsi-ledger`.
//!
//! One [`Session`] = one libiscsi context logged in to one LUN (`iscsi_full_connect_sync`), with
//! libiscsi's automatic reconnect switched off: the caller decides how to reconnect (the ledger
//! does it like an initiator, with its own bounded retry). Commands are the synchronous libiscsi
//! calls: READ(10), WRITE(10) with or without FUA, SYNCHRONIZE CACHE(10), MODE SENSE(6)/(10).
//! Blocks are 512 bytes. Every failure is an [`IscsiError`] naming the command and carrying
//! libiscsi's error text or the SCSI status and sense.

use std::ffi::{c_char, c_int, c_uchar, c_void, CStr, CString};
use std::ptr::NonNull;

/// Logical block size the wrapper uses (bytes).
pub const BLOCK: usize = 512;

const MAX_STRING: usize = 256; // MAX_STRING_SIZE + 1 in iscsi.h

/// `struct iscsi_url` of libiscsi 1.19 (1560 bytes, `lun` at 1536; checked with gcc).
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

/// `struct scsi_iovec` (POSIX `struct iovec`).
#[repr(C)]
struct ScsiIovec {
    iov_base: *mut c_void,
    iov_len: usize,
}

/// `struct scsi_sense` of libiscsi 1.19 (16 bytes: key at 4, ascq at 8; checked with gcc).
#[repr(C)]
#[derive(Default)]
struct ScsiSense {
    error_type: c_uchar,
    key: c_int,
    ascq: c_int,
    bits: c_uchar,
    bit_pointer: c_uchar,
    field_pointer: u16,
}

type Ctx = c_void;
type Task = c_void;

#[link(name = "iscsi")]
extern "C" {
    fn iscsi_create_context(initiator: *const c_char) -> *mut Ctx;
    fn iscsi_destroy_context(ctx: *mut Ctx) -> c_int;
    fn iscsi_get_error(ctx: *mut Ctx) -> *const c_char;
    fn iscsi_parse_full_url(ctx: *mut Ctx, url: *const c_char) -> *mut IscsiUrl;
    fn iscsi_destroy_url(url: *mut IscsiUrl);
    fn iscsi_set_targetname(ctx: *mut Ctx, name: *const c_char) -> c_int;
    fn iscsi_set_session_type(ctx: *mut Ctx, t: c_int) -> c_int;
    fn iscsi_set_timeout(ctx: *mut Ctx, seconds: c_int) -> c_int;
    fn iscsi_set_noautoreconnect(ctx: *mut Ctx, state: c_int);
    fn iscsi_set_tcp_syncnt(ctx: *mut Ctx, value: c_int) -> c_int;
    fn iscsi_full_connect_sync(ctx: *mut Ctx, portal: *const c_char, lun: c_int) -> c_int;
    fn iscsi_logout_sync(ctx: *mut Ctx) -> c_int;
    #[allow(clippy::too_many_arguments)]
    fn iscsi_read10_iov_sync(
        ctx: *mut Ctx,
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
    ) -> *mut Task;
    #[allow(clippy::too_many_arguments)]
    fn iscsi_write10_sync(
        ctx: *mut Ctx,
        lun: c_int,
        lba: u32,
        data: *mut c_uchar,
        datalen: u32,
        blocksize: c_int,
        wrprotect: c_int,
        dpo: c_int,
        fua: c_int,
        fua_nv: c_int,
        group: c_int,
    ) -> *mut Task;
    fn iscsi_synchronizecache10_sync(
        ctx: *mut Ctx,
        lun: c_int,
        lba: c_int,
        num_blocks: c_int,
        syncnv: c_int,
        immed: c_int,
    ) -> *mut Task;
    fn scsi_cdb_modesense6(
        dbd: c_int,
        pc: c_int,
        page_code: c_int,
        sub_page_code: c_int,
        alloc_len: c_uchar,
    ) -> *mut Task;
    fn scsi_cdb_modesense10(
        llbaa: c_int,
        dbd: c_int,
        pc: c_int,
        page_code: c_int,
        sub_page_code: c_int,
        alloc_len: c_uchar,
    ) -> *mut Task;
    fn scsi_task_add_data_in_buffer(task: *mut Task, len: c_int, buf: *mut c_uchar) -> c_int;
    fn iscsi_scsi_command_sync(
        ctx: *mut Ctx,
        lun: c_int,
        task: *mut Task,
        data: *mut c_void,
    ) -> *mut Task;
    fn scsi_task_get_status(task: *mut Task, sense: *mut ScsiSense) -> c_int;
    fn scsi_free_scsi_task(task: *mut Task);
    fn scsi_sense_key_str(key: c_int) -> *const c_char;
}

/// `ISCSI_SESSION_NORMAL` in iscsi.h.
const ISCSI_SESSION_NORMAL: c_int = 2;
/// SAM status GOOD.
const SCSI_STATUS_GOOD: c_int = 0;
/// SAM status CHECK CONDITION.
const SCSI_STATUS_CHECK_CONDITION: c_int = 2;
/// libiscsi's status for a task that ran into the context's timeout (`SCSI_STATUS_TIMEOUT`).
const SCSI_STATUS_TIMEOUT: c_int = 0x0f00_0002;
/// Page code of the Caching mode page (SBC-3 6.4.5).
pub const MODE_PAGE_CACHING: u8 = 0x08;

/// A failed libiscsi call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IscsiError {
    /// Bad argument (URL with NUL, buffer not a multiple of [`BLOCK`], …).
    Input(String),
    /// libiscsi failed before a SCSI status came back (connect, login, lost connection); `msg` is
    /// `iscsi_get_error`.
    Transport {
        /// What was attempted (`login`, `WRITE(10)`, …).
        op: &'static str,
        /// libiscsi's error text.
        msg: String,
    },
    /// The command completed with a status other than GOOD.
    Status {
        /// What was attempted.
        op: &'static str,
        /// SAM status (2 = CHECK CONDITION) or libiscsi's own (0x0f000002 = timeout).
        status: i32,
        /// Sense key and its name (CHECK CONDITION only).
        sense_key: i32,
        /// `scsi_sense_key_str` of the key.
        sense_key_name: String,
        /// ASC << 8 | ASCQ as libiscsi reports it.
        ascq: i32,
    },
}

impl IscsiError {
    /// The command ran into the context's command timeout.
    pub fn is_timeout(&self) -> bool {
        matches!(self, IscsiError::Status { status, .. } if *status == SCSI_STATUS_TIMEOUT)
    }
}

impl std::fmt::Display for IscsiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IscsiError::Input(m) => write!(f, "{m}"),
            IscsiError::Transport { op, msg } => write!(f, "{op}: {msg}"),
            IscsiError::Status {
                op,
                status,
                sense_key,
                sense_key_name,
                ascq,
            } if *status == SCSI_STATUS_CHECK_CONDITION => write!(
                f,
                "{op}: CHECK CONDITION, sense key {sense_key:#x} {sense_key_name}, ASC/ASCQ {ascq:#06x}"
            ),
            IscsiError::Status { op, status, .. } if *status == SCSI_STATUS_TIMEOUT => {
                write!(f, "{op}: command timeout")
            }
            IscsiError::Status { op, status, .. } => write!(f, "{op}: status {status:#x}"),
        }
    }
}

impl std::error::Error for IscsiError {}

/// Where to log in: portal, target name and LUN from an `iscsi://HOST[:PORT]/IQN/LUN` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    /// `HOST[:PORT]`.
    pub portal: String,
    /// Target IQN.
    pub target: String,
    /// LUN.
    pub lun: i32,
}

/// The Caching mode page (page code 08h, SBC-3 6.4.5) as a target reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct CachingPage {
    /// Write Cache Enable: 1 = the target may acknowledge writes before they are on the medium.
    pub wce: bool,
    /// Read Cache Disable.
    pub rcd: bool,
}

/// Finds the Caching page in MODE SENSE(6) (`ten == false`) or MODE SENSE(10) parameter data and
/// returns its WCE and RCD bits. Err on truncated or malformed data or a missing page.
///
/// Layout (SPC-4 7.5.5 mode parameter headers, 7.5.7 page_0 / sub_page formats; SBC-3 6.4.5):
/// the header (4 bytes for (6), 8 for (10)) gives the mode data length and the block descriptor
/// length; pages follow the descriptors; a page starts with PS|SPF|page code and its length (SPF
/// set: subpage code and a 2-byte length); in the Caching page byte 2 bit 2 is WCE, bit 0 RCD.
pub fn parse_caching_page(data: &[u8], ten: bool) -> Result<CachingPage, IscsiError> {
    let bad = |why: &str| IscsiError::Input(format!("MODE SENSE data: {why}"));
    // Header: (6) mode data length u8, medium type, device-specific, block descriptor length u8;
    // (10) mode data length u16, medium type, device-specific, LONGLBA, reserved, BDL u16.
    let (hdr, total, bdl) = if ten {
        let g = |i: usize| data.get(i).copied().map(usize::from);
        let len = g(0).zip(g(1)).map(|(h, l)| (h << 8 | l) + 2);
        let bdl = g(6).zip(g(7)).map(|(h, l)| h << 8 | l);
        (8, len, bdl)
    } else {
        let len = data.first().map(|l| usize::from(*l) + 1);
        (4, len, data.get(3).copied().map(usize::from))
    };
    let (Some(total), Some(bdl)) = (total, bdl) else {
        return Err(bad("shorter than its header"));
    };
    let end = total.min(data.len());
    let mut at = hdr + bdl;
    while at + 2 <= end {
        let (Some(code), Some(len)) = (data.get(at), data.get(at + 1)) else {
            break;
        };
        let len = usize::from(*len);
        if code & 0x3f == MODE_PAGE_CACHING && code & 0x40 == 0 {
            let flags = data
                .get(at + 2)
                .filter(|_| len >= 1 && at + 3 <= end)
                .ok_or_else(|| bad("caching page truncated"))?;
            return Ok(CachingPage {
                wce: flags & 0x04 != 0,
                rcd: flags & 0x01 != 0,
            });
        }
        // A subpage-format page (SPF) has a 2-byte length at offset 2.
        let page_len = if code & 0x40 != 0 {
            let hi = data.get(at + 2).copied().map(usize::from).unwrap_or(0);
            let lo = data.get(at + 3).copied().map(usize::from).unwrap_or(0);
            4 + (hi << 8 | lo)
        } else {
            2 + len
        };
        at += page_len;
    }
    Err(bad("no caching page (08h)"))
}

/// A logged-in libiscsi context on one LUN. Not `Sync`; dropping it destroys the context
/// (closing the TCP connection without a logout).
pub struct Session {
    ctx: NonNull<Ctx>,
    url: Url,
}

// SAFETY: a libiscsi context has no thread affinity; Session is used by one thread at a time.
unsafe impl Send for Session {}

fn cstring(s: &str) -> Result<CString, IscsiError> {
    CString::new(s).map_err(|_| IscsiError::Input(format!("NUL in {s:?}")))
}

fn cstr_field(f: &[c_char]) -> String {
    let bytes: Vec<u8> = f
        .iter()
        .take_while(|c| **c != 0)
        .map(|c| *c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

impl Session {
    /// Creates a context for `initiator`, parses `url` (`iscsi://HOST[:PORT]/IQN/LUN`), sets the
    /// command timeout (`timeout_s` seconds, 0 = none; also bounds login PDUs), turns libiscsi's
    /// own reconnect off, limits TCP SYN retries to `syn_retries` and logs in
    /// (`iscsi_full_connect_sync`).
    pub fn connect(
        url: &str,
        initiator: &str,
        timeout_s: u32,
        syn_retries: u32,
    ) -> Result<Session, IscsiError> {
        let (curl, ini) = (cstring(url)?, cstring(initiator)?);
        // SAFETY: libiscsi calls on the context it returned; CStrings outlive the calls.
        unsafe {
            let ctx = NonNull::new(iscsi_create_context(ini.as_ptr())).ok_or_else(|| {
                IscsiError::Transport {
                    op: "create context",
                    msg: "iscsi_create_context returned NULL".into(),
                }
            })?;
            let mut s = Session {
                ctx,
                url: Url {
                    portal: String::new(),
                    target: String::new(),
                    lun: 0,
                },
            };
            let u = iscsi_parse_full_url(ctx.as_ptr(), curl.as_ptr());
            if u.is_null() {
                return Err(s.transport("parse URL"));
            }
            s.url = Url {
                portal: cstr_field(&(*u).portal),
                target: cstr_field(&(*u).target),
                lun: (*u).lun,
            };
            iscsi_set_targetname(ctx.as_ptr(), (*u).target.as_ptr());
            iscsi_set_session_type(ctx.as_ptr(), ISCSI_SESSION_NORMAL);
            iscsi_set_noautoreconnect(ctx.as_ptr(), 1);
            iscsi_set_timeout(ctx.as_ptr(), timeout_s.min(3600) as c_int);
            iscsi_set_tcp_syncnt(ctx.as_ptr(), syn_retries.min(20) as c_int);
            let rc = iscsi_full_connect_sync(ctx.as_ptr(), (*u).portal.as_ptr(), (*u).lun);
            iscsi_destroy_url(u);
            if rc != 0 {
                return Err(s.transport("login"));
            }
            Ok(s)
        }
    }

    /// Portal, target and LUN this session is logged in to.
    pub fn url(&self) -> &Url {
        &self.url
    }

    fn transport(&self, op: &'static str) -> IscsiError {
        // SAFETY: live context; iscsi_get_error returns a NUL-terminated string it owns (or NULL).
        let msg = unsafe {
            let p = iscsi_get_error(self.ctx.as_ptr());
            if p.is_null() {
                String::from("(no error text)")
            } else {
                CStr::from_ptr(p).to_string_lossy().into_owned()
            }
        };
        IscsiError::Transport { op, msg }
    }

    /// Checks and frees a task returned by a synchronous call.
    fn finish(&self, op: &'static str, task: *mut Task) -> Result<(), IscsiError> {
        if task.is_null() {
            return Err(self.transport(op));
        }
        let mut sense = ScsiSense::default();
        // SAFETY: task is a live task from libiscsi; sense is a correctly laid out out-parameter.
        let status = unsafe { scsi_task_get_status(task, &mut sense) };
        // SAFETY: freed once, not used afterwards.
        unsafe { scsi_free_scsi_task(task) };
        if status == SCSI_STATUS_GOOD {
            return Ok(());
        }
        // SAFETY: scsi_sense_key_str returns a static string (or NULL).
        let name = unsafe {
            let p = scsi_sense_key_str(sense.key);
            if p.is_null() {
                String::new()
            } else {
                CStr::from_ptr(p).to_string_lossy().into_owned()
            }
        };
        Err(IscsiError::Status {
            op,
            status,
            sense_key: sense.key,
            sense_key_name: name,
            ascq: sense.ascq,
        })
    }

    fn check_len(len: usize) -> Result<u32, IscsiError> {
        if len == 0 || len % BLOCK != 0 {
            return Err(IscsiError::Input(format!(
                "length {len} is not a positive multiple of {BLOCK}"
            )));
        }
        u32::try_from(len).map_err(|_| IscsiError::Input(format!("length {len} too large")))
    }

    /// READ(10) of `buf.len()` bytes (a multiple of [`BLOCK`]) from `lba`.
    pub fn read10(&mut self, lba: u32, buf: &mut [u8]) -> Result<(), IscsiError> {
        let len = Self::check_len(buf.len())?;
        let mut iov = ScsiIovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        // SAFETY: buf outlives the synchronous call; libiscsi writes at most len bytes into it.
        let task = unsafe {
            iscsi_read10_iov_sync(
                self.ctx.as_ptr(),
                self.url.lun,
                lba,
                len,
                BLOCK as c_int,
                0,
                0,
                0,
                0,
                0,
                &mut iov,
                1,
            )
        };
        self.finish("READ(10)", task)
    }

    /// WRITE(10) of `data` (a multiple of [`BLOCK`]) at `lba`; with `fua` the Force Unit Access
    /// bit is set (the target acknowledges only once the data is on non-volatile media).
    pub fn write10(&mut self, lba: u32, data: &[u8], fua: bool) -> Result<(), IscsiError> {
        let len = Self::check_len(data.len())?;
        // libiscsi takes `unsigned char *` but only reads the buffer for a WRITE.
        let mut copy = data.to_vec();
        // SAFETY: copy outlives the synchronous call.
        let task = unsafe {
            iscsi_write10_sync(
                self.ctx.as_ptr(),
                self.url.lun,
                lba,
                copy.as_mut_ptr(),
                len,
                BLOCK as c_int,
                0,
                0,
                c_int::from(fua),
                0,
                0,
            )
        };
        self.finish(if fua { "WRITE(10) FUA" } else { "WRITE(10)" }, task)
    }

    /// SYNCHRONIZE CACHE(10) of the whole LUN (LBA 0, 0 blocks = to the end).
    pub fn synchronize_cache10(&mut self) -> Result<(), IscsiError> {
        // SAFETY: plain call on a live context.
        let task =
            unsafe { iscsi_synchronizecache10_sync(self.ctx.as_ptr(), self.url.lun, 0, 0, 0, 0) };
        self.finish("SYNCHRONIZE CACHE(10)", task)
    }

    /// MODE SENSE(6) (`ten == false`) or MODE SENSE(10) of current values of `page`, block
    /// descriptors disabled; returns the parameter data (at most 255 bytes).
    pub fn mode_sense(&mut self, ten: bool, page: u8) -> Result<Vec<u8>, IscsiError> {
        let op = if ten {
            "MODE SENSE(10)"
        } else {
            "MODE SENSE(6)"
        };
        let mut buf = vec![0u8; 255];
        // SAFETY: the task is created here, gets `buf` as its data-in buffer (buf outlives the
        // synchronous command) and is freed by `finish` (or here if the command cannot start).
        unsafe {
            let pc = 0; // SCSI_MODESENSE_PC_CURRENT
            let task = if ten {
                scsi_cdb_modesense10(0, 1, pc, c_int::from(page), 0, 255)
            } else {
                scsi_cdb_modesense6(1, pc, c_int::from(page), 0, 255)
            };
            if task.is_null() {
                return Err(IscsiError::Transport {
                    op,
                    msg: "cannot build CDB".into(),
                });
            }
            if scsi_task_add_data_in_buffer(task, buf.len() as c_int, buf.as_mut_ptr()) != 0 {
                scsi_free_scsi_task(task);
                return Err(IscsiError::Transport {
                    op,
                    msg: "cannot add data-in buffer".into(),
                });
            }
            let done = iscsi_scsi_command_sync(
                self.ctx.as_ptr(),
                self.url.lun,
                task,
                std::ptr::null_mut(),
            );
            if done.is_null() {
                scsi_free_scsi_task(task);
                return Err(self.transport(op));
            }
            self.finish(op, done)?;
        }
        Ok(buf)
    }

    /// The Caching mode page read with MODE SENSE(6) or (10).
    pub fn caching_page(&mut self, ten: bool) -> Result<CachingPage, IscsiError> {
        let data = self.mode_sense(ten, MODE_PAGE_CACHING)?;
        parse_caching_page(&data, ten)
    }

    /// Logs out (`iscsi_logout_sync`) and destroys the context.
    pub fn logout(self) -> Result<(), IscsiError> {
        // SAFETY: live context; Drop destroys it afterwards.
        let rc = unsafe { iscsi_logout_sync(self.ctx.as_ptr()) };
        if rc != 0 {
            return Err(self.transport("logout"));
        }
        Ok(())
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // SAFETY: the context is destroyed exactly once, here.
        unsafe {
            iscsi_destroy_context(self.ctx.as_ptr());
        }
    }
}

/// A reader on its own thread, in a network namespace: one session, READ(10) of one block in a
/// loop, each completion's time recorded, until [`Reader::stop`]. It shows whether and how long
/// a client is paused while something else happens (a reload, a repair). The first failed read
/// ends the loop (libiscsi's reconnect is off, so the session is gone).
pub struct Reader {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<Reads>,
}

/// What a [`Reader`] saw: the completion time of every read, and the failure that ended it.
#[derive(Debug, Default)]
pub struct Reads {
    /// Completion times of the reads that succeeded, in order.
    pub done: Vec<std::time::Instant>,
    /// The failed read's error, if one failed.
    pub failed: Option<String>,
}

impl Reader {
    /// Logs in from namespace `netns` (`/run/netns/NETNS`) to `url` as `initiator` (command
    /// timeout `timeout_s` seconds) and starts reading; returns once logged in, or the error.
    pub fn start(
        netns: &str,
        url: &str,
        initiator: &str,
        timeout_s: u32,
    ) -> Result<Reader, String> {
        use std::sync::atomic::{AtomicBool, Ordering};
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let (tx, rx) = std::sync::mpsc::channel();
        let (netns, url, initiator) = (netns.to_string(), url.to_string(), initiator.to_string());
        let halt = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut reads = Reads::default();
            let session = test_support::netns::enter(&netns).and_then(|()| {
                Session::connect(&url, &initiator, timeout_s, 2).map_err(|e| e.to_string())
            });
            let mut s = match session {
                Ok(s) => s,
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return reads;
                }
            };
            let _ = tx.send(Ok(()));
            let mut buf = vec![0u8; BLOCK];
            for lba in (0..64u32).cycle() {
                if halt.load(Ordering::Relaxed) {
                    break;
                }
                match s.read10(lba, &mut buf) {
                    Ok(()) => reads.done.push(std::time::Instant::now()),
                    Err(e) => {
                        reads.failed = Some(e.to_string());
                        return reads;
                    }
                }
            }
            let _ = s.logout(); // the reads are counted; a failed logout changes nothing
            reads
        });
        match rx.recv() {
            Ok(Ok(())) => Ok(Reader { stop, thread }),
            Ok(Err(e)) => Err(e),
            Err(_) => Err("the reader thread ended before logging in".into()),
        }
    }

    /// Whether the loop still runs (no read failed yet).
    pub fn reading(&self) -> bool {
        !self.thread.is_finished()
    }

    /// Stops the loop, logs out and returns what it saw.
    pub fn stop(self) -> Reads {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.join().unwrap_or_else(|_| Reads {
            failed: Some("the reader thread panicked".into()),
            ..Reads::default()
        })
    }
}

impl Reads {
    /// Reads completed in `[from, to]`, and the longest time between two consecutive completions
    /// around it (from the last one before `from` to the first one after `to`): how long the
    /// reader went without an answer there.
    pub fn window(
        &self,
        from: std::time::Instant,
        to: std::time::Instant,
    ) -> (usize, std::time::Duration) {
        let start = self.done.partition_point(|t| *t < from);
        let end = self.done.partition_point(|t| *t <= to);
        let around = &self.done[start.saturating_sub(1)..(end + 1).min(self.done.len())];
        let gap = around
            .windows(2)
            .map(|w| w[1] - w[0])
            .max()
            .unwrap_or_default();
        (end - start, gap)
    }

    /// Lines for a test's output: all reads and the failure, then for each `(what, from, to)`
    /// the window's length, its reads and longest pause ([`Reads::window`]), in milliseconds.
    pub fn summary<S: std::fmt::Display>(
        &self,
        windows: &[(S, std::time::Instant, std::time::Instant)],
    ) -> String {
        let failed = self.failed.as_deref().unwrap_or("none");
        let mut out = format!(
            "reader: {} reads, failed read: {failed}; reads and longest pause between two reads around:",
            self.done.len()
        );
        for (what, from, to) in windows {
            let (n, gap) = self.window(*from, *to);
            out += &format!(
                "\n  {what} ({:.1} ms): {n} reads, longest pause {:.2} ms",
                (*to - *from).as_secs_f64() * 1e3,
                gap.as_secs_f64() * 1e3
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caching_page_from_mode_sense6_and_10() {
        // tgtd-like MODE SENSE(6): 4-byte header, no block descriptor, page 08h length 18, WCE set.
        let mut six = vec![0u8; 4 + 20];
        six[0] = (six.len() - 1) as u8;
        six[4] = 0x08;
        six[5] = 18;
        six[6] = 0x04;
        assert_eq!(
            parse_caching_page(&six, false),
            Ok(CachingPage {
                wce: true,
                rcd: false
            })
        );
        // MODE SENSE(10) with an 8-byte block descriptor and another page first.
        let mut ten = vec![0u8; 8 + 8 + 12 + 20];
        let n = ten.len() - 2;
        ten[0] = (n >> 8) as u8;
        ten[1] = n as u8;
        ten[7] = 8;
        ten[16] = 0x0a; // control page, length 10
        ten[17] = 10;
        ten[28] = 0x88; // caching page with PS bit
        ten[29] = 18;
        ten[30] = 0x01;
        assert_eq!(
            parse_caching_page(&ten, true),
            Ok(CachingPage {
                wce: false,
                rcd: true
            })
        );
    }

    #[test]
    fn malformed_mode_sense_is_an_error() {
        assert!(parse_caching_page(&[], false).is_err());
        assert!(parse_caching_page(&[3, 0, 0, 0], false).is_err());
        assert!(parse_caching_page(&[5, 0, 0, 0, 0x08, 18], false).is_err());
        assert!(parse_caching_page(&[0, 9, 0, 0, 0, 0, 0xff, 0xff, 8], true).is_err());
    }
}

//! libsepol's access computation on a binary policy: what audit2why asks.
//!
//! No maintained Rust binding of libsepol exists (crates.io has `selinux`/`selinux-sys` for
//! libselinux only, which answers "allowed or not" but never "why"), so this is a small FFI
//! binding of the calls audit2why makes (libselinux/src/audit2why.c). It links libsepol
//! *statically*: the shared libsepol.so.2 exports neither `sepol_set_policydb` nor the sidtab
//! calls audit2why needs to mutate booleans (only `sepol_set_policydb_from_file`), and a static
//! copy keeps the guest's libsepol version out of it. libsepol.a comes with libsepol-dev, which
//! libselinux1-dev (needed by `selinux-sys`) already pulls in on the build host.
//!
//! libsepol computes on one process-wide policydb and SID table (globals inside the library),
//! so every call on a [`Policy`] takes a process-wide lock and points those globals at its own
//! policydb and SID table first: several policies can live at once (a run keeps the kernel's
//! for all its steps, `oracle::cache`) and concurrent runs of a batch take turns per question.

use std::cell::{Cell, UnsafeCell};
use std::ffi::{c_char, c_int, c_uint, c_void, CStr, CString};
use std::sync::{Mutex, MutexGuard};

/// libsepol's `struct sepol_av_decision`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
struct AvDecision {
    allowed: u32,
    decided: u32,
    auditallow: u32,
    auditdeny: u32,
    seqno: u32,
}

/// libsepol's `sidtab_t` (sepol/policydb/sidtab.h), initialised and owned here.
#[repr(C)]
struct SidTab {
    htable: *mut c_void,
    nel: c_uint,
    next_sid: c_uint,
    shutdown: u8,
}

const SEPOL_COMPUTEAV_TE: c_uint = 0x1;
const SEPOL_COMPUTEAV_CONS: c_uint = 0x2;
const SEPOL_COMPUTEAV_RBAC: c_uint = 0x4;
const SEPOL_COMPUTEAV_BOUNDS: c_uint = 0x8;

#[link(name = "sepol", kind = "static")]
extern "C" {
    fn sepol_policy_file_create(pf: *mut *mut c_void) -> c_int;
    fn sepol_policy_file_set_mem(pf: *mut c_void, data: *mut c_char, len: usize);
    fn sepol_policy_file_free(pf: *mut c_void);
    fn sepol_policydb_create(p: *mut *mut c_void) -> c_int;
    fn sepol_policydb_read(p: *mut c_void, pf: *mut c_void) -> c_int;
    fn sepol_policydb_free(p: *mut c_void);
    fn sepol_set_policydb(p: *mut c_void) -> c_int;
    fn sepol_sidtab_init(s: *mut SidTab) -> c_int;
    fn sepol_set_sidtab(s: *mut SidTab) -> c_int;
    fn sepol_sidtab_shutdown(s: *mut SidTab);
    fn sepol_sidtab_destroy(s: *mut SidTab);
    fn sepol_context_to_sid(ctx: *const c_char, len: usize, sid: *mut u32) -> c_int;
    fn sepol_string_to_security_class(name: *const c_char, class: *mut u16) -> c_int;
    fn sepol_string_to_av_perm(class: u16, perm: *const c_char, av: *mut u32) -> c_int;
    fn sepol_compute_av_reason_buffer(
        ssid: u32,
        tsid: u32,
        class: u16,
        requested: u32,
        avd: *mut AvDecision,
        reason: *mut c_uint,
        reason_buf: *mut *mut c_char,
        flags: c_uint,
    ) -> c_int;
    fn sepol_handle_create() -> *mut c_void;
    fn sepol_handle_destroy(h: *mut c_void);
    fn sepol_msg_set_callback(h: *mut c_void, cb: *const c_void, arg: *mut c_void);
    fn sepol_bool_iterate(
        h: *mut c_void,
        p: *const c_void,
        f: extern "C" fn(*const c_void, *mut c_void) -> c_int,
        arg: *mut c_void,
    ) -> c_int;
    fn sepol_bool_get_name(b: *const c_void) -> *const c_char;
    fn sepol_bool_get_value(b: *const c_void) -> c_int;
    fn sepol_bool_key_create(h: *mut c_void, name: *const c_char, key: *mut *mut c_void) -> c_int;
    fn sepol_bool_key_free(key: *mut c_void);
    fn sepol_bool_query(
        h: *mut c_void,
        p: *const c_void,
        key: *const c_void,
        out: *mut *mut c_void,
    ) -> c_int;
    fn sepol_bool_set_value(b: *mut c_void, value: c_int);
    fn sepol_bool_set(
        h: *mut c_void,
        p: *mut c_void,
        key: *const c_void,
        b: *const c_void,
    ) -> c_int;
    fn sepol_bool_free(b: *mut c_void);
}

static LIBSEPOL: Mutex<()> = Mutex::new(());

/// What libsepol could not do, or what the policy does not have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SepolError {
    /// Setting libsepol up for a policy failed (out of memory, in practice).
    #[error("libsepol: cannot {0}")]
    Setup(&'static str),
    #[error("libsepol cannot read the binary policy")]
    Unreadable,
    #[error("{0:?} holds a NUL")]
    Nul(String),
    #[error("{0} is not a valid context in this policy")]
    InvalidContext(String),
    #[error("the policy has no class {0}")]
    NoClass(String),
    #[error("class {class} has no permission {perm}")]
    NoPermission { class: String, perm: String },
    #[error("libsepol cannot compute {scontext} -> {tcontext} {class}")]
    Compute {
        scontext: String,
        tcontext: String,
        class: String,
    },
    #[error("libsepol: no key for boolean {0}")]
    NoBooleanKey(String),
    #[error("the policy has no boolean {0}")]
    NoBoolean(String),
    #[error("libsepol cannot set boolean {0}")]
    SetBoolean(String),
}

type Result<T> = std::result::Result<T, SepolError>;

/// What libsepol decided for one request, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The requested permissions that were granted.
    pub granted: Vec<String>,
    /// The requested permissions that were refused.
    pub refused: Vec<String>,
    /// Refused permissions a `dontaudit` rule keeps from the log.
    pub dontaudited: Vec<String>,
    /// Refused by type enforcement (no allow rule for the types).
    pub te: bool,
    /// Refused by a constraint.
    pub constraint: bool,
    pub rbac: bool,
    pub bounds: bool,
    /// libsepol's account of the constraints that refused (infix, with each term's result).
    pub text: String,
}

/// A binary policy loaded into libsepol.
pub struct Policy {
    db: *mut c_void,
    handle: *mut c_void,
    /// libsepol fills it (new SIDs) through the global pointer while a call holds the lock.
    sidtab: Box<UnsafeCell<SidTab>>,
    /// A boolean of this copy could not be put back: it is no longer the policy it was loaded
    /// from.
    altered: Cell<bool>,
}

/// libsepol's globals pointed at one policy, for as long as the guard lives.
fn lock() -> MutexGuard<'static, ()> {
    // A poisoned lock only means another run panicked while it held it; whoever takes it next
    // points libsepol's globals afresh.
    LIBSEPOL.lock().unwrap_or_else(|p| p.into_inner())
}

impl Policy {
    /// Load a binary policy (e.g. the bytes of /sys/fs/selinux/policy).
    pub fn load(bytes: &[u8]) -> Result<Policy> {
        let _lock = lock();
        let mut data = bytes.to_vec();
        // SAFETY: every pointer passed is live for the call; `data` outlives the read, which
        // copies what it needs into the policydb.
        unsafe {
            let mut pf = std::ptr::null_mut();
            if sepol_policy_file_create(&mut pf) != 0 {
                return Err(SepolError::Setup("create a policy file"));
            }
            let mut db = std::ptr::null_mut();
            if sepol_policydb_create(&mut db) != 0 {
                sepol_policy_file_free(pf);
                return Err(SepolError::Setup("create a policydb"));
            }
            sepol_policy_file_set_mem(pf, data.as_mut_ptr().cast(), data.len());
            let read = sepol_policydb_read(db, pf);
            sepol_policy_file_free(pf);
            if read != 0 {
                sepol_policydb_free(db);
                return Err(SepolError::Unreadable);
            }
            let sidtab = Box::new(UnsafeCell::new(SidTab {
                htable: std::ptr::null_mut(),
                nel: 0,
                next_sid: 0,
                shutdown: 0,
            }));
            if sepol_sidtab_init(sidtab.get()) != 0 {
                sepol_policydb_free(db);
                return Err(SepolError::Setup("initialise a SID table"));
            }
            let handle = sepol_handle_create();
            if handle.is_null() {
                sepol_sidtab_destroy(sidtab.get());
                sepol_policydb_free(db);
                return Err(SepolError::Setup("create a handle"));
            }
            // Quiet: libsepol would print its messages on stderr, which is the agent's.
            sepol_msg_set_callback(handle, std::ptr::null(), std::ptr::null_mut());
            Ok(Policy {
                db,
                handle,
                sidtab,
                altered: Cell::new(false),
            })
        }
    }

    /// Take the lock and point libsepol's globals at this policy: every call that asks
    /// libsepol through them holds the guard.
    fn bind(&self) -> MutexGuard<'static, ()> {
        let guard = lock();
        // `struct sepol_policydb` is `{ struct policydb p; }`: its address is the policydb's.
        // SAFETY: both point at this policy's own tables, which live as long as it does; the
        // guard keeps any other policy from re-pointing them while the caller computes.
        unsafe {
            sepol_set_policydb(self.db);
            sepol_set_sidtab(self.sidtab.get());
        }
        guard
    }

    /// Still the policy it was loaded from (every boolean flipped for a question was put
    /// back).
    pub fn is_as_loaded(&self) -> bool {
        !self.altered.get()
    }

    /// `f` asked with boolean `name`, now `now`, flipped in this copy, then put back. Err when
    /// the boolean cannot be set; one that cannot be put back leaves the copy marked altered
    /// ([`Policy::is_as_loaded`]).
    pub fn with_flipped<T>(&self, name: &str, now: bool, f: impl FnOnce(&Self) -> T) -> Result<T> {
        self.set_boolean(name, !now)?;
        let out = f(self);
        if let Err(e) = self.set_boolean(name, now) {
            self.altered.set(true);
            return Err(e);
        }
        Ok(out)
    }

    fn sid(&self, context: &str) -> Result<u32> {
        let c = CString::new(context).map_err(|_| SepolError::Nul(context.into()))?;
        let mut sid = 0;
        // SAFETY: c is NUL-terminated; libsepol reads len bytes including the NUL, as
        // audit2why passes them.
        let rc = unsafe { sepol_context_to_sid(c.as_ptr(), context.len() + 1, &mut sid) };
        if rc < 0 {
            return Err(SepolError::InvalidContext(context.into()));
        }
        Ok(sid)
    }

    /// Class number and the bit of each permission.
    fn class(&self, class: &str, perms: &[String]) -> Result<(u16, Vec<(String, u32)>)> {
        let c = CString::new(class).map_err(|_| SepolError::Nul(class.into()))?;
        let mut number = 0u16;
        // SAFETY: NUL-terminated name, an out parameter on the stack.
        if unsafe { sepol_string_to_security_class(c.as_ptr(), &mut number) } < 0 {
            return Err(SepolError::NoClass(class.into()));
        }
        let mut bits = Vec::new();
        for p in perms {
            let pc = CString::new(p.as_str()).map_err(|_| SepolError::Nul(p.clone()))?;
            let mut av = 0u32;
            // SAFETY: as above.
            if unsafe { sepol_string_to_av_perm(number, pc.as_ptr(), &mut av) } < 0 || av == 0 {
                return Err(SepolError::NoPermission {
                    class: class.into(),
                    perm: p.clone(),
                });
            }
            bits.push((p.clone(), av));
        }
        Ok((number, bits))
    }

    /// The decision on `perms` of `class` from `scontext` to `tcontext`, with libsepol's reasons.
    pub fn compute(
        &self,
        scontext: &str,
        tcontext: &str,
        class: &str,
        perms: &[String],
    ) -> Result<Decision> {
        let _bound = self.bind();
        let ssid = self.sid(scontext)?;
        let tsid = self.sid(tcontext)?;
        let (number, bits) = self.class(class, perms)?;
        let requested = bits.iter().fold(0, |a, (_, b)| a | b);
        let mut avd = AvDecision::default();
        let mut reason: c_uint = 0;
        let mut buf: *mut c_char = std::ptr::null_mut();
        // SAFETY: out parameters on the stack; `buf` is malloc'd by libsepol (or left null) and
        // freed below with free(3), as its header asks.
        let rc = unsafe {
            sepol_compute_av_reason_buffer(
                ssid,
                tsid,
                number,
                requested,
                &mut avd,
                &mut reason,
                &mut buf,
                0,
            )
        };
        let text = if buf.is_null() {
            String::new()
        } else {
            // SAFETY: a NUL-terminated string from libsepol, freed right after the copy.
            unsafe {
                let t = CStr::from_ptr(buf).to_string_lossy().into_owned();
                nix::libc::free(buf.cast());
                t
            }
        };
        if rc < 0 {
            return Err(SepolError::Compute {
                scontext: scontext.into(),
                tcontext: tcontext.into(),
                class: class.into(),
            });
        }
        let pick = |f: &dyn Fn(u32) -> bool| -> Vec<String> {
            bits.iter()
                .filter(|(_, b)| f(*b))
                .map(|(p, _)| p.clone())
                .collect()
        };
        Ok(Decision {
            granted: pick(&|b| avd.allowed & b == b),
            refused: pick(&|b| avd.allowed & b != b),
            dontaudited: pick(&|b| avd.allowed & b != b && avd.auditdeny & b == 0),
            te: reason & SEPOL_COMPUTEAV_TE != 0,
            constraint: reason & SEPOL_COMPUTEAV_CONS != 0,
            rbac: reason & SEPOL_COMPUTEAV_RBAC != 0,
            bounds: reason & SEPOL_COMPUTEAV_BOUNDS != 0,
            text: text.trim().to_string(),
        })
    }

    /// Every boolean of the policy with its current value.
    pub fn booleans(&self) -> Vec<(String, bool)> {
        extern "C" fn collect(b: *const c_void, arg: *mut c_void) -> c_int {
            // SAFETY: `arg` is the Vec passed below; `b` a live boolean for this callback.
            unsafe {
                let out = &mut *(arg as *mut Vec<(String, bool)>);
                let name = CStr::from_ptr(sepol_bool_get_name(b))
                    .to_string_lossy()
                    .into_owned();
                out.push((name, sepol_bool_get_value(b) != 0));
            }
            0
        }
        let mut out: Vec<(String, bool)> = Vec::new();
        let _bound = self.bind();
        // SAFETY: the callback only touches `out`, which lives across the call.
        unsafe {
            sepol_bool_iterate(
                self.handle,
                self.db,
                collect,
                (&mut out as *mut Vec<(String, bool)>).cast(),
            );
        }
        out
    }

    /// Set boolean `name` in the loaded copy of the policy (never the kernel's).
    fn set_boolean(&self, name: &str, value: bool) -> Result<()> {
        let c = CString::new(name).map_err(|_| SepolError::Nul(name.into()))?;
        let _bound = self.bind();
        // SAFETY: key and boolean are created, used and freed here; libsepol copies the value
        // into the policydb and re-evaluates the conditional rules.
        unsafe {
            let mut key = std::ptr::null_mut();
            if sepol_bool_key_create(self.handle, c.as_ptr(), &mut key) < 0 {
                return Err(SepolError::NoBooleanKey(name.into()));
            }
            let mut b = std::ptr::null_mut();
            if sepol_bool_query(self.handle, self.db, key, &mut b) < 0 || b.is_null() {
                sepol_bool_key_free(key);
                return Err(SepolError::NoBoolean(name.into()));
            }
            sepol_bool_set_value(b, c_int::from(value));
            let rc = sepol_bool_set(self.handle, self.db, key, b);
            sepol_bool_free(b);
            sepol_bool_key_free(key);
            if rc < 0 {
                return Err(SepolError::SetBoolean(name.into()));
            }
        }
        Ok(())
    }
}

impl Drop for Policy {
    fn drop(&mut self) {
        let _lock = lock();
        // SAFETY: created in `load`, released once, under the lock. libsepol's globals may
        // still point here; every call points them afresh before it uses them.
        unsafe {
            sepol_sidtab_shutdown(self.sidtab.get());
            sepol_sidtab_destroy(self.sidtab.get());
            sepol_handle_destroy(self.handle);
            sepol_policydb_free(self.db);
        }
    }
}

/// Test-only: compile a CIL policy with libsepol's own compiler (secilc's library) into a
/// binary policy, so the oracle's answers are checked against rules the test wrote.
#[cfg(test)]
/// Its error names the libsepol call that failed (libsepol logs why on stderr).
pub(crate) fn compile_cil(cil: &str) -> std::result::Result<Vec<u8>, &'static str> {
    extern "C" {
        fn cil_db_init(db: *mut *mut c_void);
        fn cil_db_destroy(db: *mut *mut c_void);
        fn cil_set_mls(db: *mut c_void, mls: c_int);
        fn cil_add_file(
            db: *mut c_void,
            name: *const c_char,
            data: *const c_char,
            size: usize,
        ) -> c_int;
        fn cil_compile(db: *mut c_void) -> c_int;
        fn cil_set_log_level(level: c_int);
        fn cil_build_policydb(db: *mut c_void, out: *mut *mut c_void) -> c_int;
        fn sepol_policydb_to_image(
            h: *mut c_void,
            p: *mut c_void,
            data: *mut *mut c_void,
            len: *mut usize,
        ) -> c_int;
    }
    let _lock = lock();
    // SAFETY: the CIL db, the policydb and the image are created, used and freed here.
    unsafe {
        let mut db = std::ptr::null_mut();
        cil_set_log_level(1);
        cil_db_init(&mut db);
        cil_set_mls(db, 1);
        let name = c"test.cil";
        let result = (|| {
            if cil_add_file(db, name.as_ptr(), cil.as_ptr().cast(), cil.len()) != 0 {
                return Err("cil_add_file failed");
            }
            if cil_compile(db) != 0 {
                return Err("cil_compile failed");
            }
            let mut pdb = std::ptr::null_mut();
            if cil_build_policydb(db, &mut pdb) != 0 {
                return Err("cil_build_policydb failed");
            }
            let h = sepol_handle_create();
            let mut data = std::ptr::null_mut();
            let mut len = 0usize;
            let rc = sepol_policydb_to_image(h, pdb, &mut data, &mut len);
            sepol_handle_destroy(h);
            sepol_policydb_free(pdb);
            if rc != 0 || data.is_null() {
                return Err("sepol_policydb_to_image failed");
            }
            let bytes = std::slice::from_raw_parts(data as *const u8, len).to_vec();
            nix::libc::free(data);
            Ok(bytes)
        })();
        cil_db_destroy(&mut db);
        result
    }
}

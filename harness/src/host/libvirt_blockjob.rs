//! Snapshots and block jobs through libvirt's C API: virt 0.5 has no binding for them, so these
//! call virt-sys directly, each failure read back as libvirt's own error.

use std::ffi::CString;
use std::ptr;

use virt::error::Error as VirtError;
use virt::sys;

use super::{convert_error, harness_error, Libvirt, Result};

/// A disk's block job as libvirt reports it (`virsh blockjob --info`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobInfo {
    /// virDomainBlockJobType: 1 pull, 2 copy, 3 commit, 4 active commit, 5 backup.
    pub kind: i32,
    pub cur: u64,
    pub end: u64,
}

impl JobInfo {
    /// libvirt keeps cur below end until QEMU says the job is ready to pivot (for copies and
    /// active commits), so cur == end is the documented "ready" condition.
    pub fn ready(&self) -> bool {
        self.end > 0 && self.cur == self.end
    }
}

fn c(s: &str) -> Result<CString> {
    CString::new(s).map_err(|_| harness_error(format!("{s:?} contains a NUL byte")))
}

fn last() -> super::LibvirtError {
    convert_error(&VirtError::last_error())
}

impl Libvirt {
    /// An external, disk-only snapshot described by `xml`, with no libvirt metadata kept.
    pub fn snapshot_create_disk_only(&self, name: &str, xml: &str) -> Result<()> {
        self.snapshot_create(
            name,
            xml,
            sys::VIR_DOMAIN_SNAPSHOT_CREATE_DISK_ONLY
                | sys::VIR_DOMAIN_SNAPSHOT_CREATE_NO_METADATA
                | sys::VIR_DOMAIN_SNAPSHOT_CREATE_ATOMIC,
        )
    }

    /// An internal snapshot of every disk (and of the memory of a running guest), with no
    /// libvirt metadata kept: the snapshot lives only inside the qcow2 images.
    pub fn snapshot_create_internal(&self, name: &str) -> Result<()> {
        self.snapshot_create(
            name,
            "<domainsnapshot/>",
            sys::VIR_DOMAIN_SNAPSHOT_CREATE_NO_METADATA,
        )
    }

    fn snapshot_create(&self, name: &str, xml: &str, flags: u32) -> Result<()> {
        let dom = self.domain(name)?;
        let xml = c(xml)?;
        // SAFETY: a live domain reference and a NUL-terminated string that outlive the call.
        let snap = unsafe { sys::virDomainSnapshotCreateXML(dom.as_ptr(), xml.as_ptr(), flags) };
        if snap.is_null() {
            return Err(last());
        }
        // SAFETY: `snap` is the non-null reference the call above returned; released once.
        unsafe {
            sys::virDomainSnapshotFree(snap);
        }
        Ok(())
    }

    /// Start a commit job; `top: None` with `active` commits the active layer.
    pub fn block_commit(
        &self,
        name: &str,
        disk: &str,
        base: Option<&str>,
        top: Option<&str>,
        active: bool,
    ) -> Result<()> {
        let dom = self.domain(name)?;
        let disk = c(disk)?;
        let base = base.map(c).transpose()?;
        let top = top.map(c).transpose()?;
        let flags = if active {
            sys::VIR_DOMAIN_BLOCK_COMMIT_ACTIVE
        } else {
            0
        };
        let p = |s: &Option<CString>| s.as_ref().map_or(ptr::null(), |s| s.as_ptr());
        // SAFETY: every pointer is either null (allowed for base and top) or a live C string.
        let r = unsafe {
            sys::virDomainBlockCommit(dom.as_ptr(), disk.as_ptr(), p(&base), p(&top), 0, flags)
        };
        if r < 0 {
            Err(last())
        } else {
            Ok(())
        }
    }

    /// Start a copy job of `disk` to the file `dest_xml` describes (a `<disk>` element).
    pub fn block_copy(&self, name: &str, disk: &str, dest_xml: &str, flags: u32) -> Result<()> {
        let dom = self.domain(name)?;
        let disk = c(disk)?;
        let dest = c(dest_xml)?;
        // SAFETY: live domain, two C strings; no typed parameters (null, 0).
        let r = unsafe {
            sys::virDomainBlockCopy(
                dom.as_ptr(),
                disk.as_ptr(),
                dest.as_ptr(),
                ptr::null_mut(),
                0,
                flags,
            )
        };
        if r < 0 {
            Err(last())
        } else {
            Ok(())
        }
    }

    /// The disk's current block job, None when it has none.
    pub fn block_job_info(&self, name: &str, disk: &str) -> Result<Option<JobInfo>> {
        let dom = self.domain(name)?;
        let disk = c(disk)?;
        let mut info = sys::virDomainBlockJobInfo {
            type_: 0,
            bandwidth: 0,
            cur: 0,
            end: 0,
        };
        // SAFETY: `info` is a valid, writable struct for the duration of the call.
        let r = unsafe { sys::virDomainGetBlockJobInfo(dom.as_ptr(), disk.as_ptr(), &mut info, 0) };
        match r {
            r if r < 0 => Err(last()),
            0 => Ok(None),
            _ => Ok(Some(JobInfo {
                kind: info.type_,
                cur: info.cur,
                end: info.end,
            })),
        }
    }

    /// End the disk's job: `pivot` switches to the job's result, otherwise it is cancelled.
    /// Synchronous: libvirt returns once the job is gone.
    pub fn block_job_abort(&self, name: &str, disk: &str, pivot: bool) -> Result<()> {
        let dom = self.domain(name)?;
        let disk = c(disk)?;
        let flags = if pivot {
            sys::VIR_DOMAIN_BLOCK_JOB_ABORT_PIVOT
        } else {
            0
        };
        // SAFETY: live domain, C string.
        let r = unsafe { sys::virDomainBlockJobAbort(dom.as_ptr(), disk.as_ptr(), flags) };
        if r < 0 {
            Err(last())
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_means_in_sync_and_not_empty() {
        let j = |cur, end| JobInfo { kind: 4, cur, end };
        assert!(j(16, 16).ready());
        assert!(!j(8, 16).ready());
        // A job that has not measured its work yet (0/0) is not ready.
        assert!(!j(0, 0).ready());
    }
}

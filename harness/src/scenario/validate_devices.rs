//! Checks of a domain's devices (`scenario::devices`) and of the runtime files that only such a
//! device makes (`$vm1.swtpmdir`, `$vm1.swtpmlog`, `$vm1.ramdir`), and of the helper processes
//! libvirt runs for them.

use super::super::devices::{MemoryAccess, Pmem, Virtiofs};
use super::super::files::RuntimePlace;
use super::super::model::*;
use super::Checker;

impl Checker<'_> {
    /// A pmem device's image exists at define time and is a raw file with a size (QEMU maps
    /// the whole file; a qcow2 would be mapped as bytes, not as a disk).
    pub(super) fn pmem(&mut self, p: &At<Pmem>) {
        let n = &p.value.image;
        self.created_image(n, "a persistent memory device");
        if let Some(i) = self.s.images.get(&n.value) {
            let i = &i.value;
            if i.format != ImageFormat::Raw || i.copy_of.is_some() || i.size.is_none() {
                let m = format!(
                    "the persistent memory device's image `{}` must be a new raw file with a size (e.g. {{size: 16M}})",
                    n.value
                );
                self.problem(n, m);
            }
        }
    }

    /// A virtiofs export is a directory image of the sandbox, its name a mount tag QEMU takes
    /// (at most 36 bytes), and its domain's RAM is shared, which vhost-user needs (libvirt
    /// refuses the domain otherwise).
    pub(super) fn virtiofs(&mut self, domain: &Name, d: &Domain, f: &At<Virtiofs>) {
        let n = &f.value.dir;
        self.image(n);
        if let Some(i) = self.s.images.get(&n.value) {
            if !i.value.directory {
                let m = format!(
                    "virtiofs exports a directory: give image `{}` `directory: true` (and no size)",
                    n.value
                );
                self.problem(n, m);
            }
        }
        if n.value.as_str().len() > 36 {
            let m = format!(
                "`{}` is the export's mount tag, which QEMU keeps to 36 characters: use a shorter image name",
                n.value
            );
            self.problem(n, m);
        }
        let shared = d
            .memory_backing
            .as_ref()
            .is_some_and(|m| m.value.access == MemoryAccess::Shared);
        if !shared {
            let m = format!(
                "virtiofs needs the guest's RAM shared with virtiofsd: give domain `{domain}` `memory_backing: {{source: memfd}}`"
            );
            self.problem(f, m);
        }
    }

    /// `helper_process` names domains of the scenario, with valid matches.
    pub(super) fn helper_expect(&mut self, e: &Expect) {
        for (d, helpers) in &e.helper_process {
            self.domain(d);
            for (h, m) in helpers {
                self.context_match(h, &format!("{} of {}", h.value, d.value), m);
            }
        }
    }

    /// A file only a device makes is named only for a domain that has that device.
    pub(super) fn runtime_place(&mut self, domain: &At<Name>, place: RuntimePlace) {
        let Some(d) = self.s.domains.get(&domain.value) else {
            return;
        };
        let (has, key) = match place {
            RuntimePlace::Swtpmdir | RuntimePlace::Swtpmlog => (d.tpm.is_some(), "tpm: {}"),
            RuntimePlace::Ramdir => (d.memory_backing.is_some(), "memory_backing: {}"),
            RuntimePlace::Fspid => (!d.virtiofs.is_empty(), "virtiofs: [{dir: ...}]"),
        };
        if !has {
            let m = format!(
                "`${}.{}` names a file only libvirt makes for a domain with `{key}`; add it to domain `{}`",
                domain.value,
                place.as_str(),
                domain.value
            );
            self.problem(domain, m);
        }
    }

    /// `swtpm_process` and `swtpm_owner` name domains that have a TPM.
    pub(super) fn swtpm_expect(&mut self, e: &Expect) {
        for (d, m) in &e.swtpm_process {
            self.swtpm_domain(d);
            self.context_match(d, &format!("swtpm of {}", d.value), m);
        }
        for d in e.swtpm_owner.keys() {
            self.swtpm_domain(d);
        }
    }

    fn swtpm_domain(&mut self, d: &At<Name>) {
        self.domain(d);
        if self
            .s
            .domains
            .get(&d.value)
            .is_some_and(|x| x.tpm.is_none())
        {
            let m = format!(
                "domain `{}` has no swtpm to judge; give it `tpm: {{}}`",
                d.value
            );
            self.problem(d, m);
        }
    }
}

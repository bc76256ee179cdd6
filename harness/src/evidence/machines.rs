//! libvirt's VIRT_MACHINE_ID audit records: which domain got which labels. libvirt writes one
//! per security model when it generates a guest's label (qemuProcessPrepareDomain), before
//! QEMU runs, so it is evidence of a guest's MCS level even when QEMU is denied at once and
//! dies before anyone could read its process label - the case that made a parallel run take a
//! neighbour's start-up denials as its own.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use linux_audit_parser::Value;

use crate::context::Context;
use crate::evidence::audit::{event_id_in_range, value_str};

/// One VIRT_MACHINE_ID record: the domain's name and the labels libvirt gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachineLabel {
    pub vm: String,
    /// `vm-ctx` and `img-ctx` where they are SELinux contexts (the DAC record's are uid:gid).
    pub contexts: Vec<Context>,
    /// When the kernel stamped the record.
    pub stamped: Option<SystemTime>,
}

/// The record in an auditd line, or None for any other line.
pub fn parse(line: &str) -> Option<MachineLabel> {
    let line = line.trim_end_matches(['\n', '\r']);
    let rest = line
        .strip_prefix("node=")
        .map_or(line, |r| r.split_once(' ').map_or("", |(_, after)| after));
    if !(rest.starts_with("type=VIRT_MACHINE_ID ") || rest.starts_with("type=2502 "))
        || !event_id_in_range(line)
    {
        return None;
    }
    let parsed = linux_audit_parser::parse(format!("{line}\n").as_bytes(), false).ok()?;
    // libvirt's fields sit inside its msg='...', which the parser gives as a map.
    let msg = parsed.body.into_iter().find_map(|(k, v)| match (k, v) {
        (k, Value::Map(m)) if k == *"msg" => Some(m),
        _ => None,
    })?;
    let field = |name: &str| {
        msg.iter()
            .find(|(k, _)| *k == *name)
            .and_then(|(_, v)| value_str(v))
    };
    let vm = field("vm")?;
    let contexts = ["vm-ctx", "img-ctx"]
        .into_iter()
        .filter_map(field)
        .filter_map(|v| v.parse::<Context>().ok())
        .collect();
    Some(MachineLabel {
        vm,
        contexts,
        stamped: UNIX_EPOCH.checked_add(Duration::from_millis(parsed.id.timestamp)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // As libvirt 9.0 writes it (domain_audit.c virDomainAuditSecurityLabel), one per model.
    const SELINUX: &str = "type=VIRT_MACHINE_ID msg=audit(1764625000.123:812): pid=1204 uid=0 auid=4294967295 ses=4294967295 subj=system_u:system_r:virtd_t:s0-s0:c0.c1023 msg='virt=kvm vm=\"selinux-harness-ed3518f-vm1\" uuid=650c2a3b-2a7d-a7bd-bbc7-aa0069007bbf vm-ctx=system_u:system_r:svirt_t:s0:c424,c957 img-ctx=system_u:object_r:svirt_image_t:s0:c424,c957 model=selinux exe=\"/usr/sbin/libvirtd\" hostname=? addr=? terminal=? res=success'";
    const DAC: &str = "type=VIRT_MACHINE_ID msg=audit(1764625000.123:813): pid=1204 uid=0 auid=4294967295 ses=4294967295 subj=system_u:system_r:virtd_t:s0-s0:c0.c1023 msg='virt=kvm vm=\"selinux-harness-ed3518f-vm1\" uuid=650c2a3b-2a7d-a7bd-bbc7-aa0069007bbf vm-ctx=+64055:+64055 img-ctx=+64055:+64055 model=dac exe=\"/usr/sbin/libvirtd\" hostname=? addr=? terminal=? res=success'";

    #[test]
    fn the_selinux_record_names_the_domain_and_both_labels() {
        let m = parse(SELINUX).unwrap();
        assert_eq!(m.vm, "selinux-harness-ed3518f-vm1");
        let shown: Vec<String> = m.contexts.iter().map(|c| c.to_string()).collect();
        assert_eq!(
            shown,
            [
                "system_u:system_r:svirt_t:s0:c424,c957",
                "system_u:object_r:svirt_image_t:s0:c424,c957"
            ]
        );
        assert_eq!(
            m.stamped,
            UNIX_EPOCH.checked_add(Duration::from_millis(1_764_625_000_123))
        );
    }

    #[test]
    fn the_dac_record_names_the_domain_without_contexts() {
        let m = parse(DAC).unwrap();
        assert_eq!(m.vm, "selinux-harness-ed3518f-vm1");
        assert!(m.contexts.is_empty());
    }

    #[test]
    fn other_records_are_not_machines() {
        let node = format!("node=host {SELINUX}");
        assert!(parse(&node).is_some());
        assert!(parse(&SELINUX.replace("VIRT_MACHINE_ID", "VIRT_CONTROL")).is_none());
        assert!(parse("type=AVC msg=audit(1.2:3): avc:  denied  { read }").is_none());
        assert!(parse(&SELINUX.replace("vm=\"selinux-harness-ed3518f-vm1\" ", "")).is_none());
    }
}

//! The snapshot and block-job actions on the target: an external disk-only snapshot, a commit,
//! a copy, and waiting on a disk's block job through libvirt's job info (polled against a
//! deadline, never a fixed sleep) before pivoting or aborting it. Also their virsh equivalents.

use std::time::Instant;

use quick_xml::escape::escape;
use quick_xml::events::Event as XmlEvent;

use super::plan::{ImageSource, Plan};
use crate::evidence::Outcome;
use crate::host::libvirt::{JobInfo, Libvirt};
use crate::interrupt::Interrupt;
use crate::scenario::{
    Action, BlockCommit, BlockCopy, BlockJob, JobFinish, JobUntil, Name, SnapshotCreate,
    SnapshotKind, BLOCK_JOB_DEADLINE,
};
use crate::wait::{wait_until, Waited};

/// How often a block job's progress is asked for while waiting.
const POLL: std::time::Duration = std::time::Duration::from_millis(100);

/// Perform one of the storage actions; `None` for any other action.
pub(super) fn act(
    lv: &Libvirt,
    plan: &Plan,
    action: &Action,
    interrupt: &Interrupt,
) -> Option<(String, Outcome)> {
    let done = |r: Result<(), crate::evidence::LibvirtError>| match r {
        Ok(()) => Outcome::Ok,
        Err(e) => Outcome::Libvirt(e),
    };
    Some(match action {
        Action::SnapshotCreate(a) => {
            let dom = plan.domain_name(&a.domain.value);
            let o = match a.kind() {
                Some(SnapshotKind::Internal) => done(lv.snapshot_create_internal(dom)),
                Some(SnapshotKind::External { disk, overlay }) => match lv.live_xml(dom) {
                    Ok(live) => done(lv.snapshot_create_disk_only(
                        dom,
                        &snapshot_xml(plan, &disk.value, &overlay.value, &disk_targets(&live)),
                    )),
                    Err(e) => Outcome::Libvirt(e),
                },
                None => Outcome::Other {
                    message: "snapshot_create: an external snapshot needs `disk` and `overlay`, an internal one neither".into(),
                },
            };
            (snapshot_title(a), o)
        }
        Action::Blockcommit(a) => {
            let path = |n: &Option<crate::scenario::At<crate::scenario::Name>>| {
                n.as_ref()
                    .map(|n| plan.image_path(&n.value).to_string_lossy().into_owned())
            };
            let (top, base) = (path(&a.top), path(&a.base));
            let o = done(lv.block_commit(
                plan.domain_name(&a.domain.value),
                &a.disk.value,
                base.as_deref(),
                top.as_deref(),
                a.top.is_none(),
            ));
            (commit_title(a), o)
        }
        Action::Blockcopy(a) => {
            let o = done(lv.block_copy(
                plan.domain_name(&a.domain.value),
                &a.disk.value,
                &copy_destination_xml(plan, a),
                copy_flags(plan, a),
            ));
            (
                format!(
                    "blockcopy {} {} -> {}",
                    a.domain.value, a.disk.value, a.destination.value
                ),
                o,
            )
        }
        Action::BlockJob(a) => (job_title(a), block_job(lv, plan, a, interrupt)),
        _ => return None,
    })
}

fn snapshot_title(a: &SnapshotCreate) -> String {
    match a.kind() {
        Some(SnapshotKind::External { disk, overlay }) => format!(
            "snapshot_create {} {} -> {}",
            a.domain.value, disk.value, overlay.value
        ),
        _ => format!("snapshot_create {} (internal)", a.domain.value),
    }
}

fn commit_title(a: &BlockCommit) -> String {
    let mut t = format!("blockcommit {} {}", a.domain.value, a.disk.value);
    match &a.top {
        Some(top) => t.push_str(&format!(" top {}", top.value)),
        None => t.push_str(" (active)"),
    }
    if let Some(b) = &a.base {
        t.push_str(&format!(" into {}", b.value));
    }
    t
}

fn job_title(a: &BlockJob) -> String {
    let until = match a.until.value {
        JobUntil::Ready => "ready",
        JobUntil::Gone => "gone",
    };
    let mut t = format!(
        "block_job {} {} until {until}",
        a.domain.value, a.disk.value
    );
    match a.finish.as_ref().map(|f| f.value) {
        Some(JobFinish::Pivot) => t.push_str(", pivot"),
        Some(JobFinish::Abort) => t.push_str(", abort"),
        None => {}
    }
    t
}

/// Wait for the job's condition, then end it as asked.
fn block_job(lv: &Libvirt, plan: &Plan, a: &BlockJob, interrupt: &Interrupt) -> Outcome {
    let dom = plan.domain_name(&a.domain.value);
    let disk = a.disk.value.as_str();
    let within = a.within.map_or(BLOCK_JOB_DEADLINE, |d| d.0);
    let mut last: Option<JobInfo> = None;
    let waited = wait_until(
        Some(Instant::now() + within),
        POLL,
        Some(interrupt),
        || match lv.block_job_info(dom, disk) {
            Err(e) => Some(Err(Outcome::Libvirt(e))),
            Ok(info) => {
                last = info;
                match (a.until.value, info) {
                    (JobUntil::Gone, None) => Some(Ok(())),
                    (JobUntil::Ready, Some(j)) if j.ready() => Some(Ok(())),
                    (JobUntil::Ready, None) => Some(Err(Outcome::Other {
                        message: format!("disk {disk} has no block job to wait for (it ended, or none was started)"),
                    })),
                    _ => None,
                }
            }
        },
    );
    match waited {
        Waited::Met(Ok(())) => {}
        Waited::Met(Err(o)) => return o,
        Waited::TimedOut => {
            let state = last.map_or("no job".to_string(), |j| {
                format!("job type {} at {}/{}", j.kind, j.cur, j.end)
            });
            return Outcome::Other {
                message: format!(
                    "the block job on {disk} was not {} within {} s ({state})",
                    if a.until.value == JobUntil::Ready {
                        "ready"
                    } else {
                        "gone"
                    },
                    within.as_secs()
                ),
            };
        }
        Waited::Interrupted => {
            return Outcome::Other {
                message: "interrupted while waiting for the block job".into(),
            }
        }
    }
    match a.finish.as_ref().map(|f| f.value) {
        None => Outcome::Ok,
        Some(f) => match lv.block_job_abort(dom, disk, f == JobFinish::Pivot) {
            Ok(()) => Outcome::Ok,
            Err(e) => Outcome::Libvirt(e),
        },
    }
}

/// Every `<target dev=...>` of the domain's disks, from its live XML.
fn disk_targets(xml: &str) -> Vec<String> {
    let mut r = quick_xml::Reader::from_str(xml);
    let mut in_disk = 0usize;
    let mut out = Vec::new();
    loop {
        match r.read_event() {
            Ok(XmlEvent::Start(e)) if e.name().as_ref() == b"disk" => in_disk += 1,
            Ok(XmlEvent::End(e)) if e.name().as_ref() == b"disk" => {
                in_disk = in_disk.saturating_sub(1)
            }
            Ok(XmlEvent::Empty(e) | XmlEvent::Start(e))
                if in_disk > 0 && e.name().as_ref() == b"target" =>
            {
                if let Ok(Some(dev)) = e.try_get_attribute("dev") {
                    if let Ok(v) = dev.unescape_value() {
                        out.push(v.into_owned());
                    }
                }
            }
            Ok(XmlEvent::Eof) | Err(_) => break,
            _ => {}
        }
    }
    out
}

/// The snapshot: the named disk external into the overlay, every other disk left out (or
/// libvirt would make overlays for them too, named by itself).
fn snapshot_xml(plan: &Plan, disk: &str, overlay: &Name, targets: &[String]) -> String {
    let overlay = escape(plan.image_path(overlay).to_string_lossy().into_owned()).into_owned();
    let mut disks = format!(
        "<disk name='{}' snapshot='external'><driver type='qcow2'/><source file='{overlay}'/></disk>",
        escape(disk)
    );
    for t in targets.iter().filter(|t| t.as_str() != disk) {
        disks.push_str(&format!(
            "<disk name='{}' snapshot='no'/>",
            escape(t.as_str())
        ));
    }
    format!("<domainsnapshot><disks>{disks}</disks></domainsnapshot>")
}

fn copy_destination_xml(plan: &Plan, a: &BlockCopy) -> String {
    format!(
        "<disk type='file'><source file='{}'/><driver type='{}'/></disk>",
        escape(
            plan.image_path(&a.destination.value)
                .to_string_lossy()
                .into_owned()
        ),
        a.format.as_str()
    )
}

/// Transient job always (libvirt refuses a copy of a persistent domain otherwise); reuse the
/// destination when the harness made it.
fn copy_flags(plan: &Plan, a: &BlockCopy) -> u32 {
    use virt::sys;
    let mut f = sys::VIR_DOMAIN_BLOCK_COPY_TRANSIENT_JOB;
    if a.shallow {
        f |= sys::VIR_DOMAIN_BLOCK_COPY_SHALLOW;
    }
    if plan.images[&a.destination.value].source != ImageSource::ByStep {
        f |= sys::VIR_DOMAIN_BLOCK_COPY_REUSE_EXT;
    }
    f
}

/// What a human would type for the storage actions (`explain`, repro bundles).
pub(super) fn virsh(plan: &Plan, action: &Action) -> Option<Vec<String>> {
    let path = |n: &crate::scenario::Name| plan.image_path(n).display().to_string();
    Some(match action {
        Action::SnapshotCreate(a) => vec![match a.kind() {
            Some(SnapshotKind::External { disk, overlay }) => format!(
                "virsh snapshot-create-as {} --disk-only --no-metadata --atomic --diskspec {},snapshot=external,driver=qcow2,file={}   # other disks: --diskspec DISK,snapshot=no",
                plan.domain_name(&a.domain.value),
                disk.value,
                path(&overlay.value)
            ),
            _ => format!(
                "virsh snapshot-create-as {} --no-metadata   # internal: in every qcow2 disk, with the memory of a running guest",
                plan.domain_name(&a.domain.value)
            ),
        }],
        Action::Blockcommit(a) => {
            let mut c = format!("virsh blockcommit {} {}", plan.domain_name(&a.domain.value), a.disk.value);
            match &a.top {
                Some(t) => c.push_str(&format!(" --top {}", path(&t.value))),
                None => c.push_str(" --active"),
            }
            if let Some(b) = &a.base {
                c.push_str(&format!(" --base {}", path(&b.value)));
            }
            vec![c]
        }
        Action::Blockcopy(a) => {
            let mut c = format!(
                "virsh blockcopy {} {} --dest {} --format {} --transient-job",
                plan.domain_name(&a.domain.value),
                a.disk.value,
                path(&a.destination.value),
                a.format.as_str()
            );
            if a.shallow {
                c.push_str(" --shallow");
            }
            if plan.images[&a.destination.value].source != ImageSource::ByStep {
                c.push_str(" --reuse-external");
            }
            vec![c]
        }
        Action::BlockJob(a) => {
            let dom = plan.domain_name(&a.domain.value);
            let within = a.within.map_or(BLOCK_JOB_DEADLINE, |d| d.0).as_secs();
            let mut v = vec![match a.until.value {
                JobUntil::Ready => format!("virsh blockjob {dom} {} --info   # repeat until it says 100 % (ready), at most {within} s", a.disk.value),
                JobUntil::Gone => format!("virsh blockjob {dom} {} --info   # repeat until it prints no job, at most {within} s", a.disk.value),
            }];
            match a.finish.as_ref().map(|f| f.value) {
                Some(JobFinish::Pivot) => v.push(format!("virsh blockjob {dom} {} --pivot", a.disk.value)),
                Some(JobFinish::Abort) => v.push(format!("virsh blockjob {dom} {} --abort", a.disk.value)),
                None => {}
            }
            v
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::load_str;
    use std::path::Path;

    const CHAIN: &str = "name: x\ndescription: d\nimages:\n  base.qcow2: {size: 16M, format: qcow2}\n  top.qcow2: {format: qcow2, backing: base.qcow2}\n  snap.qcow2: {format: qcow2, create: false}\n  copy.img: {create: false}\n  other.img: {size: 1M}\ndomains:\n  vm1: {disks: [top.qcow2, other.img]}\nsteps:\n  - start: vm1\n  - snapshot_create: {domain: vm1, disk: vda, overlay: snap.qcow2}\n  - blockcommit: {domain: vm1, disk: vda, top: top.qcow2, base: base.qcow2}\n  - block_job: {domain: vm1, disk: vda, until: gone}\n  - blockcommit: {domain: vm1, disk: vda}\n  - block_job: {domain: vm1, disk: vda, finish: pivot, within: 20s}\n  - blockcopy: {domain: vm1, disk: vda, destination: copy.img}\n  - block_job: {domain: vm1, disk: vda, finish: abort}\n  - snapshot_create: {domain: vm1, internal: true}\n";

    fn plan() -> (crate::scenario::Scenario, Plan) {
        let s = load_str(Path::new("t.yaml"), CHAIN).unwrap();
        let p = Plan::new(&s, None, "r1", Path::new("/var/lib/libvirt/images")).unwrap();
        (s, p)
    }

    #[test]
    fn virsh_equivalents_of_the_storage_actions() {
        let (s, p) = plan();
        let lines: Vec<String> = s.steps[1..]
            .iter()
            .flat_map(|st| virsh(&p, &st.action).unwrap())
            .collect();
        insta::assert_snapshot!(lines.join("\n"));
        assert!(
            virsh(&p, &s.steps[0].action).is_none(),
            "start is not a storage action"
        );
    }

    #[test]
    fn a_snapshot_leaves_every_other_disk_out() {
        let (s, p) = plan();
        let Action::SnapshotCreate(a) = &s.steps[1].action else {
            panic!()
        };
        let Some(SnapshotKind::External { disk, overlay }) = a.kind() else {
            panic!("external")
        };
        let live = "<domain><devices><disk type='file'><source file='/x'/><target dev='vda' bus='virtio'/></disk><disk type='file'><target dev='vdb'/></disk></devices></domain>";
        assert_eq!(disk_targets(live), ["vda", "vdb"]);
        insta::assert_snapshot!(snapshot_xml(
            &p,
            &disk.value,
            &overlay.value,
            &disk_targets(live)
        ));
    }

    #[test]
    fn a_copy_is_transient_and_reuses_only_an_image_the_harness_made() {
        let (s, p) = plan();
        let Action::Blockcopy(a) = &s.steps[6].action else {
            panic!()
        };
        assert_eq!(
            copy_flags(&p, a),
            virt::sys::VIR_DOMAIN_BLOCK_COPY_TRANSIENT_JOB
        );
        let mut reuse = a.clone();
        reuse.destination.value = "other.img".parse().unwrap();
        assert_eq!(
            copy_flags(&p, &reuse),
            virt::sys::VIR_DOMAIN_BLOCK_COPY_TRANSIENT_JOB
                | virt::sys::VIR_DOMAIN_BLOCK_COPY_REUSE_EXT
        );
        assert_eq!(
            copy_destination_xml(&p, a),
            "<disk type='file'><source file='/var/lib/libvirt/images/selinux-harness-r1/copy.img'/><driver type='raw'/></disk>"
        );
    }
}

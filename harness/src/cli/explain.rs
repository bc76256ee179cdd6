//! `explain`: a scenario step by step with its libvirt XML and the virsh commands that do the
//! same by hand; the same commands go into `repro`'s bundle.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;

use selinux_harness::scenario::{self, LoadedScenario};

use super::scenarios::load_one;

pub fn explain(path: &Path, variant: Option<&str>) -> Result<ExitCode> {
    let loaded = load_one(path)?;
    let s = &loaded.scenario;
    let variant = variant
        .map(str::to_string)
        .or_else(|| s.variants.keys().next().map(|v| v.to_string()));
    let plan = selinux_harness::run::plan::Plan::new(
        s,
        variant.as_deref(),
        "RUN",
        Path::new(selinux_harness::host::layout::IMAGES_ROOT),
    )?;
    println!("{}: {}", s.name.value, s.description.trim());
    if let Some(v) = &variant {
        println!("variant: {v}");
    }
    if !s.references.is_empty() {
        println!("references:\n  {}", s.references.join("\n  "));
    }
    println!(
        "\nsandbox: {} (RUN is chosen per run; removed afterwards)",
        plan.sandbox.display()
    );
    for (name, img) in plan.images_in_creation_order() {
        let ctx = img
            .context
            .as_ref()
            .map(|c| format!(", labelled {c}"))
            .unwrap_or_default();
        match img.setup_command() {
            Some(c) => println!("  image {name}: {c}{ctx}"),
            None => println!("  image {name}: made by a step"),
        }
    }
    for (name, path) in &plan.files {
        println!(
            "  file {name}: {} (made by libvirt, QEMU or the harness during the run)",
            path.display()
        );
    }
    if !plan.qemu_conf.is_empty() || !plan.booleans.is_empty() {
        println!("\nhost settings for the run (put back afterwards):");
        for (k, v) in &plan.qemu_conf {
            println!("  qemu.conf: {k} = {v}   (libvirtd restarted)");
        }
        for (k, v) in &plan.booleans {
            println!("  setsebool {k} {}", u8::from(*v));
        }
    }
    for (name, d) in &plan.domains {
        println!(
            "\ndomain {name} -> {}:\n{}",
            d.libvirt_name,
            d.xml.trim_end()
        );
    }
    println!("\nsteps:");
    for (i, step) in s.steps.iter().enumerate() {
        let o = &step.options;
        println!(
            "  {}. {}",
            i + 1,
            o.title
                .clone()
                .unwrap_or_else(|| step.action.keyword().to_string())
        );
        for cmd in plan.virsh(&step.action) {
            println!("       $ {cmd}");
        }
        if !o.watch.is_empty() {
            let w: Vec<String> = o.watch.iter().map(|w| w.value.to_string()).collect();
            println!("       watch the labels of {} while it runs", w.join(", "));
        }
        if let Some(settle) = &o.settle {
            println!("       {settle}");
        }
        for (name, dom) in &o.capture {
            println!("       capture ${name} = live seclabel of {}", dom.value);
        }
        let e = &o.expect;
        match (&e.error, &e.access) {
            (Some(err), _) if matches!(step.action, scenario::Action::RestartDaemon(_)) => {
                println!(
                    "       expect the daemon not to come up, logging an error{}",
                    err.value
                        .message
                        .as_ref()
                        .map(|m| format!(" containing {:?}", m.value))
                        .unwrap_or_default()
                )
            }
            (Some(err), _) => println!(
                "       expect libvirt error {}{}{}",
                err.value
                    .code
                    .as_ref()
                    .map(|c| c.value.as_str())
                    .unwrap_or("(any code)"),
                err.value
                    .domain
                    .as_ref()
                    .map(|d| format!(" from {}", d.value))
                    .unwrap_or_default(),
                err.value
                    .message
                    .as_ref()
                    .map(|m| format!(" containing {:?}", m.value))
                    .unwrap_or_default()
            ),
            (None, Some(a)) => println!("       expect access {a:?}"),
            (None, None) => println!("       expect success"),
        }
        for d in e.process.keys() {
            println!(
                "       expect the label of {}'s QEMU process to match",
                d.value
            );
        }
        for f in e.file.keys() {
            println!("       expect the label of {} to match", f.value);
        }
        for f in e.timeline.keys() {
            println!("       expect the label timeline of {} to match", f.value);
        }
        if e.avc.is_some() || !e.no_avc.is_empty() {
            println!("       check the AVC records logged during the step");
        }
        for kb in &o.known_bug {
            let kb = &kb.value;
            println!(
                "       known bug {} where {:?} excuses {}",
                kb.reference,
                kb.when
                    .variant
                    .iter()
                    .map(|v| v.value.to_string())
                    .collect::<Vec<_>>(),
                kb.expects
                    .iter()
                    .flatten()
                    .map(|e| match &e.value.observed {
                        Some(o) => format!("{} observing {o:?}", e.value.check.value),
                        None => e.value.check.value.clone(),
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The scenario as shell and virsh commands for the repro bundle: what `explain` shows.
pub fn by_hand(
    loaded: &LoadedScenario,
    plan: &selinux_harness::run::plan::Plan,
) -> selinux_harness::report::markdown::ByHand {
    let mut setup = vec![format!("mkdir -p {}", plan.sandbox.display())];
    for (_, img) in plan.images_in_creation_order() {
        setup.extend(img.setup_command());
        if let Some(c) = &img.context {
            setup.push(format!("chcon {c} {}", img.path.display()));
        }
    }
    for (k, v) in &plan.qemu_conf {
        setup.push(format!(
            "# /etc/libvirt/qemu.conf: {k} = {v}, then restart the daemon serving qemu:///system (libvirtd or virtqemud)"
        ));
    }
    for (k, v) in &plan.booleans {
        setup.push(format!("setsebool {k} {}", u8::from(*v)));
    }
    for d in plan.domains.values() {
        setup.push(format!("virsh define {}.xml", d.libvirt_name));
    }
    selinux_harness::report::markdown::ByHand {
        setup,
        domains: plan
            .domains
            .iter()
            .map(|(n, d)| (n.to_string(), d.libvirt_name.clone(), d.xml.clone()))
            .collect(),
        steps: loaded
            .scenario
            .steps
            .iter()
            .map(|step| {
                let title = step
                    .options
                    .title
                    .clone()
                    .unwrap_or_else(|| step.action.keyword().to_string());
                (title, plan.virsh(&step.action))
            })
            .collect(),
    }
}

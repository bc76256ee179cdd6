//! Benchmark only: the harness against a hand-written shell script doing the same steps, in
//! the same guest, alternately.
//!
//! This one binary plays both ends, the way `selinux-harness` itself does. On the host it
//! starts the VM target with the library (`selinux_harness::target::vm::VmTarget`), delivering
//! *itself* as the agent (`VmTargetOptions::binary`, the ordinary delivery path: no new command
//! in the product), and runs both sides through the product's dispatcher. In the guest the
//! bootstrap runs it as `agent --port PORT`; it then answers `Run` requests for real scenarios
//! with the product's own handler (`selinux_harness::agent::handler::handle`, i.e. the executor), and a
//! `Run` whose one run's file is `bench:cross-attach.sh` by running
//! bench/guest/cross-attach.sh, compiled in (never a script sent from the host).
//!
//! Run (from the repo root, as root, with the debian-12 image built):
//!   cargo run --release --example guest_overhead -- [--reps 3] [--scenario FILE] [--variant V]
//!   cargo run --release --example guest_overhead -- --start-cost   (bench/guest/start-cost.sh)
//! Prints a table and one `RESULT ...` line (medians) for bench/run.sh.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::bail;
use selinux_harness::agent::protocol::{Reply, Request};
use selinux_harness::dispatch::dispatch;
use selinux_harness::evidence::Evidence;
use selinux_harness::interrupt::Interrupt;
use selinux_harness::run::batch::Batch;
use selinux_harness::run::event::{Envelope, Event};
use selinux_harness::run::verdict::Verdict;
use selinux_harness::scenario::LoadedScenario;
use selinux_harness::target::vm::{VmTarget, VmTargetOptions};

const SCRIPT_FILE: &str = "bench:cross-attach.sh";
const SCRIPT: &str = include_str!("../../bench/guest/cross-attach.sh");
/// `--start-cost`: where a guest's start goes under TCG (bench/guest/start-cost.sh).
const START_COST_FILE: &str = "bench:start-cost.sh";
const START_COST: &str = include_str!("../../bench/guest/start-cost.sh");

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("agent") {
        return agent(&args);
    }
    host(&args)
}

// ---------------------------------------------------------------------------------------------
// Guest side

fn agent(args: &[String]) -> anyhow::Result<()> {
    let port = match args {
        [_, flag, port] if flag == "--port" => PathBuf::from(port),
        _ => bail!("usage: guest_overhead agent --port PORT"),
    };
    let mut handler = |req: Request, stop: &Interrupt, reply: &mut dyn FnMut(Reply)| match req {
        Request::Run { runs, .. } if runs.first().is_some_and(|r| r.file == SCRIPT_FILE) => {
            run_script(SCRIPT, reply)
        }
        Request::Run { runs, .. } if runs.first().is_some_and(|r| r.file == START_COST_FILE) => {
            run_script(START_COST, reply)
        }
        other => selinux_harness::agent::handler::handle(other, stop, reply),
    };
    selinux_harness::agent::guest_end::serve(&port, &mut handler)?;
    Ok(())
}

fn run_script(script: &str, reply: &mut dyn FnMut(Reply)) {
    let t = Instant::now();
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(script)
        .arg("bench-script")
        .output();
    let millis = t.elapsed().as_millis() as u64;
    match out {
        Ok(out) => {
            for line in String::from_utf8_lossy(&out.stdout)
                .lines()
                .chain(String::from_utf8_lossy(&out.stderr).lines())
            {
                reply(Reply::Event(Envelope::now(
                    0,
                    Event::Note {
                        message: line.to_string(),
                    },
                )));
            }
            let verdict = if out.status.success() {
                Verdict::Pass
            } else {
                Verdict::Error {
                    reason: format!("script {}", out.status),
                }
            };
            reply(Reply::Event(Envelope::now(
                0,
                Event::ScenarioFinished { verdict, millis },
            )));
            reply(Reply::Done);
        }
        Err(e) => reply(Reply::Failed {
            message: format!("cannot run bash: {e}"),
        }),
    }
}

// ---------------------------------------------------------------------------------------------
// Host side

struct Measured {
    /// Host: request sent until the final reply.
    round_trip: Duration,
    /// Guest: the executor's ScenarioFinished millis, or the script's wall time.
    in_guest_ms: u64,
    verdict: String,
    /// What was collected: evidence kinds with counts, or the script's check lines.
    evidence: Vec<String>,
}

fn measure(vm: &mut VmTarget, batch: &Batch<'_>) -> anyhow::Result<Measured> {
    let t = Instant::now();
    let mut in_guest_ms = 0;
    let mut verdict = String::from("none");
    let mut kinds: std::collections::BTreeMap<&'static str, usize> = Default::default();
    let mut lines = Vec::new();
    let mut failed = None;
    let mut collect = |e: &Envelope| match &e.event {
        Event::ScenarioFinished { verdict: v, millis } => {
            in_guest_ms = *millis;
            verdict = v.label().to_string();
        }
        Event::Evidence { evidence, .. } => {
            *kinds.entry(evidence_kind(evidence)).or_default() += 1;
        }
        Event::Note { message } => lines.push(message.clone()),
        Event::TargetFailed { reason, .. } => failed = Some(reason.clone()),
        _ => {}
    };
    dispatch(vm, batch, &mut [&mut collect]);
    if let Some(m) = failed {
        bail!("the target failed: {m}");
    }
    let mut evidence: Vec<String> = kinds.iter().map(|(k, n)| format!("{n} {k}")).collect();
    evidence.extend(lines);
    Ok(Measured {
        round_trip: t.elapsed(),
        in_guest_ms,
        verdict,
        evidence,
    })
}

fn evidence_kind(e: &Evidence) -> &'static str {
    match e {
        Evidence::Action { .. } => "action outcome",
        Evidence::FileContext { .. } => "file context",
        Evidence::ProcessLabel { .. } => "QEMU process label",
        Evidence::DomainSeclabel { .. } => "domain seclabel",
        Evidence::Avcs { .. } => "AVC set (audit log since the step began, noise-filtered)",
        Evidence::Timeline { .. } => "label timeline",
        Evidence::RememberedOwner { .. } => "remembered-owner xattrs",
        Evidence::FileState { .. } => "file state (owner, mode, label, xattrs)",
        Evidence::ProcessOwner { .. } => "QEMU process uid:gid",
        Evidence::SwtpmProcess { .. } => "swtpm process label and uid:gid",
        Evidence::HelperProcess { .. } => "helper process label and uid:gid",
    }
}

fn opt(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn host(args: &[String]) -> anyhow::Result<()> {
    let reps: usize = opt(args, "--reps").map_or(Ok(3), |s| s.parse())?;
    let scenario =
        PathBuf::from(opt(args, "--scenario").unwrap_or("scenarios/seed/cross-attach.yaml".into()));
    let variant = opt(args, "--variant").unwrap_or("default".into());
    let loaded = selinux_harness::scenario::load_file(&scenario).map_err(|ds| {
        anyhow::anyhow!(ds
            .iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join("\n"))
    })?;
    // The guest's handler knows the script by this file name; the scenario only carries it.
    let script = LoadedScenario {
        path: SCRIPT_FILE.into(),
        ..loaded.clone()
    };
    let harness_req = Batch::one(&loaded, Some(&variant));
    let script_req = Batch::one(&script, None);
    if args.iter().any(|a| a == "--start-cost") {
        let start_cost = LoadedScenario {
            path: START_COST_FILE.into(),
            ..loaded.clone()
        };
        let mut vm = VmTarget::start(&VmTargetOptions {
            binary: Some(std::env::current_exe()?),
            ..VmTargetOptions::default()
        })?;
        let m = measure(&mut vm, &Batch::one(&start_cost, None))?;
        for line in m.evidence.iter().filter(|l| l.starts_with("start-cost:")) {
            println!("{line}");
        }
        println!(
            "start-cost: script {} in {:.1} s",
            m.verdict,
            m.in_guest_ms as f64 / 1e3
        );
        return Ok(());
    }

    let mut vm = VmTarget::start(&VmTargetOptions {
        binary: Some(std::env::current_exe()?),
        ..VmTargetOptions::default()
    })?;
    let info = vm.boot().clone();
    println!(
        "guest_overhead: {} start on {}, agent ready after {:.1} s; {reps} alternating reps of {} ({variant}) vs bench/guest/cross-attach.sh",
        info.start.name(),
        info.accel.name(),
        info.ready.as_secs_f64(),
        scenario.display()
    );

    let mut rows = Vec::new();
    for i in 0..reps {
        // Alternate which goes first, so neither always runs on a freshly restored guest.
        let order: [(&str, &Batch<'_>); 2] = if i % 2 == 0 {
            [("harness", &harness_req), ("script", &script_req)]
        } else {
            [("script", &script_req), ("harness", &harness_req)]
        };
        for (who, req) in order {
            let m = measure(&mut vm, req)?;
            eprintln!(
                "rep {}: {who} {:.2} s in guest, {:.2} s round trip, {}",
                i + 1,
                m.in_guest_ms as f64 / 1e3,
                m.round_trip.as_secs_f64(),
                m.verdict
            );
            rows.push((i, who, m));
        }
    }
    drop(vm);

    println!("| rep | who | in guest (s) | round trip from host (s) | verdict |");
    println!("|---|---|---|---|---|");
    for (i, who, m) in &rows {
        println!(
            "| {} | {who} | {:.2} | {:.2} | {} |",
            i + 1,
            m.in_guest_ms as f64 / 1e3,
            m.round_trip.as_secs_f64(),
            m.verdict
        );
    }
    let pick = |who: &str, f: &dyn Fn(&Measured) -> f64| {
        median(
            rows.iter()
                .filter(|r| r.1 == who)
                .map(|r| f(&r.2))
                .collect(),
        )
    };
    let in_guest = |m: &Measured| m.in_guest_ms as f64 / 1e3;
    let round = |m: &Measured| m.round_trip.as_secs_f64();
    let (hg, sg) = (pick("harness", &in_guest), pick("script", &in_guest));
    let (hr, sr) = (pick("harness", &round), pick("script", &round));
    println!(
        "median in guest: harness {hg:.2} s, script {sg:.2} s, ratio {:.3}; round trip: harness {hr:.2} s, script {sr:.2} s, ratio {:.3}",
        hg / sg,
        hr / sr
    );
    for who in ["harness", "script"] {
        if let Some((_, _, m)) = rows.iter().find(|r| r.1 == who) {
            println!("evidence collected by the {who} (rep 1):");
            for e in &m.evidence {
                println!("  {e}");
            }
        }
    }
    println!(
        "RESULT ready_s={:.2} start={} harness_guest_s={hg:.2} script_guest_s={sg:.2} ratio_guest={:.3} harness_rt_s={hr:.2} script_rt_s={sr:.2} ratio_rt={:.3} reps={reps}",
        info.ready.as_secs_f64(),
        info.start.name(),
        hg / sg,
        hr / sr
    );
    Ok(())
}

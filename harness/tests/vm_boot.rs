//! Boots the real Debian 12 guest. Needs root, QEMU and the image cache (the image is built when
//! missing, ~2 min), so it is ignored by default:
//!
//!     SELINUX_HARNESS_VM=1 cargo test --release --test vm_boot -- --ignored

use std::path::PathBuf;

use selinux_harness::agent::protocol::{Reply, Request};
use selinux_harness::host::environment::TargetInfo;
use selinux_harness::image::{self, recipe, BuildOptions, Cache, Progress};
use selinux_harness::interrupt::Interrupt;
use selinux_harness::vm::{Vm, VmOptions};

fn enabled() -> bool {
    let on = std::env::var("SELINUX_HARNESS_VM").is_ok_and(|v| v == "1");
    if !on {
        eprintln!("skipped: set SELINUX_HARNESS_VM=1 to boot the VM");
    }
    on
}

fn env_of(vm: &mut Vm) -> TargetInfo {
    let mut env = None;
    vm.request(&Request::Env, |reply| match reply {
        Reply::Env(info) => env = Some(info),
        other => panic!("unexpected reply {other:?}"),
    })
    .expect("Env request");
    env.expect("an Env reply")
}

#[test]
#[ignore = "boots a QEMU VM: run with SELINUX_HARNESS_VM=1 ... -- --ignored"]
fn vm_boot_needs_selinux_harness_vm_1_and_reports_enforcing_mls() {
    if !enabled() {
        return;
    }
    let interrupt = Interrupt::new();
    let progress = Progress::hidden();
    let cache = Cache::default_location().expect("cache dir");
    let source = recipe::builtin("debian-12").expect("recipe");
    let built = image::build(
        &cache,
        &source,
        &BuildOptions::default(),
        &progress,
        &interrupt,
    )
    .expect("image build");
    let options = VmOptions {
        // The test binary is not the harness: deliver the real one.
        agent_binary: Some(PathBuf::from(env!("CARGO_BIN_EXE_selinux-harness"))),
        interrupt,
        ..VmOptions::default()
    };
    let mut vm = Vm::start(&built.image, &options, &progress).expect("VM start");
    let run_dir = vm.run_dir().to_owned();
    let env = env_of(&mut vm);
    eprintln!("{:?}, env: {env:?}", vm.info());
    assert_eq!(env.kind, "vm");
    assert_eq!(env.selinux_mode, "enforcing");
    assert!(env.mls, "MLS/MCS must be on");
    assert_eq!(env.distro, "debian-12");
    assert_eq!(env.accelerator, vm.info().accel.name());
    assert_eq!(env.boot, vm.info().start.name());
    assert!(env.secmodel.starts_with("selinux"), "{}", env.secmodel);
    // A second request on the same agent works too.
    assert_eq!(env_of(&mut vm).kernel, env.kernel);
    drop(vm);
    assert!(!run_dir.exists(), "the run's temp dir must be gone");
}

//! `doctor`: what interrupted runs left on this host, found by the harness's marker and removed.

use std::process::ExitCode;

use anyhow::Result;

pub fn doctor(dry_run: bool) -> Result<ExitCode> {
    use selinux_harness::host::doctor;
    let leftovers = doctor::scan(&selinux_harness::host::layout::Layout::default());
    if leftovers.is_empty() {
        println!("nothing left behind by selinux-harness on this host");
        return Ok(ExitCode::SUCCESS);
    }
    for l in &leftovers {
        println!("found: {}", l.describe());
    }
    if dry_run {
        return Ok(ExitCode::FAILURE);
    }
    let mut left = 0;
    for outcome in doctor::clean(&leftovers) {
        match outcome {
            Ok(done) => println!("{done}"),
            Err(failed) => {
                left += 1;
                println!("{failed}");
            }
        }
    }
    if left > 0 {
        eprintln!("{left} leftover(s) could not be removed");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

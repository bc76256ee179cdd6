//! One scenario run on an SELinux host: the plan, the executor that carries it out, the
//! expectations it checks, the verdict, and the events it emits on the way.

pub mod batch;
mod blockjob;
pub(crate) mod bookkeeping;
mod daemon_restart;
pub mod device_paths;
mod domain_xml;
pub mod event;
pub(crate) mod executor;
pub(crate) mod expect;
pub(crate) mod explain;
pub mod fault;
pub mod fault_relabels;
pub mod image_make;
pub mod operations;
pub mod parallel;
pub mod plan;
mod plan_boot;
mod plan_devices;
pub mod policy_batch;
mod sequence;
pub(crate) mod settle;
pub(crate) mod together;
pub mod verdict;

/// The name of a trial, one scenario under one variant: `scenario[variant]`, or the scenario's
/// name alone when it has no variants. Reports, the conformance suite and the targets all
/// call a run by it.
pub fn trial_name(scenario: &str, variant: Option<&str>) -> String {
    match variant {
        Some(v) => format!("{scenario}[{v}]"),
        None => scenario.to_string(),
    }
}

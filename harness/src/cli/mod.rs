//! The binary's commands, one module each; clap stays here, out of the library.

pub mod compare;
pub mod doctor;
pub mod explain;
pub mod mutants;
pub mod repro;
pub mod run;
pub mod scenarios;
pub mod target;
pub mod vm;

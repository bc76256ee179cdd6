//! One scenario run on an SELinux host: the plan, the executor that carries it out, the
//! expectations it checks, the verdict, and the events it emits on the way.

pub mod batch;
pub mod event;
pub mod executor;
pub mod expect;
pub mod fault;
pub mod parallel;
pub mod plan;
pub mod verdict;

//! The order of one run's steps: the set-up before the first step, then each step in turn -
//! unless Ctrl-C came before it, or its `when` does not hold here - with its `before:` labels
//! read after the step opens and before its action. The executor's `Run` does the work on the
//! host (`Steps`); the order is kept here, apart from it, so tests can drive it with a fake
//! host and no VM.

use std::path::PathBuf;

use crate::context::Context;
use crate::interrupt::Interrupt;
use crate::run::expect::{Captured, Captures};
use crate::run::verdict::{Tally, Verdict};
use crate::scenario::{Name, Scenario, Step, StepOptions};
use crate::selinux_ops::SelinuxOpsError;

/// What the set-up before the first step decided.
pub(super) enum Setup<P> {
    /// The steps run, sharing `P` (the audit path, the noise filter).
    Ready(P),
    /// The target lacks for good what the scenario requires: the run is skipped, and why.
    Skip(String),
}

/// Why the label of an image could not be read for a `before:` capture.
#[derive(Debug, thiserror::Error)]
pub(super) enum LabelError {
    #[error(transparent)]
    Read(#[from] SelinuxOpsError),
    #[error("{} has no label", .0.display())]
    Unlabelled(PathBuf),
}

/// What the sequence itself ends a run with; the host's error type says it in its words.
#[derive(Debug)]
pub(super) enum Stopped {
    /// Ctrl-C came before step `step` began.
    Interrupted { step: usize },
    /// Step `step`'s `before: {name: image}` could not read the image's label.
    Before {
        step: usize,
        name: Name,
        image: Name,
        why: LabelError,
    },
}

/// The parts of a run that touch the host, in the pieces the sequence calls them.
pub(super) trait Steps {
    /// What ends a run: the host's failures, and the sequence's own ([`Stopped`]).
    type Error: From<Stopped>;
    /// What the steps share once the run is set up.
    type Prepared;
    /// A step that has begun (its evidence opened) and not yet acted.
    type Opened;
    /// Everything before the first step; may say the run is inconclusive.
    fn prepare(&mut self, tally: &mut Tally) -> Result<Setup<Self::Prepared>, Self::Error>;
    fn note(&mut self, message: String);
    /// Says step `index` started and opens its evidence.
    fn open(
        &mut self,
        index: usize,
        step: &Step,
        prepared: &mut Self::Prepared,
    ) -> Result<Self::Opened, Self::Error>;
    /// An image's label as the host shows it now.
    fn label_now(&self, image: &Name) -> Result<Context, LabelError>;
    fn captures_mut(&mut self) -> &mut Captures;
    /// The step's action, its evidence and its checks, reported and added to `tally`.
    fn finish(
        &mut self,
        index: usize,
        step: &Step,
        prepared: &mut Self::Prepared,
        opened: Self::Opened,
        tally: &mut Tally,
    ) -> Result<(), Self::Error>;
}

/// The run's verdict on the policy, or what ended it: the first error stops the run, so no
/// later step is acted or judged.
pub(super) fn run<H: Steps>(
    host: &mut H,
    scenario: &Scenario,
    applies: impl Fn(&Step) -> bool,
    interrupt: &Interrupt,
) -> Result<Verdict, H::Error> {
    let mut tally = Tally::default();
    let mut prepared = match host.prepare(&mut tally)? {
        Setup::Ready(p) => p,
        Setup::Skip(reason) => return Ok(Verdict::Skipped { reason }),
    };
    for (i, step) in scenario.steps.iter().enumerate() {
        let index = i + 1;
        if interrupt.is_set() {
            return Err(Stopped::Interrupted { step: index }.into());
        }
        if !applies(step) {
            host.note(format!(
                "step {index} is not run here: its `when` does not hold for this variant, distro and libvirt"
            ));
            continue;
        }
        let opened = host.open(index, step, &mut prepared)?;
        remember_before(host, index, &step.options)?;
        host.finish(index, step, &mut prepared, opened, &mut tally)?;
    }
    Ok(tally.verdict())
}

/// `before: {NAME: IMAGE}`: each image's label right before the action, as capture NAME.
fn remember_before<H: Steps>(host: &mut H, index: usize, o: &StepOptions) -> Result<(), H::Error> {
    for (name, img) in &o.before {
        let label = host.label_now(&img.value).map_err(|why| Stopped::Before {
            step: index,
            name: name.clone(),
            image: img.value.clone(),
            why,
        })?;
        host.captures_mut().insert(
            name.clone(),
            Captured {
                label,
                imagelabel: None,
                ids: None,
            },
        );
    }
    Ok(())
}

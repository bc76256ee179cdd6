//! Arbitrary text into the scenario loader: it must return a scenario or located diagnostics,
//! never panic or hang, and every location must point inside the text it was given (editors
//! and `check` jump there).
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use selinux_harness::scenario::load_str;

fuzz_target!(|data: &[u8]| {
    let Ok(source) = std::str::from_utf8(data) else {
        return;
    };
    let Err(diagnostics) = load_str(Path::new("fuzz.yaml"), source) else {
        return;
    };
    assert!(!diagnostics.is_empty(), "Err without a diagnostic");
    // YAML's line breaks: CR LF, CR and LF (a lone CR starts a new line, as in editors).
    let lines: Vec<&str> = source
        .split("\r\n")
        .flat_map(|l| l.split(['\r', '\n']))
        .collect();
    for d in &diagnostics {
        if d.line == 0 {
            // The file as a whole; no column may pretend otherwise.
            assert_eq!(d.column, 0, "{d}");
            continue;
        }
        // A parser may point just past the last character (end of input): one past is allowed.
        assert!(d.line <= lines.len(), "{d}: only {} lines", lines.len());
        let width = lines[d.line - 1].chars().count();
        assert!(
            d.column >= 1 && d.column <= width + 1,
            "{d}: line {} has {width} characters",
            d.line
        );
    }
});

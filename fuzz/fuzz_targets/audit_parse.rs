//! Arbitrary bytes as audit log text: auditd's log is written by the kernel and daemons on the
//! target, and a half-written last line is normal. Parsing must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use selinux_harness::evidence::audit::{parse_record, parse_records};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let all = parse_records(&text);
    let one_by_one: Vec<_> = text.lines().filter_map(parse_record).collect();
    assert_eq!(all.len(), one_by_one.len());
});

//! Contexts, levels and ranges: whatever parses must print in a form that parses back to the
//! same value (reports print contexts that scenarios and comparisons read again).
#![no_main]

use libfuzzer_sys::fuzz_target;
use selinux_harness::context::{Context, Level, MlsRange};

fn round_trip<T>(s: &str)
where
    T: std::str::FromStr + std::fmt::Display + PartialEq + std::fmt::Debug,
    T::Err: std::fmt::Debug,
{
    if let Ok(v) = s.parse::<T>() {
        let printed = v.to_string();
        let again = printed.parse::<T>();
        assert_eq!(
            again.as_ref().ok(),
            Some(&v),
            "{s:?} printed as {printed:?}: {again:?}"
        );
        // Canonical: printing is a fixed point.
        assert_eq!(again.map(|a| a.to_string()).ok(), Some(printed));
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    round_trip::<Context>(s);
    round_trip::<Level>(s);
    round_trip::<MlsRange>(s);
    let _ = Context::from_kernel_bytes(data);
});

//! The one shape of an I/O error: what the harness was doing, on which path, and the OS's
//! error. Module error enums wrap it (`#[error(transparent)] Io(#[from] IoError)`) instead of
//! each spelling the same three fields and message.

use std::io;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
#[error("{what} {path}: {source}")]
pub struct IoError {
    /// What was being done, as a short phrase: "cannot read", "reading the audit log".
    pub what: &'static str,
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

impl IoError {
    /// For `map_err`: `.map_err(IoError::at("cannot read", &path))`.
    pub fn at(what: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Self {
        let path = path.into();
        move |source| Self { what, path, source }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn says_what_where_and_why() {
        let e = IoError::at("cannot read", "/x/y")(io::Error::from(io::ErrorKind::NotFound));
        assert_eq!(e.to_string(), "cannot read /x/y: entity not found");
    }
}

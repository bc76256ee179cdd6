//! SELinux security contexts, MLS/MCS levels and category sets.
//!
//! The `selinux` crate talks to the kernel and libselinux (reading and setting labels); it has no
//! model of an MLS range that can be compared or printed canonically, so that algebra lives here.
//! Parsing is strict on purpose: a scenario that says `s0:c5,c3` or `c1024` is a mistake the
//! author wants to hear about, not something to normalise silently.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Highest category number in the MCS/MLS policies we target (refpolicy and Fedora: c0..c1023).
pub const MAX_CATEGORY: u16 = 1023;
const WORDS: usize = (MAX_CATEGORY as usize + 1) / 64;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("a context has the form user:role:type[:level], got {0:?}")]
    Shape(String),
    #[error("empty {0} in context")]
    EmptyField(&'static str),
    #[error("a sensitivity looks like s0, got {0:?}")]
    Sensitivity(String),
    #[error("a category looks like c0..c{max}, got {0:?}", max = MAX_CATEGORY)]
    Category(String),
    #[error("category c{0} is above c{max}", max = MAX_CATEGORY)]
    CategoryRange(u32),
    #[error(
        "categories must be in ascending order without repeats: {0:?} (the canonical form is {1})"
    )]
    NotCanonical(String, String),
    #[error("a category range c{0}.c{1} must go upwards")]
    BackwardsRange(u16, u16),
    #[error("the high level {high} of a range must dominate its low level {low}")]
    RangeNotDominating { low: String, high: String },
}

/// A set of MCS categories, c0..c1023. A bitset, on the heap: contexts travel inside events
/// and evidence, which should stay small.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct CategorySet(Box<[u64; WORDS]>);

impl CategorySet {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn insert(&mut self, c: u16) {
        assert!(c <= MAX_CATEGORY, "category out of range");
        self.0[c as usize / 64] |= 1 << (c % 64);
    }

    pub fn contains(&self, c: u16) -> bool {
        c <= MAX_CATEGORY && self.0[c as usize / 64] & (1 << (c % 64)) != 0
    }

    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|w| *w == 0)
    }

    pub fn len(&self) -> usize {
        self.0.iter().map(|w| w.count_ones() as usize).sum()
    }

    pub fn is_superset(&self, other: &CategorySet) -> bool {
        self.0.iter().zip(other.0.iter()).all(|(a, b)| a & b == *b)
    }

    pub fn is_disjoint(&self, other: &CategorySet) -> bool {
        self.0.iter().zip(other.0.iter()).all(|(a, b)| a & b == 0)
    }

    pub fn iter(&self) -> impl Iterator<Item = u16> + '_ {
        (0..=MAX_CATEGORY).filter(move |c| self.contains(*c))
    }

    /// Parse `c1,c2`, `c0.c1023`, `c1,c3.c5`; strictly ascending, no overlaps.
    fn parse(s: &str) -> Result<Self, ParseError> {
        let mut set = CategorySet::new();
        let mut last: Option<u16> = None;
        let mut canonical = true;
        for part in s.split(',') {
            let (lo, hi) = match part.split_once('.') {
                Some((a, b)) => (parse_category(a)?, parse_category(b)?),
                None => {
                    let c = parse_category(part)?;
                    (c, c)
                }
            };
            if hi < lo {
                return Err(ParseError::BackwardsRange(lo, hi));
            }
            if last.is_some_and(|l| lo <= l) {
                canonical = false;
            }
            for c in lo..=hi {
                set.insert(c);
            }
            last = Some(hi);
        }
        if !canonical {
            return Err(ParseError::NotCanonical(s.to_string(), set.to_string()));
        }
        Ok(set)
    }
}

fn parse_category(s: &str) -> Result<u16, ParseError> {
    let digits = s
        .strip_prefix('c')
        .filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| ParseError::Category(s.to_string()))?;
    if digits.len() > 1 && digits.starts_with('0') {
        return Err(ParseError::Category(s.to_string()));
    }
    let n: u32 = digits
        .parse()
        .map_err(|_| ParseError::Category(s.to_string()))?;
    if n > MAX_CATEGORY as u32 {
        return Err(ParseError::CategoryRange(n));
    }
    Ok(n as u16)
}

/// Canonical form as the kernel prints it: runs of three or more become `cA.cB`, pairs stay `cA,cB`.
impl fmt::Display for CategorySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cats: Vec<u16> = self.iter().collect();
        let mut i = 0;
        let mut first = true;
        while i < cats.len() {
            let mut j = i;
            while j + 1 < cats.len() && cats[j + 1] == cats[j] + 1 {
                j += 1;
            }
            if !first {
                f.write_str(",")?;
            }
            first = false;
            match j - i {
                0 => write!(f, "c{}", cats[i])?,
                1 => write!(f, "c{},c{}", cats[i], cats[j])?,
                _ => write!(f, "c{}.c{}", cats[i], cats[j])?,
            }
            i = j + 1;
        }
        Ok(())
    }
}

impl fmt::Debug for CategorySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{{{self}}}")
    }
}

/// One MLS level: a sensitivity and a set of categories, e.g. `s0:c1,c2`.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Level {
    pub sensitivity: u16,
    pub categories: CategorySet,
}

impl Level {
    /// `self` dominates `other`: sensitivity at least as high and a superset of its categories.
    pub fn dominates(&self, other: &Level) -> bool {
        self.sensitivity >= other.sensitivity && self.categories.is_superset(&other.categories)
    }
}

impl FromStr for Level {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        let (sens, cats) = match s.split_once(':') {
            Some((a, b)) => (a, Some(b)),
            None => (s, None),
        };
        let digits = sens
            .strip_prefix('s')
            .filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(|| ParseError::Sensitivity(sens.to_string()))?;
        let sensitivity = digits
            .parse()
            .map_err(|_| ParseError::Sensitivity(sens.to_string()))?;
        let categories = match cats {
            Some(c) => CategorySet::parse(c)?,
            None => CategorySet::new(),
        };
        Ok(Level {
            sensitivity,
            categories,
        })
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s{}", self.sensitivity)?;
        if !self.categories.is_empty() {
            write!(f, ":{}", self.categories)?;
        }
        Ok(())
    }
}

/// An MLS range `low[-high]`; a single level is a range whose ends are equal.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct MlsRange {
    pub low: Level,
    pub high: Level,
}

impl MlsRange {
    pub fn single(level: Level) -> Self {
        Self {
            low: level.clone(),
            high: level,
        }
    }
}

impl FromStr for MlsRange {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        match s.split_once('-') {
            Some((a, b)) => {
                let (low, high): (Level, Level) = (a.parse()?, b.parse()?);
                if !high.dominates(&low) {
                    return Err(ParseError::RangeNotDominating {
                        low: low.to_string(),
                        high: high.to_string(),
                    });
                }
                Ok(Self { low, high })
            }
            None => Ok(Self::single(s.parse()?)),
        }
    }
}

impl fmt::Display for MlsRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.low == self.high {
            write!(f, "{}", self.low)
        } else {
            write!(f, "{}-{}", self.low, self.high)
        }
    }
}

/// A full security context `user:role:type[:range]`.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Context {
    pub user: String,
    pub role: String,
    pub kind: String,
    pub range: Option<MlsRange>,
}

impl Context {
    /// The low level, which is what MCS constraints compare for files and processes alike.
    pub fn level(&self) -> Option<&Level> {
        self.range.as_ref().map(|r| &r.low)
    }

    /// Parse what the kernel or libselinux hands back: tolerates the trailing NUL and newline
    /// that xattrs and /proc/*/attr/current carry.
    pub fn from_kernel_bytes(raw: &[u8]) -> Result<Self, ParseError> {
        let s = String::from_utf8_lossy(raw);
        s.trim_end_matches(['\0', '\n']).parse()
    }
}

fn ident(field: &'static str, s: &str) -> Result<String, ParseError> {
    if s.is_empty() {
        return Err(ParseError::EmptyField(field));
    }
    if !s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-')
    {
        return Err(ParseError::Shape(s.to_string()));
    }
    Ok(s.to_string())
}

impl FromStr for Context {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        let mut parts = s.splitn(4, ':');
        let (Some(u), Some(r), Some(t)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(ParseError::Shape(s.to_string()));
        };
        let range = parts.next().map(str::parse).transpose()?;
        Ok(Context {
            user: ident("user", u)?,
            role: ident("role", r)?,
            kind: ident("type", t)?,
            range,
        })
    }
}

impl fmt::Display for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.user, self.role, self.kind)?;
        if let Some(r) = &self.range {
            write!(f, ":{r}")?;
        }
        Ok(())
    }
}

macro_rules! string_serde {
    ($t:ty, $what:literal) => {
        impl Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse()
                    .map_err(|e| serde::de::Error::custom(format!("invalid {}: {e}", $what)))
            }
        }
        impl schemars::JsonSchema for $t {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                stringify!($t).into()
            }
            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                schemars::json_schema!({ "type": "string", "description": $what })
            }
        }
    };
}
string_serde!(Context, "SELinux context (user:role:type:level)");
string_serde!(Level, "MLS/MCS level (s0:c1,c2)");
string_serde!(MlsRange, "MLS/MCS range (s0-s0:c0.c1023)");

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("s0", "s0")]
    #[case("s0:c1,c2", "s0:c1,c2")]
    #[case("s0:c0.c1023", "s0:c0.c1023")]
    #[case("s0:c1,c2,c3", "s0:c1.c3")]
    #[case("s0:c1.c2", "s0:c1,c2")]
    #[case("s0:c1,c3.c5,c9", "s0:c1,c3.c5,c9")]
    fn level_prints_canonically(#[case] input: &str, #[case] canonical: &str) {
        assert_eq!(input.parse::<Level>().unwrap().to_string(), canonical);
    }

    #[rstest]
    #[case("s0:c5,c3", "ascending")]
    #[case("s0:c3,c3", "ascending")]
    #[case("s0:c1024", "above c1023")]
    #[case("s0:c01", "a category looks like")]
    #[case("s0:c", "a category looks like")]
    #[case("s0:c5.c2", "must go upwards")]
    #[case("x0", "a sensitivity looks like")]
    #[case("s0:c1.c4,c3", "ascending")]
    fn level_rejects_malformed(#[case] input: &str, #[case] msg: &str) {
        let err = input.parse::<Level>().unwrap_err().to_string();
        assert!(err.contains(msg), "{input}: {err}");
    }

    #[test]
    fn not_canonical_names_the_fix() {
        let err = "s0:c5,c3".parse::<Level>().unwrap_err();
        assert_eq!(
            err,
            ParseError::NotCanonical("c5,c3".into(), "c3,c5".into())
        );
    }

    #[rstest]
    #[case("s0:c1,c2", "s0:c1,c2", true)]
    #[case("s0:c1,c2,c3", "s0:c1,c2", true)]
    #[case("s0:c1,c2", "s0:c1,c2,c3", false)]
    #[case("s0:c3,c4", "s0:c1,c2", false)]
    #[case("s0", "s0:c1", false)]
    #[case("s0:c0.c1023", "s0:c7,c900", true)]
    #[case("s1", "s0", true)]
    #[case("s0", "s1", false)]
    fn dominance(#[case] a: &str, #[case] b: &str, #[case] expected: bool) {
        let (a, b): (Level, Level) = (a.parse().unwrap(), b.parse().unwrap());
        assert_eq!(a.dominates(&b), expected);
    }

    #[rstest]
    #[case("system_u:system_r:svirt_t:s0:c539,c810")]
    #[case("unconfined_u:unconfined_r:unconfined_t:s0-s0:c0.c1023")]
    #[case("system_u:object_r:svirt_image_t:s0")]
    #[case("system_u:object_r:etc_t")]
    fn context_round_trips(#[case] s: &str) {
        assert_eq!(s.parse::<Context>().unwrap().to_string(), s);
    }

    #[test]
    fn context_fields_and_level() {
        let c: Context = "system_u:system_r:svirt_t:s0:c3,c4".parse().unwrap();
        assert_eq!(c.kind, "svirt_t");
        assert_eq!(c.level().unwrap().to_string(), "s0:c3,c4");
    }

    #[test]
    fn kernel_bytes_lose_their_nul() {
        let c = Context::from_kernel_bytes(b"system_u:object_r:virt_image_t:s0\0").unwrap();
        assert_eq!(c.to_string(), "system_u:object_r:virt_image_t:s0");
    }

    #[rstest]
    #[case("svirt_t")]
    #[case("a:b")]
    #[case("a::t:s0")]
    #[case("u:r:t:s0-s0:c1,c0")]
    #[case("u:r:t:s0:c1-s0")]
    #[case("u:r:t y:s0")]
    fn context_rejects_malformed(#[case] s: &str) {
        assert!(s.parse::<Context>().is_err(), "{s} should be rejected");
    }

    #[test]
    fn disjoint_and_superset() {
        let a: Level = "s0:c1,c2".parse().unwrap();
        let b: Level = "s0:c3,c4".parse().unwrap();
        assert!(a.categories.is_disjoint(&b.categories));
        assert!(!a.categories.is_superset(&b.categories));
        assert_eq!(a.categories.len(), 2);
    }
}

//! Image recipes: data describing one guest image (suite, packages, fixes, policy changes).
//!
//! The built-in recipes live in `harness/recipes/*.toml`; the policy modules they may name live in
//! the repository's `policy-modules/`. Both are embedded so the binary builds images from anywhere.

use std::collections::BTreeMap;

use serde::Deserialize;

/// A recipe as written in its TOML file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    /// Also the cache directory prefix, e.g. "debian-12".
    pub name: String,
    /// Debian suite handed to mmdebstrap, e.g. "bookworm".
    pub suite: String,
    pub disk_size_mib: u64,
    /// SELINUXTYPE of the guest (the policy store under /etc/selinux).
    pub selinux_type: String,
    pub packages: Vec<String>,
    #[serde(default)]
    pub kernel_cmdline_extra: Vec<String>,
    /// File stems in `policy-modules/`, e.g. "harness-probe".
    #[serde(default)]
    pub policy_modules: Vec<String>,
    /// Persistent boolean values written into the policy store before it is rebuilt.
    #[serde(default)]
    pub booleans: BTreeMap<String, bool>,
    #[serde(default)]
    pub fixes: Fixes,
}

/// Changes to the stock distribution that libvirt needs under this distribution's policy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fixes {
    /// Lines appended to /etc/libvirt/qemu.conf.
    #[serde(default)]
    pub qemu_conf: Vec<String>,
    /// Mask systemd-machined and divert its dbus activation file.
    #[serde(default)]
    pub mask_machined: bool,
}

/// A recipe together with the exact text it came from (the text is part of the cache key).
#[derive(Debug, Clone)]
pub struct RecipeSource {
    pub recipe: Recipe,
    pub text: &'static str,
}

/// A SELinux policy module (CIL) the image builder can install.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PolicyModule {
    /// File stem in `policy-modules/`, e.g. "harness-probe".
    pub file_stem: &'static str,
    pub source: &'static str,
}

impl PolicyModule {
    /// The module name the policy store knows it by: CIL module names come from the file name,
    /// and policy identifiers take no dashes.
    pub fn module_name(&self) -> String {
        self.file_stem.replace('-', "_")
    }
}

const BUILTIN_RECIPES: &[(&str, &str)] = &[
    ("debian-12", include_str!("../../recipes/debian-12.toml")),
    ("debian-13", include_str!("../../recipes/debian-13.toml")),
];

const POLICY_MODULES: &[PolicyModule] = &[
    PolicyModule {
        file_stem: "harness-init",
        source: include_str!("../../../policy-modules/harness-init.cil"),
    },
    PolicyModule {
        file_stem: "harness-probe",
        source: include_str!("../../../policy-modules/harness-probe.cil"),
    },
    PolicyModule {
        file_stem: "harness-relabel-audit",
        source: include_str!("../../../policy-modules/harness-relabel-audit.cil"),
    },
];

/// Installed into every image: it labels the harness's own init (see the module's comments).
pub const ALWAYS_INSTALLED_MODULE: &str = "harness-init";
/// Installed into every image: the kernel logs each relabel of a virt image, the label
/// timeline's record of values too short-lived for inotify (see the module's comments).
pub const RELABEL_AUDIT_MODULE: &str = "harness-relabel-audit";

#[derive(Debug, thiserror::Error)]
pub enum RecipeError {
    #[error("unknown recipe `{name}`; built-in recipes: {known}")]
    Unknown { name: String, known: String },
    #[error("recipe `{name}` is not valid TOML for a recipe: {source}\nfix: compare it with harness/recipes/debian-12.toml")]
    Parse {
        name: String,
        #[source]
        source: Box<toml::de::Error>,
    },
    #[error("recipe `{recipe}`: {field} `{value}` is not allowed ({why})")]
    Invalid {
        recipe: String,
        field: &'static str,
        value: String,
        why: &'static str,
    },
}

/// Names of the built-in recipes, in a stable order.
pub fn builtin_names() -> impl Iterator<Item = &'static str> {
    BUILTIN_RECIPES.iter().map(|(name, _)| *name)
}

/// Looks up and parses a built-in recipe.
pub fn builtin(name: &str) -> Result<RecipeSource, RecipeError> {
    let (_, text) = BUILTIN_RECIPES
        .iter()
        .find(|(n, _)| *n == name)
        .ok_or_else(|| RecipeError::Unknown {
            name: name.to_owned(),
            known: builtin_names().collect::<Vec<_>>().join(", "),
        })?;
    Ok(RecipeSource {
        recipe: parse(name, text)?,
        text,
    })
}

/// Parses and validates recipe text. `origin` names it in errors.
pub fn parse(origin: &str, text: &str) -> Result<Recipe, RecipeError> {
    let recipe: Recipe = toml::from_str(text).map_err(|e| RecipeError::Parse {
        name: origin.to_owned(),
        source: Box::new(e),
    })?;
    validate(&recipe)?;
    Ok(recipe)
}

/// Every module a recipe installs, the always-installed ones first.
pub fn modules_for(recipe: &Recipe) -> Result<Vec<PolicyModule>, RecipeError> {
    let always = [ALWAYS_INSTALLED_MODULE, RELABEL_AUDIT_MODULE];
    let mut stems = always.to_vec();
    stems.extend(
        recipe
            .policy_modules
            .iter()
            .map(String::as_str)
            .filter(|s| !always.contains(s)),
    );
    stems
        .into_iter()
        .map(|stem| {
            POLICY_MODULES
                .iter()
                .find(|m| m.file_stem == stem)
                .copied()
                .ok_or_else(|| RecipeError::Invalid {
                    recipe: recipe.name.clone(),
                    field: "policy_modules",
                    value: stem.to_owned(),
                    why: "no such file in policy-modules/ (add it there and to POLICY_MODULES)",
                })
        })
        .collect()
}

fn validate(r: &Recipe) -> Result<(), RecipeError> {
    let invalid = |field: &'static str, value: &str, why: &'static str| RecipeError::Invalid {
        recipe: r.name.clone(),
        field,
        value: value.to_owned(),
        why,
    };
    // Values end up as command arguments and file names; keep them to what Debian allows.
    let word = |s: &str, extra: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || extra.contains(c))
    };
    if !word(&r.name, "-.") {
        return Err(invalid(
            "name",
            &r.name,
            "lowercase letters, digits, '-', '.'",
        ));
    }
    if !word(&r.suite, "-") {
        return Err(invalid("suite", &r.suite, "a Debian suite name"));
    }
    if !word(&r.selinux_type, "-_") {
        return Err(invalid(
            "selinux_type",
            &r.selinux_type,
            "a policy store name",
        ));
    }
    if r.packages.is_empty() {
        return Err(invalid(
            "packages",
            "[]",
            "the image needs a kernel and a policy",
        ));
    }
    if let Some(p) = r.packages.iter().find(|p| !word(p, "+-.")) {
        return Err(invalid("packages", p, "not a Debian package name"));
    }
    if let Some(b) = r.booleans.keys().find(|b| !word(b, "_")) {
        return Err(invalid("booleans", b, "not a boolean name"));
    }
    if let Some(l) = r
        .fixes
        .qemu_conf
        .iter()
        .find(|l| l.contains('\n') || l.trim().is_empty())
    {
        return Err(invalid("fixes.qemu_conf", l, "one non-empty line each"));
    }
    if let Some(a) = r
        .kernel_cmdline_extra
        .iter()
        .find(|a| a.is_empty() || a.chars().any(|c| c.is_whitespace() || c.is_control()))
    {
        return Err(invalid("kernel_cmdline_extra", a, "one word per entry"));
    }
    if !(512..=65536).contains(&r.disk_size_mib) {
        return Err(invalid(
            "disk_size_mib",
            &r.disk_size_mib.to_string(),
            "between 512 and 65536",
        ));
    }
    modules_for(r)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_recipes_parse() {
        for name in builtin_names() {
            let src = builtin(name).expect(name);
            assert_eq!(src.recipe.name, name);
            assert!(src
                .recipe
                .packages
                .iter()
                .any(|p| p == "selinux-policy-default"));
        }
    }

    #[test]
    fn debian_12_and_13_differ_in_the_documented_fixes() {
        let d12 = builtin("debian-12").unwrap().recipe;
        let d13 = builtin("debian-13").unwrap().recipe;
        assert_eq!(d12.suite, "bookworm");
        assert_eq!(d13.suite, "trixie");
        assert!(d12.fixes.mask_machined && !d13.fixes.mask_machined);
        assert!(d12
            .fixes
            .qemu_conf
            .iter()
            .any(|l| l.starts_with("cgroup_controllers")));
        assert!(!d13
            .fixes
            .qemu_conf
            .iter()
            .any(|l| l.starts_with("cgroup_controllers")));
        for r in [&d12, &d13] {
            assert!(r
                .fixes
                .qemu_conf
                .iter()
                .any(|l| l.starts_with("namespaces")));
            assert_eq!(r.booleans.get("virt_use_execmem"), Some(&true));
        }
    }

    #[test]
    fn modules_include_the_init_labels_once() {
        let mut r = builtin("debian-12").unwrap().recipe;
        r.policy_modules.push("harness-init".into());
        let names: Vec<_> = modules_for(&r)
            .unwrap()
            .iter()
            .map(|m| m.module_name())
            .collect();
        assert_eq!(
            names,
            ["harness_init", "harness_relabel_audit", "harness_probe"]
        );
    }

    #[test]
    fn rejects_unknown_fields_and_bad_values() {
        let good = builtin("debian-12").unwrap().text;
        assert!(matches!(
            parse("x", &format!("{good}\nsurprise = 1\n")),
            Err(RecipeError::Parse { .. })
        ));
        let bad_pkg = good.replace("\"iptables\"", "\"iptables; rm -rf /\"");
        assert!(matches!(
            parse("x", &bad_pkg),
            Err(RecipeError::Invalid {
                field: "packages",
                ..
            })
        ));
        let bad_mod = good.replace("\"harness-probe\"", "\"nope\"");
        assert!(matches!(
            parse("x", &bad_mod),
            Err(RecipeError::Invalid {
                field: "policy_modules",
                ..
            })
        ));
    }

    #[test]
    fn unknown_recipe_names_the_known_ones() {
        let err = builtin("fedora").unwrap_err().to_string();
        assert!(
            err.contains("debian-12") && err.contains("debian-13"),
            "{err}"
        );
    }
}

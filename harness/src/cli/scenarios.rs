//! The commands that read scenarios and run nothing: `check`, `list`, `new --from-xml`, and the
//! loading every other command starts with.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context as _, Result};

use selinux_harness::scenario::{self, LoadedScenario};

pub fn default_paths(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    if !paths.is_empty() {
        return Ok(paths.to_vec());
    }
    let d = PathBuf::from("scenarios");
    if d.is_dir() {
        Ok(vec![d])
    } else {
        bail!("no scenario paths given and there is no ./scenarios directory here; name the files or directories to use")
    }
}

/// Load every file; print every diagnostic of every file to stderr.
pub fn load_all(paths: &[PathBuf]) -> Result<(Vec<LoadedScenario>, usize)> {
    let files = scenario::discover(&default_paths(paths)?).map_err(|d| anyhow::anyhow!("{d}"))?;
    if files.is_empty() {
        bail!("no scenario files (*.yaml) under {paths:?}");
    }
    let mut loaded = Vec::new();
    let mut errors = 0;
    for f in files {
        match scenario::load_file(&f) {
            Ok(l) => loaded.push(l),
            Err(diags) => {
                errors += diags.len();
                for d in diags {
                    eprintln!("{d}");
                }
            }
        }
    }
    let mut seen = std::collections::BTreeMap::new();
    for l in &loaded {
        let name = l.scenario.name.value.to_string();
        if let Some(prev) = seen.insert(name.clone(), l.path.clone()) {
            errors += 1;
            eprintln!(
                "{}:{}:{}: scenario name `{name}` is already used by {}; names must be unique (trials are named after them)",
                l.path.display(),
                l.scenario.name.line,
                l.scenario.name.column,
                prev.display()
            );
        }
    }
    Ok((loaded, errors))
}

/// Errors reject a file (exit 1); warnings - what loads but may check less than meant - are
/// printed as `FILE:LINE:COL: warning: ...` and counted, and leave the exit status alone.
pub fn check(paths: &[PathBuf]) -> Result<ExitCode> {
    let (loaded, errors) = load_all(paths)?;
    let mut warned = 0;
    for l in &loaded {
        for w in scenario::warnings(&l.path, &l.scenario) {
            eprintln!(
                "{}:{}:{}: warning: {}",
                w.file.display(),
                w.line,
                w.column,
                w.message
            );
            warned += 1;
        }
    }
    let warnings = match warned {
        0 => String::new(),
        n => format!(", {n} warning(s)"),
    };
    if errors > 0 {
        eprintln!(
            "{errors} error(s){warnings}; {} file(s) valid",
            loaded.len()
        );
        return Ok(ExitCode::FAILURE);
    }
    println!("{} scenario file(s) valid{warnings}", loaded.len());
    Ok(ExitCode::SUCCESS)
}

pub fn list(paths: &[PathBuf]) -> Result<ExitCode> {
    let (loaded, errors) = load_all(paths)?;
    for l in &loaded {
        let s = &l.scenario;
        let variants: Vec<String> = s.variants.keys().map(|v| v.to_string()).collect();
        println!("{}", s.name.value);
        println!("    file:     {}", l.path.display());
        if !s.tags.is_empty() {
            println!("    tags:     {}", s.tags.join(", "));
        }
        if !variants.is_empty() {
            println!("    variants: {}", variants.join(", "));
        }
        println!("    {}", s.description.trim());
    }
    Ok(if errors > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// One scenario file, or every diagnostic it has.
pub fn load_one(path: &Path) -> Result<LoadedScenario> {
    scenario::load_file(path).map_err(|ds| {
        anyhow::anyhow!(ds
            .iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join("\n"))
    })
}

pub fn new_from_xml(
    xml: &[PathBuf],
    output: Option<&Path>,
    name: Option<String>,
) -> Result<ExitCode> {
    let name = name
        .or_else(|| output.and_then(|o| o.file_stem()?.to_str().map(str::to_string)))
        .unwrap_or_else(|| "from-xml".into());
    name.parse::<scenario::Name>()
        .map_err(|e| anyhow::anyhow!("--name: {e}"))?;
    let mut files = Vec::new();
    for p in xml {
        let text =
            std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?;
        files.push((p.display().to_string(), text));
    }
    let s = scenario::from_xml::skeleton(&name, &files)?;
    // The promise is a file `check` accepts: hold the skeleton to it before writing anything.
    let shown = output.unwrap_or(Path::new("new.yaml"));
    if let Err(diags) = scenario::load_str(shown, &s.yaml) {
        let all: Vec<String> = diags.iter().map(|d| d.to_string()).collect();
        bail!(
            "the skeleton does not load (a bug in `new`):\n{}\n{}",
            all.join("\n"),
            s.yaml
        );
    }
    match output {
        Some(p) => {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(p)
                .with_context(|| {
                    format!("cannot create {} (it is never overwritten)", p.display())
                })?;
            std::io::Write::write_all(&mut f, s.yaml.as_bytes())
                .with_context(|| format!("cannot write {}", p.display()))?;
            eprintln!("wrote {}", p.display());
        }
        None => print!("{}", s.yaml),
    }
    for u in &s.unmapped {
        eprintln!("not mapped: {u}");
    }
    Ok(ExitCode::SUCCESS)
}

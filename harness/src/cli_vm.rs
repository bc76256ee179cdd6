//! CLI subcommands for images, the VM target and the in-guest agent.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context as _};
use clap::{Args, Subcommand};

use crate::image::{self, recipe, BuildOptions, Cache, Progress};
use crate::interrupt::Interrupt;

#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Build the guest image for a distribution (a cache hit when nothing changed).
    Build {
        #[arg(long, default_value = "debian-12")]
        distro: String,
        /// Build again even if the cache has this image.
        #[arg(long)]
        rebuild: bool,
    },
    /// List cached images.
    List,
    /// Remove cached images: one (directory or recipe name) or all.
    Rm {
        name: Option<String>,
        #[arg(long, conflicts_with = "name")]
        all: bool,
    },
}

pub fn run_image(cmd: ImageCommand, interrupt: &Interrupt) -> anyhow::Result<()> {
    let cache = Cache::default_location()?;
    match cmd {
        ImageCommand::Build { distro, rebuild } => {
            let source = recipe::builtin(&distro)?;
            let progress = Progress::stderr();
            let built = image::build(
                &cache,
                &source,
                &BuildOptions { rebuild },
                &progress,
                interrupt,
            )?;
            progress.finish();
            println!(
                "{} {} in {:.2} s: {}",
                source.recipe.name,
                if built.cached { "cached" } else { "built" },
                built.elapsed.as_secs_f64(),
                built.image.dir.display()
            );
        }
        ImageCommand::List => {
            let current: Vec<(String, String)> = recipe::builtin_names()
                .filter_map(|n| {
                    let src = recipe::builtin(n).ok()?;
                    Some((n.to_owned(), image::key_of(&src).ok()?.0))
                })
                .collect();
            let entries = cache.list(|r, h| current.iter().any(|(cr, ch)| cr == r && ch == h))?;
            if entries.is_empty() {
                println!("no images in {}", cache.root().display());
            }
            println!(
                "{:<12} {:<16} {:>9} {:>8}  {:<7} WARM",
                "NAME", "HASH", "SIZE", "AGE", "STATE"
            );
            for e in entries {
                println!(
                    "{:<12} {:<16} {:>9} {:>8}  {:<7} {}",
                    e.recipe,
                    e.hash,
                    human_size(e.size_bytes),
                    human_age(e.age),
                    if e.current { "current" } else { "stale" },
                    e.warm_snapshots
                );
            }
        }
        ImageCommand::Rm { name, all } => {
            if name.is_none() && !all {
                bail!("say which image to remove (NAME) or --all");
            }
            let removed = cache.remove(name.as_deref())?;
            for r in &removed {
                println!("removed {r}");
            }
            if removed.is_empty() {
                println!("nothing to remove in {}", cache.root().display());
            }
        }
    }
    Ok(())
}

fn human_size(bytes: u64) -> String {
    const MIB: f64 = 1024.0 * 1024.0;
    let b = bytes as f64;
    if b >= 1024.0 * MIB {
        format!("{:.1} GiB", b / 1024.0 / MIB)
    } else {
        format!("{:.0} MiB", b / MIB)
    }
}

fn human_age(age: Duration) -> String {
    let s = age.as_secs();
    match s {
        0..=119 => format!("{s}s"),
        120..=7199 => format!("{}m", s / 60),
        7200..=172_799 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86400),
    }
}

#[allow(dead_code)]
fn _unused(_: PathBuf) -> anyhow::Result<()> {
    Err(anyhow::anyhow!("")).context("")
}
#[allow(dead_code)]
#[derive(Debug, Args)]
struct _Placeholder {}

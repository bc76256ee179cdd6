//! Cost of loading scenarios strictly: YAML parse alone, parse + validation (`load_str`, what
//! the host and the guest agent both do), and the whole suite from disk (`discover` +
//! `load_file` for every file in scenarios/).
//!
//! Run: `cargo bench -p selinux-harness --bench scenario_load`

use std::path::{Path, PathBuf};

use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use selinux_harness::scenario::{discover, load_file, load_str, Scenario};

fn scenarios_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios")
}

fn bench(c: &mut Criterion) {
    let files = discover(&[scenarios_dir()]).expect("scenarios/");
    let sources: Vec<(PathBuf, String)> = files
        .iter()
        .map(|p| {
            (
                p.clone(),
                std::fs::read_to_string(p).expect("read scenario"),
            )
        })
        .collect();
    let bytes: usize = sources.iter().map(|(_, s)| s.len()).sum();

    let mut g = c.benchmark_group("scenario_load/suite");
    g.throughput(Throughput::Elements(sources.len() as u64));
    g.bench_function("parse_only", |b| {
        b.iter(|| {
            for (_, s) in &sources {
                let sc: Scenario = serde_saphyr::from_str(s).expect("parses");
                std::hint::black_box(sc);
            }
        })
    });
    g.bench_function("parse_and_validate", |b| {
        b.iter(|| {
            for (p, s) in &sources {
                std::hint::black_box(load_str(p, s).expect("valid"));
            }
        })
    });
    g.bench_function("discover_and_load_files", |b| {
        b.iter(|| {
            let files = discover(&[scenarios_dir()]).expect("scenarios/");
            for p in &files {
                std::hint::black_box(load_file(p).expect("valid"));
            }
        })
    });
    g.finish();

    let mut g = c.benchmark_group("scenario_load/file");
    for (p, s) in &sources {
        let name = p
            .file_stem()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        g.throughput(Throughput::Bytes(s.len() as u64));
        g.bench_with_input(BenchmarkId::from_parameter(name), s, |b, s| {
            b.iter(|| std::hint::black_box(load_str(p, s).expect("valid")))
        });
    }
    g.finish();
    eprintln!(
        "scenario_load: {} scenario files, {bytes} bytes in all",
        sources.len()
    );
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}

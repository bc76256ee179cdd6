//! Hostile scenario files: everything a scenario names ends up in a path, a libvirt call, an
//! XML document or a root-owned config file, so what could escape must be refused at load,
//! with the place it stands at.

use std::path::Path;

use rstest::rstest;
use selinux_harness::scenario::{load_file, load_str, load_with_warnings, Diagnostic};

fn errors(src: &str) -> Vec<Diagnostic> {
    match load_str(Path::new("bad.yaml"), src) {
        Ok(_) => panic!("loaded but must be rejected:\n{src}"),
        Err(e) => e,
    }
}

/// The single error of `src`: where it is, and that it says `text`.
fn rejected_at(src: &str, line: usize, column: usize, text: &str) {
    let errs = errors(src);
    let all: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
    assert!(
        errs.iter()
            .any(|e| (e.line, e.column) == (line, column) && e.message.contains(text)),
        "wanted {line}:{column}: {text:?}, got {all:#?}\nfor:\n{src}"
    );
}

fn with_image(name_yaml: &str) -> String {
    format!(
        "name: x\ndescription: d\nimages:\n  {name_yaml}: {{size: 1M}}\n\
         steps:\n  - relabel: {{image: a, context: \"system_u:object_r:virt_image_t:s0\"}}\n"
    )
}

#[rstest]
fn image_names_cannot_leave_the_sandbox(
    #[values(
        "../x.img",
        "a/../../b",
        "sub/dir.img",
        "/etc/shadow",
        "\"a\\0b\"",
        "\"a\\nb\"",
        "..",
        ".hidden",
        "-rf",
        "\"\""
    )]
    name: &str,
) {
    rejected_at(&with_image(name), 4, 3, "invalid name");
}

#[test]
fn image_names_are_at_most_40_characters() {
    rejected_at(&with_image(&"a".repeat(41)), 4, 3, "invalid name");
    let ok = "a".repeat(40);
    let src = with_image(&ok).replace("image: a,", &format!("image: {ok},"));
    assert!(load_str(Path::new("ok.yaml"), &src).is_ok());
}

#[rstest]
#[case::domain(
    "name: x\ndescription: d\ndomains:\n  ../vm: {}\nsteps: [{define: vm}]\n",
    4,
    3
)]
#[case::variant(
    "name: x\ndescription: d\nvariants:\n  a/b: {}\ndomains: {vm: {}}\nsteps: [{define: vm}]\n",
    4,
    3
)]
#[case::capture(
    "name: x\ndescription: d\ndomains: {vm: {}}\nsteps:\n  - start: vm\n    capture: {\"$(id)\": vm}\n",
    6,
    15
)]
// The scenario's own name becomes part of every libvirt domain name.
#[case::scenario("name: \"x;reboot\"\ndescription: d\nsteps: [{define: vm}]\n", 1, 7)]
fn domain_variant_and_capture_names_are_checked_too(
    #[case] src: &str,
    #[case] line: usize,
    #[case] column: usize,
) {
    rejected_at(src, line, column, "invalid name");
}

#[rstest]
fn contexts_with_shell_metacharacters_are_rejected(
    #[values(
        "system_u:object_r:svirt_image_t:s0;rm -rf /",
        "system_u:object_r:svirt_image_t$(id):s0",
        "system_u:object_r:`id`:s0",
        "system_u:object_r:svirt_image_t:s0 && reboot",
        "system_u:object_r:svirt_image_t:s0|cat",
        "system_u:object_r:svirt_image_t:s0\\nx",
        "system_u:object_r:svirt_image_t:s0:c1,c2>/etc/passwd",
        "system_u:object_r:svirt_image_t:s0'",
        "system_u:ob ject_r:svirt_image_t:s0"
    )]
    ctx: &str,
) {
    let src = format!(
        "name: x\ndescription: d\nimages:\n  a: {{size: 1M, context: \"{ctx}\"}}\n\
         steps:\n  - relabel: {{image: a, context: \"system_u:object_r:virt_image_t:s0\"}}\n"
    );
    let errs = errors(&src);
    assert!(
        errs.iter()
            .any(|e| e.line == 4 && e.message.contains("invalid SELinux context")),
        "{ctx}: {errs:?}"
    );
}

#[test]
fn a_probes_context_is_checked_too() {
    let src = "name: x\ndescription: d\nrequires: [probe_module]\nimages: {a: {size: 1M}}\nsteps:\n  - probe: {image: a, access: read, context: \"u:r:svirt_t:s0;id\"}\n";
    assert_eq!(errors(src)[0].line, 6);
}

fn with_qemu_conf(entry: &str) -> String {
    format!("name: x\ndescription: d\nhost:\n  qemu_conf:\n    {entry}\ndomains: {{vm: {{}}}}\nsteps: [{{define: vm}}]\n")
}

#[rstest]
// A second line smuggled in through a string.
#[case("user: \"root\\\"\\ngroup = \\\"root\"", "may not hold quotes")]
#[case("user: \"root\\nsecurity_driver = \\\"none\\\"\"", "may not hold")]
#[case("user: \"a\\\\b\"", "may not hold")]
#[case("user: \"a\\tb\"", "may not hold")]
// Characters Rust's Debug escaping turns into a backslash sequence when the value is written
// out: the rendered line would not be the value the scenario gave.
#[case("user: \"a\\u200Bb\"", "may not hold")]
#[case("user: \"\\u00ADx\"", "may not hold")]
#[case("user: \"caf\\u00E9\"", "may not hold")]
// Keys: only identifiers.
#[case("\"user = 0\\nx\": 1", "not an identifier")]
#[case("\"a b\": 1", "not an identifier")]
#[case("\"#x\": 1", "not an identifier")]
fn qemu_conf_values_cannot_inject_config(#[case] entry: &str, #[case] text: &str) {
    rejected_at(&with_qemu_conf(entry), 5, 5, text);
}

#[rstest]
fn qemu_conf_values_that_must_keep_working(
    #[values(
        "remember_owner: 0",
        "security_default_confined: true",
        "user: \"+107\"",
        "vnc_listen: \"0.0.0.0\"",
        "stdio_handler: \"file\""
    )]
    ok: &str,
) {
    if let Err(e) = load_str(Path::new("ok.yaml"), &with_qemu_conf(ok)) {
        panic!("{ok}: {e:?}");
    }
}

#[rstest]
fn boolean_names_are_identifiers(
    #[values("\"virt_use_nfs; reboot\"", "\"-P\"", "\"../x\"", "\"\"")] name: &str,
) {
    let src = format!(
        "name: x\ndescription: d\nhost:\n  booleans:\n    {name}: true\ndomains: {{vm: {{}}}}\nsteps: [{{define: vm}}]\n"
    );
    rejected_at(&src, 5, 5, "not an identifier");
}

#[rstest]
fn deep_nesting_is_refused_not_a_stack_overflow(#[values(100, 10_000, 200_000)] depth: usize) {
    // serde-saphyr's default budget allows 64 levels of nesting (max_depth) and 255 of flow
    // collections; both well below what blows a 2 MiB test thread stack.
    let flow = format!("name: {}{}", "[".repeat(depth), "]".repeat(depth));
    let errs = errors(&flow);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(errs[0].line >= 1, "{errs:?}");
    let mut block = String::from("name: x\ndescription: d\nsteps:\n");
    for i in 0..depth.min(5_000) {
        block.push_str(&" ".repeat(i + 1));
        block.push_str("- \n");
    }
    assert!(!errors(&block).is_empty());
}

#[test]
fn deeply_nested_yaml_in_a_small_stack() {
    // The guest runs scenarios on worker threads; prove the budget, not a large main stack,
    // is what protects them.
    let src = format!("steps: {}{}", "{a: ".repeat(50_000), "}".repeat(50_000));
    let h = std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(move || load_str(Path::new("deep.yaml"), &src).is_err())
        .unwrap();
    assert!(h.join().unwrap());
}

#[test]
fn alias_bombs_are_refused() {
    // "Billion laughs": nine levels of ten aliases each would expand to 10^9 nodes.
    let mut src = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..10 {
        let prev = format!("*a{}", i - 1);
        let items = [prev.as_str(); 10].join(", ");
        src.push_str(&format!("a{i}: &a{i} [{items}]\n"));
    }
    src.push_str("name: x\ndescription: d\nsteps: *a9\n");
    let started = std::time::Instant::now();
    let errs = errors(&src);
    assert!(!errs.is_empty());
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn huge_files_are_refused_before_parsing() {
    let t = tempfile::tempdir().unwrap();
    let p = t.path().join("huge.yaml");
    let mut body = String::from("name: x\ndescription: \"");
    body.push_str(&"a".repeat(2 << 20));
    body.push_str("\"\nsteps: [{define: vm}]\n");
    std::fs::write(&p, body).unwrap();
    let errs = load_file(&p).unwrap_err();
    assert_eq!((errs[0].line, errs[0].column), (0, 0));
    assert!(errs[0].message.contains("too large"), "{errs:?}");
}

#[test]
fn non_utf8_files_are_an_error_not_a_panic() {
    let t = tempfile::tempdir().unwrap();
    let p = t.path().join("latin1.yaml");
    std::fs::write(&p, b"name: caf\xe9\n").unwrap();
    let errs = load_file(&p).unwrap_err();
    assert!(errs[0].message.contains("cannot read"), "{errs:?}");
}

/// A load error speaks to the scenario's author: what is wrong in the file and how to fix it,
/// at its place - never serde-saphyr's advice to its caller (Options, DuplicateKeyPolicy,
/// from_str_multiple) or parser states ("expected mapping start").
#[rstest]
#[case("name: a\nname: b\n", 2, 1, "`name` is given twice")]
#[case("- a\n- b\n", 1, 1, "a scenario file is a mapping of keys")]
#[case(
    "# a comment\njust text\n",
    2,
    1,
    "a scenario file is a mapping of keys"
)]
#[case("", 1, 1, "the file is empty")]
#[case(
    "name: a\ndescription: d\nsteps: [{define: vm}]\n---\nname: b\n",
    5,
    1,
    "holds one YAML document"
)]
#[case("name: a\ndescription: d\nsteps: 3\n", 3, 8, "a list is needed here")]
#[case(
    "name: a\ndescription: d\ndomains: {vm: {}}\nsteps: [{define: vm, expect: {file: {a: 3}}}]\n",
    4,
    41,
    "a mapping is needed here"
)]
#[case("name: [a]\n", 1, 7, "a single value is needed here")]
#[case(
    "name: a\ndescription: d\ndomains: {vm: {}}\nsteps: [{define: vm, expect: {avc: nope}}]\n",
    4,
    36,
    "write `avc: none`"
)]
#[case(
    "name: a\ndescription: d\nimages: {a: {}}\nsteps: [{define: vm}]\n",
    3,
    13,
    "needs a `size`"
)]
fn load_errors_speak_to_the_author(
    #[case] src: &str,
    #[case] line: usize,
    #[case] column: usize,
    #[case] text: &str,
) {
    for e in errors(src) {
        for programmer in [
            "DuplicateKeyPolicy",
            "Options",
            "mapping start",
            "sequence start",
            "untagged enum",
            "from_str_multiple",
            " at line ",
        ] {
            assert!(!e.message.contains(programmer), "{src:?}: {e}");
        }
    }
    rejected_at(src, line, column, text);
}

fn with_error_message(error: &str) -> String {
    format!("name: a\ndescription: d\ndomains: {{vm: {{}}}}\nsteps:\n  - define: vm\n    expect:\n      error: {error}\n")
}

/// What loads but checks less than it seems is a warning with its place (and `check` prints it).
#[test]
fn a_message_of_few_words_is_a_warning() {
    let src = with_error_message("{message: write}");
    let (_, w) = load_with_warnings(Path::new("w.yaml"), &src).unwrap();
    assert_eq!(w.len(), 1, "{w:?}");
    assert_eq!((w[0].line, w[0].column), (7, 24));
    assert!(w[0].message.contains("1 word(s)"), "{w:?}");
}

#[rstest]
fn a_pinned_message_is_no_warning(
    #[values(
        "{message: Permission denied, code: VIR_ERR_SYSTEM_ERROR}",
        "{message: write, domain: VIR_FROM_QEMU}",
        "{message: which is already in use}"
    )]
    pinned: &str,
) {
    let (_, w) = load_with_warnings(Path::new("w.yaml"), &with_error_message(pinned)).unwrap();
    assert!(w.is_empty(), "{pinned}: {w:?}");
}

fn with_module(module: &str) -> String {
    format!(
        "name: x\ndescription: d\nhost:\n  modules: [{module}]\n  permissive: [svirt_t]\n\
         images: {{a: {{size: 1M}}}}\n\
         steps:\n  - relabel: {{image: a, context: \"system_u:object_r:virt_image_t:s0\"}}\n"
    )
}

#[rstest]
#[case("../x.cil", "not a plain relative path")]
#[case("a/../../b.cil", "not a plain relative path")]
#[case("/etc/selinux/x.cil", "not a plain relative path")]
#[case(".hidden.cil", "not a plain relative path")]
#[case("\"a b.cil\"", "not a plain relative path")]
#[case("\"a\\nb.cil\"", "not a plain relative path")]
#[case("sub//x.cil", "not a plain relative path")]
#[case("{file: ../x.cil, distro: [debian-12]}", "not a plain relative path")]
#[case("x.txt", "no known extension")]
#[case("x.te.bz2", "uncompressed")]
fn policy_module_paths_cannot_leave_their_folders(#[case] module: &str, #[case] text: &str) {
    rejected_at(&with_module(module), 4, 13, text);
}

#[test]
fn permissive_takes_type_names_and_a_plain_module_path_loads() {
    rejected_at(
        &with_module("ok.cil").replace("[svirt_t]", "[\"svirt_t:s0\"]"),
        5,
        16,
        "not a type name",
    );
    assert!(load_str(Path::new("ok.yaml"), &with_module("sub/ok.cil.bz2")).is_ok());
}

fn with_settle(domains: &str, settle: &str) -> String {
    format!(
        "name: x\ndescription: d\nimages:\n  a.img: {{size: 1M}}\n  b.img: {{size: 1M}}\n\
         domains:\n{domains}steps:\n  - start: vm1\n  - reset: vm1\n    settle: {settle}\n"
    )
}

const ONE_READER: &str = "  vm1: {disks: [a.img]}\n";
const TWO_READERS: &str = "  vm1: {disks: [a.img]}\n  vm2: {disks: [a.img]}\n";

#[rstest]
#[case(
    ONE_READER,
    "{until: disk_read, image: c.img, deadline: 8s}",
    11,
    39,
    "unknown image `c.img`"
)]
#[case(
    ONE_READER,
    "{until: disk_read, image: b.img, deadline: 8s}",
    11,
    39,
    "no domain has it"
)]
#[case(
    TWO_READERS,
    "{until: disk_read, image: a.img, deadline: 8s}",
    12,
    39,
    "vm1 and vm2 have it"
)]
#[case(ONE_READER, "{until: disk_read, image: a.img}", 11, 32, "deadline")]
#[case(
    ONE_READER,
    "{until: boot, image: a.img, deadline: 8s}",
    11,
    21,
    "disk_read"
)]
fn a_settle_condition_names_an_image_one_guest_reads(
    #[case] domains: &str,
    #[case] settle: &str,
    #[case] line: usize,
    #[case] column: usize,
    #[case] text: &str,
) {
    rejected_at(&with_settle(domains, settle), line, column, text);
}

#[rstest]
fn a_settle_condition_or_window_that_loads(
    #[values("{until: disk_read, image: a.img, deadline: 8s}", "2s")] ok: &str,
) {
    assert!(
        load_str(Path::new("ok.yaml"), &with_settle(ONE_READER, ok)).is_ok(),
        "{ok}"
    );
}

fn with_fw_cfg(entry: &str) -> String {
    format!(
        "name: x\ndescription: d\nimages:\n  a.bin: {{size: 1K}}\n\
         domains:\n  vm1: {{fw_cfg: {{{entry}: a.bin}}}}\nsteps: [{{define: vm1}}]\n"
    )
}

/// A fw_cfg entry name goes to QEMU's command line through libvirt: what QEMU would refuse is
/// refused at load, at the name.
#[rstest]
#[case::outside_opt("etc/table-loader", "must start with `opt/`")]
#[case::bare_opt("opt/", "must start with `opt/`")]
#[case::too_long(
    "opt/org.example/a-name-that-is-much-too-long-for-qemu-to-take",
    "at most 55"
)]
fn fw_cfg_entries_are_names_qemu_takes(#[case] entry: &str, #[case] text: &str) {
    rejected_at(&with_fw_cfg(entry), 6, 18, text);
}

/// A scenario whose guest `vm1` has the device given (`tpm: {}`, or none) and whose one step
/// expects `expect`.
fn with_device(device: &str, expect: &str) -> String {
    format!(
        "name: x\ndescription: d\nimages: {{a.img: {{size: 1M}}, q.img: {{size: 16M, format: qcow2}}}}\n\
         domains:\n  vm1: {{disks: [a.img]{device}}}\n\
         steps:\n  - start: vm1\n    expect: {expect}\n"
    )
}

/// The files and process only a device makes are named only for a guest that has the device,
/// swtpm's log has nothing below it, and none of them leads out of its directory.
#[rstest]
#[case("", "{absent: [$vm1.swtpmdir]}", 8, 23, "for a domain with `tpm: {}`")]
#[case("", "{label: {$vm1.ramdir: default}}", 8, 22, "`memory_backing: {}`")]
#[case(
    ", tpm: {}",
    "{absent: [$vm1.swtpmlog/x]}",
    8,
    23,
    "swtpmlog is one file"
)]
#[case(", tpm: {}", "{absent: [$vm1.swtpmdir/../../etc]}", 8, 23, "no '..'")]
#[case("", "{swtpm_owner: {vm1: 'swtpm:swtpm'}}", 8, 28, "has no swtpm")]
#[case(", pmem: [{image: q.img}]", "{}", 5, 40, "must be a new raw file")]
#[case(", pmem: [{image: b.img}]", "{}", 5, 40, "unknown image `b.img`")]
fn device_files_need_their_device(
    #[case] device: &str,
    #[case] expect: &str,
    #[case] line: usize,
    #[case] column: usize,
    #[case] text: &str,
) {
    rejected_at(&with_device(device, expect), line, column, text);
}

#[test]
fn device_files_of_a_guest_with_the_device_load() {
    let src = with_device(
        ", tpm: {model: tis}, memory_backing: {}, pmem: [{image: a.img, model: virtio_pmem}]",
        "{absent: [$vm1.swtpmdir/tpm2, $vm1.swtpmlog, $vm1.ramdir], swtpm_process: {vm1: {type: svirt_t}}}",
    );
    assert!(load_str(Path::new("ok.yaml"), &src).is_ok(), "{src}");
}

/// A scenario with a directory `share` (a file `d.txt` in it), a file `a.img`, and a guest
/// `vm1` with `domain` whose one step expects `expect`.
fn with_export(images: &str, domain: &str, expect: &str) -> String {
    format!(
        "name: x\ndescription: d\nimages: {{a.img: {{size: 1M}}, share: {{directory: true}}, d.txt: {{size: 1K, in: share}}{images}}}\n\
         domains:\n  vm1: {{disks: [a.img]{domain}}}\n\
         steps:\n  - start: vm1\n    expect: {expect}\n"
    )
}

/// A virtiofs export is a directory the harness makes in the sandbox, files go one level into
/// it, the guest's RAM is shared, and a helper is named as the kernel names it.
#[rstest]
#[case(
    "",
    ", memory_backing: {source: memfd}, virtiofs: [{dir: a.img}]",
    "{}",
    5,
    75,
    "give image `a.img` `directory: true`"
)]
#[case(
    "",
    ", virtiofs: [{dir: share}]",
    "{}",
    5,
    36,
    "virtiofs needs the guest's RAM shared"
)]
#[case(
    "",
    ", memory_backing: {access: private}, virtiofs: [{dir: share}]",
    "{}",
    5,
    71,
    "virtiofs needs the guest's RAM shared"
)]
#[case(
    "",
    ", virtiofs: [{dir: nope}], memory_backing: {}",
    "{}",
    5,
    42,
    "unknown image `nope`"
)]
#[case(
    ", b: {directory: true, size: 1M}",
    "",
    "{}",
    3,
    88,
    "is a directory the harness makes"
)]
#[case(
    ", e.txt: {size: 1K, in: a.img}",
    "",
    "{}",
    3,
    107,
    "names a file, not a directory"
)]
#[case(
    ", e.txt: {format: qcow2, size: 1M, in: share}",
    "",
    "{}",
    3,
    122,
    "only a new raw file"
)]
#[case(
    "",
    ", pmem: [{image: share}]",
    "{}",
    5,
    40,
    "is a directory (`directory: true`)"
)]
#[case(
    "",
    ", memory_backing: {source: hugepages}",
    "{}",
    5,
    50,
    "unknown value `hugepages`, expected one of file, memfd"
)]
#[case(
    "",
    "",
    "{helper_process: {vm1: {VirtioFSD: {type: virtd_t}}}}",
    8,
    37,
    "invalid helper name"
)]
#[case(
    "",
    "",
    "{helper_process: {vm1: {a-very-long-helper-name: {}}}}",
    8,
    37,
    "at most 15 characters"
)]
#[case(
    "",
    "",
    "{helper_process: {vm9: {virtiofsd: {type: virtd_t}}}}",
    8,
    31,
    "unknown domain `vm9`"
)]
#[case("", "", "{absent: [$vm1.fspid]}", 8, 23, "`virtiofs: [{dir: ...}]`")]
#[case(
    "",
    ", memory_backing: {source: memfd}, virtiofs: [{dir: share}]",
    "{absent: [$vm1.fspid/x]}",
    8,
    23,
    "as is $DOMAIN.fspid"
)]
fn virtiofs_exports_and_helpers_are_checked(
    #[case] images: &str,
    #[case] domain: &str,
    #[case] expect: &str,
    #[case] line: usize,
    #[case] column: usize,
    #[case] text: &str,
) {
    rejected_at(&with_export(images, domain, expect), line, column, text);
}

#[test]
fn a_virtiofs_export_with_shared_memory_loads() {
    let src = with_export(
        "",
        ", memory_backing: {source: memfd}, virtiofs: [{dir: share}]",
        "{file: {share: {type: virt_image_t}, d.txt: {type: virt_image_t}}, helper_process: {vm1: {virtiofsd: {not_level: s0}}}}",
    );
    assert!(load_str(Path::new("ok.yaml"), &src).is_ok(), "{src}");
}

fn with_restart(restart: &str, expect: &str) -> String {
    format!(
        "name: x\ndescription: d\nsteps:\n  - restart_daemon: {restart}\n    expect: {expect}\n"
    )
}

/// `restart_daemon:` with qemu.conf keys writes them into a root-owned file and expects a
/// daemon that may not come up: its keys are checked as `host:`'s are, and an error to match
/// is a message (the daemon's log has no code).
#[rstest]
#[case(
    "{daemon: libvirt, qemu_conf: {security_driver: nonee}}",
    "{}",
    4,
    51,
    "`security_driver` is one of"
)]
#[case(
    "{daemon: libvirt, qemu_conf: {\"user = 0\\nx\": 1}}",
    "{}",
    4,
    51,
    "not an identifier"
)]
#[case(
    "{daemon: libvirt, qemu_conf: {user: \"a\\nb\"}}",
    "{}",
    4,
    51,
    "may not hold"
)]
#[case("{demon: libvirt}", "{}", 4, 22, "unknown key `demon`")]
#[case("{qemu_conf: {a: 1}}", "{}", 4, 22, "missing key `daemon`")]
#[case("virtlogd", "{}", 4, 5, "libvirt")]
#[case(
    "{daemon: libvirt, qemu_conf: {security_require_confined: 1}}",
    "{error: {code: VIR_ERR_CONFIG_UNSUPPORTED, message: cannot create confined guests}}",
    5,
    28,
    "remove `VIR_ERR_CONFIG_UNSUPPORTED`"
)]
fn a_restart_under_qemu_conf_keys_is_checked(
    #[case] restart: &str,
    #[case] expect: &str,
    #[case] line: usize,
    #[case] column: usize,
    #[case] text: &str,
) {
    rejected_at(&with_restart(restart, expect), line, column, text);
}

#[test]
fn a_restart_that_must_fail_loads() {
    let src = with_restart(
        "{daemon: libvirt, qemu_conf: {security_driver: none, security_require_confined: 1}}",
        "{error: {message: cannot create confined guests}}",
    );
    if let Err(e) = load_str(Path::new("ok.yaml"), &src) {
        panic!("{e:?}");
    }
}

/// A scenario whose one step is `snapshot_create: {SNAP}` on a guest with a qcow2 disk.
fn with_snapshot(snap: &str) -> String {
    format!(
        "name: x\ndescription: d\nimages: {{q.qcow2: {{size: 1M, format: qcow2}}, o.qcow2: {{format: qcow2, create: false}}}}\n\
         domains:\n  vm1: {{disks: [q.qcow2]}}\n\
         steps:\n  - snapshot_create: {{{snap}}}\n"
    )
}

/// An internal snapshot takes neither a disk nor an overlay, an external one needs both; a
/// value that is not a boolean is refused where it stands.
#[rstest]
#[case(
    "domain: vm1, internal: true, overlay: o.qcow2",
    61,
    "has no overlay: remove `overlay`"
)]
#[case(
    "domain: vm1, internal: true, disk: vda",
    58,
    "covers every disk of the domain"
)]
#[case(
    "domain: vm1, disk: vda",
    31,
    "needs the image it creates: add `overlay"
)]
#[case(
    "domain: vm1, overlay: o.qcow2",
    31,
    "needs the disk's target: add `disk: vda`"
)]
#[case("domain: vm1, internal: false", 46, "add `overlay: IMAGE`")]
#[case("domain: vm1, internal: yes please", 46, "invalid boolean")]
fn snapshot_kinds_take_their_own_fields(
    #[case] snap: &str,
    #[case] column: usize,
    #[case] text: &str,
) {
    rejected_at(&with_snapshot(snap), 7, column, text);
}

#[test]
fn both_kinds_of_snapshot_load() {
    for snap in [
        "domain: vm1, internal: true",
        "domain: vm1, disk: vda, overlay: o.qcow2",
    ] {
        let src = with_snapshot(snap);
        assert!(load_str(Path::new("ok.yaml"), &src).is_ok(), "{src}");
    }
}

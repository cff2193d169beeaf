//! Project automation, run as `cargo xtask <command>` (see `.cargo/config.toml`).
//!
//! - `ci`: everything CI checks, in order: formatting, tidy, layering, PostgreSQL present
//!   (installed with apt-get if missing), Chromium for the web console's test (likewise),
//!   clippy with warnings denied, each library crate
//!   alone with each of its cargo features (`features`), all tests (with nextest when
//!   installed), doc tests, the net layer's optional transports' tests (features `quic`,
//!   `mdns`, `relay`), the runnable examples in `examples/`, the docs with broken
//!   intra-doc links denied, and packaging.
//! - `layering`: the library crates depend only on crates below them (the order is
//!   `LAYERS`).
//! - `features`: each library crate checks alone with `--no-default-features`, and with
//!   each of its features alone.
//! - `fuzz <target>|--all [--seconds N]`: runs cargo-fuzz (nightly) and keeps any crashing
//!   input under `test_data/fuzz/<target>/regressions/`, where ordinary tests replay it.
//! - `proptest [--cases N]`: all tests with `PROPTEST_CASES=N`.
//! - `bench`: the criterion benchmarks; their figures go to docs/BENCHMARKS.md by hand.
//! - `crash [--rounds N]`: the SIGKILL crash test of the store with N rounds (default 200).
//! - `soak [--rounds N]`: the replication convergence test (peers writing under dropped and
//!   reordered pushes, restarts and partitions) with N rounds (default 200).
//! - `tidy`: source hygiene (every `.rs` file starts with `//!`); also runs as a test.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// The library crates, lowest layer first: each may depend only on those before it.
const LAYERS: [&str; 8] = [
    "threads-id",
    "threads-crypto",
    "threads-log",
    "threads-store",
    "threads-net",
    "threads-views",
    "threads-acl",
    "threads-db",
];

/// The runnable examples in `examples/`.
const EXAMPLES: [&str; 4] = ["log_alone", "store_alone", "replicate", "custom_view"];

/// The fuzz targets in `fuzz/fuzz_targets/`.
const FUZZ_TARGETS: [&str; 13] = [
    "thread_id_bytes",
    "thread_id_text",
    "thread_addr",
    "keyset_open",
    "record_decode",
    "log_append",
    "message_bytes",
    "announcement",
    "invite_bytes",
    "wire_entries",
    "fork_proof",
    "car_bytes",
    "acl_op",
];

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((command, rest)) = args.split_first() else {
        bail!(
            "usage: cargo xtask <ci|layering|features|fuzz|proptest|bench|crash|soak|tidy> [options]"
        );
    };
    match command.as_str() {
        "ci" => ci().inspect_err(|_| disk_report("when it failed")),
        "layering" => layering(),
        "features" => feature_checks(),
        "fuzz" => fuzz(rest),
        "proptest" => proptest(rest),
        "bench" => bench(rest),
        "crash" => crash(rest),
        "soak" => soak(rest),
        "tidy" => tidy(),
        other => bail!("unknown command {other:?}"),
    }
}

/// Installs the TypeScript client's dev dependencies (`npm ci`), checks that the committed
/// `clients/js/dist` is what `src/index.ts` compiles to, and runs the client's tests.
fn typescript_client() -> Result<()> {
    let js = root().join("clients/js");
    let mut install = Command::new("npm");
    install
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(&js);
    run(install).context("the TypeScript client needs Node.js 20 or later and npm")?;
    let out = root().join("target/tmp/js-dist");
    let mut compile = Command::new("node");
    compile
        .arg("node_modules/typescript/bin/tsc")
        .args(["-p", ".", "--outDir"])
        .arg(&out)
        .current_dir(&js);
    run(compile)?;
    for file in ["index.js", "index.d.ts"] {
        let fresh = std::fs::read(out.join(file)).with_context(|| format!("compiled {file}"))?;
        let committed =
            std::fs::read(js.join("dist").join(file)).with_context(|| format!("dist/{file}"))?;
        if fresh != committed {
            bail!(
                "clients/js/dist/{file} is not the compile of src/index.ts: run `npm run build` in clients/js"
            );
        }
    }
    let mut test = Command::new("node");
    test.args(["--test", "test/"])
        .current_dir(&js)
        .env("THREADS_BIN", root().join("target/debug/threads"));
    run(test)
}

/// Prints the free space of the disk that holds `target/` and what `target/` takes, so that
/// a CI run that fills the disk says how much it had. Best effort: a machine without `df`
/// or `du` prints nothing.
fn disk_report(when: &str) {
    let root = root();
    for (program, args) in [("df", vec!["-h", "."]), ("du", vec!["-sh", "target"])] {
        if let Ok(out) = Command::new(program).args(args).current_dir(&root).output() {
            let text = String::from_utf8_lossy(&out.stdout);
            for line in text.lines() {
                eprintln!("ci: disk {when}: {line}");
            }
        }
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .into()
}

fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(root());
    // A CI run builds everything once: incremental caches would only fill the disk (tens
    // of GiB across the feature checks' builds) and slow the first build. Its binaries
    // carry no debug info: the line tables and the standard library's debug info are two
    // thirds of a test binary (110 of 171 MB for `db`), so a fresh CI build took 7.3 GB of
    // disk and ran a CI machine out of it. A panic still names its file and line; a
    // backtrace names functions only.
    if std::env::var_os("CI").is_some() {
        cmd.env("CARGO_INCREMENTAL", "0");
        cmd.env("CARGO_PROFILE_DEV_DEBUG", "false");
    }
    cmd
}

fn run(mut cmd: Command) -> Result<()> {
    eprintln!("$ {}", describe(&cmd));
    let status = cmd
        .status()
        .with_context(|| format!("starting {}", describe(&cmd)))?;
    if !status.success() {
        bail!("{} failed with {status}", describe(&cmd));
    }
    Ok(())
}

fn describe(cmd: &Command) -> String {
    let mut text = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        text.push(' ');
        text.push_str(&arg.to_string_lossy());
    }
    text
}

fn has_nextest() -> bool {
    cargo()
        .args(["nextest", "--version"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn ci() -> Result<()> {
    let started = std::time::Instant::now();
    disk_report("at the start");
    let mut fmt = cargo();
    fmt.args(["fmt", "--all", "--check"]);
    run(fmt)?;
    tidy()?;
    layering()?;
    ensure_postgres()?;
    ensure_packages()?;
    let mut clippy = cargo();
    clippy.args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--locked",
        "--",
        "-D",
        "warnings",
    ]);
    run(clippy)?;
    feature_checks()?;
    test_all(&[])?;
    // The QUIC transport is a cargo feature (it pulls in a TLS stack): built and tested
    // once, with the other optional transports and behaviours (mDNS, relay) on, so the
    // tests that need them run too.
    let mut quic = cargo();
    quic.args([
        "test",
        "--locked",
        "-p",
        "threads-net",
        "--features",
        "quic,mdns,relay",
        "--test",
        "net_quic",
        "--test",
        "net_sync",
    ]);
    run(quic)?;
    // The TypeScript client: its compiler from the committed lock file, the committed
    // dist/ checked against a fresh compile of src/ (the daemon serves dist/index.js to
    // its console), then its tests against a real daemon (the binary the tests above
    // built). A machine without Node.js fails here rather than skipping it.
    typescript_client()?;
    // The runnable examples at the workspace root run to their end. They are the binaries
    // the test build made (`cargo build --workspace` finds them built): `cargo run -p
    // threads-examples` would resolve the dependencies' features for that one package and
    // build them all again (three minutes on two cores).
    let mut examples = cargo();
    examples.args(["build", "--workspace", "--examples", "--locked"]);
    run(examples)?;
    for example in EXAMPLES {
        let mut cmd = Command::new(root().join("target/debug/examples").join(example));
        cmd.current_dir(root());
        run(cmd)?;
    }
    let mut doc = cargo();
    doc.args(["doc", "--workspace", "--no-deps", "--locked"])
        .env(
            "RUSTDOCFLAGS",
            "-D warnings -D rustdoc::broken_intra_doc_links -D rustdoc::private_intra_doc_links",
        );
    run(doc)?;
    // Every library crate packages (manifest, README, files): nothing is published. The
    // crates' own tests and doc tests (READMEs included) ran above, so no second build.
    let mut package = cargo();
    package.args([
        "package",
        "--workspace",
        "--locked",
        "--no-verify",
        "--allow-dirty",
        "--exclude",
        "threads-cli",
        "--exclude",
        "xtask",
        "--exclude",
        "threads-tests",
        "--exclude",
        "threads-examples",
    ]);
    run(package)?;
    disk_report("at the end");
    eprintln!("ci: all checks passed in {:.0?}", started.elapsed());
    Ok(())
}

/// The store's tests start a throwaway PostgreSQL server from the machine's `initdb` and
/// `pg_ctl`. Installs PostgreSQL from the distribution when it is missing and we may.
fn ensure_postgres() -> Result<()> {
    let found = std::env::var_os("THREADS_PG_BIN").is_some()
        || std::fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .any(|e| e.path().join("bin/initdb").exists())
        || Command::new("sh")
            .args(["-c", "command -v initdb"])
            .output()
            .is_ok_and(|o| o.status.success());
    if found {
        return Ok(());
    }
    eprintln!("ci: PostgreSQL (initdb, pg_ctl) not found; installing it with apt-get");
    let mut update = Command::new("apt-get");
    update.arg("update");
    run(update)?;
    let mut install = Command::new("apt-get");
    install.args(["install", "-y", "--no-install-recommends", "postgresql"]);
    install.env("DEBIAN_FRONTEND", "noninteractive");
    run(install)
        .context("PostgreSQL is needed by the store tests; install it or set THREADS_PG_BIN")
}

/// Installs with apt-get what the tests need and the machine lacks: Chromium (the web
/// console's browser test), iproute2 and nftables (network namespaces and NAT).
fn ensure_packages() -> Result<()> {
    let found = |bins: &[&str], arg: &str| {
        bins.iter().any(|b| {
            Command::new(b)
                .arg(arg)
                .output()
                .is_ok_and(|o| o.status.success())
        })
    };
    // Chromium for the web console's test; iproute2 (`ip netns`) and nftables (NAT) for
    // the tests that run peers in network namespaces (the README's relay example, peers
    // behind NAT).
    let mut missing = Vec::new();
    if !found(
        &["chromium", "chromium-browser", "google-chrome"],
        "--version",
    ) {
        missing.push("chromium");
    }
    if !found(&["ip"], "-V") {
        missing.push("iproute2");
    }
    if !found(&["nft"], "--version") {
        missing.push("nftables");
    }
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("ci: {missing:?} not found; installing with apt-get");
    let mut update = Command::new("apt-get");
    update.arg("update");
    run(update)?;
    let mut install = Command::new("apt-get");
    install.args(["install", "-y", "--no-install-recommends"]);
    install.args(&missing);
    install.env("DEBIAN_FRONTEND", "noninteractive");
    run(install).with_context(|| format!("the tests need {missing:?}; install them"))
}

/// Runs every test (unit, integration, fuzz replays) and then the doc tests, which nextest
/// does not run.
fn test_all(envs: &[(&str, String)]) -> Result<()> {
    let mut test = cargo();
    if has_nextest() {
        test.args([
            "nextest",
            "run",
            "--workspace",
            "--locked",
            "--no-fail-fast",
        ]);
    } else {
        test.args(["test", "--workspace", "--locked", "--no-fail-fast"]);
    }
    test.envs(envs.iter().map(|(k, v)| (k, v)));
    run(test)?;
    let mut doctest = cargo();
    doctest.args(["test", "--workspace", "--locked", "--doc"]);
    doctest.envs(envs.iter().map(|(k, v)| (k, v)));
    run(doctest)
}

/// The layering violations in `cargo metadata` output, one line each.
fn layering_violations(metadata: &serde_json::Value) -> Result<Vec<String>> {
    let packages = metadata["packages"]
        .as_array()
        .context("metadata has no packages")?;
    let members: Vec<&str> = packages.iter().filter_map(|p| p["name"].as_str()).collect();
    let rank = |name: &str| LAYERS.iter().position(|l| *l == name);
    let mut bad = Vec::new();
    for package in packages {
        let name = package["name"].as_str().unwrap_or_default();
        let Some(own) = rank(name) else { continue };
        for dep in package["dependencies"].as_array().into_iter().flatten() {
            let dep_name = dep["name"].as_str().unwrap_or_default();
            if !members.contains(&dep_name) {
                continue;
            }
            let dev = dep["kind"].as_str() == Some("dev");
            match rank(dep_name) {
                None if !dev => {
                    bad.push(format!("{name} depends on {dep_name}, which is not a library layer"))
                }
                None => {}
                Some(theirs) if theirs >= own => bad.push(format!(
                    "{name} (layer {own}) depends on {dep_name} (layer {theirs}): must only point down"
                )),
                Some(_) => {}
            }
        }
    }
    Ok(bad)
}

/// The workspace's `cargo metadata` (its own packages only).
fn metadata() -> Result<serde_json::Value> {
    let output = cargo()
        .args(["metadata", "--no-deps", "--format-version", "1"])
        .output()
        .context("running cargo metadata")?;
    if !output.status.success() {
        bail!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(serde_json::from_slice(&output.stdout)?)
}

/// The cargo features of `package` in `metadata`, but `default`, sorted.
fn features_of(metadata: &serde_json::Value, package: &str) -> Vec<String> {
    let mut features: Vec<String> = metadata["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["name"] == package)
        .filter_map(|p| p["features"].as_object())
        .flat_map(|f| f.keys().cloned())
        .filter(|f| f != "default")
        .collect();
    features.sort();
    features
}

/// Each library crate builds alone with no default features, and with each of its
/// features alone: a feature that needs another to build, or code that compiles only with
/// the workspace's unified features, fails here (`cargo check`, so no code is generated).
fn feature_checks() -> Result<()> {
    let metadata = metadata()?;
    for package in LAYERS {
        let mut sets = vec![None];
        sets.extend(features_of(&metadata, package).into_iter().map(Some));
        for set in sets {
            let mut check = cargo();
            check.args([
                "check",
                "--locked",
                "-p",
                package,
                "--lib",
                "--no-default-features",
            ]);
            if let Some(feature) = &set {
                check.args(["--features", feature]);
            }
            eprintln!(
                "features: {package} with {}",
                set.as_deref().unwrap_or("no default features")
            );
            run(check)?;
        }
    }
    Ok(())
}

fn layering() -> Result<()> {
    let metadata = metadata()?;
    let bad = layering_violations(&metadata)?;
    for line in &bad {
        eprintln!("layering: {line}");
    }
    if !bad.is_empty() {
        bail!("{} layering violation(s)", bad.len());
    }
    eprintln!("layering: ok");
    Ok(())
}

fn flag_value(args: &[String], flag: &str) -> Result<Option<u64>> {
    match args.iter().position(|a| a == flag) {
        None => Ok(None),
        Some(i) => {
            let value = args
                .get(i + 1)
                .with_context(|| format!("{flag} needs a value"))?;
            Ok(Some(
                value.parse().with_context(|| format!("{flag} {value}"))?,
            ))
        }
    }
}

fn fuzz(args: &[String]) -> Result<()> {
    let seconds = flag_value(args, "--seconds")?.unwrap_or(60);
    let targets: Vec<&str> = if args.iter().any(|a| a == "--all") {
        FUZZ_TARGETS.to_vec()
    } else {
        match args.first().filter(|a| !a.starts_with("--")) {
            Some(target) if FUZZ_TARGETS.contains(&target.as_str()) => vec![target.as_str()],
            Some(target) => bail!("unknown fuzz target {target:?}; targets: {FUZZ_TARGETS:?}"),
            None => bail!("usage: cargo xtask fuzz <target>|--all [--seconds N]"),
        }
    };
    let root = root();
    for target in targets {
        let corpus = root.join("fuzz/corpus").join(target);
        let seeds = root.join("test_data/fuzz").join(target).join("corpus");
        std::fs::create_dir_all(&corpus)?;
        let mut cmd = Command::new("cargo");
        cmd.current_dir(&root)
            .args(["+nightly", "fuzz", "run", target]);
        cmd.arg(&corpus);
        if seeds.is_dir() {
            cmd.arg(&seeds);
        }
        cmd.args(["--", &format!("-max_total_time={seconds}")]);
        let result = run(cmd);
        keep_crashes(&root, target)?;
        result?;
    }
    Ok(())
}

/// Copies crash inputs that cargo-fuzz left in `fuzz/artifacts/<target>` to
/// `test_data/fuzz/<target>/regressions/`, where the replay tests find them.
fn keep_crashes(root: &Path, target: &str) -> Result<()> {
    let artifacts = root.join("fuzz/artifacts").join(target);
    let Ok(entries) = std::fs::read_dir(&artifacts) else {
        return Ok(());
    };
    let keep = root.join("test_data/fuzz").join(target).join("regressions");
    for entry in entries {
        let path = entry?.path();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name.starts_with("crash-") || name.starts_with("oom-") || name.starts_with("timeout-") {
            std::fs::create_dir_all(&keep)?;
            std::fs::copy(&path, keep.join(&name))?;
            eprintln!("fuzz: kept {name} under {}", keep.display());
        }
    }
    Ok(())
}

fn proptest(args: &[String]) -> Result<()> {
    let cases = flag_value(args, "--cases")?.unwrap_or(1024);
    test_all(&[("PROPTEST_CASES", cases.to_string())])
}

fn crash(args: &[String]) -> Result<()> {
    let rounds = flag_value(args, "--rounds")?.unwrap_or(200);
    let mut cmd = cargo();
    cmd.args([
        "test",
        "--locked",
        "-p",
        "threads-tests",
        "--test",
        "store_crash",
    ])
    .env("THREADS_CRASH_ROUNDS", rounds.to_string());
    run(cmd)
}

fn soak(args: &[String]) -> Result<()> {
    let rounds = flag_value(args, "--rounds")?.unwrap_or(200);
    let mut cmd = cargo();
    cmd.args([
        "test",
        "--locked",
        "-p",
        "threads-tests",
        "--test",
        "replication_converge",
        "--",
        "replication_completes",
        "--nocapture",
    ])
    .env("THREADS_SOAK_ROUNDS", rounds.to_string());
    run(cmd)
}

fn bench(args: &[String]) -> Result<()> {
    let mut cmd = cargo();
    cmd.args(["bench", "--workspace", "--locked"]);
    if !args.is_empty() {
        cmd.arg("--").args(args);
    }
    run(cmd)
}

/// Source files that do not start with a `//!` comment (or, for a `lib.rs`, with the
/// crate's README included as its docs).
fn files_without_module_docs(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if path.is_dir() {
            if !matches!(name.as_str(), "target" | "corpus" | "artifacts" | ".git") {
                files_without_module_docs(&path, out)?;
            }
        } else if name.ends_with(".rs") {
            let text = std::fs::read_to_string(&path)?;
            let text = text.trim_start();
            // A crate's `lib.rs` may take its docs from its README.
            let readme =
                name == "lib.rs" && text.starts_with("#![doc = include_str!(\"../README.md\")]");
            if !text.starts_with("//!") && !readme {
                out.push(path);
            }
        }
    }
    Ok(())
}

fn tidy() -> Result<()> {
    let root = root();
    let mut missing = Vec::new();
    for dir in ["crates", "xtask", "fuzz", "tests", "benches"] {
        let dir = root.join(dir);
        if dir.is_dir() {
            files_without_module_docs(&dir, &mut missing)?;
        }
    }
    for path in &missing {
        eprintln!("tidy: {} does not start with a //! comment", path.display());
    }
    if !missing.is_empty() {
        bail!("{} file(s) without module docs", missing.len());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tidy_passes() {
        tidy().expect("tidy");
    }

    #[test]
    fn layering_catches_upward_and_foreign_dependencies() {
        let metadata = serde_json::json!({"packages": [
            {"name": "threads-id", "dependencies": [{"name": "threads-crypto", "kind": null}]},
            {"name": "threads-crypto", "dependencies": [
                {"name": "threads-id", "kind": null},
                {"name": "xtask", "kind": "dev"},
                {"name": "serde", "kind": null}
            ]},
            {"name": "threads-log", "dependencies": [{"name": "xtask", "kind": null}]},
            {"name": "xtask", "dependencies": [{"name": "threads-log", "kind": null}]}
        ]});
        let bad = layering_violations(&metadata).expect("valid metadata");
        assert_eq!(
            bad,
            [
                "threads-id (layer 0) depends on threads-crypto (layer 1): must only point down",
                "threads-log depends on xtask, which is not a library layer",
            ]
        );
    }

    #[test]
    fn this_workspace_is_layered() {
        let output = cargo()
            .args(["metadata", "--no-deps", "--format-version", "1"])
            .output()
            .expect("cargo metadata runs");
        let metadata: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json");
        assert_eq!(
            layering_violations(&metadata).expect("valid metadata"),
            Vec::<String>::new()
        );
    }
}

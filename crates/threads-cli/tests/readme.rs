//! The README's command lines, run as written: each line of its walkthrough, its members,
//! archives, compaction and backups, and its addresses goes through `sh` with the `threads` binary on
//! the `PATH`, in a temporary directory, with the placeholders (`<thread>`, `<member id>`,
//! `<invite>`, `<peer address>`) replaced by what the earlier lines printed. A README
//! example that stops working fails here, and a new `sh` block must be run here or named
//! with the reason it is not. The relay example runs between two network namespaces the
//! test makes (as root, with iproute2) and removes.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_threads");
const README: &str = include_str!("../../../README.md");
const LIMIT: Duration = Duration::from_secs(60);

/// The logical lines (continuations joined) of each `sh` block of the README.
fn sh_blocks(text: &str) -> Vec<Vec<String>> {
    let mut blocks = Vec::new();
    let mut current: Option<Vec<String>> = None;
    let mut pending = String::new();
    for line in text.lines() {
        match (&mut current, line.trim_end()) {
            (None, "```sh") => current = Some(Vec::new()),
            (Some(_), "```") => blocks.extend(current.take()),
            (Some(lines), line) => {
                if let Some(start) = line.strip_suffix('\\') {
                    pending.push_str(start);
                    continue;
                }
                pending.push_str(line.trim_start());
                lines.push(std::mem::take(&mut pending));
            }
            (None, _) => {}
        }
    }
    blocks
}

/// Processes started by `&` lines, killed when the test ends (also when it fails).
struct Background(Vec<Child>);

impl Drop for Background {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn shell(dir: &Path, path: &str, command: &str) -> Command {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(command)
        .current_dir(dir)
        .env("PATH", path)
        .env_remove("RUST_LOG");
    cmd
}

#[test]
fn the_readme_walkthrough_runs_as_written() {
    let dir = tempfile::tempdir().expect("dir");
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).expect("bin");
    std::os::unix::fs::symlink(BIN, bin.join("threads")).expect("symlink");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    // Every `sh` block of the README is run here, or named with the reason it is not.
    let blocks = sh_blocks(README);
    let mut chosen: Vec<&Vec<String>> = Vec::new();
    for block in &blocks {
        let first = block.first().map(String::as_str).unwrap_or_default();
        if first.starts_with("cargo ") {
            // The set-up commands: CI runs them (the demo test runs the first).
            continue;
        }
        if first.starts_with("threads --data ./r follower --relay") {
            // On two machines: `the_readme_relay_example_runs_between_two_machines`.
            continue;
        }
        chosen.push(block);
    }
    assert_eq!(
        chosen.len(),
        3,
        "the README's blocks changed: run the new one here or say why not"
    );

    let mut background = Background(Vec::new());
    let mut values: Vec<(&str, String)> = Vec::new();
    let mut ran = 0;
    for line in chosen.into_iter().flatten() {
        let command = line
            .split(" #")
            .next()
            .unwrap_or_default()
            .trim()
            .to_owned();
        if command.contains("<follower invite>") {
            // A follower runs until stopped and needs an invite made for its own id: the
            // daemon test `a_follower_replicates_with_the_service_key_only` runs one.
            continue;
        }
        let mut command = command;
        for (name, value) in &values {
            command = command.replace(name, value);
        }
        assert!(
            !command.contains('<'),
            "a placeholder has no value yet: {command}"
        );
        ran += 1;
        if let Some(daemon) = command.strip_suffix('&') {
            let data = daemon
                .split_whitespace()
                .nth(2)
                .expect("threads --data <dir> daemon");
            let api = dir.path().join(data).join("api");
            let child = shell(dir.path(), &path, &format!("exec {daemon}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("daemon");
            background.0.push(child);
            let started = Instant::now();
            while std::fs::read_to_string(&api).unwrap_or_default().is_empty() {
                assert!(started.elapsed() < LIMIT, "{daemon} did not start");
                std::thread::sleep(Duration::from_millis(50));
            }
            continue;
        }
        if command.contains(" watch ") {
            // Live events until stopped: the first one is enough.
            let mut child = shell(dir.path(), &path, &format!("exec {command}"))
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .expect("watch");
            let stdout = child.stdout.take().expect("stdout");
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let mut first = String::new();
                let _ = BufReader::new(stdout).read_line(&mut first);
                let _ = tx.send(first);
            });
            let first = rx.recv_timeout(LIMIT).unwrap_or_default();
            let _ = child.kill();
            let _ = child.wait();
            assert!(!first.trim().is_empty(), "{command} printed no event");
            continue;
        }
        // A read on the other peer waits for the sync, as a person would.
        let started = Instant::now();
        let output = loop {
            let output = shell(dir.path(), &path, &command)
                .output()
                .expect("command");
            let text = String::from_utf8_lossy(&output.stdout).trim().to_owned();
            let reads = command.contains(" doc query ");
            if output.status.success() && (!reads || text.contains("hello")) {
                break text;
            }
            assert!(
                reads && started.elapsed() < LIMIT,
                "{command} failed: {}\n{}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            );
            std::thread::sleep(Duration::from_millis(200));
        };
        if command.contains(" thread create") {
            values.retain(|(name, _)| *name != "<thread>");
            values.push(("<thread>", output));
        } else if command.ends_with(" id") {
            values.push(("<member id>", output));
            // A peer address of that peer (for `peer add`): its first listen address.
            let data = command.split_whitespace().nth(2).unwrap_or_default();
            let json = shell(
                dir.path(),
                &path,
                &format!("threads --data {data} --json id"),
            )
            .output()
            .expect("id");
            let identity: serde_json::Value =
                serde_json::from_slice(&json.stdout).expect("the id as JSON");
            let addr = identity["addrs"][0].as_str().expect("a listen address");
            let id = identity["id"].as_str().expect("an id");
            values.push(("<peer address>", format!("{addr}/p2p/{id}")));
        } else if command.contains(" thread invite ") {
            values.push(("<invite>", output));
        }
    }
    assert!(ran >= 20, "only {ran} README lines ran");
    // What the lines did: the archive, the backup and the restored peer exist.
    for file in ["t.car", "a.backup", "a2"] {
        assert!(dir.path().join(file).exists(), "{file} is missing");
    }
}

/// Two network namespaces joined by a veth pair, deleted when dropped (also when the test
/// fails): the README's "machines" for its relay example. Traffic stays inside them.
struct Hosts {
    names: [String; 2],
}

impl Hosts {
    /// Namespaces `names` with the addresses `addrs` (/24) on the two ends of one link.
    fn new(tag: &str, addrs: [&str; 2]) -> Hosts {
        let pid = std::process::id();
        let names = [format!("thr-{tag}0-{pid}"), format!("thr-{tag}1-{pid}")];
        let hosts = Hosts { names };
        let ip = |args: &[&str]| {
            let status = Command::new("ip")
                .args(args)
                .status()
                .expect("ip (iproute2)");
            assert!(status.success(), "ip {args:?} failed (needs root)");
        };
        let veth = [format!("thv{pid}a"), format!("thv{pid}b")];
        for name in &hosts.names {
            ip(&["netns", "add", name]);
        }
        ip(&[
            "link", "add", &veth[0], "type", "veth", "peer", "name", &veth[1],
        ]);
        for i in 0..2 {
            let (name, dev) = (&hosts.names[i], &veth[i]);
            ip(&["link", "set", dev, "netns", name]);
            ip(&[
                "-n",
                name,
                "addr",
                "add",
                &format!("{}/24", addrs[i]),
                "dev",
                dev,
            ]);
            ip(&["-n", name, "link", "set", dev, "up"]);
            ip(&["-n", name, "link", "set", "lo", "up"]);
        }
        hosts
    }

    /// `command` run by `sh` inside namespace `i`.
    fn shell(&self, i: usize, dir: &Path, path: &str, command: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.names[i], "sh", "-c", command])
            .current_dir(dir)
            .env("PATH", path)
            .env_remove("RUST_LOG");
        cmd
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        for name in &self.names {
            let _ = Command::new("ip").args(["netns", "delete", name]).status();
        }
    }
}

/// The README's relay example between two machines: a follower relays on one (its
/// announced address, 203.0.113.5, is that machine's), a daemon on the other listens
/// through it, and gets a relayed address. Each machine is a network namespace this test
/// makes (linked by a veth pair) and removes.
#[test]
fn the_readme_relay_example_runs_between_two_machines() {
    let block = sh_blocks(README)
        .into_iter()
        .find(|b| {
            b.first()
                .is_some_and(|l| l.starts_with("threads --data ./r follower --relay"))
        })
        .expect("the README's relay example");
    assert_eq!(block.len(), 2, "the relay example changed");
    let dir = tempfile::tempdir().expect("dir");
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).expect("bin");
    std::os::unix::fs::symlink(BIN, bin.join("threads")).expect("symlink");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let hosts = Hosts::new("relay", ["203.0.113.5", "203.0.113.6"]);
    let mut background = Background(Vec::new());

    // The relay, on the first machine: its peer id is the first line it prints.
    let relay = block[0]
        .split(" #")
        .next()
        .unwrap_or_default()
        .trim()
        .to_owned();
    let mut child = hosts
        .shell(0, dir.path(), &path, &format!("exec {relay}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("relay");
    let stdout = child.stdout.take().expect("stdout");
    background.0.push(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let first = rx.recv_timeout(LIMIT).expect("the relay started");
    let relay_id = first
        .strip_prefix("threads follower: peer ")
        .expect("the relay prints its peer id")
        .to_owned();

    // The daemon, on the second machine, listening through the relay.
    let daemon = block[1]
        .split(" #")
        .next()
        .unwrap_or_default()
        .trim()
        .replace("<relay id>", &relay_id);
    let child = hosts
        .shell(1, dir.path(), &path, &format!("exec {daemon}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("daemon");
    background.0.push(child);
    let data = daemon
        .split_whitespace()
        .nth(2)
        .expect("its data directory");
    let started = Instant::now();
    loop {
        let output = hosts
            .shell(
                1,
                dir.path(),
                &path,
                &format!("threads --data {data} --json id"),
            )
            .output()
            .expect("id");
        let addrs = serde_json::from_slice::<serde_json::Value>(&output.stdout)
            .map(|v| v["addrs"].to_string())
            .unwrap_or_default();
        if addrs.contains(&format!("/p2p/{relay_id}/p2p-circuit")) {
            break;
        }
        assert!(
            started.elapsed() < LIMIT,
            "the daemon got no relayed address: {addrs}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

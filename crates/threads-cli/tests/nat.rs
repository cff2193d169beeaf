//! Across real networks: five Linux network namespaces this test makes (as root, with
//! iproute2 and nftables) and removes, also when it fails. A public host runs a relaying
//! follower (`threads daemon --relay`, with the follow role); two peers sit behind NAT
//! routers that refuse inbound connections. The two join one thread by invite, write at
//! once and converge (through a relayed connection, or a direct one if hole punching
//! makes it); then one of them is offline while the other writes and leaves, and it
//! catches up from the follower, learned from the writer.
//!
//! ```text
//!  A 10.1.0.2 ── 10.1.0.1 N1 203.0.113.2 ── 203.0.113.1 R 203.0.114.1 ── 203.0.114.2 N2 10.2.0.1 ── 10.2.0.2 B
//! ```

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_threads");
const LIMIT: Duration = Duration::from_secs(90);

/// The namespaces and what runs in them; everything is removed when dropped.
struct Net {
    tag: String,
    names: Vec<String>,
    children: Vec<Child>,
}

impl Net {
    fn ns(&self, host: &str) -> String {
        format!("thn-{host}-{}", self.tag)
    }

    fn ip(args: &[&str]) {
        let status = Command::new("ip")
            .args(args)
            .status()
            .expect("ip (iproute2)");
        assert!(status.success(), "ip {args:?} failed (needs root)");
    }

    fn add_host(&mut self, host: &str) {
        let name = self.ns(host);
        Net::ip(&["netns", "add", &name]);
        Net::ip(&["-n", &name, "link", "set", "lo", "up"]);
        self.names.push(name);
    }

    /// A link between two hosts with an address (/24) on each end.
    fn link(&self, a: (&str, &str), b: (&str, &str)) {
        let (ends, pid) = (
            [format!("{}{}", a.0, b.0), format!("{}{}", b.0, a.0)],
            &self.tag,
        );
        let devs = [format!("t{}{pid}", ends[0]), format!("t{}{pid}", ends[1])];
        Net::ip(&[
            "link", "add", &devs[0], "type", "veth", "peer", "name", &devs[1],
        ]);
        for (dev, (host, addr)) in devs.iter().zip([a, b]) {
            let ns = self.ns(host);
            Net::ip(&["link", "set", dev, "netns", &ns]);
            Net::ip(&["-n", &ns, "addr", "add", &format!("{addr}/24"), "dev", dev]);
            Net::ip(&["-n", &ns, "link", "set", dev, "up"]);
        }
    }

    fn exec(&self, host: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns(host)]).args(args);
        cmd
    }

    fn run(&self, host: &str, args: &[&str]) {
        let status = self.exec(host, args).status().expect("run");
        assert!(status.success(), "{host}: {args:?} failed");
    }

    /// A router: forwards, with a default route.
    fn router(&self, host: &str, via: &str) {
        self.run(host, &["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
        self.run(host, &["ip", "route", "add", "default", "via", via]);
    }

    /// A NAT router: masquerades what leaves by its public side and drops new inbound
    /// connections.
    fn nat(&self, host: &str, private: &str) {
        let rules = format!(
            "table ip nat {{\n\
             \tchain post {{\n\
             \t\ttype nat hook postrouting priority 100;\n\
             \t\tiifname \"{private}\" masquerade\n\
             \t}}\n\
             }}\n\
             table inet filter {{\n\
             \tchain forwarding {{\n\
             \t\ttype filter hook forward priority 0; policy drop;\n\
             \t\tct state established,related accept\n\
             \t\tiifname \"{private}\" accept\n\
             \t}}\n\
             }}\n"
        );
        let mut child = self
            .exec(host, &["nft", "-f", "-"])
            .stdin(Stdio::piped())
            .spawn()
            .expect("nft (nftables)");
        use std::io::Write;
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(rules.as_bytes())
            .expect("rules");
        assert!(child.wait().expect("nft").success(), "nft rules refused");
    }

    /// `threads --data <dir> <args>` on `host`, started in the background.
    fn daemon(&mut self, host: &str, dir: &Path, args: &[&str]) {
        let _ = std::fs::remove_file(dir.join("api"));
        let child = self
            .exec(host, &[BIN, "--data", dir.to_str().expect("utf-8")])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .env_remove("RUST_LOG")
            .spawn()
            .expect("daemon");
        self.children.push(child);
        let started = Instant::now();
        while std::fs::read_to_string(dir.join("api"))
            .unwrap_or_default()
            .is_empty()
        {
            assert!(
                started.elapsed() < LIMIT,
                "{host}: the daemon did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the daemon started `index`th.
    fn stop(&mut self, index: usize) {
        let child = &mut self.children[index];
        let _ = child.kill();
        let _ = child.wait();
    }

    /// A CLI command on `host` against the daemon of `dir`; its JSON answer.
    fn cli(&self, host: &str, dir: &Path, args: &[&str]) -> Value {
        let output = self
            .exec(
                host,
                &[BIN, "--data", dir.to_str().expect("utf-8"), "--json"],
            )
            .args(args)
            .output()
            .expect("cli");
        assert!(
            output.status.success(),
            "{host}: threads {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).expect("JSON")
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        for name in &self.names {
            let _ = Command::new("ip").args(["netns", "delete", name]).status();
        }
    }
}

fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let started = Instant::now();
    while !check() {
        assert!(started.elapsed() < LIMIT, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn keys(net: &Net, host: &str, dir: &Path, thread: &str) -> Vec<String> {
    let items = net.cli(host, dir, &["kv", "list", thread]);
    let mut keys: Vec<String> = items["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|i| i["key"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    keys.sort();
    keys
}

fn id(net: &Net, host: &str, data: &Path) -> String {
    net.cli(host, data, &["id"])["id"]
        .as_str()
        .expect("id")
        .to_owned()
}

/// The counter of `log` in `thread` on the peer of `data`.
fn counter_of(net: &Net, host: &str, data: &Path, thread: &str, log: &str) -> u64 {
    net.cli(host, data, &["thread", "info", thread])["logs"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|l| l["log"].as_str() == Some(log))
        .and_then(|l| l["counter"].as_u64())
        .unwrap_or(0)
}

#[test]
fn peers_behind_nat_sync_through_a_relay_and_catch_up_from_the_follower() {
    let mut net = Net {
        tag: std::process::id().to_string(),
        names: Vec::new(),
        children: Vec::new(),
    };
    for host in ["r", "n1", "n2", "a", "b"] {
        net.add_host(host);
    }
    net.link(("r", "203.0.113.1"), ("n1", "203.0.113.2"));
    net.link(("r", "203.0.114.1"), ("n2", "203.0.114.2"));
    net.link(("n1", "10.1.0.1"), ("a", "10.1.0.2"));
    net.link(("n2", "10.2.0.1"), ("b", "10.2.0.2"));
    net.run("r", &["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
    net.router("n1", "203.0.113.1");
    net.router("n2", "203.0.114.1");
    // Each router's private side is its end of the link to its host.
    net.nat("n1", &format!("tn1a{}", net.tag));
    net.nat("n2", &format!("tn2b{}", net.tag));
    net.run("a", &["ip", "route", "add", "default", "via", "10.1.0.1"]);
    net.run("b", &["ip", "route", "add", "default", "via", "10.2.0.1"]);

    let dir = tempfile::tempdir().expect("dir");
    let (r, a, b) = (
        dir.path().join("r"),
        dir.path().join("a"),
        dir.path().join("b"),
    );
    // The public relay.
    net.daemon(
        "r",
        &r,
        &[
            "daemon",
            "--relay",
            "--listen",
            "/ip4/0.0.0.0/tcp/4001",
            "--announce",
            "/ip4/203.0.113.1/tcp/4001",
        ],
    );
    let r_id = net.cli("r", &r, &["id"])["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let circuit = format!("/ip4/203.0.113.1/tcp/4001/p2p/{r_id}/p2p-circuit");
    // The two peers behind NAT, each listening through the relay.
    for (host, data) in [("a", &a), ("b", &b)] {
        net.daemon(
            host,
            data,
            &[
                "daemon",
                "--listen",
                "/ip4/0.0.0.0/tcp/4002",
                "--listen",
                &circuit,
            ],
        );
        eventually(&format!("{host} to get a relayed address"), || {
            net.cli(host, data, &["id"])["addrs"]
                .to_string()
                .contains("p2p-circuit")
        });
    }
    let b_id = id(&net, "b", &b);

    // A creates a thread; the relay follows it, B writes in it.
    let thread = net.cli("a", &a, &["thread", "create", "--acl"])["thread"]
        .as_str()
        .expect("thread")
        .to_owned();
    for (host, data, member, role) in [("r", &r, &r_id, "follow"), ("b", &b, &b_id, "write")] {
        let invite = net.cli("a", &a, &["thread", "invite", &thread, member, role])["invite"]
            .as_str()
            .expect("invite")
            .to_owned();
        net.cli(host, data, &["thread", "join", &invite]);
    }

    // Both write at once; both see both.
    for i in 0..5 {
        net.cli("a", &a, &["kv", "put", &thread, &format!("a{i}"), "x"]);
        net.cli("b", &b, &["kv", "put", &thread, &format!("b{i}"), "x"]);
    }
    let all: Vec<String> = (0..5)
        .flat_map(|i| [format!("a{i}"), format!("b{i}")])
        .collect();
    let mut expected = all.clone();
    expected.sort();
    for (host, data) in [("a", &a), ("b", &b)] {
        eventually(&format!("{host} to see both writers"), || {
            keys(&net, host, data, &thread) == expected
        });
    }

    // B's log address book names the follower as a server of A's log: learned from the
    // sync, never configured.
    let a_id = id(&net, "a", &a);
    eventually("B's address book to name the follower for A's log", || {
        net.cli("b", &b, &["thread", "info", &thread])["logs"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|l| {
                l["log"].as_str() == Some(a_id.as_str()) && l["addrs"].to_string().contains(&r_id)
            })
    });

    // B goes offline; A writes more and goes offline too; B comes back and catches up
    // from the follower alone.
    net.stop(2);
    for i in 5..8 {
        net.cli("a", &a, &["kv", "put", &thread, &format!("a{i}"), "x"]);
    }
    let head = counter_of(&net, "a", &a, &thread, &a_id);
    eventually("the follower to hold A's later writes", || {
        counter_of(&net, "r", &r, &thread, &a_id) == head
    });
    net.stop(1);
    net.daemon(
        "b",
        &b,
        &[
            "daemon",
            "--listen",
            "/ip4/0.0.0.0/tcp/4002",
            "--listen",
            &circuit,
        ],
    );
    let mut later = expected.clone();
    later.extend((5..8).map(|i| format!("a{i}")));
    later.sort();
    eventually("B to catch up from the follower", || {
        keys(&net, "b", &b, &thread) == later
    });
}

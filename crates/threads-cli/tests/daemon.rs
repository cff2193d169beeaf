//! End-to-end tests that drive the real `threads` binary: two daemons on loopback exchange
//! an invite and sync a document collection through the CLI; a restarted daemon keeps its
//! data; a daemon killed with SIGKILL while writing loses no acknowledged write; malformed
//! requests get 4xx answers and the daemon keeps serving.

#[path = "../../threads-store/tests/support/pg_server.rs"]
mod pg_server;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_threads");
const LIMIT: Duration = Duration::from_secs(60);

struct Daemon {
    child: Child,
    data: PathBuf,
    addr: String,
    token: String,
    /// Every answer of `http`: method, path, status, JSON body (checked against the spec).
    answers: std::sync::Mutex<Vec<(String, String, u16, Value)>>,
}

impl Daemon {
    fn start(data: &Path) -> Daemon {
        Daemon::start_with(data, &[])
    }

    fn start_with(data: &Path, extra: &[&str]) -> Daemon {
        Daemon::spawn(data, extra, Stdio::null(), None)
    }

    /// Starts a daemon whose log lines (standard error) go to `log`, with `RUST_LOG` set.
    fn start_logged(data: &Path, extra: &[&str], log: &Path, filter: &str) -> Daemon {
        let file = std::fs::File::create(log).expect("log file");
        Daemon::spawn(data, extra, Stdio::from(file), Some(filter))
    }

    fn spawn(data: &Path, extra: &[&str], stderr: Stdio, filter: Option<&str>) -> Daemon {
        let _ = std::fs::remove_file(data.join("api"));
        let mut command = Command::new(BIN);
        command
            .args(["--data", data.to_str().expect("utf-8 path"), "daemon"])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(stderr)
            .env("THREADS_ACCESS_LOG", data.join("access.log"))
            .env_remove("RUST_LOG");
        if let Some(filter) = filter {
            command.env("RUST_LOG", filter);
        }
        let child = command.spawn().expect("start the daemon");
        let started = Instant::now();
        let api = loop {
            if let Ok(text) = std::fs::read_to_string(data.join("api"))
                && !text.is_empty()
            {
                break text;
            }
            assert!(started.elapsed() < LIMIT, "the daemon did not start");
            std::thread::sleep(Duration::from_millis(20));
        };
        let token = std::fs::read_to_string(data.join("token")).expect("token");
        Daemon {
            child,
            data: data.to_owned(),
            addr: api.trim().trim_start_matches("http://").to_owned(),
            token: token.trim().to_owned(),
            answers: std::sync::Mutex::default(),
        }
    }

    /// Runs a CLI command against this daemon; returns its JSON output.
    fn cli(&self, args: &[&str]) -> Value {
        let output = Command::new(BIN)
            .args(["--data", self.data.to_str().expect("utf-8"), "--json"])
            .args(args)
            .output()
            .expect("run the CLI");
        assert!(
            output.status.success(),
            "threads {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).expect("JSON output")
    }

    /// A raw HTTP request; returns the status and the body.
    fn http(&self, method: &str, path: &str, token: Option<&str>, body: &[u8]) -> (u16, Value) {
        let mut stream = TcpStream::connect(&self.addr).expect("connect");
        stream.set_read_timeout(Some(LIMIT)).expect("timeout");
        let auth = token
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            self.addr,
            body.len()
        );
        stream.write_all(head.as_bytes()).expect("write");
        // The daemon may answer (413) before reading a large body: ignore a reset here.
        let _ = stream.write_all(body);
        let mut raw = Vec::new();
        let _ = stream.read_to_end(&mut raw);
        let text = String::from_utf8_lossy(&raw);
        let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP answer");
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("a status");
        let body: Value = serde_json::from_str(body).unwrap_or(Value::Null);
        self.answers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push((method.to_owned(), path.to_owned(), status, body.clone()));
        (status, body)
    }

    fn call(&self, method: &str, path: &str, body: &Value) -> (u16, Value) {
        let token = self.token.clone();
        self.http(method, path, Some(&token), body.to_string().as_bytes())
    }

    fn stop(mut self) {
        #[cfg(unix)]
        {
            let _ = Command::new("kill")
                .args(["-TERM", &self.child.id().to_string()])
                .status();
        }
        let started = Instant::now();
        while self.child.try_wait().expect("wait").is_none() {
            if started.elapsed() > LIMIT {
                let _ = self.child.kill();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn kill(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reaped");
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Every answer this daemon gave is one the spec documents.
        if !std::thread::panicking() {
            check_against_spec(&self.data.join("access.log"));
            check_bodies(
                &self
                    .answers
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner),
            );
        }
    }
}

/// docs/openapi.json is what the daemon's code generates (`threads openapi`).
#[test]
fn the_spec_in_docs_is_the_one_the_code_generates() {
    let output = Command::new(BIN).arg("openapi").output().expect("run");
    assert!(output.status.success());
    let committed = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json"),
    )
    .expect("docs/openapi.json");
    assert!(
        String::from_utf8_lossy(&output.stdout) == committed,
        "docs/openapi.json is stale: run `cargo run -p threads-cli -- openapi > docs/openapi.json`"
    );
    let doc: Value = serde_json::from_str(&committed).expect("JSON");
    assert_eq!(doc["openapi"], "3.1.0");
    // Every operation documents its success and at least one schema for its answers.
    for (route, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("item") {
            let responses = op["responses"].as_object().expect("responses");
            assert!(
                responses.keys().any(|code| code.starts_with('2')),
                "{method} {route} documents no success"
            );
        }
    }
}

/// Statuses any operation may answer, as the spec's description documents them once for
/// all: no token, a wrong method, a body too large, a wrong content type, a failure.
const ANY_OPERATION: [u16; 5] = [401, 405, 413, 415, 500];

/// The generated document, docs/openapi.json.
fn spec_document() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json");
    serde_json::from_str(&std::fs::read_to_string(path).expect("the spec")).expect("JSON")
}

/// The operations of docs/openapi.json: (method, path template) -> documented statuses.
fn spec() -> std::collections::HashMap<(String, String), Vec<u16>> {
    let doc = spec_document();
    let mut ops: std::collections::HashMap<(String, String), Vec<u16>> = Default::default();
    for (route, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            let codes = op["responses"]
                .as_object()
                .expect("responses")
                .keys()
                .filter_map(|code| code.parse().ok())
                .collect();
            ops.insert((method.to_uppercase(), route.clone()), codes);
        }
    }
    ops
}

/// The route template of the spec that `path` (without its query) falls under.
fn template_of<'a>(doc: &'a Value, path: &str) -> Option<&'a str> {
    let segments: Vec<&str> = path.split('/').collect();
    doc["paths"]
        .as_object()?
        .keys()
        .filter(|template| {
            let parts: Vec<&str> = template.split('/').collect();
            parts.len() == segments.len()
                && parts
                    .iter()
                    .zip(&segments)
                    .all(|(t, s)| t.starts_with('{') || t == s)
        })
        // The most literal segments wins (`/collections` over `/{collection}`).
        .max_by_key(|template| template.split('/').filter(|t| !t.starts_with('{')).count())
        .map(String::as_str)
}

/// Checks each JSON answer's fields against the schema the spec gives for its operation
/// and status: every field is one the schema names, every required one is there.
fn check_bodies(answers: &[(String, String, u16, Value)]) {
    let doc = spec_document();
    let mut wrong = Vec::new();
    for (method, path, status, body) in answers {
        let Some(fields) = body.as_object() else {
            continue;
        };
        let path = path.split('?').next().unwrap_or_default();
        let Some(template) = template_of(&doc, path) else {
            continue;
        };
        let response =
            &doc["paths"][template][method.to_lowercase()]["responses"][status.to_string()];
        let schema = &response["content"]["application/json"]["schema"];
        let Some(reference) = schema["$ref"].as_str() else {
            continue;
        };
        let name = reference.trim_start_matches("#/components/schemas/");
        let schema = &doc["components"]["schemas"][name];
        let properties = schema["properties"].as_object().expect("properties");
        for field in fields.keys() {
            if !properties.contains_key(field) {
                wrong.push(format!(
                    "{method} {template} {status}: `{field}` is not in {name}"
                ));
            }
        }
        for required in schema["required"].as_array().into_iter().flatten() {
            let required = required.as_str().unwrap_or_default();
            if !fields.contains_key(required) {
                wrong.push(format!(
                    "{method} {template} {status}: {name} requires `{required}`"
                ));
            }
        }
    }
    wrong.sort();
    wrong.dedup();
    assert!(
        wrong.is_empty(),
        "answers whose fields differ from the spec (docs/openapi.json):\n{}",
        wrong.join("\n")
    );
}

/// Checks every line of a daemon's access log against the spec.
fn check_against_spec(log: &Path) {
    let Ok(text) = std::fs::read_to_string(log) else {
        return;
    };
    let ops = spec();
    let mut undocumented = Vec::new();
    for line in text.lines() {
        let mut parts = line.split(' ');
        let (Some(method), Some(route), Some(status)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let status: u16 = status.parse().expect("a status");
        let documented = if route == "-" {
            // No route: the JSON 404, documented once for all (`no_route`).
            status == 404 || ANY_OPERATION.contains(&status)
        } else if method == "OPTIONS" {
            // A browser's preflight, answered without a token (see the spec's description).
            matches!(status, 200 | 204 | 401 | 403)
        } else if ANY_OPERATION.contains(&status) {
            // Documented once for all, on any route of the spec (a wrong method included).
            ops.keys().any(|(_, r)| r == route)
        } else {
            ops.get(&(method.to_owned(), route.to_owned()))
                .is_some_and(|codes| codes.contains(&status))
        };
        if !documented {
            undocumented.push(line.to_owned());
        }
    }
    undocumented.sort();
    undocumented.dedup();
    assert!(
        undocumented.is_empty(),
        "answers the spec (docs/openapi.json) does not document:\n{}",
        undocumented.join("\n")
    );
}

fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let started = Instant::now();
    while !check() {
        assert!(started.elapsed() < LIMIT, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn two_daemons_sync_a_document_collection_and_keep_it_across_restarts() {
    let dir_a = tempfile::tempdir().expect("dir");
    let dir_b = tempfile::tempdir().expect("dir");
    let a = Daemon::start(dir_a.path());
    let b = Daemon::start(dir_b.path());

    let thread = a.cli(&["thread", "create", "--acl"])["thread"]
        .as_str()
        .expect("thread")
        .to_owned();
    let b_id = b.cli(&["id"])["id"].as_str().expect("id").to_owned();
    let invite = a.cli(&["thread", "invite", &thread, &b_id, "write"])["invite"]
        .as_str()
        .expect("invite")
        .to_owned();
    let joined = Command::new(BIN)
        .args([
            "--data",
            dir_b.path().to_str().expect("utf-8"),
            "--json",
            "thread",
            "join",
            &invite,
        ])
        .output()
        .expect("join");
    assert!(joined.status.success());
    let out: Value = serde_json::from_slice(&joined.stdout).expect("JSON");
    assert_eq!(out["thread"], json!(thread));
    // Progress goes to stderr: the entries received (here the ACL's founding and grant).
    let progress = String::from_utf8_lossy(&joined.stderr);
    let received: u64 = progress
        .lines()
        .find_map(|l| l.strip_prefix("caught up: "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("a progress line");
    assert!(received >= 2, "{progress}");
    let info = a.cli(&["thread", "info", &thread]);
    assert_eq!(info["variant"], json!("access_controlled"));
    let members = info["members"].as_array().cloned().unwrap_or_default();
    assert!(
        members
            .iter()
            .any(|m| m["member"] == json!(b_id) && m["role"] == json!("write")),
        "{info}"
    );
    a.cli(&[
        "doc",
        "collection",
        &thread,
        "tasks",
        r#"{"type":"object","required":["title"]}"#,
    ]);
    a.cli(&[
        "doc",
        "put",
        &thread,
        "tasks",
        "t1",
        r#"{"title":"from a"}"#,
    ]);
    eventually("b to see a's document", || {
        b.call(
            "GET",
            &format!("/v1/threads/{thread}/docs/tasks/t1"),
            &Value::Null,
        )
        .0 == 200
    });
    b.cli(&[
        "doc",
        "put",
        &thread,
        "tasks",
        "t2",
        r#"{"title":"from b"}"#,
    ]);
    eventually("a to see b's document", || {
        a.call(
            "GET",
            &format!("/v1/threads/{thread}/docs/tasks/t2"),
            &Value::Null,
        )
        .0 == 200
    });
    let query = a.cli(&[
        "doc",
        "query",
        &thread,
        "tasks",
        r#"{"sort":[{"path":"title","desc":true}]}"#,
    ]);
    let ids: Vec<&str> = query["docs"]
        .as_array()
        .expect("docs")
        .iter()
        .filter_map(|d| d["id"].as_str())
        .collect();
    assert_eq!(ids, ["t2", "t1"]);
    // A write that breaks the schema is refused with a stable code, and nothing changes.
    let (status, body) = a.call(
        "PUT",
        &format!("/v1/threads/{thread}/docs/tasks/t3"),
        &json!({"no": "title"}),
    );
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("schema_violation"))
    );

    // The thread as a CAR archive, from the CLI: another member imports it (nothing new
    // to it, every entry verified); a tampered archive is refused with the reason.
    let car = dir_a.path().join("thread.car");
    let car_text = car.to_str().expect("utf-8");
    let exported = a.cli(&["thread", "export", &thread, car_text]);
    assert!(
        exported["bytes"].as_u64().is_some_and(|n| n > 0),
        "{exported}"
    );
    let imported = b.cli(&["thread", "import", car_text]);
    assert_eq!(imported["thread"], json!(thread));
    assert!(
        imported["entries"].as_u64().is_some_and(|n| n >= 4),
        "{imported}"
    );
    let mut tampered = std::fs::read(&car).expect("archive");
    let at = tampered.len() - 5;
    tampered[at] ^= 1;
    let bad = dir_a.path().join("tampered.car");
    std::fs::write(&bad, &tampered).expect("write");
    let refused = Command::new(BIN)
        .args([
            "--data",
            dir_b.path().to_str().expect("utf-8"),
            "thread",
            "import",
        ])
        .arg(&bad)
        .output()
        .expect("import");
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("bad_archive"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );

    // Link invites from the CLI and over HTTP; an invite is a link or names a member.
    let link = a.cli(&["thread", "link", &thread, "read"]);
    assert!(
        link["invite"].as_str().is_some_and(|t| !t.is_empty()),
        "{link}"
    );
    let invites = format!("/v1/threads/{thread}/invites");
    let (status, _) = a.call(
        "POST",
        &invites,
        &json!({"link": true, "member": b_id, "role": "read"}),
    );
    assert_eq!(status, 400);
    let (status, _) = a.call("POST", &invites, &json!({"role": "read"}));
    assert_eq!(status, 400);

    // A thread left from the CLI is gone from this peer; the other keeps it.
    let left = a.cli(&["thread", "create"])["thread"]
        .as_str()
        .expect("thread")
        .to_owned();
    a.cli(&["kv", "put", &left, "x", "1"]);
    assert_eq!(a.cli(&["thread", "leave", &left])["left"], json!(true));
    assert!(
        !a.cli(&["thread", "list"])["threads"]
            .as_array()
            .expect("threads")
            .contains(&json!(left))
    );
    let (status, _) = a.call("GET", &format!("/v1/threads/{left}/kv/x"), &Value::Null);
    assert_eq!(status, 404);

    // A role changed from the CLI: b may read but no longer write (its write is refused
    // before it is stored); b may not change roles itself.
    let changed = a.cli(&["thread", "role", &thread, &b_id, "read"]);
    assert_eq!(changed, json!({"member": b_id, "role": "read"}));
    eventually("b to apply its new role", || {
        b.call(
            "PUT",
            &format!("/v1/threads/{thread}/docs/tasks/t4"),
            &json!({"title": "from b, now a reader"}),
        )
        .0 == 403
    });
    let a_id = a.cli(&["id"])["id"].as_str().expect("id").to_owned();
    let (status, body) = b.call(
        "PUT",
        &format!("/v1/threads/{thread}/members/{a_id}"),
        &json!({"role": "no-access"}),
    );
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("forbidden")),
        "{body}"
    );
    let (status, _) = a.call(
        "PUT",
        &format!("/v1/threads/{thread}/members/{b_id}"),
        &json!({"role": "owner"}),
    );
    assert_eq!(status, 400);
    // The default role, from the CLI and over HTTP (b may not set it).
    assert_eq!(
        a.cli(&["thread", "default-role", &thread, "read"]),
        json!({"role": "read"})
    );
    let (status, _) = b.call(
        "PUT",
        &format!("/v1/threads/{thread}/default-role"),
        &json!({"role": "write"}),
    );
    assert_eq!(status, 403);
    let (status, _) = a.call(
        "PUT",
        &format!("/v1/threads/{thread}/default-role"),
        &json!({"role": "owner"}),
    );
    assert_eq!(status, 400);

    // Live events over SSE, from the start: the ACL's founding event, the collection, t1.
    let output = Command::new(BIN)
        .args([
            "--data",
            dir_a.path().to_str().expect("utf-8"),
            "--json",
            "watch",
            &thread,
            "--count",
            "3",
        ])
        .output()
        .expect("watch");
    assert!(output.status.success());
    let events: Vec<Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("an event"))
        .collect();
    assert_eq!(events.len(), 3);
    assert!(events.iter().all(|e| e["cursor"].as_str().is_some()));

    // Compaction: the earlier colors are superseded; the value stays.
    a.cli(&["kv", "put", &thread, "color", "red"]);
    a.cli(&["kv", "put", &thread, "color", "green"]);
    a.cli(&["kv", "put", &thread, "color", "blue"]);
    let compacted = a.cli(&["compact", &thread]);
    assert!(
        compacted["events"].as_u64().is_some_and(|n| n >= 2)
            && compacted["freed_bytes"].as_u64().is_some_and(|n| n > 0),
        "{compacted}"
    );
    assert_eq!(a.cli(&["compact", &thread])["events"], json!(0));
    assert_eq!(
        a.cli(&["kv", "get", &thread, "color"])["value"],
        json!("blue")
    );
    a.stop();
    let a = Daemon::start(dir_a.path());
    assert_eq!(
        a.cli(&["kv", "get", &thread, "color"])["value"],
        json!("blue")
    );
    assert_eq!(
        a.cli(&["doc", "get", &thread, "tasks", "t2"])["doc"],
        json!({"title": "from b"})
    );
    assert_eq!(a.cli(&["thread", "list"])["threads"], json!([thread]));

    // A backup of the whole peer, restored into a new data directory: the same peer, with
    // its data, once its daemon starts there; a directory that holds a peer is refused.
    let backup = dir_a.path().join("peer.backup");
    let a_id = a.cli(&["id"])["id"].clone();
    let cli = |data: &Path, args: &[&str]| {
        Command::new(BIN)
            .env("THREADS_PASSPHRASE", "correct horse")
            .args(["--data", data.to_str().expect("utf-8"), "--json"])
            .args(args)
            .output()
            .expect("run the CLI")
    };
    let made = cli(dir_a.path(), &["backup", backup.to_str().expect("utf-8")]);
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    a.stop();
    let dir_c = tempfile::tempdir().expect("dir");
    let restored = cli(dir_c.path(), &["restore", backup.to_str().expect("utf-8")]);
    assert!(
        restored.status.success(),
        "{}",
        String::from_utf8_lossy(&restored.stderr)
    );
    let again = cli(dir_c.path(), &["restore", backup.to_str().expect("utf-8")]);
    assert!(
        !again.status.success(),
        "a directory with a peer is not overwritten"
    );
    let c = Daemon::start(dir_c.path());
    assert_eq!(c.cli(&["id"])["id"], a_id);
    assert_eq!(
        c.cli(&["kv", "get", &thread, "color"])["value"],
        json!("blue")
    );
    assert_eq!(
        c.cli(&["doc", "get", &thread, "tasks", "t2"])["doc"],
        json!({"title": "from b"})
    );
    drop(b);
}

#[test]
fn a_killed_daemon_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().expect("dir");
    let daemon = Daemon::start(dir.path());
    let thread = daemon.cli(&["thread", "create"])["thread"]
        .as_str()
        .expect("thread")
        .to_owned();
    // Write from another thread of this process until the daemon dies; keep the keys whose
    // write was acknowledged.
    let addr = daemon.addr.clone();
    let token = daemon.token.clone();
    let path = thread.clone();
    let writer = std::thread::spawn(move || {
        let mut acknowledged = Vec::new();
        for i in 0.. {
            let Ok(mut stream) = TcpStream::connect(&addr) else {
                break;
            };
            let body = json!({"value": format!("v{i}")}).to_string();
            let request = format!(
                "PUT /v1/threads/{path}/kv/k{i} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            if stream.write_all(request.as_bytes()).is_err() {
                break;
            }
            let mut raw = String::new();
            if stream.read_to_string(&mut raw).is_err() || !raw.starts_with("HTTP/1.1 200") {
                break;
            }
            acknowledged.push(i);
        }
        acknowledged
    });
    std::thread::sleep(Duration::from_millis(1_500));
    daemon.kill();
    let acknowledged = writer.join().expect("writer");
    assert!(
        acknowledged.len() > 5,
        "only {} writes before the kill",
        acknowledged.len()
    );

    let daemon = Daemon::start(dir.path());
    let items = daemon
        .call(
            "GET",
            &format!("/v1/threads/{thread}/kv?prefix=k"),
            &Value::Null,
        )
        .1;
    let stored: std::collections::BTreeSet<String> = items["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|i| i["key"].as_str().map(str::to_owned))
        .collect();
    for i in &acknowledged {
        assert!(
            stored.contains(&format!("k{i}")),
            "acknowledged write k{i} was lost"
        );
    }
}

/// A request (method, path, token, body) and the status and error code it must get.
type Case<'a> = (&'a str, String, Option<&'a str>, Vec<u8>, u16, &'a str);

#[test]
fn malformed_requests_get_4xx_and_the_daemon_keeps_serving() {
    let dir = tempfile::tempdir().expect("dir");
    let daemon = Daemon::start(dir.path());
    let thread = daemon.cli(&["thread", "create"])["thread"]
        .as_str()
        .expect("thread")
        .to_owned();
    let token = daemon.token.clone();
    let unknown = "bafkqaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let big = vec![b'x'; 2 << 20];
    let cases: Vec<Case<'_>> = vec![
        (
            "POST",
            "/v1/threads".into(),
            Some(&token),
            b"{not json".to_vec(),
            400,
            "bad_json",
        ),
        (
            "GET",
            "/v1/threads".into(),
            Some("wrong"),
            Vec::new(),
            401,
            "unauthorized",
        ),
        (
            "GET",
            "/v1/threads".into(),
            None,
            Vec::new(),
            401,
            "unauthorized",
        ),
        (
            "GET",
            format!("/v1/threads/{unknown}/kv/x"),
            Some(&token),
            Vec::new(),
            400,
            "bad_thread",
        ),
        (
            "PUT",
            format!("/v1/threads/{thread}/kv/x"),
            Some(&token),
            big,
            413,
            "too_large",
        ),
        (
            "PUT",
            format!("/v1/threads/{thread}/kv/x"),
            Some(&token),
            b"{\"value\": 5}".to_vec(),
            400,
            "bad_json",
        ),
        (
            "POST",
            format!("/v1/threads/{thread}/query/nothing"),
            Some(&token),
            b"{}".to_vec(),
            404,
            "unknown_collection",
        ),
        (
            "POST",
            format!("/v1/threads/{thread}/query/nothing"),
            Some(&token),
            b"{\"filter\": {\"eq\": 1}}".to_vec(),
            400,
            "bad_json",
        ),
        (
            "POST",
            "/v1/join".into(),
            Some(&token),
            b"{\"invite\": \"bnotaninvite\"}".to_vec(),
            400,
            "bad_invite",
        ),
        (
            "GET",
            "/v1/nothing".into(),
            Some(&token),
            Vec::new(),
            404,
            "no_route",
        ),
    ];
    for (method, path, token, body, status, code) in cases {
        let (got, answer) = daemon.http(method, &path, token, &body);
        assert_eq!(
            (got, answer["error"]["code"].as_str()),
            (status, Some(code)),
            "{method} {path}: {answer}"
        );
    }
    // A valid thread id that this daemon does not hold.
    let missing = threads_id::ThreadId::new(threads_id::Variant::Raw).to_string();
    let (status, body) = daemon.call("GET", &format!("/v1/threads/{missing}/kv/x"), &Value::Null);
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("unknown_thread"))
    );
    let (status, body) = daemon.call("GET", "/v1/identity", &Value::Null);
    assert_eq!(status, 200);
    assert!(
        body["id"]
            .as_str()
            .is_some_and(|id| id.starts_with("12D3KooW"))
    );
}

#[test]
fn the_demo_runs() {
    let output = Command::new(BIN)
        .arg("demo")
        .output()
        .expect("run the demo");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(text.contains("caught up through the follower"), "{text}");
    assert!(
        text.contains("query n >= 25 on bob: 10 documents"),
        "{text}"
    );
}

#[test]
fn a_follower_replicates_with_the_service_key_only() {
    let dir_a = tempfile::tempdir().expect("dir");
    let dir_f = tempfile::tempdir().expect("dir");
    let a = Daemon::start(dir_a.path());
    let thread = a.cli(&["thread", "create", "--acl"])["thread"]
        .as_str()
        .expect("thread")
        .to_owned();
    // The follower's identity, as `threads follower` keeps it in its data directory.
    let follower = threads_crypto::Identity::from_secret_bytes(&[7; 32]);
    std::fs::write(
        dir_f.path().join("identity"),
        multibase::encode(multibase::Base::Base32Lower, [7u8; 32]),
    )
    .expect("identity");
    let invite = a.cli(&[
        "thread",
        "invite",
        &thread,
        &follower.log_id().to_string(),
        "follow",
    ])["invite"]
        .as_str()
        .expect("invite")
        .to_owned();
    let mut child = Command::new(BIN)
        .args([
            "--data",
            dir_f.path().to_str().expect("utf-8"),
            "follower",
            "--invite",
            &invite,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the follower");
    a.cli(&["doc", "collection", &thread, "c", r#"{"type":"object"}"#]);
    a.cli(&[
        "doc",
        "put",
        &thread,
        "c",
        "x",
        r#"{"secret":"only readers see this"}"#,
    ]);
    let me = a.cli(&["id"])["id"].as_str().expect("id").to_owned();
    let log: threads_id::LogId = me.parse().expect("log id");
    let thread_id: threads_id::ThreadId = thread.parse().expect("thread id");
    // Wait until the follower pulled all four of the owner's events (ACL founding, the
    // grant, the collection, the document); then stop it and look at its store.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let path = dir_f.path().join("threads.db");
    let started = Instant::now();
    loop {
        let counter = rt.block_on(async {
            let store = threads_store::SqliteStore::open(&path).await.ok()?;
            use threads_store::LogBook;
            store
                .head(thread_id, log)
                .await
                .ok()
                .flatten()
                .map(|h| h.counter)
        });
        if counter == Some(4) {
            break;
        }
        assert!(
            started.elapsed() < LIMIT,
            "the follower did not replicate ({counter:?})"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    child.kill().expect("kill");
    child.wait().expect("reaped");
    let key = rt.block_on(async {
        use threads_store::ThreadBook;
        let store = threads_store::SqliteStore::open(&path).await.expect("open");
        store
            .thread_key(thread_id)
            .await
            .expect("key")
            .expect("the thread")
    });
    assert!(!key.can_read(), "a follower holds the service key only");
}

#[test]
fn a_daemon_keeps_its_data_in_postgresql() {
    let server = pg_server::PgServer::start();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let url = rt.block_on(server.fresh_database());
    let dir = tempfile::tempdir().expect("dir");
    let daemon = Daemon::start_with(dir.path(), &["--postgres", &url]);
    let thread = daemon.cli(&["thread", "create"])["thread"]
        .as_str()
        .expect("thread")
        .to_owned();
    daemon.cli(&["kv", "put", &thread, "where", "postgres"]);
    daemon.stop();
    // Nothing of the data is in the directory's SQLite file: it is in the server.
    assert!(!dir.path().join("threads.db").exists());
    let daemon = Daemon::start_with(dir.path(), &["--postgres", &url]);
    assert_eq!(
        daemon.cli(&["kv", "get", &thread, "where"])["value"],
        json!("postgres")
    );
}

#[test]
fn a_daemon_on_every_interface_gives_no_loopback_address_and_owns_its_directory() {
    let dir = tempfile::tempdir().expect("dir");
    let a = Daemon::start_with(dir.path(), &["--listen", "/ip4/0.0.0.0/tcp/0"]);
    let thread = a.cli(&["thread", "create"])["thread"]
        .as_str()
        .expect("thread")
        .to_owned();
    let listening = a.cli(&["id"])["addrs"].clone();
    let listening: Vec<&str> = listening
        .as_array()
        .expect("addrs")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        listening.iter().any(|a| a.starts_with("/ip4/127.")),
        "the wildcard listens on loopback too: {listening:?}"
    );
    assert!(
        listening
            .iter()
            .any(|a| !a.starts_with("/ip4/127.") && !a.starts_with("/ip6/::1/")),
        "this test needs a network interface besides loopback: {listening:?}"
    );
    let remote = |addr: &str| {
        let transport = addr.split("/p2p/").next().unwrap_or(addr);
        !transport.starts_with("/ip4/127.")
            && !transport.starts_with("/ip6/::1/")
            && !transport.starts_with("/ip4/0.0.0.0/")
    };
    let given = a.cli(&["thread", "addrs", &thread])["addrs"].clone();
    let given: Vec<&str> = given
        .as_array()
        .expect("addrs")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(!given.is_empty());
    assert!(given.iter().all(|a| remote(a)), "{given:?}");

    // An invite carries the same addresses, every one of them.
    let member = threads_crypto::Identity::generate();
    let invite = a.cli(&[
        "thread",
        "invite",
        &thread,
        &member.log_id().to_string(),
        "write",
    ])["invite"]
        .as_str()
        .expect("invite")
        .to_owned();
    let invite: threads_acl::AclInvite = invite.parse().expect("an invite");
    let (addrs, _) = invite.open(&member).expect("opens");
    let carried: Vec<String> = addrs.iter().map(ToString::to_string).collect();
    assert_eq!(carried, given, "the invite carries every address given");

    // A second daemon on the same data directory stops at once, saying why.
    let second = Command::new(BIN)
        .args(["--data", dir.path().to_str().expect("utf-8"), "daemon"])
        .output()
        .expect("run");
    assert!(!second.status.success());
    let error = String::from_utf8_lossy(&second.stderr);
    assert!(
        error.contains("in use by another threads process")
            && error.contains(&a.child.id().to_string()),
        "{error}"
    );
    // The first one still serves.
    assert_eq!(a.cli(&["thread", "list"])["threads"], json!([thread]));
    a.stop();
}

#[test]
fn rust_log_debug_shows_the_sync_and_a_config_file_sets_the_flags() {
    let dir_a = tempfile::tempdir().expect("dir");
    let dir_b = tempfile::tempdir().expect("dir");
    let logs = tempfile::tempdir().expect("dir");
    // b's listen address and log format come from its config file.
    std::fs::write(
        dir_b.path().join("config.toml"),
        "listen = [\"/ip4/127.0.0.1/tcp/0\"]\nlog_format = \"json\"\n",
    )
    .expect("config");
    let a = Daemon::start_logged(dir_a.path(), &[], &logs.path().join("a"), "debug");
    let b = Daemon::start_logged(
        dir_b.path(),
        &[],
        &logs.path().join("b"),
        "threads_net=debug",
    );
    let thread = a.cli(&["thread", "create"])["thread"]
        .as_str()
        .expect("thread")
        .to_owned();
    let b_id = b.cli(&["id"])["id"].as_str().expect("id").to_owned();
    let invite = a.cli(&["thread", "invite", &thread, &b_id, "write"])["invite"]
        .as_str()
        .expect("invite")
        .to_owned();
    b.cli(&["thread", "join", &invite]);
    a.cli(&["kv", "put", &thread, "k", "v"]);
    eventually("b to get the write", || {
        b.call("GET", &format!("/v1/threads/{thread}/kv/k"), &json!({}))
            .0
            == 200
    });
    let info = a.cli(&["thread", "info", &thread]);
    assert_eq!(info["variant"], json!("raw"));
    assert!(
        info["logs"].as_array().is_some_and(|l| !l.is_empty()),
        "{info}"
    );
    // a's log address book: b, which holds a's log, served it.
    let a_id = a.cli(&["id"])["id"].as_str().expect("id").to_owned();
    eventually("a's address book to name b for a's log", || {
        a.cli(&["thread", "info", &thread])["logs"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|l| {
                l["log"].as_str() == Some(a_id.as_str()) && l["addrs"].to_string().contains(&b_id)
            })
    });
    let peers = a.cli(&["peer", "list", &thread])["peers"].clone();
    assert!(
        peers.as_array().is_some_and(|p| p
            .iter()
            .any(|p| p.as_str().is_some_and(|p| p.contains(&b_id)))),
        "a knows b as a peer of the thread: {peers}"
    );
    // a pushes the write to b, or b pulls it (then a served it): a's debug log shows one.
    eventually("a's debug lines of the sync", || {
        let log_a = std::fs::read_to_string(logs.path().join("a")).expect("a's log");
        log_a.contains("pushed") || log_a.contains("pulled") || log_a.contains("served")
    });
    let log_a = std::fs::read_to_string(logs.path().join("a")).expect("a's log");
    assert!(log_a.contains("listening"), "{log_a}");
    eventually("b's JSON log lines of the sync", || {
        let log_b = std::fs::read_to_string(logs.path().join("b")).expect("b's log");
        log_b.lines().any(|line| {
            // The write reaches b pushed by a, or pulled by b's sync: either is logged.
            serde_json::from_str::<Value>(line).is_ok_and(|v| {
                (v["message"] == json!("pulled") || v["message"] == json!("pushed entries stored"))
                    && v["thread"] == json!(thread)
            })
        })
    });
    // A peer added by hand is listed (and a malformed one refused).
    let c = threads_crypto::Identity::generate();
    let addr = format!("/ip4/127.0.0.1/tcp/9/p2p/{}", c.log_id());
    let added = a.cli(&["peer", "add", &thread, &addr])["peer"]
        .as_str()
        .expect("peer")
        .to_owned();
    assert!(
        added.starts_with(&addr) && added.ends_with(&thread),
        "{added}"
    );
    assert!(
        a.cli(&["peer", "list", &thread])["peers"]
            .as_array()
            .is_some_and(|p| p.iter().any(|p| p.as_str() == Some(added.as_str())))
    );
    let (status, body) = a.call(
        "POST",
        &format!("/v1/threads/{thread}/peers"),
        &json!({"addr": "/ip4/127.0.0.1/tcp/9"}),
    );
    assert_eq!(status, 400, "{body}");
    a.stop();
    b.stop();
}

/// A raw HTTP/1.0 request with the given extra header lines; returns the status, the
/// head and the body (read until `enough` says so, or the end).
fn raw(
    addr: &str,
    request: &str,
    body: &[u8],
    enough: impl Fn(&str) -> bool,
) -> (u16, String, String) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(LIMIT)).expect("timeout");
    stream.write_all(request.as_bytes()).expect("write");
    stream.write_all(body).expect("write body");
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf).unwrap_or(0);
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&raw);
        if let Some((_, body)) = text.split_once("\r\n\r\n")
            && enough(body)
        {
            break;
        }
    }
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP answer");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status");
    (status, head.to_owned(), body.to_owned())
}

/// The Server-Sent Events in `body`: (id, data) of each complete one.
fn sse_events(body: &str) -> Vec<(String, Value)> {
    body.split("\n\n")
        .filter_map(|block| {
            let id = block.lines().find_map(|l| l.strip_prefix("id: "))?;
            let data = block.lines().find_map(|l| l.strip_prefix("data: "))?;
            Some((id.to_owned(), serde_json::from_str(data).ok()?))
        })
        .collect()
}

#[test]
fn transactions_collections_explain_and_the_change_feed_over_http() {
    let dir = tempfile::tempdir().expect("dir");
    let d = Daemon::start(dir.path());
    let thread = d.cli(&["thread", "create"])["thread"]
        .as_str()
        .expect("thread")
        .to_owned();
    let tx = format!("/v1/threads/{thread}/transactions");
    // A collection, an index, a document and a binary key as one event.
    let (status, body) = d.call(
        "POST",
        &tx,
        &json!({"ops": [
            {"op": "create_collection", "name": "notes", "schema": {"type": "object", "required": ["title"]}},
            {"op": "add_index", "collection": "notes", "name": "by_title", "path": "title", "unique": true},
            {"op": "create", "collection": "notes", "id": "n1", "doc": {"title": "one"}},
            {"op": "put", "key": "AAEC", "value": "/wA=", "encoding": "base64"}
        ]}),
    );
    assert_eq!(status, 200, "{body}");
    let (status, body) = d.call(
        "GET",
        &format!("/v1/threads/{thread}/collections"),
        &json!({}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["collections"][0]["name"], json!("notes"));
    assert_eq!(
        body["collections"][0]["indexes"][0]["name"],
        json!("by_title")
    );

    // A transaction whose second operation conflicts with its first is refused whole,
    // naming that operation; nothing of it is visible.
    let (status, body) = d.call(
        "POST",
        &tx,
        &json!({"ops": [
            {"op": "create", "collection": "notes", "id": "n2", "doc": {"title": "two"}},
            {"op": "create", "collection": "notes", "id": "n3", "doc": {"title": "two"}}
        ]}),
    );
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], json!("rejected"));
    let refused = body["error"]["details"]["refused"]
        .as_array()
        .expect("refused");
    assert_eq!(refused.len(), 1, "{body}");
    assert_eq!(refused[0]["index"], json!(1));
    assert_eq!(refused[0]["view"], json!("docs"));
    let (status, _) = d.call(
        "GET",
        &format!("/v1/threads/{thread}/docs/notes/n2"),
        &json!({}),
    );
    assert_eq!(status, 404);

    // A document with an id made by the daemon.
    let (status, body) = d.call(
        "POST",
        &format!("/v1/threads/{thread}/docs/notes"),
        &json!({"title": "three"}),
    );
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_str().expect("id").to_owned();
    let (status, body) = d.call(
        "GET",
        &format!("/v1/threads/{thread}/docs/notes/{id}"),
        &json!({}),
    );
    assert_eq!(
        (status, body["doc"]["title"].clone()),
        (200, json!("three"))
    );

    // The schema changes (version 2); a query reads the index (explain says so).
    let (status, body) = d.call(
        "PUT",
        &format!("/v1/threads/{thread}/collections/notes/schema"),
        &json!({"schema": {"type": "object"}}),
    );
    assert_eq!(status, 200, "{body}");
    let (_, body) = d.call(
        "GET",
        &format!("/v1/threads/{thread}/collections/notes"),
        &json!({}),
    );
    assert_eq!(body["version"], json!(2), "{body}");
    let (status, body) = d.call(
        "POST",
        &format!("/v1/threads/{thread}/explain/notes"),
        &json!({"filter": {"eq": ["title", "one"]}}),
    );
    assert_eq!(status, 200, "{body}");
    assert!(
        body["plan"].as_str().expect("plan").contains("by_title"),
        "{body}"
    );

    // A wrong method: 405 with Allow and the JSON error; a body that is not JSON: 415.
    let auth = format!("Authorization: Bearer {}\r\n", d.token);
    let (status, head, body) = raw(
        &d.addr,
        &format!("DELETE /v1/threads HTTP/1.0\r\n{auth}\r\n"),
        b"",
        |_| false,
    );
    assert_eq!(status, 405, "{head}");
    assert!(
        head.to_ascii_lowercase().contains("allow: get,head,post"),
        "{head}"
    );
    assert!(body.contains("method_not_allowed"), "{body}");
    let (status, _, body) = raw(
        &d.addr,
        &format!(
            "POST {tx} HTTP/1.0\r\n{auth}Content-Type: text/plain\r\nContent-Length: 2\r\n\r\n"
        ),
        b"{}",
        |_| false,
    );
    assert_eq!(status, 415, "{body}");
    assert!(body.contains("unsupported_media_type"), "{body}");

    // The change feed: each event with its operations; its ids resume losslessly.
    let feed = format!("/v1/threads/{thread}/changes");
    let (status, _, body) = raw(
        &d.addr,
        &format!("GET {feed} HTTP/1.0\r\n{auth}\r\n"),
        b"",
        |body| sse_events(body).len() >= 3,
    );
    assert_eq!(status, 200);
    let events = sse_events(&body);
    assert_eq!(events.len(), 3, "{body}");
    let first = &events[0].1["changes"];
    assert_eq!(first[2]["kind"], json!("doc"));
    assert_eq!(first[2]["action"], json!("create"));
    assert_eq!(first[2]["id"], json!("n1"));
    assert_eq!(first[3]["kind"], json!("kv"));
    assert_eq!(first[3]["key"], json!("\u{0}\u{1}\u{2}"));
    assert_eq!(first[3]["value_encoding"], json!("base64"));
    let (_, _, body) = raw(
        &d.addr,
        &format!(
            "GET {feed} HTTP/1.0\r\n{auth}Last-Event-ID: {}\r\n\r\n",
            events[0].0
        ),
        b"",
        |body| sse_events(body).len() >= 2,
    );
    let resumed = sse_events(&body);
    assert_eq!(
        resumed.iter().map(|(id, _)| id.clone()).collect::<Vec<_>>(),
        events[1..]
            .iter()
            .map(|(id, _)| id.clone())
            .collect::<Vec<_>>(),
        "resumes right after the event whose id it was given"
    );
    // A collection deleted with its documents; its name free again.
    let scratch = format!("/v1/threads/{thread}/collections/scratch");
    let (status, _) = d.call(
        "POST",
        &format!("/v1/threads/{thread}/collections"),
        &json!({"name": "scratch", "schema": {"type": "object"}}),
    );
    assert_eq!(status, 200);
    let (status, _) = d.call(
        "PUT",
        &format!("/v1/threads/{thread}/docs/scratch/s1"),
        &json!({"x": 1}),
    );
    assert_eq!(status, 200);
    let (status, body) = d.call("DELETE", &scratch, &json!({}));
    assert_eq!(status, 200, "{body}");
    assert!(body["counter"].as_u64().is_some(), "{body}");
    assert_eq!(d.call("GET", &scratch, &json!({})).0, 404);
    assert_eq!(d.call("DELETE", &scratch, &json!({})).0, 404);
    assert_eq!(
        d.call(
            "GET",
            &format!("/v1/threads/{thread}/docs/scratch/s1"),
            &json!({})
        )
        .0,
        404
    );

    d.stop();
}

#[test]
fn binary_keys_and_values_cors_origins_and_stream_tokens() {
    let dir = tempfile::tempdir().expect("dir");
    let d = Daemon::start_with(dir.path(), &["--cors-origin", "https://app.example"]);
    let thread = d.cli(&["thread", "create"])["thread"]
        .as_str()
        .expect("thread")
        .to_owned();
    // A key and value that are not UTF-8 go in and come back byte for byte.
    let (status, body) = d.call(
        "PUT",
        &format!("/v1/threads/{thread}/kv/_wA?key_encoding=base64"),
        &json!({"value": "AP8=", "encoding": "base64"}),
    );
    assert_eq!(status, 200, "{body}");
    let (status, body) = d.call(
        "GET",
        &format!("/v1/threads/{thread}/kv/_wA?key_encoding=base64"),
        &json!({}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["key"].clone(), body["key_encoding"].clone()),
        (json!("/wA="), json!("base64"))
    );
    assert_eq!(
        (body["value"].clone(), body["encoding"].clone()),
        (json!("AP8="), json!("base64"))
    );
    let (_, body) = d.call(
        "GET",
        &format!("/v1/threads/{thread}/kv?prefix=_w&prefix_encoding=base64"),
        &json!({}),
    );
    assert_eq!(body["items"].as_array().map(Vec::len), Some(1), "{body}");
    d.cli(&["kv", "put", &thread, "plain", "text"]);
    assert_eq!(
        d.cli(&["kv", "get", &thread, "plain"])["encoding"],
        json!("utf8")
    );
    // The CLI percent-encodes what it puts in a path: keys with `/`, `?`, `%` or spaces.
    for key in ["a/b c?d", "100%", "x#y&z=1"] {
        d.cli(&["kv", "put", &thread, key, "v"]);
        assert_eq!(d.cli(&["kv", "get", &thread, key])["key"], json!(key));
    }
    let listed = d.cli(&["kv", "list", &thread, "a/b "])["items"].clone();
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");

    // CORS: a preflight from the allowed origin is answered without a token; answers
    // carry the origin; another origin gets no CORS header.
    let (status, head, _) = raw(
        &d.addr,
        &format!(
            "OPTIONS /v1/threads/{thread}/transactions HTTP/1.0\r\nOrigin: https://app.example\r\n\
             Access-Control-Request-Method: POST\r\nAccess-Control-Request-Headers: authorization, content-type\r\n\r\n"
        ),
        b"",
        |_| false,
    );
    let head = head.to_ascii_lowercase();
    assert_eq!(status, 204, "{head}");
    assert!(
        head.contains("access-control-allow-origin: https://app.example"),
        "{head}"
    );
    assert!(
        head.contains("access-control-allow-headers: authorization"),
        "{head}"
    );
    let auth = format!("Authorization: Bearer {}\r\n", d.token);
    let (status, head, _) = raw(
        &d.addr,
        &format!("GET /v1/threads HTTP/1.0\r\n{auth}Origin: https://app.example\r\n\r\n"),
        b"",
        |_| false,
    );
    assert_eq!(status, 200);
    assert!(
        head.to_ascii_lowercase()
            .contains("access-control-allow-origin: https://app.example")
    );
    let (status, head, _) = raw(
        &d.addr,
        &format!("GET /v1/threads HTTP/1.0\r\n{auth}Origin: https://evil.example\r\n\r\n"),
        b"",
        |_| false,
    );
    assert_eq!(status, 200);
    assert!(
        !head
            .to_ascii_lowercase()
            .contains("access-control-allow-origin"),
        "{head}"
    );
    let (status, _, _) = raw(
        &d.addr,
        "OPTIONS /v1/threads HTTP/1.0\r\nOrigin: https://evil.example\r\nAccess-Control-Request-Method: GET\r\n\r\n",
        b"",
        |_| false,
    );
    assert_eq!(
        status, 401,
        "a preflight from another origin is not answered"
    );

    // A stream token opens this thread's change feed without a header, and nothing else.
    let (status, body) = d.call("POST", "/v1/stream-tokens", &json!({"thread": thread}));
    assert_eq!(status, 200, "{body}");
    let token = body["token"].as_str().expect("token").to_owned();
    let (status, _, body) = raw(
        &d.addr,
        &format!("GET /v1/threads/{thread}/changes?token={token} HTTP/1.0\r\n\r\n"),
        b"",
        |body| !sse_events(body).is_empty(),
    );
    assert_eq!(status, 200);
    assert!(!sse_events(&body).is_empty(), "{body}");
    for path in [
        format!("/v1/threads/{thread}/kv?token={token}"),
        format!("/v1/threads/{thread}/changes?token=wrong"),
        format!("/v1/threads?token={token}"),
    ] {
        let (status, _, _) = raw(
            &d.addr,
            &format!("GET {path} HTTP/1.0\r\n\r\n"),
            b"",
            |_| false,
        );
        assert_eq!(status, 401, "{path}");
    }
    let other = d.cli(&["thread", "create"])["thread"]
        .as_str()
        .expect("thread")
        .to_owned();
    let (status, _, _) = raw(
        &d.addr,
        &format!("GET /v1/threads/{other}/changes?token={token} HTTP/1.0\r\n\r\n"),
        b"",
        |_| false,
    );
    assert_eq!(status, 401, "a token opens its own thread's streams only");

    // `threads watch` shows each operation.
    let output = Command::new(BIN)
        .args([
            "--data",
            dir.path().to_str().expect("utf-8"),
            "watch",
            &thread,
            "--count",
            "2",
        ])
        .output()
        .expect("watch");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("kv put plain = text"), "{text}");
    d.stop();
}

#[test]
fn automerge_documents_and_live_queries_over_http() {
    use automerge::transaction::Transactable as _;
    use base64::Engine as _;
    let dir = tempfile::tempdir().expect("dir");
    let d = Daemon::start(dir.path());
    let thread = d.cli(&["thread", "create"])["thread"]
        .as_str()
        .expect("thread")
        .to_owned();
    let doc = format!("/v1/threads/{thread}/automerge/notes/a1");
    let (status, body) = d.call(
        "PATCH",
        &doc,
        &json!({"title": "hello", "tags": ["x", "y"], "meta": {"n": 1}, "done": false}),
    );
    assert_eq!(status, 200, "{body}");
    let (status, body) = d.call("PATCH", &doc, &json!({"done": null, "title": "hi"}));
    assert_eq!(status, 200, "{body}");
    let (status, body) = d.call("GET", &doc, &json!({}));
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["doc"],
        json!({"title": "hi", "tags": ["x", "y"], "meta": {"n": 1}})
    );

    // Changes made elsewhere: by this daemon's actor they apply; by another they are
    // refused, naming why.
    let change = |actor: Vec<u8>| {
        let mut am = automerge::AutoCommit::new();
        am.set_actor(automerge::ActorId::from(actor));
        am.put(automerge::ROOT, "from", "outside").expect("put");
        am.commit();
        let change = am.get_last_local_change().expect("a change").clone();
        base64::engine::general_purpose::STANDARD.encode(change.raw_bytes())
    };
    let id: threads_id::LogId = d.cli(&["id"])["id"]
        .as_str()
        .expect("id")
        .parse()
        .expect("log id");
    let (status, body) = d.call(
        "POST",
        &format!("/v1/threads/{thread}/automerge/notes/b1/changes"),
        &json!({"changes": [change(id.to_bytes().to_vec())]}),
    );
    assert_eq!(status, 200, "{body}");
    let (_, body) = d.call(
        "GET",
        &format!("/v1/threads/{thread}/automerge/notes/b1"),
        &json!({}),
    );
    assert_eq!(body["doc"], json!({"from": "outside"}));
    let (status, body) = d.call(
        "POST",
        &format!("/v1/threads/{thread}/automerge/notes/b2/changes"),
        &json!({"changes": [change(vec![7; 16])]}),
    );
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"]["details"]["refused"][0]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("actor")),
        "{body}"
    );

    // A live query over the automerge collection: the result set first.
    let auth = format!("Authorization: Bearer {}\r\n", d.token);
    let (status, _, body) = raw(
        &d.addr,
        &format!("GET /v1/threads/{thread}/live/notes?source=automerge HTTP/1.0\r\n{auth}\r\n"),
        b"",
        |body| body.matches("data: ").count() >= 2,
    );
    assert_eq!(status, 200);
    let added: Vec<Value> = body
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|d| serde_json::from_str(d).expect("JSON"))
        .collect();
    assert_eq!(added.len(), 2, "{body}");
    assert!(
        added.iter().all(|c| c["change"] == json!("added")),
        "{body}"
    );
    d.stop();
}

/// The web console, in a real browser (headless Chromium): the page the daemon serves
/// runs the JavaScript client against the API and shows this peer, its threads, a
/// thread's keys and values and its documents. Chromium is installed by `cargo xtask ci`
/// (apt-get) when missing; without it this test fails rather than skipping.
#[test]
fn the_web_console_shows_a_threads_data_in_a_browser() {
    let browser = ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|b| {
            Command::new(b)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .expect("Chromium is installed (cargo xtask ci installs it with apt-get)");
    let dir = tempfile::tempdir().expect("dir");
    let a = Daemon::start(dir.path());
    let thread = a.cli(&["thread", "create"])["thread"]
        .as_str()
        .expect("thread")
        .to_owned();
    a.cli(&["kv", "put", &thread, "color", "blue"]);
    a.cli(&[
        "doc",
        "collection",
        &thread,
        "notes",
        r#"{"type":"object"}"#,
    ]);
    a.cli(&[
        "doc",
        "put",
        &thread,
        "notes",
        "n1",
        r#"{"title":"seen in a browser"}"#,
    ]);
    let me = a.cli(&["id"])["id"].as_str().expect("id").to_owned();

    // Without a token the page itself is served; the API is not.
    let (status, _) = a.http("GET", "/console", None, b"");
    assert_eq!(status, 200);
    let profile = tempfile::tempdir().expect("dir");
    let url = format!(
        "http://{}/console#token={}&thread={thread}",
        a.addr, a.token
    );
    let output = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--virtual-time-budget=10000",
            "--timeout=30000",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(&url)
        .output()
        .expect("run Chromium");
    let dom = String::from_utf8_lossy(&output.stdout);
    assert!(
        dom.contains(r#"data-ready="true""#),
        "the page loaded its data: {dom}"
    );
    assert!(dom.contains(&me), "this peer's id");
    assert!(dom.contains(&thread), "the thread");
    assert!(
        dom.contains("<td>color</td><td>blue</td>"),
        "the key and its value"
    );
    assert!(dom.contains("seen in a browser"), "the document");
    assert!(
        dom.contains(r#"<p id="error" class="error"></p>"#),
        "no error shown"
    );
    assert!(
        dom.contains(r#"<table id="health"><tr><th>peer</th>"#),
        "sync health"
    );
    assert!(
        dom.contains(r#"<table id="rejections"><tr><th>author</th>"#),
        "rejections"
    );

    // A screenshot of the page, kept beside the test's build products.
    let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("console.png");
    let _ = std::fs::remove_file(&shot);
    let output = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--virtual-time-budget=10000",
            "--timeout=30000",
            "--window-size=1200,900",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--screenshot={}", shot.display()))
        .arg(&url)
        .output()
        .expect("run Chromium");
    let png = std::fs::read(&shot).unwrap_or_else(|_| {
        panic!(
            "a screenshot at {}: {}",
            shot.display(),
            String::from_utf8_lossy(&output.stderr)
        )
    });
    assert!(png.starts_with(b"\x89PNG"), "a PNG image");
}

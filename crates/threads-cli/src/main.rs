//! `threads`: the threads-rs binary. A daemon with an HTTP JSON API, commands that talk to
//! it, an always-on follower, and a demo.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod api;
mod client;
mod daemon;
mod demo;
mod live_routes;
// The response types describe the answers in the generated document; the handlers build
// the same JSON, and the end-to-end tests check every answer's fields against them.
#[allow(dead_code)]
mod openapi;
mod setup;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use serde_json::{Value, json};

use client::Client;

#[derive(Parser, Debug)]
#[command(
    name = "threads",
    version,
    about = "threads-rs: an encrypted, replicated, event-sourced database"
)]
struct Cli {
    /// The data directory of the daemon (its store, identity, API token and address).
    #[arg(long, global = true, env = "THREADS_DATA", default_value = ".threads")]
    data: PathBuf,
    /// Print JSON (for scripts).
    #[arg(long, global = true)]
    json: bool,
    /// More log lines (-v debug, -vv trace); `RUST_LOG` overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Fewer log lines (-q warnings and errors for the daemon, -qq errors only).
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "verbose")]
    quiet: u8,
    /// How log lines (on standard error) are written.
    #[arg(long, global = true, value_enum)]
    log_format: Option<setup::LogFormat>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Three peers on loopback in one process: the README's walk-through.
    Demo,
    /// Runs a peer with the HTTP API on 127.0.0.1. Flags not given are read from
    /// `<data>/config.toml` (`listen`, `announce`, `http`, `postgres`, `log`,
    /// `log_format`).
    Daemon {
        /// A libp2p listen address, any multiaddr (TCP, QUIC with the `quic` feature, IPv4
        /// or IPv6; `0.0.0.0` and `::` listen on every interface); repeatable. Default
        /// `/ip4/127.0.0.1/tcp/0`.
        #[arg(long)]
        listen: Vec<String>,
        /// An external address to give remote peers (a public address, a DNS name);
        /// repeatable.
        #[arg(long)]
        announce: Vec<String>,
        /// The HTTP address (default `127.0.0.1:0`).
        #[arg(long)]
        http: Option<std::net::SocketAddr>,
        /// An origin whose browser pages may call the API (`https://app.example`, or `*`);
        /// repeatable. None by default.
        #[arg(long)]
        cors_origin: Vec<String>,
        /// The most bytes of one log (one member's writes in a thread) kept from peers
        /// (default 1 GiB).
        #[arg(long)]
        log_quota: Option<u64>,
        /// Serve as a circuit relay (v2) for peers behind NAT. To be reached through a
        /// relay, listen on its circuit address: `--listen <relay addr>/p2p/<relay id>/p2p-circuit`.
        #[arg(long)]
        relay: bool,
        /// Keep the data in PostgreSQL (`postgres://user@host:port/db`) instead of SQLite in
        /// the data directory.
        #[arg(long, env = "THREADS_POSTGRES")]
        postgres: Option<String>,
        /// Compact the threads this peer may compact (the access-controlled ones it owns, the
        /// raw ones it is a member of) every this many seconds (default: only `threads
        /// compact`).
        #[arg(long)]
        compact_every: Option<u64>,
    },
    /// Runs an always-on follower: joins the threads of the given invites with the keys
    /// they carry (a follower's invite has the service key only) and replicates them.
    Follower {
        /// A libp2p listen address (as for `daemon`); repeatable.
        #[arg(long)]
        listen: Vec<String>,
        /// An external address to give remote peers; repeatable.
        #[arg(long)]
        announce: Vec<String>,
        /// The most bytes of one log kept from peers (default 1 GiB).
        #[arg(long)]
        log_quota: Option<u64>,
        /// Serve as a circuit relay (v2) for peers behind NAT.
        #[arg(long)]
        relay: bool,
        /// Invites to join (already joined threads are kept).
        #[arg(long)]
        invite: Vec<String>,
    },
    /// This peer's identity.
    Id,
    /// Prints the HTTP API's OpenAPI 3.1 document (docs/openapi.json), generated from the
    /// daemon's code.
    Openapi,
    /// Threads.
    #[command(subcommand)]
    Thread(ThreadCmd),
    /// Sync health per thread, log and peer.
    Health,
    /// The peers of a thread.
    #[command(subcommand)]
    Peer(PeerCmd),
    /// The key-value view.
    #[command(subcommand)]
    Kv(KvCmd),
    /// Documents.
    #[command(subcommand)]
    Doc(DocCmd),
    /// Compacts a thread: the events no view needs any more (superseded key-value puts and
    /// document saves) are named in an operation of the thread; every peer applies nothing
    /// of them and drops their bodies, and the views stay as they are. The owner of an
    /// access-controlled thread may, and any member (not a follower) of a raw one.
    Compact { thread: String },
    /// Writes a backup of this peer (identity, thread keys, peers, every log) to a file,
    /// sealed with the passphrase in the environment variable `THREADS_PASSPHRASE`.
    Backup { file: PathBuf },
    /// Restores a backup into the data directory (which must hold no peer yet), with the
    /// passphrase in `THREADS_PASSPHRASE`; then start the daemon there.
    Restore { file: PathBuf },
    /// Prints a thread's events as they are applied (from the start, or a cursor).
    Watch {
        thread: String,
        #[arg(long)]
        cursor: Option<String>,
        /// Stop after this many events.
        #[arg(long)]
        count: Option<usize>,
    },
}

#[derive(Subcommand, Debug)]
enum ThreadCmd {
    /// Creates a thread.
    Create {
        /// Access-controlled (roles, revocation) instead of raw.
        #[arg(long)]
        acl: bool,
    },
    /// An invite for a member (its id, `12D3KooW...`) with a role.
    Invite {
        thread: String,
        member: String,
        #[arg(default_value = "write")]
        role: String,
        /// Seconds the invite can be opened for (default: no expiry).
        #[arg(long)]
        expires_in: Option<u64>,
    },
    /// Leaves a thread: stops syncing it and deletes everything of it on this peer.
    Leave { thread: String },
    /// A link invite: whoever holds the text joins with the keys of the role (in an
    /// access-controlled thread, what they may do is the thread's default role).
    Link {
        thread: String,
        #[arg(default_value = "read")]
        role: String,
        /// Seconds the invite can be opened for (default: no expiry).
        #[arg(long)]
        expires_in: Option<u64>,
    },
    /// Gives a member a role in an access-controlled thread (`no-access` revokes it).
    Role {
        thread: String,
        member: String,
        role: String,
    },
    /// Sets the role of members without one of their own in an access-controlled thread
    /// (what a link invite grants); lowering it below `read` starts a new key epoch.
    DefaultRole { thread: String, role: String },
    /// Joins a thread from an invite.
    Join { invite: String },
    /// Writes the thread's CARv1 archive (every log, encrypted as stored) to a file.
    Export { thread: String, file: PathBuf },
    /// Imports a CARv1 archive of a thread this peer holds the keys of (join it first):
    /// every block and entry is verified as sync verifies it.
    Import { file: PathBuf },
    /// The threads of this peer.
    List,
    /// This peer's addresses of a thread (as invites carry them).
    Addrs { thread: String },
    /// A thread's kind, logs and heads, members and roles, peers and addresses.
    Info { thread: String },
}

#[derive(Subcommand, Debug)]
enum PeerCmd {
    /// Adds a peer of a thread: a multiaddr ending in `/p2p/<peer>`, or a thread address.
    Add { thread: String, addr: String },
    /// The peers of a thread.
    List { thread: String },
}

#[derive(Subcommand, Debug)]
enum KvCmd {
    Put {
        thread: String,
        key: String,
        value: String,
    },
    Get {
        thread: String,
        key: String,
    },
    Del {
        thread: String,
        key: String,
    },
    List {
        thread: String,
        #[arg(default_value = "")]
        prefix: String,
    },
}

#[derive(Subcommand, Debug)]
enum DocCmd {
    /// Creates a collection with a JSON Schema (JSON text).
    Collection {
        thread: String,
        name: String,
        schema: String,
    },
    /// Creates or replaces a document (JSON text).
    Put {
        thread: String,
        collection: String,
        id: String,
        doc: String,
    },
    Get {
        thread: String,
        collection: String,
        id: String,
    },
    /// Runs a query (its JSON form, e.g. '{"filter": {"eq": ["done", false]}}').
    Query {
        thread: String,
        collection: String,
        #[arg(default_value = "{}")]
        query: String,
    },
}

fn client(data: &std::path::Path) -> Result<Client> {
    let api = std::fs::read_to_string(data.join("api")).with_context(|| {
        format!(
            "no daemon address in {} (start `threads daemon` first)",
            data.display()
        )
    })?;
    let token = std::fs::read_to_string(data.join("token")).context("no API token")?;
    Ok(Client {
        addr: api.trim().trim_start_matches("http://").to_owned(),
        token: token.trim().to_owned(),
    })
}

fn json_arg(text: &str, what: &str) -> Result<Value> {
    serde_json::from_str(text).with_context(|| format!("{what} is not JSON"))
}

/// The strings of a JSON array, a line each.
fn lines(array: &Value) -> String {
    array
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default()
}

fn print(json_out: bool, value: &Value, human: impl FnOnce(&Value) -> String) {
    if json_out {
        println!("{value}");
    } else {
        println!("{}", human(value));
    }
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    if let Err(error) = start_logs(&cli) {
        eprintln!("threads: {error:#}");
        std::process::exit(1);
    }
    if let Err(error) = run(cli).await {
        eprintln!("threads: {error:#}");
        std::process::exit(1);
    }
}

/// Starts the logs: info for the daemon and the follower, warnings for the rest.
fn start_logs(cli: &Cli) -> Result<()> {
    let serving = matches!(
        cli.command,
        Command::Daemon { .. } | Command::Follower { .. }
    );
    let config = if serving {
        setup::Config::load(&cli.data)?
    } else {
        setup::Config::default()
    };
    let default = if serving {
        tracing::Level::INFO
    } else {
        tracing::Level::WARN
    };
    let format = cli.log_format.or(config.log_format).unwrap_or_default();
    setup::logs(
        format,
        default,
        cli.verbose,
        cli.quiet,
        config.log.as_deref(),
    )
}

/// Parses multiaddrs given by flags, else by the config file, else `fallback`.
fn addrs(
    flags: Vec<String>,
    configured: Vec<String>,
    fallback: &[&str],
    what: &str,
) -> Result<Vec<threads_id::Multiaddr>> {
    let texts = if !flags.is_empty() {
        flags
    } else if !configured.is_empty() {
        configured
    } else {
        fallback.iter().map(|s| (*s).to_owned()).collect()
    };
    texts
        .iter()
        .map(|t| {
            t.parse()
                .with_context(|| format!("{what} {t:?} is not a multiaddr"))
        })
        .collect()
}

const DEFAULT_LISTEN: &str = "/ip4/127.0.0.1/tcp/0";

/// Asks the daemon for an invite to `thread` (`body` as `POST .../invites` takes it) and
/// prints its text.
async fn invite(c: &client::Client, out: bool, thread: &str, body: &Value) -> Result<()> {
    let v = c
        .ok(
            "POST",
            &client::path(&["v1", "threads", thread, "invites"]),
            Some(body),
        )
        .await?;
    print(out, &v, |v| {
        v["invite"].as_str().unwrap_or_default().to_owned()
    });
    Ok(())
}

/// The passphrase of backups, from `THREADS_PASSPHRASE` (never a flag: flags show in the
/// process list).
fn passphrase() -> Result<String> {
    match std::env::var("THREADS_PASSPHRASE") {
        Ok(p) if !p.is_empty() => Ok(p),
        _ => bail!("set the backup passphrase in the environment variable THREADS_PASSPHRASE"),
    }
}

async fn run(cli: Cli) -> Result<()> {
    let out = cli.json;
    match cli.command {
        Command::Demo => demo::run().await,
        Command::Daemon {
            listen,
            announce,
            http,
            cors_origin,
            log_quota,
            relay,
            postgres,
            compact_every,
        } => {
            let _lock = setup::lock(&cli.data)?;
            let config = setup::Config::load(&cli.data)?;
            daemon::run(daemon::Options {
                data: cli.data,
                listen: addrs(listen, config.listen, &[DEFAULT_LISTEN], "--listen")?,
                announce: addrs(announce, config.announce, &[], "--announce")?,
                http: http
                    .or(config.http)
                    .unwrap_or_else(|| std::net::SocketAddr::from(([127, 0, 0, 1], 0))),
                postgres: postgres.or(config.postgres),
                cors: if cors_origin.is_empty() {
                    config.cors_origins
                } else {
                    cors_origin
                },
                log_quota: log_quota
                    .or(config.log_quota)
                    .unwrap_or(threads_net::DEFAULT_LOG_QUOTA),
                relay: relay || config.relay,
                compact_every: compact_every
                    .or(config.compact_every)
                    .map(std::time::Duration::from_secs),
            })
            .await
        }
        Command::Follower {
            listen,
            announce,
            log_quota,
            relay,
            invite,
        } => {
            let _lock = setup::lock(&cli.data)?;
            let config = setup::Config::load(&cli.data)?;
            let listen = addrs(listen, config.listen, &[DEFAULT_LISTEN], "--listen")?;
            let announce = addrs(announce, config.announce, &[], "--announce")?;
            let quota = log_quota
                .or(config.log_quota)
                .unwrap_or(threads_net::DEFAULT_LOG_QUOTA);
            let relay = relay || config.relay;
            follower(cli.data, listen, announce, quota, relay, invite).await
        }
        Command::Openapi => {
            print!("{}", openapi::document());
            Ok(())
        }
        Command::Id => {
            let v = client(&cli.data)?.ok("GET", "/v1/identity", None).await?;
            print(out, &v, |v| v["id"].as_str().unwrap_or_default().to_owned());
            Ok(())
        }
        Command::Health => {
            let v = client(&cli.data)?.ok("GET", "/v1/health", None).await?;
            print(out, &v, |v| {
                let rows = v["health"].as_array().cloned().unwrap_or_default();
                if rows.is_empty() {
                    return "no peers heard from yet".to_owned();
                }
                rows.iter()
                    .map(|r| {
                        format!(
                            "{} log {} peer {}: local {} peer {} lag {} peer lacks {} accepted {} rejected {}",
                            r["thread"].as_str().unwrap_or(""),
                            r["log"].as_str().unwrap_or(""),
                            r["peer"].as_str().unwrap_or(""),
                            r["local_counter"],
                            r["peer_counter"],
                            r["lag"],
                            r["peer_lacks"],
                            r["accepted"],
                            r["rejected"]
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
            Ok(())
        }
        Command::Thread(cmd) => {
            let c = client(&cli.data)?;
            match cmd {
                ThreadCmd::Create { acl } => {
                    let v = c
                        .ok(
                            "POST",
                            "/v1/threads",
                            Some(&json!({"access_controlled": acl})),
                        )
                        .await?;
                    print(out, &v, |v| {
                        v["thread"].as_str().unwrap_or_default().to_owned()
                    });
                }
                ThreadCmd::Invite {
                    thread,
                    member,
                    role,
                    expires_in,
                } => {
                    let body = json!({"member": member, "role": role, "expires_in_s": expires_in});
                    invite(&c, out, &thread, &body).await?;
                }
                ThreadCmd::Leave { thread } => {
                    let v = c
                        .ok("DELETE", &client::path(&["v1", "threads", &thread]), None)
                        .await?;
                    print(out, &v, |v| {
                        format!("left {}", v["thread"].as_str().unwrap_or_default())
                    });
                }
                ThreadCmd::Link {
                    thread,
                    role,
                    expires_in,
                } => {
                    let body = json!({"link": true, "role": role, "expires_in_s": expires_in});
                    invite(&c, out, &thread, &body).await?;
                }
                ThreadCmd::Role {
                    thread,
                    member,
                    role,
                } => {
                    let v = c
                        .ok(
                            "PUT",
                            &client::path(&["v1", "threads", &thread, "members", &member]),
                            Some(&json!({"role": role})),
                        )
                        .await?;
                    print(out, &v, |v| {
                        format!(
                            "{} {}",
                            v["member"].as_str().unwrap_or_default(),
                            v["role"].as_str().unwrap_or_default()
                        )
                    });
                }
                ThreadCmd::DefaultRole { thread, role } => {
                    let v = c
                        .ok(
                            "PUT",
                            &client::path(&["v1", "threads", &thread, "default-role"]),
                            Some(&json!({"role": role})),
                        )
                        .await?;
                    print(out, &v, |v| {
                        format!("default {}", v["role"].as_str().unwrap_or_default())
                    });
                }
                ThreadCmd::Export { thread, file } => {
                    let archive = c
                        .bytes(
                            "GET",
                            &client::path(&["v1", "threads", &thread, "car"]),
                            None,
                        )
                        .await?;
                    std::fs::write(&file, &archive)
                        .with_context(|| format!("write {}", file.display()))?;
                    let v = json!({"file": file.display().to_string(), "bytes": archive.len()});
                    print(out, &v, |v| {
                        format!("{} bytes to {}", v["bytes"], file.display())
                    });
                }
                ThreadCmd::Import { file } => {
                    let archive =
                        std::fs::read(&file).with_context(|| format!("read {}", file.display()))?;
                    let answer = c
                        .bytes(
                            "POST",
                            "/v1/car",
                            Some((archive, "application/vnd.ipld.car")),
                        )
                        .await?;
                    let v: Value = serde_json::from_slice(&answer).context("a JSON answer")?;
                    print(out, &v, |v| {
                        format!(
                            "{}: {} entries in {} logs, {} new",
                            v["thread"].as_str().unwrap_or_default(),
                            v["entries"],
                            v["logs"],
                            v["stored"]
                        )
                    });
                }
                ThreadCmd::Join { invite } => {
                    let body = json!({"invite": invite});
                    let join = c.ok("POST", "/v1/join", Some(&body));
                    tokio::pin!(join);
                    // Progress on stderr while a large thread comes in.
                    let before = accepted(&c).await;
                    let mut tick = tokio::time::interval(Duration::from_millis(500));
                    tick.tick().await;
                    let v = loop {
                        tokio::select! {
                            v = &mut join => break v?,
                            _ = tick.tick() => {
                                let now = accepted(&c).await;
                                eprintln!("catching up: {} entries received", now.saturating_sub(before));
                            }
                        }
                    };
                    let total = accepted(&c).await.saturating_sub(before);
                    eprintln!("caught up: {total} entries received");
                    print(out, &v, |v| {
                        v["thread"].as_str().unwrap_or_default().to_owned()
                    });
                }
                ThreadCmd::List => {
                    let v = c.ok("GET", "/v1/threads", None).await?;
                    print(out, &v, |v| lines(&v["threads"]));
                }
                ThreadCmd::Info { thread } => {
                    let v = c
                        .ok("GET", &client::path(&["v1", "threads", &thread]), None)
                        .await?;
                    print(out, &v, |v| {
                        let mut lines = vec![format!(
                            "{} ({})",
                            v["thread"].as_str().unwrap_or(""),
                            v["variant"].as_str().unwrap_or("")
                        )];
                        for log in v["logs"].as_array().into_iter().flatten() {
                            lines.push(format!(
                                "log {} at {}",
                                log["log"].as_str().unwrap_or(""),
                                log["counter"]
                            ));
                        }
                        for m in v["members"].as_array().into_iter().flatten() {
                            lines.push(format!(
                                "member {} {}",
                                m["member"].as_str().unwrap_or(""),
                                m["role"].as_str().unwrap_or("")
                            ));
                        }
                        for p in v["peers"].as_array().into_iter().flatten() {
                            lines.push(format!("peer {}", p.as_str().unwrap_or("")));
                        }
                        lines.join("\n")
                    });
                }
                ThreadCmd::Addrs { thread } => {
                    let v = c
                        .ok(
                            "GET",
                            &client::path(&["v1", "threads", &thread, "addrs"]),
                            None,
                        )
                        .await?;
                    print(out, &v, |v| lines(&v["addrs"]));
                }
            }
            Ok(())
        }
        Command::Peer(cmd) => {
            let c = client(&cli.data)?;
            match cmd {
                PeerCmd::Add { thread, addr } => {
                    let v = c
                        .ok(
                            "POST",
                            &client::path(&["v1", "threads", &thread, "peers"]),
                            Some(&json!({"addr": addr})),
                        )
                        .await?;
                    print(out, &v, |v| {
                        v["peer"].as_str().unwrap_or_default().to_owned()
                    });
                }
                PeerCmd::List { thread } => {
                    let v = c
                        .ok(
                            "GET",
                            &client::path(&["v1", "threads", &thread, "peers"]),
                            None,
                        )
                        .await?;
                    print(out, &v, |v| lines(&v["peers"]));
                }
            }
            Ok(())
        }
        Command::Kv(cmd) => {
            let c = client(&cli.data)?;
            match cmd {
                KvCmd::Put { thread, key, value } => {
                    let v = c
                        .ok(
                            "PUT",
                            &client::path(&["v1", "threads", &thread, "kv", &key]),
                            Some(&json!({"value": value})),
                        )
                        .await?;
                    print(out, &v, |_| "ok".to_owned());
                }
                KvCmd::Get { thread, key } => {
                    let v = c
                        .ok(
                            "GET",
                            &client::path(&["v1", "threads", &thread, "kv", &key]),
                            None,
                        )
                        .await?;
                    print(out, &v, |v| {
                        v["value"].as_str().unwrap_or_default().to_owned()
                    });
                }
                KvCmd::Del { thread, key } => {
                    let v = c
                        .ok(
                            "DELETE",
                            &client::path(&["v1", "threads", &thread, "kv", &key]),
                            None,
                        )
                        .await?;
                    print(out, &v, |_| "ok".to_owned());
                }
                KvCmd::List { thread, prefix } => {
                    let v = c
                        .ok(
                            "GET",
                            &format!(
                                "{}?prefix={}",
                                client::path(&["v1", "threads", &thread, "kv"]),
                                client::query_value(&prefix)
                            ),
                            None,
                        )
                        .await?;
                    print(out, &v, |v| {
                        v["items"]
                            .as_array()
                            .map(|a| {
                                a.iter()
                                    .map(|i| {
                                        format!(
                                            "{}\t{}",
                                            i["key"].as_str().unwrap_or(""),
                                            i["value"].as_str().unwrap_or("")
                                        )
                                    })
                                    .collect::<Vec<_>>()
                                    .join("\n")
                            })
                            .unwrap_or_default()
                    });
                }
            }
            Ok(())
        }
        Command::Doc(cmd) => {
            let c = client(&cli.data)?;
            match cmd {
                DocCmd::Collection {
                    thread,
                    name,
                    schema,
                } => {
                    let schema = json_arg(&schema, "the schema")?;
                    let v = c
                        .ok(
                            "POST",
                            &client::path(&["v1", "threads", &thread, "collections"]),
                            Some(&json!({"name": name, "schema": schema})),
                        )
                        .await?;
                    print(out, &v, |_| "ok".to_owned());
                }
                DocCmd::Put {
                    thread,
                    collection,
                    id,
                    doc,
                } => {
                    let doc = json_arg(&doc, "the document")?;
                    let v = c
                        .ok(
                            "PUT",
                            &client::path(&["v1", "threads", &thread, "docs", &collection, &id]),
                            Some(&doc),
                        )
                        .await?;
                    print(out, &v, |_| "ok".to_owned());
                }
                DocCmd::Get {
                    thread,
                    collection,
                    id,
                } => {
                    let v = c
                        .ok(
                            "GET",
                            &client::path(&["v1", "threads", &thread, "docs", &collection, &id]),
                            None,
                        )
                        .await?;
                    print(out, &v, |v| v["doc"].to_string());
                }
                DocCmd::Query {
                    thread,
                    collection,
                    query,
                } => {
                    let query = json_arg(&query, "the query")?;
                    let v = c
                        .ok(
                            "POST",
                            &client::path(&["v1", "threads", &thread, "query", &collection]),
                            Some(&query),
                        )
                        .await?;
                    print(out, &v, |v| {
                        v["docs"]
                            .as_array()
                            .map(|a| {
                                a.iter()
                                    .map(|d| {
                                        format!("{}\t{}", d["id"].as_str().unwrap_or(""), d["doc"])
                                    })
                                    .collect::<Vec<_>>()
                                    .join("\n")
                            })
                            .unwrap_or_default()
                    });
                }
            }
            Ok(())
        }
        Command::Compact { thread } => {
            let c = client(&cli.data)?;
            let v = c
                .ok(
                    "POST",
                    &client::path(&["v1", "threads", &thread, "compact"]),
                    None,
                )
                .await?;
            print(out, &v, |v| {
                format!(
                    "{} events compacted, {} bytes freed",
                    v["events"], v["freed_bytes"]
                )
            });
            Ok(())
        }
        Command::Backup { file } => {
            let passphrase = passphrase()?;
            let c = client(&cli.data)?;
            let body = serde_json::to_vec(&json!({"passphrase": passphrase}))?;
            let backup = c
                .bytes("POST", "/v1/backup", Some((body, "application/json")))
                .await?;
            daemon::write_secret_bytes(&file, &backup)?;
            let v = json!({"file": file.display().to_string(), "bytes": backup.len()});
            print(out, &v, |v| {
                format!("{} bytes to {}", v["bytes"], file.display())
            });
            Ok(())
        }
        Command::Restore { file } => {
            let passphrase = passphrase()?;
            let restored = daemon::restore(&cli.data, &file, passphrase.as_bytes()).await?;
            print(out, &restored, |v| {
                format!(
                    "restored {} into {}",
                    v["id"].as_str().unwrap_or_default(),
                    cli.data.display()
                )
            });
            Ok(())
        }
        Command::Watch {
            thread,
            cursor,
            count,
        } => {
            let c = client(&cli.data)?;
            let path = match cursor {
                Some(cursor) => format!(
                    "{}?cursor={}",
                    client::path(&["v1", "threads", &thread, "changes"]),
                    client::query_value(&cursor)
                ),
                None => client::path(&["v1", "threads", &thread, "changes"]),
            };
            let mut seen = 0usize;
            c.events(&path, |data| {
                if out {
                    println!("{data}");
                } else if let Ok(v) = serde_json::from_str::<Value>(data) {
                    println!("{}", describe_event(&v));
                }
                seen += 1;
                count.is_none_or(|n| seen < n)
            })
            .await
        }
    }
}

/// One line per operation of a change-feed event, for people.
fn describe_event(v: &Value) -> String {
    let head = format!("{} #{}", v["author"].as_str().unwrap_or(""), v["counter"]);
    if let Some(reason) = v["rejected"].as_str() {
        return format!("{head} refused: {reason}");
    }
    let changes = v["changes"].as_array().cloned().unwrap_or_default();
    if changes.is_empty() {
        return format!("{head} (no operations)");
    }
    changes
        .iter()
        .map(|c| {
            let what = match c["kind"].as_str() {
                Some("kv") => match c["value"].as_str() {
                    Some(value) => format!("kv put {} = {value}", c["key"].as_str().unwrap_or("")),
                    None => format!("kv del {}", c["key"].as_str().unwrap_or("")),
                },
                Some("doc") => {
                    let target = match c["id"].as_str() {
                        Some(id) => format!("{}/{id}", c["collection"].as_str().unwrap_or("")),
                        None => c["collection"].as_str().unwrap_or("").to_owned(),
                    };
                    let doc = if c["doc"].is_null() {
                        String::new()
                    } else {
                        format!(" {}", c["doc"])
                    };
                    format!("{} {target}{doc}", c["action"].as_str().unwrap_or(""))
                }
                Some("automerge") => format!(
                    "automerge change {}/{}",
                    c["collection"].as_str().unwrap_or(""),
                    c["id"].as_str().unwrap_or("")
                ),
                _ => format!("{} operation", c["view"].as_str().unwrap_or("")),
            };
            match c["rejected"].as_str() {
                Some(reason) => format!("{head} {what} (refused: {reason})"),
                None => format!("{head} {what}"),
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Entries accepted from peers so far, over every thread (0 if the daemon does not say).
async fn accepted(c: &Client) -> u64 {
    c.ok("GET", "/v1/health", None)
        .await
        .ok()
        .and_then(|v| {
            v["health"]
                .as_array()
                .map(|rows| rows.iter().filter_map(|r| r["accepted"].as_u64()).sum())
        })
        .unwrap_or(0)
}

async fn follower(
    data: PathBuf,
    listen: Vec<threads_id::Multiaddr>,
    announce: Vec<threads_id::Multiaddr>,
    log_quota: u64,
    relay: bool,
    invites: Vec<String>,
) -> Result<()> {
    std::fs::create_dir_all(&data)?;
    let me = daemon::identity(&data)?;
    let config = threads_db::DbConfig::default()
        .with_listen(listen)
        .with_announce(announce)
        .with_log_quota(log_quota)
        .with_relay(relay)
        .with_sync_interval(Duration::from_secs(1));
    let db = threads_db::Db::open_sqlite(data.join("threads.db"), me, config).await?;
    println!("threads follower: peer {}", db.identity().log_id());
    for addr in db.node().listen_addrs() {
        println!("listening on {addr}");
    }
    for invite in invites {
        match db.join(&invite).await {
            Ok(thread) => println!("following {thread}"),
            Err(e) => bail!("cannot join: {e}"),
        }
    }
    let mut last = 0u64;
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            () = tokio::time::sleep(Duration::from_secs(5)) => {
                let total: u64 = db.health().await.map(|rows| rows.iter().map(|r| r.health.accepted).sum()).unwrap_or(0);
                if total != last {
                    println!("replicated {total} entries so far");
                    last = total;
                }
            }
        }
    }
    db.shutdown().await;
    Ok(())
}

//! What a process of the binary sets up before it runs: its logs, the data directory's
//! lock (one daemon per directory) and the directory's config file.

use std::fs::File;
use std::io::{IsTerminal, Read, Seek, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use tracing_subscriber::EnvFilter;

/// How log lines are written (to standard error).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum LogFormat {
    /// One line per event for people (colored on a terminal).
    #[default]
    Human,
    /// One JSON object per line, with every field.
    Json,
}

/// Starts the logs: `RUST_LOG` (or the config's `log`) chooses what is shown, else
/// `default` raised by `verbose` levels and lowered by `quiet` ones. Lines go to standard
/// error, so a command's output on standard output stays clean.
///
/// # Errors
/// A filter that does not parse.
pub(crate) fn logs(
    format: LogFormat,
    default: tracing::Level,
    verbose: u8,
    quiet: u8,
    configured: Option<&str>,
) -> Result<()> {
    const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];
    let base = match default {
        tracing::Level::ERROR => 1,
        tracing::Level::WARN => 2,
        tracing::Level::INFO => 3,
        tracing::Level::DEBUG => 4,
        tracing::Level::TRACE => 5,
    };
    let level = (base + i32::from(verbose) - i32::from(quiet)).clamp(0, 5);
    let level = LEVELS[usize::try_from(level).unwrap_or(0)];
    let filter = match std::env::var("RUST_LOG") {
        Ok(text) if !text.is_empty() => {
            EnvFilter::try_new(&text).with_context(|| format!("RUST_LOG={text}"))?
        }
        _ => match configured {
            Some(text) => {
                EnvFilter::try_new(text).with_context(|| format!("log = {text:?} in the config"))?
            }
            // Other crates (libp2p, sqlx) speak up from warnings only unless asked.
            None => EnvFilter::try_new(format!(
                "{},threads_cli={level},threads_net={level},threads_db={level},\
                 threads_views={level},threads_acl={level},threads_store={level}",
                if level == "off" { "off" } else { "warn" }
            ))
            .context("the default log filter")?,
        },
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Human => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    result.map_err(|e| anyhow::anyhow!("logs: {e}"))
}

/// The lock of a data directory: held while the process runs (released by the OS when it
/// ends, even on a crash), so a second daemon on the same directory stops at once.
#[derive(Debug)]
pub(crate) struct DataLock {
    _file: File,
}

/// Takes `<data>/lock`, writing this process's id in it.
///
/// # Errors
/// Another process holds it (the message names the directory and that process), or the
/// file cannot be opened.
pub(crate) fn lock(data: &Path) -> Result<DataLock> {
    std::fs::create_dir_all(data).with_context(|| format!("create {}", data.display()))?;
    let path = data.join("lock");
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("open {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim();
            bail!(
                "the data directory {} is in use by another threads process{} (one daemon \
                 per directory: stop it, or pass another --data)",
                data.display(),
                if holder.is_empty() {
                    String::new()
                } else {
                    format!(" (pid {holder})")
                }
            );
        }
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(e).with_context(|| format!("lock {}", path.display()));
        }
    }
    file.set_len(0)?;
    file.rewind()?;
    write!(file, "{}", std::process::id())?;
    file.flush()?;
    Ok(DataLock { _file: file })
}

/// `<data>/config.toml`: what the flags of `daemon` and `follower` set. A flag given on
/// the command line wins over the file.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Config {
    /// libp2p listen addresses (multiaddrs).
    #[serde(default)]
    pub(crate) listen: Vec<String>,
    /// External addresses to announce (multiaddrs).
    #[serde(default)]
    pub(crate) announce: Vec<String>,
    /// The HTTP API's address.
    pub(crate) http: Option<std::net::SocketAddr>,
    /// Origins whose browser pages may call the API.
    #[serde(default)]
    pub(crate) cors_origins: Vec<String>,
    /// The most bytes of one log stored from peers.
    pub(crate) log_quota: Option<u64>,
    /// Serve as a circuit relay for peers behind NAT.
    #[serde(default)]
    pub(crate) relay: bool,
    /// Seconds between automatic compactions (none if absent).
    pub(crate) compact_every: Option<u64>,
    /// A PostgreSQL URL.
    pub(crate) postgres: Option<String>,
    /// The log filter (`RUST_LOG` syntax); the environment's `RUST_LOG` wins.
    pub(crate) log: Option<String>,
    /// The log format.
    pub(crate) log_format: Option<LogFormat>,
}

impl Config {
    /// The config of the data directory `data` (empty when it has no `config.toml`).
    ///
    /// # Errors
    /// The file cannot be read or is not a valid config (unknown keys included).
    pub(crate) fn load(data: &Path) -> Result<Config> {
        let path: PathBuf = data.join("config.toml");
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Config::default()),
            Err(e) => return Err(e).with_context(|| format!("read {}", path.display())),
        };
        toml::from_str(&text).with_context(|| format!("{} is not a valid config", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_config_file_sets_the_flags_and_refuses_unknown_keys() {
        let dir = tempfile::tempdir().expect("dir");
        assert!(Config::load(dir.path()).expect("no file").listen.is_empty());
        std::fs::write(
            dir.path().join("config.toml"),
            "listen = [\"/ip4/0.0.0.0/tcp/4001\", \"/ip6/::/tcp/4001\"]\n\
             announce = [\"/dns4/threads.example/tcp/4001\"]\n\
             http = \"127.0.0.1:7070\"\nlog = \"debug\"\nlog_format = \"json\"\n",
        )
        .expect("write");
        let config = Config::load(dir.path()).expect("config");
        assert_eq!(config.listen.len(), 2);
        assert_eq!(config.announce, ["/dns4/threads.example/tcp/4001"]);
        assert_eq!(config.http, Some("127.0.0.1:7070".parse().expect("addr")));
        assert_eq!(config.log_format, Some(LogFormat::Json));
        std::fs::write(dir.path().join("config.toml"), "listne = []\n").expect("write");
        let error = format!("{:#}", Config::load(dir.path()).expect_err("unknown key"));
        assert!(error.contains("listne"), "{error}");
    }

    #[test]
    fn a_data_directory_is_locked_once() {
        let dir = tempfile::tempdir().expect("dir");
        let first = lock(dir.path()).expect("first");
        let error = format!("{:#}", lock(dir.path()).expect_err("second"));
        assert!(error.contains("in use"), "{error}");
        assert!(error.contains(&std::process::id().to_string()), "{error}");
        drop(first);
        lock(dir.path()).expect("free again");
    }
}

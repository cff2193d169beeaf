//! A throwaway PostgreSQL server for tests: `initdb` into a temporary directory, started
//! with `pg_ctl` on a free loopback port, stopped and removed on drop. Run as the
//! `postgres` user when the tests run as root (PostgreSQL refuses to run as root).
//!
//! The binaries are found in `THREADS_PG_BIN`, else the newest `/usr/lib/postgresql/*/bin`,
//! else on `PATH`. A missing PostgreSQL is a test failure, never a silent skip.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A running server; dropped, it stops and its directory is removed.
pub(crate) struct PgServer {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    as_postgres: bool,
    databases: AtomicUsize,
}

fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("THREADS_PG_BIN") {
        return dir.into();
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("initdb").exists())
        .collect();
    versions.sort();
    if let Some(dir) = versions.pop() {
        return dir;
    }
    let which = Command::new("sh")
        .args(["-c", "command -v initdb"])
        .output()
        .expect("sh runs");
    let path = String::from_utf8_lossy(&which.stdout).trim().to_owned();
    assert!(
        !path.is_empty(),
        "PostgreSQL's initdb was not found: install PostgreSQL or set THREADS_PG_BIN"
    );
    Path::new(&path).parent().expect("a directory").to_owned()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

impl PgServer {
    /// Starts a new server.
    pub(crate) fn start() -> PgServer {
        let bin = bin_dir();
        let dir = tempfile::Builder::new()
            .prefix("threads-pg-")
            .tempdir()
            .expect("tempdir");
        let as_postgres = is_root();
        if as_postgres {
            let status = Command::new("chown")
                .args(["-R", "postgres"])
                .arg(dir.path())
                .status()
                .expect("chown");
            assert!(status.success(), "chown of the server directory failed");
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("bind")
            .local_addr()
            .expect("addr")
            .port();
        let server = PgServer {
            dir,
            bin,
            port,
            as_postgres,
            databases: AtomicUsize::new(0),
        };
        let data = server.dir.path().join("data");
        server.run(
            "initdb",
            &[
                "-D",
                &data.to_string_lossy(),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
            ],
        );
        let options = format!(
            "-p {port} -k {} -h 127.0.0.1 -F",
            server.dir.path().display()
        );
        let log = server.dir.path().join("log");
        server.run(
            "pg_ctl",
            &[
                "-D",
                &data.to_string_lossy(),
                "-o",
                &options,
                "-l",
                &log.to_string_lossy(),
                "-w",
                "start",
            ],
        );
        server
    }

    fn run(&self, program: &str, args: &[&str]) {
        let program = self.bin.join(program);
        let mut command = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&program);
            c
        } else {
            Command::new(&program)
        };
        let output = command
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("{}: {e}", program.display()));
        assert!(
            output.status.success(),
            "{} failed: {}{}",
            program.display(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// The URL of the server's `postgres` database.
    pub(crate) fn admin_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Creates a fresh, empty database and returns its URL.
    pub(crate) async fn fresh_database(&self) -> String {
        let n = self.databases.fetch_add(1, Ordering::SeqCst);
        let name = format!("test_{n}");
        let admin = sqlx::PgPool::connect(&self.admin_url())
            .await
            .expect("connect to the test server");
        // The name is ours and has no quotes or spaces; CREATE DATABASE takes no parameters.
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&admin)
            .await
            .expect("create database");
        admin.close().await;
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        let program = self.bin.join("pg_ctl");
        let mut command = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&program);
            c
        } else {
            Command::new(&program)
        };
        let _ = command
            .args([
                "-D",
                &data.to_string_lossy(),
                "-m",
                "immediate",
                "-w",
                "stop",
            ])
            .output();
    }
}

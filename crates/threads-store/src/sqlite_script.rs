//! Write transactions of the SQLite store, run by the writing task itself.
//!
//! sqlx runs each SQLite connection on a thread of its own, and every statement a task
//! awaits is a round trip to that thread: two thread wake-ups, tens to hundreds of
//! microseconds on a virtual machine, far more than SQLite takes to insert a row. A write
//! of this store (`BEGIN`, the log's head, the entries, the view rows, the views' cursor,
//! `COMMIT`) is therefore built as one script of statements with their arguments, and a
//! file store runs it on a connection of its own (the same SQLite library as sqlx's, through
//! rusqlite) in the task that writes: no thread is woken, and SQLite's work (tens of
//! microseconds) is all the write waits for.
//!
//! The connection waits for no lock (SQLite's busy timeout is 0): when another connection
//! holds the database's write lock, the script is not started and the store runs it in a
//! transaction of its pool instead, which waits without blocking the runtime. Scripts
//! larger than [`INLINE_BYTES`] (a catch-up's commit of many rows) go the pool's way too,
//! so no task blocks its runtime thread for long.
//!
//! The write-ahead log is checkpointed in two steps, so that it stays bounded without a
//! write waiting for the bulk of a checkpoint. Once [`CHECKPOINT_FRAMES`] frames are in the
//! log, the store checkpoints it through the pool, in a task of its own (copying pages and
//! syncing the file), in rounds, each copying the frames written during the one before,
//! until a round finds few; writes go on meanwhile, appending frames that checkpoint does
//! not reach. The log can only start again from its beginning when a write finds every frame
//! copied, so the writing connection's next write first checkpoints the few frames left
//! (a passive checkpoint, which waits for nobody), and its transaction then writes at the
//! start of the log again, over pages the kernel already holds. Without that second step a
//! log written without pause never starts again, and grows for as long as writes come. Past
//! [`WAL_LIMIT_FRAMES`] frames a write waits for the checkpoint in progress.
//!
//! Small reads of view rows (the views' cache misses, a query's page) go through this
//! connection too, for the same reason. A script runs whole or not at all: it cannot be
//! stopped halfway (a dropped future has either not started it or finished it), and on an
//! error its transaction is rolled back before the error is returned.

use std::ops::Range;
use std::path::Path;

use sqlx::sqlite::SqliteArguments;
use sqlx::{Arguments, SqliteConnection};

use crate::error::StoreError;
use crate::traits::Result;

/// Scripts whose arguments are larger than this run on the pool's connections (off the
/// runtime's threads) rather than inline.
pub(crate) const INLINE_BYTES: usize = 256 << 10;

/// Reads of at most this many view rows go through the writing connection, in the reading
/// task; larger ones through the pool.
pub(crate) const INLINE_READ_ROWS: usize = 1024;

/// Frames (pages written) in the write-ahead log at which a checkpoint starts (about 16
/// MiB; SQLite's own default is 1,000). A checkpoint copies each page once, however many
/// frames hold it, so the pages every write touches (the log's head, the views' cursor,
/// the ends of the append-only tables) are copied a quarter as often as with SQLite's
/// default; and the writing connection's part of each checkpoint
/// ([`WritingConnection::finish_checkpoint`], which writes wait for) comes a quarter as
/// often. At 64 concurrent writers, with the pool's rounds, this took the time writes
/// waited for checkpoints from about a quarter of the run to a tenth or less
/// (docs/BENCHMARKS.md).
pub(crate) const CHECKPOINT_FRAMES: usize = 4000;

/// Frames in the write-ahead log past which a write waits for the checkpoint in progress
/// (about 64 MiB): writes faster than checkpoints can copy do not grow the log without
/// bound.
pub(crate) const WAL_LIMIT_FRAMES: usize = 4 * CHECKPOINT_FRAMES;

thread_local! {
    /// The frames in the write-ahead log after the last commit on this thread, set by the
    /// writing connections' WAL hook while `COMMIT` runs (a hook is a plain function, so it
    /// cannot hold a connection's state; `COMMIT` and the read of this value follow each
    /// other on one thread, with nothing between them).
    static WAL_FRAMES: std::cell::Cell<Option<usize>> = const { std::cell::Cell::new(None) };
}

/// The writing connections' WAL hook: records the frames in the log after a commit.
#[allow(clippy::unnecessary_wraps)] // The hook's signature.
fn record_wal_frames(_: &rusqlite::hooks::Wal, frames: std::ffi::c_int) -> rusqlite::Result<()> {
    WAL_FRAMES.with(|f| f.set(Some(usize::try_from(frames).unwrap_or(0))));
    Ok(())
}

/// One argument of a script.
#[derive(Debug, Clone)]
pub(crate) enum Arg<'a> {
    Int(i64),
    Blob(&'a [u8]),
    Owned(Vec<u8>),
    Text(&'a str),
}

impl Arg<'_> {
    fn len(&self) -> usize {
        match self {
            Arg::Int(_) => 8,
            Arg::Blob(v) => v.len(),
            Arg::Owned(v) => v.len(),
            Arg::Text(v) => v.len(),
        }
    }
}

/// Statements to run one after the other, with their arguments in order.
#[derive(Debug, Default)]
pub(crate) struct Script<'a> {
    /// Every statement, as the pool runs them (rows many per statement).
    sql: String,
    /// The statements in `sql`.
    in_sql: usize,
    /// The one-row statements of [`Script::push_rows`], as the writing connection runs
    /// them.
    row_sql: String,
    steps: Vec<Step>,
    args: Vec<Arg<'a>>,
    bytes: usize,
}

/// A step of a script on the writing connection.
#[derive(Debug, Clone)]
enum Step {
    /// A statement (its text in `sql`) and how many arguments it takes.
    One { text: Range<usize>, args: usize },
    /// A one-row statement (its text in `row_sql`) run once per row, `width` arguments
    /// each.
    Rows {
        text: Range<usize>,
        width: usize,
        rows: usize,
    },
}

/// Scripts of more statements than this are not kept prepared by sqlx (a catch-up's
/// commit of thousands of rows is seldom repeated word for word).
const CACHED_STATEMENTS: usize = 16;

impl<'a> Script<'a> {
    /// Adds `sql`, one statement whose `?` placeholders take `args` in order.
    pub(crate) fn push(&mut self, sql: &str, args: impl IntoIterator<Item = Arg<'a>>) {
        let text = self.push_sql(sql);
        let args = self.push_args(args);
        self.steps.push(Step::One { text, args });
    }

    /// Adds rows to insert: `head` (`INSERT ... VALUES`) and, per row, `row` (a tuple of
    /// `width` placeholders), with `args` row after row. The pool runs them as one
    /// statement per chunk of rows (`chunks`: their lengths, which add up to the rows);
    /// the writing connection runs the one-row statement once per row, since a statement
    /// that may write several rows and fail halfway keeps a statement journal (a copy of
    /// every page it changes, so that it can be undone alone), which one row does not
    /// need. The whole transaction is rolled back on any error anyway.
    pub(crate) fn push_rows(
        &mut self,
        head: &str,
        row: &str,
        width: usize,
        chunks: impl IntoIterator<Item = usize>,
        args: impl IntoIterator<Item = Arg<'a>>,
    ) {
        let chunks: Vec<usize> = chunks.into_iter().filter(|&n| n > 0).collect();
        let rows: usize = chunks.iter().sum();
        if rows == 0 {
            return;
        }
        for chunk in chunks {
            self.push_sql(&format!("{head} {}", vec![row; chunk].join(", ")));
        }
        let start = self.row_sql.len();
        self.row_sql.push_str(head);
        self.row_sql.push(' ');
        self.row_sql.push_str(row);
        let text = start..self.row_sql.len();
        let pushed = self.push_args(args);
        debug_assert_eq!(pushed, rows * width, "the rows' arguments");
        self.steps.push(Step::Rows { text, width, rows });
    }

    /// Adds a statement's text to `sql`; where it is.
    fn push_sql(&mut self, sql: &str) -> Range<usize> {
        let start = self.sql.len();
        self.sql.push_str(sql);
        let end = self.sql.len();
        self.sql.push_str(";\n");
        self.in_sql += 1;
        start..end
    }

    /// Adds `args`; how many.
    fn push_args(&mut self, args: impl IntoIterator<Item = Arg<'a>>) -> usize {
        let before = self.args.len();
        for arg in args {
            self.bytes += arg.len();
            self.args.push(arg);
        }
        self.args.len() - before
    }

    /// Adds the statements of `other`.
    pub(crate) fn extend(&mut self, other: &Script<'a>) {
        let offset = self.sql.len();
        let row_offset = self.row_sql.len();
        self.sql.push_str(&other.sql);
        self.row_sql.push_str(&other.row_sql);
        self.in_sql += other.in_sql;
        self.steps.extend(other.steps.iter().map(|step| match step {
            Step::One { text, args } => Step::One {
                text: text.start + offset..text.end + offset,
                args: *args,
            },
            Step::Rows { text, width, rows } => Step::Rows {
                text: text.start + row_offset..text.end + row_offset,
                width: *width,
                rows: *rows,
            },
        }));
        self.args.extend(other.args.iter().cloned());
        self.bytes += other.bytes;
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// The bytes of its arguments.
    pub(crate) const fn bytes(&self) -> usize {
        self.bytes
    }

    fn arguments(&self) -> Result<SqliteArguments> {
        let mut out = SqliteArguments::default();
        for arg in &self.args {
            let added = match arg {
                Arg::Int(v) => Arguments::add(&mut out, *v),
                Arg::Blob(v) => Arguments::add(&mut out, v.to_vec()),
                Arg::Owned(v) => Arguments::add(&mut out, v.clone()),
                Arg::Text(v) => Arguments::add(&mut out, (*v).to_owned()),
            };
            added.map_err(|e| StoreError::Corrupt(format!("an argument of a script: {e}")))?;
        }
        Ok(out)
    }

    /// Runs the statements on a pool's `conn` (inside whatever transaction it is in), in
    /// one round trip to its thread.
    pub(crate) async fn execute(&self, conn: &mut SqliteConnection) -> Result<()> {
        if self.is_empty() {
            return Ok(());
        }
        let query = sqlx::query_with(sqlx::AssertSqlSafe(self.sql.clone()), self.arguments()?)
            .persistent(self.in_sql <= CACHED_STATEMENTS);
        query.execute(conn).await?;
        Ok(())
    }
}

/// Why the writing connection did not run a script.
#[derive(Debug)]
pub(crate) enum Declined {
    /// Another connection holds the write lock (nothing was done): run it elsewhere.
    Busy,
    /// The script failed and was rolled back.
    Failed(Box<StoreError>),
}

/// The connection a file store writes through.
#[derive(Debug)]
pub(crate) struct WritingConnection {
    conn: rusqlite::Connection,
    /// The frames in the write-ahead log after this connection's last commit.
    frames: usize,
    /// The frames at which the next checkpoint is due.
    checkpoint_at: usize,
}

impl WritingConnection {
    /// Opens the file at `path` (an existing store: the pool created and migrated it).
    pub(crate) fn open(path: &Path) -> Result<WritingConnection> {
        let conn = rusqlite::Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        // As the pool's connections, but: no waiting for locks (a busy database sends the
        // script to the pool), and no checkpoints (the store runs them through the pool).
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = NORMAL;
             PRAGMA temp_store = memory;
             PRAGMA foreign_keys = ON;
             PRAGMA wal_autocheckpoint = 0;",
        )?;
        conn.busy_timeout(std::time::Duration::ZERO)?;
        conn.set_prepared_statement_cache_capacity(64);
        // After `wal_autocheckpoint`, which sets a hook of its own.
        conn.wal_hook(Some(record_wal_frames));
        Ok(WritingConnection {
            conn,
            frames: 0,
            checkpoint_at: CHECKPOINT_FRAMES,
        })
    }

    /// Runs `script` as one transaction (`BEGIN IMMEDIATE` ... `COMMIT`). On an error
    /// nothing of it is committed.
    pub(crate) fn transact(&mut self, script: &Script<'_>) -> std::result::Result<(), Declined> {
        if !self.conn.is_autocommit() {
            // Cannot happen (every path below ends the transaction); made sure of anyway.
            self.roll_back();
        }
        if let Err(e) = self.conn.execute_batch("BEGIN IMMEDIATE") {
            return Err(if is_busy(&e) {
                Declined::Busy
            } else {
                Declined::Failed(Box::new(e.into()))
            });
        }
        WAL_FRAMES.with(|f| f.set(None));
        let result = self
            .run(script)
            .and_then(|()| self.conn.execute_batch("COMMIT"));
        match result {
            Ok(()) => {
                if let Some(frames) = WAL_FRAMES.with(std::cell::Cell::take) {
                    if frames < self.frames {
                        // The log started again from its beginning.
                        self.checkpoint_at = CHECKPOINT_FRAMES;
                    }
                    self.frames = frames;
                }
                Ok(())
            }
            Err(e) => {
                self.roll_back();
                Err(Declined::Failed(Box::new(e.into())))
            }
        }
    }

    fn run(&mut self, script: &Script<'_>) -> rusqlite::Result<()> {
        let mut args = script.args.iter();
        for step in &script.steps {
            let (sql, width, times) = match step {
                Step::One { text, args } => (&script.sql[text.clone()], *args, 1),
                Step::Rows { text, width, rows } => (&script.row_sql[text.clone()], *width, *rows),
            };
            let mut statement = self.conn.prepare_cached(sql)?;
            for _ in 0..times {
                for index in 1..=width {
                    match args.next() {
                        Some(Arg::Int(v)) => statement.raw_bind_parameter(index, v)?,
                        Some(Arg::Blob(v)) => statement.raw_bind_parameter(index, v)?,
                        Some(Arg::Owned(v)) => statement.raw_bind_parameter(index, v)?,
                        Some(Arg::Text(v)) => statement.raw_bind_parameter(index, v)?,
                        None => return Err(rusqlite::Error::InvalidParameterCount(index, width)),
                    }
                }
                statement.raw_execute()?;
            }
        }
        Ok(())
    }

    /// The values of `keys` in `view` of `scope`, in the order of `keys` (a read of
    /// committed rows, outside any transaction: this connection is never left in one).
    pub(crate) fn view_get(
        &mut self,
        scope: &str,
        view: &str,
        keys: &[Vec<u8>],
    ) -> rusqlite::Result<Vec<Option<Vec<u8>>>> {
        let mut statement = self.conn.prepare_cached(
            "SELECT value FROM view_rows WHERE scope = ?1 AND view = ?2 AND key = ?3",
        )?;
        keys.iter()
            .map(|key| {
                use rusqlite::OptionalExtension;
                statement
                    .query_row((scope, view, key), |row| row.get(0))
                    .optional()
            })
            .collect()
    }

    /// The rows of `view` in `scope` within `range`, as [`crate::ViewBook::view_range`].
    pub(crate) fn view_range(
        &mut self,
        scope: &str,
        view: &str,
        range: &crate::RowRange,
    ) -> rusqlite::Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let sql = match (range.after, range.to.is_some(), range.reverse) {
            (false, false, false) => RANGES[0],
            (true, false, false) => RANGES[1],
            (false, true, false) => RANGES[2],
            (true, true, false) => RANGES[3],
            (false, false, true) => RANGES[4],
            (true, false, true) => RANGES[5],
            (false, true, true) => RANGES[6],
            (true, true, true) => RANGES[7],
        };
        let mut statement = self.conn.prepare_cached(sql)?;
        let limit = i64::try_from(range.limit).unwrap_or(i64::MAX);
        let to = range.to.as_deref().unwrap_or_default();
        let rows = statement.query_map((scope, view, &range.from, to, limit), |row| {
            Ok((row.get(0)?, row.get(1)?))
        })?;
        rows.collect()
    }

    fn roll_back(&mut self) {
        if !self.conn.is_autocommit() {
            // A rollback that fails leaves the transaction to the next script's check.
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }

    /// Whether the write-ahead log is due a checkpoint. Once due, the next one is due
    /// [`CHECKPOINT_FRAMES`] later, or as many frames after the log starts again.
    pub(crate) fn checkpoint_due(&mut self) -> bool {
        if self.frames < self.checkpoint_at {
            return false;
        }
        self.checkpoint_at = self.frames + CHECKPOINT_FRAMES;
        true
    }

    /// Whether the write-ahead log has grown past [`WAL_LIMIT_FRAMES`].
    pub(crate) fn over_limit(&self) -> bool {
        self.frames >= WAL_LIMIT_FRAMES
    }

    /// Checkpoints the frames a checkpoint of the pool left (those written while it ran),
    /// so that the next transaction starts the log again from its beginning. Passive: it
    /// copies what no reader still needs, and waits for nobody. Best effort.
    pub(crate) fn finish_checkpoint(&mut self) {
        let _ = self
            .conn
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
    }
}

/// The statements of [`WritingConnection::view_range`]: after `from` or from it, up to
/// `to` or to the end, ascending or descending (`?4` is bound either way).
const RANGES: [&str; 8] = [
    "SELECT key, value FROM view_rows WHERE scope = ?1 AND view = ?2 AND key >= ?3 \
     AND ?4 IS NOT NULL ORDER BY key ASC LIMIT ?5",
    "SELECT key, value FROM view_rows WHERE scope = ?1 AND view = ?2 AND key > ?3 \
     AND ?4 IS NOT NULL ORDER BY key ASC LIMIT ?5",
    "SELECT key, value FROM view_rows WHERE scope = ?1 AND view = ?2 AND key >= ?3 \
     AND key < ?4 ORDER BY key ASC LIMIT ?5",
    "SELECT key, value FROM view_rows WHERE scope = ?1 AND view = ?2 AND key > ?3 \
     AND key < ?4 ORDER BY key ASC LIMIT ?5",
    "SELECT key, value FROM view_rows WHERE scope = ?1 AND view = ?2 AND key >= ?3 \
     AND ?4 IS NOT NULL ORDER BY key DESC LIMIT ?5",
    "SELECT key, value FROM view_rows WHERE scope = ?1 AND view = ?2 AND key > ?3 \
     AND ?4 IS NOT NULL ORDER BY key DESC LIMIT ?5",
    "SELECT key, value FROM view_rows WHERE scope = ?1 AND view = ?2 AND key >= ?3 \
     AND key < ?4 ORDER BY key DESC LIMIT ?5",
    "SELECT key, value FROM view_rows WHERE scope = ?1 AND view = ?2 AND key > ?3 \
     AND key < ?4 ORDER BY key DESC LIMIT ?5",
];

fn is_busy(error: &rusqlite::Error) -> bool {
    matches!(
        error.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

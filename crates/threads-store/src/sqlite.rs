//! The SQLite backend (the embedded default): one file, WAL journal, versioned schema.
//!
//! Layout (docs/FORMAT.md, "SQLite store"): entries are appended in log order to a rowid
//! table keyed by (log, counter), so an append writes at the end of the table and reading a
//! log back is a range scan; record CIDs are found through an index filled in batches (and a
//! scan of the entries after its last batch).

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Row, SqliteConnection};
use threads_crypto::{Identity, ThreadKey};
use threads_id::{LogId, Multiaddr, ThreadId};
use threads_log::{Appended, Block, Cid, Head};

use crate::chain::{Plan, check_chain, heads_digest, plan};
use crate::error::StoreError;
use crate::secrets::{Secrets, StoreOptions, log_key_row, thread_key_row};
use crate::sql::{EntryRow, cid_from, entries_from_rows, log_from, to_i64, to_u64};
use crate::sqlite_script::{
    Arg, Declined, INLINE_BYTES, INLINE_READ_ROWS, Script, WritingConnection,
};
use crate::traits::{
    AddrBook, AppendOutcome, BlockStore, HeadsDigest, KeyBook, LogBook, MetaBook, Page, Result,
    StoredEntry, ThreadBook,
};
use crate::views::{RowRange, ViewBook, ViewCommit};

/// Rows written by one statement when views commit.
const ROWS_PER_STATEMENT: usize = 256;

/// Entries written by one statement when a log is appended to.
const ENTRIES_PER_STATEMENT: usize = 64;

/// `items` in chunks of at most `max` items for statements of many rows, each chunk's
/// length `max` or a power of two: a statement's text depends on its number of rows, and
/// with a few lengths only, the prepared statements' caches hold every statement a commit
/// uses (a group commit of 41 writes would otherwise parse a statement of 41 rows, then
/// one of 37, ...; parsing was a twentieth of a group's time).
fn statement_chunks<T>(mut items: &[T], max: usize) -> impl Iterator<Item = &[T]> {
    std::iter::from_fn(move || {
        if items.is_empty() {
            return None;
        }
        let len = if items.len() >= max {
            max
        } else {
            1 << items.len().ilog2()
        };
        let (chunk, rest) = items.split_at(len);
        items = rest;
        Some(chunk)
    })
}

/// Checkpoint rounds of the pool, at most, before the writing connection finishes the
/// checkpoint ([`SqliteStore::checkpoint_later`]).
const CHECKPOINT_ROUNDS: usize = 6;

/// A checkpoint round of the pool that found at most this many new frames is the last: the
/// writing connection's part is then these frames and two syncs, instead of the hundreds
/// written during a single round.
const FINISH_FRAMES: i64 = 64;

/// The schema version this build writes and reads.
pub const SQLITE_SCHEMA_VERSION: i64 = 5;

/// Ordered migrations: `MIGRATIONS[i]` takes the schema from version `i` to `i + 1`.
const MIGRATIONS: [&str; 5] = [
    r#"
CREATE TABLE threads (
    thread BLOB PRIMARY KEY,
    key BLOB NOT NULL
);
CREATE TABLE logs (
    id INTEGER PRIMARY KEY,
    thread BLOB NOT NULL REFERENCES threads (thread),
    log BLOB NOT NULL,
    counter INTEGER NOT NULL DEFAULT 0,
    head BLOB,
    UNIQUE (thread, log)
);
CREATE TABLE entries (
    id INTEGER PRIMARY KEY,
    log INTEGER NOT NULL REFERENCES logs (id),
    counter INTEGER NOT NULL,
    record_cid BLOB NOT NULL,
    record BLOB NOT NULL,
    event BLOB NOT NULL,
    header BLOB NOT NULL,
    body BLOB NOT NULL,
    UNIQUE (log, counter)
);
CREATE UNIQUE INDEX entries_record_cid ON entries (record_cid);
CREATE TABLE blocks (
    cid BLOB PRIMARY KEY,
    data BLOB NOT NULL
) WITHOUT ROWID;
CREATE TABLE log_keys (
    thread BLOB NOT NULL,
    log BLOB NOT NULL,
    secret BLOB NOT NULL,
    PRIMARY KEY (thread, log)
) WITHOUT ROWID;
CREATE TABLE addrs (
    thread BLOB NOT NULL,
    log BLOB NOT NULL,
    addr BLOB NOT NULL,
    expires INTEGER NOT NULL,
    PRIMARY KEY (thread, log, addr)
) WITHOUT ROWID;
CREATE TABLE thread_meta (
    thread BLOB NOT NULL,
    key TEXT NOT NULL,
    value BLOB NOT NULL,
    PRIMARY KEY (thread, key)
) WITHOUT ROWID;
"#,
    r#"
CREATE TABLE settings (
    name TEXT PRIMARY KEY,
    value BLOB NOT NULL
) WITHOUT ROWID;
"#,
    r#"
CREATE TABLE view_cursors (
    scope TEXT PRIMARY KEY,
    cursor BLOB NOT NULL
) WITHOUT ROWID;
CREATE TABLE view_rows (
    scope TEXT NOT NULL,
    view TEXT NOT NULL,
    key BLOB NOT NULL,
    value BLOB NOT NULL,
    PRIMARY KEY (scope, view, key)
) WITHOUT ROWID;
CREATE TABLE view_snapshots (
    scope TEXT NOT NULL,
    seq INTEGER NOT NULL,
    meta BLOB NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (scope, seq)
);
"#,
    // Views v2: no snapshots (undo records replace them); cursors of version 1 make the
    // engine rebuild its views.
    r#"
DROP TABLE view_snapshots;
"#,
    // Record CIDs indexed in batches (`INDEX_RECORD_CIDS`) instead of one random page of a
    // unique index per write; the entries after `upto` are found by a scan.
    r#"
CREATE TABLE record_cids (
    cid BLOB PRIMARY KEY,
    entry INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO record_cids (cid, entry) SELECT record_cid, id FROM entries ORDER BY record_cid;
DROP INDEX entries_record_cid;
CREATE TABLE record_cids_upto (
    upto INTEGER NOT NULL
);
INSERT INTO record_cids_upto (upto) SELECT coalesce(max(id), 0) FROM entries;
"#,
];

/// Entries not yet in `record_cids`, at most (less one): a lookup of a record by its CID
/// scans them. Bound as the parameter of each of [`INDEX_RECORD_CIDS`].
const RECORD_CIDS_BATCH: i64 = 2048;

/// Run in every transaction that inserts entries, after them: once [`RECORD_CIDS_BATCH`]
/// entries are past `upto`, their CIDs go into `record_cids` in CID order (each page of the
/// index written once for the batch, where a unique index on `entries` wrote one page at
/// random per entry) and `upto` moves to the last. Otherwise the inner select is NULL and
/// neither statement reads an entry.
const INDEX_RECORD_CIDS: [&str; 2] = [
    "INSERT OR REPLACE INTO record_cids (cid, entry) SELECT record_cid, id FROM entries \
     WHERE id > (SELECT upto FROM record_cids_upto \
                 WHERE (SELECT max(id) FROM entries) >= upto + ?) \
     ORDER BY record_cid",
    "UPDATE record_cids_upto SET upto = (SELECT max(id) FROM entries) \
     WHERE (SELECT max(id) FROM entries) >= upto + ?",
];

/// The record whose CID is `?1`: in `record_cids`, else among the entries after its
/// `upto`.
const RECORD_BY_CID: &str = "SELECT e.record FROM record_cids r JOIN entries e ON e.id = r.entry \
     WHERE r.cid = ?1 AND e.record_cid = ?1 \
     UNION ALL SELECT record FROM entries \
     WHERE id > (SELECT upto FROM record_cids_upto) AND record_cid = ?1 \
     LIMIT 1";

/// A store in one SQLite file.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    secrets: std::sync::Arc<Secrets>,
    /// The connection writes go through, one script per transaction, run by the writing
    /// task (a file store's; `None` in memory, where every connection would be a database
    /// of its own, and once closed).
    writer: Arc<std::sync::Mutex<Option<WritingConnection>>>,
    /// The checkpoint of the write-ahead log in progress, if any (one at a time; `close`
    /// waits for it).
    checkpoint: Arc<std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>>,
    /// Set when a checkpoint of the pool is done: the writing connection's next write
    /// checkpoints the frames it left, so the log starts again (`sqlite_script`).
    checkpointed: Arc<std::sync::atomic::AtomicBool>,
}

impl SqliteStore {
    /// Opens the store in the file at `path`, creating it (readable by its owner only) if it
    /// does not exist, and migrating its schema to the current version.
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] if the file is not a threads-rs store or is damaged,
    /// [`StoreError::SchemaTooNew`] if a newer version wrote it. Neither changes the file.
    pub async fn open(path: impl AsRef<Path>) -> Result<SqliteStore> {
        SqliteStore::open_with(path, &StoreOptions::new()).await
    }

    /// [`SqliteStore::open`] with options: a passphrase that seals the store's secrets.
    ///
    /// # Errors
    /// Also [`StoreError::WrongPassphrase`], [`StoreError::PassphraseRequired`] and
    /// [`StoreError::NotSealed`]; none of them writes anything.
    pub async fn open_with(path: impl AsRef<Path>, options: &StoreOptions) -> Result<SqliteStore> {
        let path = path.as_ref();
        if !path.exists() {
            create_private_file(path)?;
        }
        let connect = SqliteConnectOptions::new()
            .filename(path)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            // Statement journals (a statement that writes several rows inside a
            // transaction keeps one) stay in memory instead of a temporary file.
            .pragma("temp_store", "memory")
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            // A connection to an embedded database cannot be lost the way a network one
            // can, and the test on acquire is a round trip to the connection's thread (a
            // thread wake-up, tens to hundreds of microseconds): every read and write paid
            // it before its own statements.
            .test_before_acquire(false)
            .connect_with(connect.clone())
            .await?;
        let store = SqliteStore::start(pool, options).await?;
        match WritingConnection::open(path) {
            Ok(conn) => {
                *store.writing() = Some(conn);
                Ok(store)
            }
            Err(e) => {
                store.pool.close().await;
                Err(e)
            }
        }
    }

    /// An empty store in memory (one connection), for tests.
    pub async fn in_memory() -> Result<SqliteStore> {
        let options = SqliteConnectOptions::from_str("sqlite::memory:")?.foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await?;
        SqliteStore::start(pool, &StoreOptions::new()).await
    }

    async fn start(pool: SqlitePool, options: &StoreOptions) -> Result<SqliteStore> {
        let started = async {
            SqliteStore::migrate(&pool).await?;
            SqliteStore::load_secrets(&pool, options).await
        }
        .await;
        match started {
            Ok(secrets) => Ok(SqliteStore {
                pool,
                secrets: Arc::new(secrets),
                writer: Arc::default(),
                checkpoint: Arc::default(),
                checkpointed: Arc::default(),
            }),
            Err(e) => {
                pool.close().await;
                Err(e)
            }
        }
    }

    async fn load_secrets(pool: &SqlitePool, options: &StoreOptions) -> Result<Secrets> {
        let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
        let setting: Option<Vec<u8>> =
            sqlx::query_scalar("SELECT value FROM settings WHERE name = 'secrets'")
                .fetch_optional(&mut *tx)
                .await?;
        let has_secrets: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM threads) OR EXISTS (SELECT 1 FROM log_keys)",
        )
        .fetch_one(&mut *tx)
        .await?;
        let (secrets, new_setting) = Secrets::resolve(options, setting.as_deref(), has_secrets)?;
        if let Some(value) = new_setting {
            sqlx::query("INSERT INTO settings (name, value) VALUES ('secrets', ?)")
                .bind(value)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(secrets)
    }

    /// Closes every connection, waiting for work in progress. The write-ahead log is
    /// checkpointed into the database file first, so once this returns the file alone holds
    /// every committed change (a copy of it is a whole store), whenever the connections'
    /// threads get to closing.
    pub async fn close(&self) {
        drop(self.writing().take());
        self.checkpoint_done().await;
        // Best effort: a failed checkpoint leaves the WAL beside the file, which SQLite
        // replays at the next open.
        let _ = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&self.pool)
            .await;
        self.pool.close().await;
    }

    async fn migrate(pool: &SqlitePool) -> Result<()> {
        let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
        let version: i64 = sqlx::query_scalar("PRAGMA user_version")
            .fetch_one(&mut *tx)
            .await?;
        if version > SQLITE_SCHEMA_VERSION {
            return Err(StoreError::SchemaTooNew {
                found: version,
                supported: SQLITE_SCHEMA_VERSION,
            });
        }
        if version == 0 {
            let tables: i64 = sqlx::query_scalar("SELECT count(*) FROM sqlite_master")
                .fetch_one(&mut *tx)
                .await?;
            if tables != 0 {
                return Err(StoreError::Corrupt(
                    "the file is an SQLite database but not a threads-rs store".to_owned(),
                ));
            }
        }
        for (from, sql) in MIGRATIONS
            .iter()
            .enumerate()
            .skip(usize::try_from(version).unwrap_or(0))
        {
            sqlx::raw_sql(*sql).execute(&mut *tx).await?;
            let next = from as i64 + 1;
            // PRAGMA takes no bound parameters; the value is one of our own constants.
            let set = match next {
                1 => "PRAGMA user_version = 1",
                2 => "PRAGMA user_version = 2",
                3 => "PRAGMA user_version = 3",
                4 => "PRAGMA user_version = 4",
                5 => "PRAGMA user_version = 5",
                _ => unreachable!("one migration per version"),
            };
            sqlx::query(set).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Appends `batch` (a checked chain ending at `last`) in the transaction `conn`.
    async fn append_in(
        conn: &mut SqliteConnection,
        thread: ThreadId,
        log: LogId,
        expected: Option<Head>,
        batch: &[Appended],
        last: Head,
    ) -> Result<AppendOutcome> {
        // The common case in one statement: the head is the expected one, so it advances.
        let moved: Option<i64> = sqlx::query_scalar(
            "UPDATE logs SET counter = ?1, head = ?2 WHERE thread = ?3 AND log = ?4 \
             AND counter = ?5 AND (?5 = 0 OR head = ?6) RETURNING id",
        )
        .bind(to_i64(last.counter)?)
        .bind(last.cid.to_bytes())
        .bind(&thread.to_bytes()[..])
        .bind(log.to_bytes())
        .bind(to_i64(expected.map_or(0, |h| h.counter))?)
        .bind(expected.map(|h| h.cid.to_bytes()).unwrap_or_default())
        .fetch_optional(&mut *conn)
        .await?;
        if let Some(log_row) = moved {
            SqliteStore::insert_entries(conn, log_row, batch).await?;
            SqliteStore::index_record_cids(conn).await?;
            return Ok(AppendOutcome::Appended { head: last });
        }
        // A known log means a known thread (a foreign key); only a new log needs the check.
        let (log_row, current) = match SqliteStore::log_row(conn, thread, log).await? {
            Some(row) => row,
            None => {
                if !SqliteStore::thread_known(conn, thread).await? {
                    return Err(StoreError::UnknownThread(thread));
                }
                let id: i64 =
                    sqlx::query_scalar("INSERT INTO logs (thread, log) VALUES (?, ?) RETURNING id")
                        .bind(&thread.to_bytes()[..])
                        .bind(log.to_bytes())
                        .fetch_one(&mut *conn)
                        .await?;
                (id, None)
            }
        };
        let stored_at_last: Option<Vec<u8>> = match current {
            Some(current) if current.counter >= last.counter && current != last => {
                sqlx::query_scalar("SELECT record_cid FROM entries WHERE log = ? AND counter = ?")
                    .bind(log_row)
                    .bind(to_i64(last.counter)?)
                    .fetch_optional(&mut *conn)
                    .await?
            }
            _ => None,
        };
        let decision = plan(log, expected, current, last, |counter| {
            if current.map(|h| h.counter) == Some(counter) {
                current.map(|h| h.cid)
            } else {
                stored_at_last
                    .as_deref()
                    .and_then(|b| Cid::try_from(b).ok())
            }
        })?;
        let new_head = match decision {
            Plan::Done(outcome) => return Ok(outcome),
            Plan::Append { new_head } => new_head,
        };
        SqliteStore::insert_entries(conn, log_row, batch).await?;
        SqliteStore::index_record_cids(conn).await?;
        sqlx::query("UPDATE logs SET counter = ?, head = ? WHERE id = ?")
            .bind(to_i64(new_head.counter)?)
            .bind(new_head.cid.to_bytes())
            .bind(log_row)
            .execute(&mut *conn)
            .await?;
        Ok(AppendOutcome::Appended { head: new_head })
    }

    /// [`INDEX_RECORD_CIDS`] in the transaction `conn`.
    async fn index_record_cids(conn: &mut SqliteConnection) -> Result<()> {
        for statement in INDEX_RECORD_CIDS {
            sqlx::query(statement)
                .bind(RECORD_CIDS_BATCH)
                .execute(&mut *conn)
                .await?;
        }
        Ok(())
    }

    /// Inserts the entries of `batch` into log `log_row`, many per statement.
    async fn insert_entries(
        conn: &mut SqliteConnection,
        log_row: i64,
        batch: &[Appended],
    ) -> Result<()> {
        const COLUMNS: usize = 6;
        for chunk in statement_chunks(batch, ENTRIES_PER_STATEMENT) {
            let sql = format!(
                "INSERT INTO entries (log, counter, record_cid, record, event, header, body) VALUES {}",
                (0..chunk.len())
                    .map(|i| {
                        let p = 2 + COLUMNS * i;
                        format!(
                            "(?1, ?{}, ?{}, ?{}, ?{}, ?{}, ?{})",
                            p,
                            p + 1,
                            p + 2,
                            p + 3,
                            p + 4,
                            p + 5
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(log_row);
            for appended in chunk {
                let entry = &appended.entry;
                query = query
                    .bind(to_i64(appended.record.counter())?)
                    .bind(appended.record.cid().to_bytes())
                    .bind(entry.record.data())
                    .bind(entry.event.data())
                    .bind(entry.header.data())
                    .bind(entry.body.data());
            }
            query.execute(&mut *conn).await?;
        }
        Ok(())
    }

    /// Adds the statements that write `commit` to `script`.
    fn view_commit_script<'a>(script: &mut Script<'a>, commit: &'a ViewCommit) -> Result<()> {
        commit.check()?;
        let scope = Arg::Text(commit.scope.as_str());
        for change in &commit.changes {
            let view = Arg::Text(change.view.as_str());
            if change.reset {
                script.push(
                    "DELETE FROM view_rows WHERE scope = ? AND view = ?",
                    [scope.clone(), view.clone()],
                );
            }
            if let Some(below) = &change.delete_below {
                script.push(
                    "DELETE FROM view_rows WHERE scope = ? AND view = ? AND key < ?",
                    [scope.clone(), view.clone(), Arg::Blob(below)],
                );
            }
            // Many rows per statement: the statement overhead, not SQLite, is the cost.
            for keys in statement_chunks(&change.deletes, ROWS_PER_STATEMENT) {
                let sql = format!(
                    "DELETE FROM view_rows WHERE scope = ? AND view = ? AND key IN ({})",
                    placeholders(keys.len(), "?")
                );
                script.push(
                    &sql,
                    [scope.clone(), view.clone()]
                        .into_iter()
                        .chain(keys.iter().map(|k| Arg::Blob(k))),
                );
            }
        }
        // Every view's new rows together, many per statement (a commit changes a view at
        // most once, so deletes and resets above are not undone by another view's puts).
        let puts: Vec<(&str, &[u8], &[u8])> = commit
            .changes
            .iter()
            .flat_map(|c| {
                c.puts
                    .iter()
                    .map(|(k, v)| (c.view.as_str(), k.as_slice(), v.as_slice()))
            })
            .collect();
        script.push_rows(
            "INSERT OR REPLACE INTO view_rows (scope, view, key, value) VALUES",
            "(?, ?, ?, ?)",
            4,
            statement_chunks(&puts, ROWS_PER_STATEMENT).map(<[_]>::len),
            puts.iter().flat_map(|&(view, key, value)| {
                [
                    scope.clone(),
                    Arg::Text(view),
                    Arg::Blob(key),
                    Arg::Blob(value),
                ]
            }),
        );
        script.push(
            "INSERT OR REPLACE INTO view_cursors (scope, cursor) VALUES (?, ?)",
            [scope, Arg::Blob(&commit.cursor)],
        );
        Ok(())
    }

    /// The writing connection's slot.
    fn writing(&self) -> std::sync::MutexGuard<'_, Option<WritingConnection>> {
        self.writer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The writing connection for a read, unless it is busy (a transaction of another
    /// thread: the read goes through the pool rather than wait for it).
    fn writing_if_free(&self) -> Option<std::sync::MutexGuard<'_, Option<WritingConnection>>> {
        match self.writer.try_lock() {
            Ok(guard) => Some(guard),
            Err(std::sync::TryLockError::Poisoned(e)) => Some(e.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => None,
        }
    }

    /// Runs `script` as one transaction: on the writing connection, in this task, or (in
    /// memory, for a large script, or while another connection holds the write lock) in a
    /// transaction of the pool.
    async fn transact(&self, script: &Script<'_>) -> Result<()> {
        if script.bytes() <= INLINE_BYTES {
            let over_limit = self
                .writing()
                .as_ref()
                .is_some_and(WritingConnection::over_limit);
            if over_limit {
                // Writes outran the checkpoints: wait for the one in progress.
                self.checkpoint_done().await;
            }
            let outcome = self.writing().as_mut().map(|writer| {
                if self
                    .checkpointed
                    .swap(false, std::sync::atomic::Ordering::AcqRel)
                {
                    writer.finish_checkpoint();
                }
                let result = writer.transact(script);
                (result, writer.checkpoint_due())
            });
            match outcome {
                Some((Ok(()), checkpoint)) => {
                    if checkpoint {
                        self.checkpoint_later();
                    }
                    return Ok(());
                }
                Some((Err(Declined::Failed(e)), _)) => return Err(*e),
                Some((Err(Declined::Busy), _)) | None => {}
            }
        }
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        script.execute(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Checkpoints the write-ahead log through the pool, in a task of its own (the
    /// writing connection does not: a checkpoint copies pages and syncs the file, too
    /// long to run in a writing task).
    fn checkpoint_later(&self) {
        let mut running = self
            .checkpoint
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if running.as_ref().is_some_and(|c| !c.is_finished()) {
            // One at a time: this one is skipped, the next is due 16 MiB later.
            return;
        }
        let pool = self.pool.clone();
        let checkpointed = Arc::clone(&self.checkpointed);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            *running = Some(runtime.spawn(async move {
                // Round after round, each copying the frames written during the one
                // before, until a round finds few: the writing connection then copies
                // (and syncs) only those before the log starts again, the only part of a
                // checkpoint a write waits for. Best effort: the next one catches up.
                let mut last = None;
                for _ in 0..CHECKPOINT_ROUNDS {
                    let Ok((_, log, _)) =
                        sqlx::query_as::<_, (i64, i64, i64)>("PRAGMA wal_checkpoint(PASSIVE)")
                            .fetch_one(&pool)
                            .await
                    else {
                        break;
                    };
                    // Frames this round found that the one before did not (all of them
                    // if the log started again meanwhile).
                    let new = last.filter(|&l| l <= log).map_or(log, |l| log - l);
                    last = Some(log);
                    if new <= FINISH_FRAMES {
                        break;
                    }
                }
                checkpointed.store(true, std::sync::atomic::Ordering::Release);
            }));
        }
    }

    /// Waits for the checkpoint in progress, if any.
    async fn checkpoint_done(&self) {
        let running = self
            .checkpoint
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(running) = running {
            let _ = running.await;
        }
    }

    /// The statements of the usual append, in one script: the log's head moves from
    /// `expected` to `last`, and the entries go in only if it did (else the insert fails
    /// on a missing log row or a taken counter, which stops the script, and its
    /// transaction is rolled back). The insert does not roll back by itself (`OR
    /// ROLLBACK`): in a transaction of the pool, sqlx must end the transaction it began.
    fn append_script<'a>(
        script: &mut Script<'a>,
        thread: ThreadId,
        log: LogId,
        expected: Option<Head>,
        batch: &'a [Appended],
        last: Head,
    ) -> Result<()> {
        let thread = Arg::Owned(thread.to_bytes().to_vec());
        let log = Arg::Owned(log.to_bytes());
        let expected_counter = Arg::Int(to_i64(expected.map_or(0, |h| h.counter))?);
        let last_counter = Arg::Int(to_i64(last.counter)?);
        let last_cid = Arg::Owned(last.cid.to_bytes());
        script.push(
            "UPDATE logs SET counter = ?, head = ? WHERE thread = ? AND log = ? \
             AND counter = ? AND (? = 0 OR head = ?)",
            [
                last_counter.clone(),
                last_cid.clone(),
                thread.clone(),
                log.clone(),
                expected_counter.clone(),
                expected_counter,
                Arg::Owned(expected.map(|h| h.cid.to_bytes()).unwrap_or_default()),
            ],
        );
        let guard =
            "(SELECT id FROM logs WHERE thread = ? AND log = ? AND counter = ? AND head = ?)";
        let mut args = Vec::with_capacity(batch.len() * 10);
        for appended in batch {
            let entry = &appended.entry;
            args.extend([
                thread.clone(),
                log.clone(),
                last_counter.clone(),
                last_cid.clone(),
                Arg::Int(to_i64(appended.record.counter())?),
                Arg::Owned(appended.record.cid().to_bytes()),
                Arg::Blob(entry.record.data()),
                Arg::Blob(entry.event.data()),
                Arg::Blob(entry.header.data()),
                Arg::Blob(entry.body.data()),
            ]);
        }
        script.push_rows(
            "INSERT INTO entries (log, counter, record_cid, record, event, header, body) VALUES",
            &format!("({guard}, ?, ?, ?, ?, ?, ?)"),
            10,
            statement_chunks(batch, ENTRIES_PER_STATEMENT).map(<[_]>::len),
            args,
        );
        for statement in INDEX_RECORD_CIDS {
            script.push(statement, [Arg::Int(RECORD_CIDS_BATCH)]);
        }
        Ok(())
    }

    async fn log_row(
        conn: &mut SqliteConnection,
        thread: ThreadId,
        log: LogId,
    ) -> Result<Option<(i64, Option<Head>)>> {
        let row = sqlx::query("SELECT id, counter, head FROM logs WHERE thread = ? AND log = ?")
            .bind(&thread.to_bytes()[..])
            .bind(log.to_bytes())
            .fetch_optional(&mut *conn)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let id: i64 = row.try_get(0)?;
        let counter = to_u64(row.try_get(1)?)?;
        let head: Option<Vec<u8>> = row.try_get(2)?;
        let head = match head {
            Some(bytes) if counter > 0 => Some(Head {
                cid: cid_from(&bytes)?,
                counter,
            }),
            _ => None,
        };
        Ok(Some((id, head)))
    }

    async fn thread_known(conn: &mut SqliteConnection, thread: ThreadId) -> Result<bool> {
        let found: Option<i64> = sqlx::query_scalar("SELECT 1 FROM threads WHERE thread = ?")
            .bind(&thread.to_bytes()[..])
            .fetch_optional(&mut *conn)
            .await?;
        Ok(found.is_some())
    }
}

/// `n` copies of `each`, separated by commas.
fn placeholders(n: usize, each: &str) -> String {
    vec![each; n].join(", ")
}

#[cfg(unix)]
fn create_private_file(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map(drop)
}

#[cfg(not(unix))]
fn create_private_file(path: &Path) -> std::io::Result<()> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map(drop)
}

impl BlockStore for SqliteStore {
    async fn put_blocks(&self, blocks: &[Block]) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        for block in blocks {
            sqlx::query("INSERT OR IGNORE INTO blocks (cid, data) VALUES (?, ?)")
                .bind(block.cid().to_bytes())
                .bind(block.data())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn get_block(&self, cid: &Cid) -> Result<Option<Block>> {
        let key = cid.to_bytes();
        let data: Option<Vec<u8>> = sqlx::query_scalar("SELECT data FROM blocks WHERE cid = ?")
            .bind(&key)
            .fetch_optional(&self.pool)
            .await?;
        let data = match data {
            Some(data) => Some(data),
            None => {
                sqlx::query_scalar(RECORD_BY_CID)
                    .bind(&key)
                    .fetch_optional(&self.pool)
                    .await?
            }
        };
        data.map(|d| Block::new(*cid, d).map_err(|e| StoreError::Corrupt(e.to_string())))
            .transpose()
    }

    async fn has_block(&self, cid: &Cid) -> Result<bool> {
        let key = cid.to_bytes();
        let found: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM blocks WHERE cid = ?1 \
             UNION ALL SELECT 1 FROM record_cids r JOIN entries e ON e.id = r.entry \
             WHERE r.cid = ?1 AND e.record_cid = ?1 \
             UNION ALL SELECT 1 FROM entries \
             WHERE id > (SELECT upto FROM record_cids_upto) AND record_cid = ?1 \
             LIMIT 1",
        )
        .bind(&key)
        .fetch_optional(&self.pool)
        .await?;
        Ok(found.is_some())
    }

    async fn delete_blocks(&self, cids: &[Cid]) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        for cid in cids {
            sqlx::query("DELETE FROM blocks WHERE cid = ?")
                .bind(cid.to_bytes())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

impl ThreadBook for SqliteStore {
    async fn put_thread(&self, thread: ThreadId, key: &ThreadKey) -> Result<()> {
        sqlx::query(
            "INSERT INTO threads (thread, key) VALUES (?, ?) ON CONFLICT (thread) DO UPDATE SET key = excluded.key",
        )
        .bind(&thread.to_bytes()[..])
        .bind(self.secrets.seal(&thread_key_row(&thread), &key.to_bytes()))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn thread_key(&self, thread: ThreadId) -> Result<Option<ThreadKey>> {
        let key: Option<Vec<u8>> = sqlx::query_scalar("SELECT key FROM threads WHERE thread = ?")
            .bind(&thread.to_bytes()[..])
            .fetch_optional(&self.pool)
            .await?;
        let Some(stored) = key else { return Ok(None) };
        let key = self.secrets.open(&thread_key_row(&thread), stored)?;
        ThreadKey::from_bytes(&key)
            .map(Some)
            .map_err(|e| StoreError::Corrupt(e.to_string()))
    }

    async fn threads(&self) -> Result<Vec<ThreadId>> {
        let rows: Vec<Vec<u8>> = sqlx::query_scalar("SELECT thread FROM threads ORDER BY thread")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|b| ThreadId::from_bytes(b).map_err(|e| StoreError::Corrupt(e.to_string())))
            .collect()
    }

    async fn delete_thread(&self, thread: ThreadId) -> Result<()> {
        let id = thread.to_bytes();
        let (from, to) = crate::traits::scope_range(thread);
        let mut tx = self.pool.begin().await?;
        for statement in [
            "DELETE FROM record_cids WHERE cid IN \
             (SELECT e.record_cid FROM entries e JOIN logs l ON e.log = l.id WHERE l.thread = ?)",
            "DELETE FROM entries WHERE log IN (SELECT id FROM logs WHERE thread = ?)",
        ] {
            sqlx::query(statement)
                .bind(&id[..])
                .execute(&mut *tx)
                .await?;
        }
        // Rowids of deleted entries at the end are given again: the new entries must be
        // after `upto`, where lookups find them.
        sqlx::query(
            "UPDATE record_cids_upto \
             SET upto = min(upto, coalesce((SELECT max(id) FROM entries), 0))",
        )
        .execute(&mut *tx)
        .await?;
        for statement in [
            "DELETE FROM logs WHERE thread = ?",
            "DELETE FROM log_keys WHERE thread = ?",
            "DELETE FROM addrs WHERE thread = ?",
            "DELETE FROM thread_meta WHERE thread = ?",
            "DELETE FROM threads WHERE thread = ?",
        ] {
            sqlx::query(statement)
                .bind(&id[..])
                .execute(&mut *tx)
                .await?;
        }
        for statement in [
            "DELETE FROM view_rows WHERE scope >= ? AND scope < ?",
            "DELETE FROM view_cursors WHERE scope >= ? AND scope < ?",
        ] {
            sqlx::query(statement)
                .bind(&from)
                .bind(&to)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

impl LogBook for SqliteStore {
    async fn add_log(&self, thread: ThreadId, log: LogId) -> Result<()> {
        let mut conn = self.pool.acquire().await?;
        if !SqliteStore::thread_known(&mut conn, thread).await? {
            return Err(StoreError::UnknownThread(thread));
        }
        sqlx::query("INSERT OR IGNORE INTO logs (thread, log) VALUES (?, ?)")
            .bind(&thread.to_bytes()[..])
            .bind(log.to_bytes())
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    async fn logs(&self, thread: ThreadId) -> Result<Vec<LogId>> {
        let rows: Vec<Vec<u8>> =
            sqlx::query_scalar("SELECT log FROM logs WHERE thread = ? ORDER BY log")
                .bind(&thread.to_bytes()[..])
                .fetch_all(&self.pool)
                .await?;
        rows.iter().map(|b| log_from(b)).collect()
    }

    async fn head(&self, thread: ThreadId, log: LogId) -> Result<Option<Head>> {
        let mut conn = self.pool.acquire().await?;
        Ok(SqliteStore::log_row(&mut conn, thread, log)
            .await?
            .and_then(|(_, head)| head))
    }

    async fn append(
        &self,
        thread: ThreadId,
        log: LogId,
        expected: Option<Head>,
        batch: &[Appended],
    ) -> Result<AppendOutcome> {
        self.append_with_views(thread, log, expected, batch, &[])
            .await
    }

    async fn entries_after(
        &self,
        thread: ThreadId,
        log: LogId,
        after: u64,
        page: Page,
    ) -> Result<Vec<StoredEntry>> {
        let limit = i64::try_from(page.max_records).unwrap_or(i64::MAX);
        let rows = sqlx::query(
            "SELECT e.counter, e.record_cid, e.record, e.event, e.header, e.body \
             FROM entries e JOIN logs l ON e.log = l.id \
             WHERE l.thread = ? AND l.log = ? AND e.counter > ? ORDER BY e.counter LIMIT ?",
        )
        .bind(&thread.to_bytes()[..])
        .bind(log.to_bytes())
        .bind(to_i64(after)?)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        entries_from_rows(
            rows.into_iter().map(|row| {
                Ok(EntryRow {
                    counter: row.try_get(0)?,
                    record_cid: row.try_get(1)?,
                    record: row.try_get(2)?,
                    event: row.try_get(3)?,
                    header: row.try_get(4)?,
                    body: row.try_get(5)?,
                })
            }),
            page,
        )
    }

    async fn log_bytes(&self, thread: ThreadId, log: LogId) -> Result<u64> {
        let total: Option<i64> = sqlx::query_scalar(
            "SELECT SUM(length(e.record) + length(e.event) + length(e.header) + length(e.body)) \
             FROM entries e JOIN logs l ON e.log = l.id WHERE l.thread = ? AND l.log = ?",
        )
        .bind(&thread.to_bytes()[..])
        .bind(log.to_bytes())
        .fetch_one(&self.pool)
        .await?;
        to_u64(total.unwrap_or(0))
    }

    async fn record_cid(&self, thread: ThreadId, log: LogId, counter: u64) -> Result<Option<Cid>> {
        let cid: Option<Vec<u8>> = sqlx::query_scalar(
            "SELECT e.record_cid FROM entries e JOIN logs l ON e.log = l.id \
             WHERE l.thread = ? AND l.log = ? AND e.counter = ?",
        )
        .bind(&thread.to_bytes()[..])
        .bind(log.to_bytes())
        .bind(to_i64(counter)?)
        .fetch_optional(&self.pool)
        .await?;
        cid.map(|b| cid_from(&b)).transpose()
    }

    async fn heads_digest(&self, thread: ThreadId) -> Result<HeadsDigest> {
        let rows =
            sqlx::query("SELECT log, counter, head FROM logs WHERE thread = ? AND counter > 0")
                .bind(&thread.to_bytes()[..])
                .fetch_all(&self.pool)
                .await?;
        let mut heads = Vec::with_capacity(rows.len());
        for row in rows {
            let log = log_from(row.try_get::<&[u8], _>(0)?)?;
            let counter = to_u64(row.try_get(1)?)?;
            let cid = cid_from(row.try_get::<&[u8], _>(2)?)?;
            heads.push((log, Head { cid, counter }));
        }
        Ok(heads_digest(heads))
    }
}

impl KeyBook for SqliteStore {
    async fn put_log_key(&self, thread: ThreadId, identity: &Identity) -> Result<()> {
        sqlx::query(
            "INSERT INTO log_keys (thread, log, secret) VALUES (?, ?, ?) \
             ON CONFLICT (thread, log) DO UPDATE SET secret = excluded.secret",
        )
        .bind(&thread.to_bytes()[..])
        .bind(identity.log_id().to_bytes())
        .bind(self.secrets.seal(
            &log_key_row(&thread, &identity.log_id()),
            &identity.secret_bytes()[..],
        ))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn log_key(&self, thread: ThreadId, log: LogId) -> Result<Option<Identity>> {
        let secret: Option<Vec<u8>> =
            sqlx::query_scalar("SELECT secret FROM log_keys WHERE thread = ? AND log = ?")
                .bind(&thread.to_bytes()[..])
                .bind(log.to_bytes())
                .fetch_optional(&self.pool)
                .await?;
        let Some(stored) = secret else {
            return Ok(None);
        };
        let secret = self.secrets.open(&log_key_row(&thread, &log), stored)?;
        Identity::from_secret_slice(&secret)
            .map(Some)
            .map_err(|e| StoreError::Corrupt(e.to_string()))
    }
}

impl AddrBook for SqliteStore {
    async fn add_addr(
        &self,
        thread: ThreadId,
        log: LogId,
        addr: &Multiaddr,
        expires_ms: u64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO addrs (thread, log, addr, expires) VALUES (?, ?, ?, ?) \
             ON CONFLICT (thread, log, addr) DO UPDATE SET expires = max(expires, excluded.expires)",
        )
        .bind(&thread.to_bytes()[..])
        .bind(log.to_bytes())
        .bind(addr.to_vec())
        .bind(to_i64(expires_ms)?)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn addrs(&self, thread: ThreadId, log: LogId, now_ms: u64) -> Result<Vec<Multiaddr>> {
        let rows: Vec<Vec<u8>> = sqlx::query_scalar(
            "SELECT addr FROM addrs WHERE thread = ? AND log = ? AND expires > ? ORDER BY addr",
        )
        .bind(&thread.to_bytes()[..])
        .bind(log.to_bytes())
        .bind(to_i64(now_ms)?)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|b| Multiaddr::try_from(b).map_err(|e| StoreError::Corrupt(e.to_string())))
            .collect()
    }

    async fn expire_addrs(&self, thread: ThreadId, now_ms: u64) -> Result<u64> {
        let done = sqlx::query("DELETE FROM addrs WHERE thread = ? AND expires <= ?")
            .bind(&thread.to_bytes()[..])
            .bind(to_i64(now_ms)?)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }
}

impl MetaBook for SqliteStore {
    async fn put_meta(&self, thread: ThreadId, key: &str, value: &[u8]) -> Result<()> {
        sqlx::query(
            "INSERT INTO thread_meta (thread, key, value) VALUES (?, ?, ?) \
             ON CONFLICT (thread, key) DO UPDATE SET value = excluded.value",
        )
        .bind(&thread.to_bytes()[..])
        .bind(key)
        .bind(value)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn meta(&self, thread: ThreadId, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(
            sqlx::query_scalar("SELECT value FROM thread_meta WHERE thread = ? AND key = ?")
                .bind(&thread.to_bytes()[..])
                .bind(key)
                .fetch_optional(&self.pool)
                .await?,
        )
    }
}

impl ViewBook for SqliteStore {
    async fn view_cursor(&self, scope: &str) -> Result<Option<Vec<u8>>> {
        Ok(
            sqlx::query_scalar("SELECT cursor FROM view_cursors WHERE scope = ?")
                .bind(scope)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    async fn view_get(
        &self,
        scope: &str,
        view: &str,
        keys: &[Vec<u8>],
    ) -> Result<Vec<Option<Vec<u8>>>> {
        if keys.len() <= INLINE_READ_ROWS
            && let Some(Ok(values)) = self
                .writing_if_free()
                .as_mut()
                .and_then(|writing| writing.as_mut())
                .map(|writer| writer.view_get(scope, view, keys))
        {
            return Ok(values);
        }
        let mut found: std::collections::HashMap<Vec<u8>, Vec<u8>> =
            std::collections::HashMap::with_capacity(keys.len());
        for chunk in statement_chunks(keys, ROWS_PER_STATEMENT) {
            let sql = format!(
                "SELECT key, value FROM view_rows WHERE scope = ?1 AND view = ?2 AND key IN ({})",
                (0..chunk.len())
                    .map(|i| format!("?{}", 3 + i))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(scope).bind(view);
            for key in chunk {
                query = query.bind(key);
            }
            for row in query.fetch_all(&self.pool).await? {
                found.insert(row.try_get(0)?, row.try_get(1)?);
            }
        }
        Ok(keys.iter().map(|k| found.get(k).cloned()).collect())
    }

    async fn view_range(
        &self,
        scope: &str,
        view: &str,
        range: &RowRange,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        if range.limit <= INLINE_READ_ROWS
            && let Some(Ok(rows)) = self
                .writing_if_free()
                .as_mut()
                .and_then(|writing| writing.as_mut())
                .map(|writer| writer.view_range(scope, view, range))
        {
            return Ok(rows);
        }
        let start = if range.after { ">" } else { ">=" };
        let direction = if range.reverse { "DESC" } else { "ASC" };
        let end = if range.to.is_some() {
            "AND key < ?4"
        } else {
            ""
        };
        let sql = format!(
            "SELECT key, value FROM view_rows WHERE scope = ?1 AND view = ?2 AND key {start} ?3 \
             {end} ORDER BY key {direction} LIMIT ?5"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(scope)
            .bind(view)
            .bind(&range.from)
            .bind(range.to.as_deref().unwrap_or_default())
            .bind(i64::try_from(range.limit).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter()
            .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
            .collect()
    }

    async fn view_commit(&self, commit: &ViewCommit) -> Result<()> {
        let mut script = Script::default();
        SqliteStore::view_commit_script(&mut script, commit)?;
        self.transact(&script).await
    }

    async fn append_with_views(
        &self,
        thread: ThreadId,
        log: LogId,
        expected: Option<Head>,
        batch: &[Appended],
        commits: &[ViewCommit],
    ) -> Result<AppendOutcome> {
        let last = check_chain(expected, batch)?;
        let mut views = Script::default();
        for commit in commits {
            SqliteStore::view_commit_script(&mut views, commit)?;
        }
        // The usual case, a known log whose head is `expected`: one round trip. Anything
        // else (a new log, a stale head, entries already stored, an error) is rolled back
        // and goes the careful way below, which tells them apart.
        let writing = self.writing().is_some();
        if writing {
            let mut script = Script::default();
            SqliteStore::append_script(&mut script, thread, log, expected, batch, last)?;
            script.extend(&views);
            if self.transact(&script).await.is_ok() {
                return Ok(AppendOutcome::Appended { head: last });
            }
        }
        // IMMEDIATE takes the write lock up front, so the head read below cannot change
        // before the transaction commits.
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let outcome = SqliteStore::append_in(&mut tx, thread, log, expected, batch, last).await?;
        if let AppendOutcome::Appended { .. } = outcome {
            views.execute(&mut tx).await?;
            tx.commit().await?;
        }
        Ok(outcome)
    }

    async fn compact_bodies(&self, thread: ThreadId, log: LogId, counters: &[u64]) -> Result<u64> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let Some((id, _)) = SqliteStore::log_row(&mut tx, thread, log).await? else {
            return Ok(0);
        };
        let mut dropped = 0;
        for &counter in counters {
            let done = sqlx::query(
                "UPDATE entries SET body = X'' WHERE log = ? AND counter = ? AND length(body) > 0",
            )
            .bind(id)
            .bind(to_i64(counter)?)
            .execute(&mut *tx)
            .await?;
            dropped += done.rows_affected();
        }
        tx.commit().await?;
        Ok(dropped)
    }

    async fn fill_body(
        &self,
        thread: ThreadId,
        log: LogId,
        counter: u64,
        body: &[u8],
    ) -> Result<bool> {
        if body.is_empty() {
            return Ok(false);
        }
        let done = sqlx::query(
            "UPDATE entries SET body = ? WHERE counter = ? AND length(body) = 0 \
             AND log = (SELECT id FROM logs WHERE thread = ? AND log = ?)",
        )
        .bind(body)
        .bind(to_i64(counter)?)
        .bind(&thread.to_bytes()[..])
        .bind(log.to_bytes())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::statement_chunks;

    /// Chunks cover the items once, in order, each of `max` items or a power of two (so
    /// a statement's text takes one of a few forms), fewer than `max` only at the end.
    #[test]
    fn statement_chunks_take_few_lengths() {
        for max in [1, 3, 64, 256] {
            for n in 0..600usize {
                let items: Vec<usize> = (0..n).collect();
                let chunks: Vec<&[usize]> = statement_chunks(&items, max).collect();
                let joined: Vec<usize> = chunks.concat();
                assert_eq!(joined, items, "max {max}, n {n}");
                let mut short = false;
                for chunk in &chunks {
                    assert!(!chunk.is_empty());
                    assert!(
                        chunk.len() == max || chunk.len().is_power_of_two(),
                        "a chunk of {} (max {max})",
                        chunk.len()
                    );
                    assert!(
                        !(short && chunk.len() == max),
                        "a full chunk after a short one"
                    );
                    short |= chunk.len() < max;
                }
                assert!(chunks.len() <= n / max + (n % max).count_ones() as usize);
            }
        }
    }
}

//! The PostgreSQL backend, for always-on servers: the same layout as the SQLite store in
//! PostgreSQL's dialect, with a versioned schema.

use sqlx::Row;
use sqlx::postgres::{PgConnection, PgPool, PgPoolOptions};
use threads_crypto::{Identity, ThreadKey};
use threads_id::{LogId, Multiaddr, ThreadId};
use threads_log::{Appended, Block, Cid, Head};

use crate::chain::{Plan, check_chain, heads_digest, plan};
use crate::error::StoreError;
use crate::secrets::{Secrets, StoreOptions, log_key_row, thread_key_row};
use crate::sql::{EntryRow, cid_from, entries_from_rows, log_from, to_i64, to_u64};
use crate::traits::{
    AddrBook, AppendOutcome, BlockStore, HeadsDigest, KeyBook, LogBook, MetaBook, Page, Result,
    StoredEntry, ThreadBook,
};
use crate::views::{RowRange, ViewBook, ViewCommit};

/// The schema version this build writes and reads.
pub const POSTGRES_SCHEMA_VERSION: i64 = 4;

/// Ordered migrations: `MIGRATIONS[i]` takes the schema from version `i` to `i + 1`.
const MIGRATIONS: [&str; 4] = [
    r#"
CREATE TABLE threads_v1_threads (
    thread BYTEA PRIMARY KEY,
    key BYTEA NOT NULL
);
CREATE TABLE threads_v1_logs (
    id BIGSERIAL PRIMARY KEY,
    thread BYTEA NOT NULL REFERENCES threads_v1_threads (thread),
    log BYTEA NOT NULL,
    counter BIGINT NOT NULL DEFAULT 0,
    head BYTEA,
    UNIQUE (thread, log)
);
CREATE TABLE threads_v1_entries (
    id BIGSERIAL PRIMARY KEY,
    log BIGINT NOT NULL REFERENCES threads_v1_logs (id),
    counter BIGINT NOT NULL,
    record_cid BYTEA NOT NULL UNIQUE,
    record BYTEA NOT NULL,
    event BYTEA NOT NULL,
    header BYTEA NOT NULL,
    body BYTEA NOT NULL,
    UNIQUE (log, counter)
);
CREATE TABLE threads_v1_blocks (
    cid BYTEA PRIMARY KEY,
    data BYTEA NOT NULL
);
CREATE TABLE threads_v1_log_keys (
    thread BYTEA NOT NULL,
    log BYTEA NOT NULL,
    secret BYTEA NOT NULL,
    PRIMARY KEY (thread, log)
);
CREATE TABLE threads_v1_addrs (
    thread BYTEA NOT NULL,
    log BYTEA NOT NULL,
    addr BYTEA NOT NULL,
    expires BIGINT NOT NULL,
    PRIMARY KEY (thread, log, addr)
);
CREATE TABLE threads_v1_meta (
    thread BYTEA NOT NULL,
    key TEXT NOT NULL,
    value BYTEA NOT NULL,
    PRIMARY KEY (thread, key)
);
"#,
    r#"
CREATE TABLE threads_v1_settings (
    name TEXT PRIMARY KEY,
    value BYTEA NOT NULL
);
"#,
    r#"
CREATE TABLE threads_v1_view_cursors (
    scope TEXT PRIMARY KEY,
    cursor BYTEA NOT NULL
);
CREATE TABLE threads_v1_view_rows (
    scope TEXT NOT NULL,
    view TEXT NOT NULL,
    key BYTEA NOT NULL,
    value BYTEA NOT NULL,
    PRIMARY KEY (scope, view, key)
);
CREATE TABLE threads_v1_view_snapshots (
    scope TEXT NOT NULL,
    seq BIGINT NOT NULL,
    meta BYTEA NOT NULL,
    data BYTEA NOT NULL,
    PRIMARY KEY (scope, seq)
);
"#,
    // Views v2: no snapshots (undo records replace them); cursors of version 1 make the
    // engine rebuild its views.
    r#"
DROP TABLE threads_v1_view_snapshots;
"#,
];

/// A store in a PostgreSQL database. Tables are prefixed `threads_v1_`, so the database
/// can hold other data too.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
    secrets: std::sync::Arc<Secrets>,
}

impl PostgresStore {
    /// Connects to the database at `url` (`postgres://user@host:port/db`) and migrates its
    /// schema to the current version.
    ///
    /// # Errors
    /// [`StoreError::SchemaTooNew`] if a newer version wrote the schema (nothing changes),
    /// [`StoreError::Database`] if the server cannot be reached.
    pub async fn connect(url: &str) -> Result<PostgresStore> {
        PostgresStore::connect_with(url, &StoreOptions::new()).await
    }

    /// [`PostgresStore::connect`] with options: a passphrase that seals the secrets.
    pub async fn connect_with(url: &str, options: &StoreOptions) -> Result<PostgresStore> {
        let pool = PgPoolOptions::new().max_connections(8).connect(url).await?;
        let started = async {
            PostgresStore::migrate(&pool).await?;
            PostgresStore::load_secrets(&pool, options).await
        }
        .await;
        match started {
            Ok(secrets) => Ok(PostgresStore {
                pool,
                secrets: std::sync::Arc::new(secrets),
            }),
            Err(e) => {
                pool.close().await;
                Err(e)
            }
        }
    }

    async fn load_secrets(pool: &PgPool, options: &StoreOptions) -> Result<Secrets> {
        let mut tx = pool.begin().await?;
        sqlx::query("LOCK TABLE threads_v1_settings IN EXCLUSIVE MODE")
            .execute(&mut *tx)
            .await?;
        let setting: Option<Vec<u8>> =
            sqlx::query_scalar("SELECT value FROM threads_v1_settings WHERE name = 'secrets'")
                .fetch_optional(&mut *tx)
                .await?;
        let has_secrets: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM threads_v1_threads) OR EXISTS (SELECT 1 FROM threads_v1_log_keys)",
        )
        .fetch_one(&mut *tx)
        .await?;
        let (secrets, new_setting) = Secrets::resolve(options, setting.as_deref(), has_secrets)?;
        if let Some(value) = new_setting {
            sqlx::query("INSERT INTO threads_v1_settings (name, value) VALUES ('secrets', $1)")
                .bind(value)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(secrets)
    }

    /// Closes every connection, waiting for work in progress.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    async fn migrate(pool: &PgPool) -> Result<()> {
        let mut tx = pool.begin().await?;
        // One migrator at a time, across processes.
        sqlx::query("SELECT pg_advisory_xact_lock(7412731)")
            .execute(&mut *tx)
            .await?;
        sqlx::query("CREATE TABLE IF NOT EXISTS threads_schema (version BIGINT NOT NULL)")
            .execute(&mut *tx)
            .await?;
        let version: Option<i64> = sqlx::query_scalar("SELECT max(version) FROM threads_schema")
            .fetch_one(&mut *tx)
            .await?;
        let version = version.unwrap_or(0);
        if version > POSTGRES_SCHEMA_VERSION {
            return Err(StoreError::SchemaTooNew {
                found: version,
                supported: POSTGRES_SCHEMA_VERSION,
            });
        }
        for (from, sql) in MIGRATIONS
            .iter()
            .enumerate()
            .skip(usize::try_from(version).unwrap_or(0))
        {
            sqlx::raw_sql(*sql).execute(&mut *tx).await?;
            sqlx::query("INSERT INTO threads_schema (version) VALUES ($1)")
                .bind(from as i64 + 1)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn thread_known(conn: &mut PgConnection, thread: ThreadId) -> Result<bool> {
        let found: Option<i32> =
            sqlx::query_scalar("SELECT 1 FROM threads_v1_threads WHERE thread = $1")
                .bind(&thread.to_bytes()[..])
                .fetch_optional(&mut *conn)
                .await?;
        Ok(found.is_some())
    }

    /// The log's row id and head, locking the row until the transaction ends.
    /// Appends `batch` (a checked chain ending at `last`) in the transaction `conn`.
    async fn append_in(
        conn: &mut PgConnection,
        thread: ThreadId,
        log: LogId,
        expected: Option<Head>,
        batch: &[Appended],
        last: Head,
    ) -> Result<AppendOutcome> {
        // The common case in one statement: the head is the expected one, so it advances
        // (the row lock it takes holds until the commit).
        let moved: Option<i64> = sqlx::query_scalar(
            "UPDATE threads_v1_logs SET counter = $1, head = $2 WHERE thread = $3 AND log = $4 \
             AND counter = $5 AND ($5 = 0 OR head = $6) RETURNING id",
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
            PostgresStore::insert_entries(conn, log_row, batch).await?;
            return Ok(AppendOutcome::Appended { head: last });
        }
        if !PostgresStore::thread_known(conn, thread).await? {
            return Err(StoreError::UnknownThread(thread));
        }
        let (log_row, current) = PostgresStore::lock_log(conn, thread, log).await?;
        let stored_at_last: Option<Vec<u8>> = match current {
            Some(current) if current.counter >= last.counter && current != last => {
                sqlx::query_scalar(
                    "SELECT record_cid FROM threads_v1_entries WHERE log = $1 AND counter = $2",
                )
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
        PostgresStore::insert_entries(conn, log_row, batch).await?;
        sqlx::query("UPDATE threads_v1_logs SET counter = $1, head = $2 WHERE id = $3")
            .bind(to_i64(new_head.counter)?)
            .bind(new_head.cid.to_bytes())
            .bind(log_row)
            .execute(&mut *conn)
            .await?;
        Ok(AppendOutcome::Appended { head: new_head })
    }

    /// Inserts the entries of `batch` into log `log_row`: whole arrays, one statement.
    async fn insert_entries(
        conn: &mut PgConnection,
        log_row: i64,
        batch: &[Appended],
    ) -> Result<()> {
        let mut counters = Vec::with_capacity(batch.len());
        for appended in batch {
            counters.push(to_i64(appended.record.counter())?);
        }
        let cids: Vec<Vec<u8>> = batch.iter().map(|a| a.record.cid().to_bytes()).collect();
        let column = |block: fn(&Appended) -> &[u8]| batch.iter().map(block).collect::<Vec<_>>();
        sqlx::query(
            "INSERT INTO threads_v1_entries (log, counter, record_cid, record, event, header, body) \
             SELECT $1, c, cid, r, e, h, b FROM UNNEST($2::int8[], $3::bytea[], $4::bytea[], \
             $5::bytea[], $6::bytea[], $7::bytea[]) AS t (c, cid, r, e, h, b)",
        )
        .bind(log_row)
        .bind(counters)
        .bind(cids)
        .bind(column(|a| a.entry.record.data()))
        .bind(column(|a| a.entry.event.data()))
        .bind(column(|a| a.entry.header.data()))
        .bind(column(|a| a.entry.body.data()))
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    /// Writes `commit` in the transaction `conn`.
    async fn view_commit_in(conn: &mut PgConnection, commit: &ViewCommit) -> Result<()> {
        commit.check()?;
        let scope = commit.scope.as_str();
        for change in &commit.changes {
            if change.reset {
                sqlx::query("DELETE FROM threads_v1_view_rows WHERE scope = $1 AND view = $2")
                    .bind(scope)
                    .bind(&change.view)
                    .execute(&mut *conn)
                    .await?;
            }
            if let Some(below) = &change.delete_below {
                sqlx::query(
                    "DELETE FROM threads_v1_view_rows WHERE scope = $1 AND view = $2 AND key < $3",
                )
                .bind(scope)
                .bind(&change.view)
                .bind(below)
                .execute(&mut *conn)
                .await?;
            }
            // Whole arrays per statement: one round trip for many rows.
            if !change.deletes.is_empty() {
                sqlx::query(
                    "DELETE FROM threads_v1_view_rows \
                     WHERE scope = $1 AND view = $2 AND key = ANY($3)",
                )
                .bind(scope)
                .bind(&change.view)
                .bind(&change.deletes)
                .execute(&mut *conn)
                .await?;
            }
        }
        // Every view's new rows in one statement (a commit changes a view at most once).
        let puts = commit
            .changes
            .iter()
            .flat_map(|c| c.puts.iter().map(move |p| (c, p)));
        let mut views: Vec<&str> = Vec::new();
        let mut keys: Vec<&[u8]> = Vec::new();
        let mut values: Vec<&[u8]> = Vec::new();
        for (change, (key, value)) in puts {
            views.push(&change.view);
            keys.push(key);
            values.push(value);
        }
        if !keys.is_empty() {
            sqlx::query(
                "INSERT INTO threads_v1_view_rows (scope, view, key, value) \
                 SELECT $1, w, k, v FROM UNNEST($2::text[], $3::bytea[], $4::bytea[]) AS t (w, k, v) \
                 ON CONFLICT (scope, view, key) DO UPDATE SET value = EXCLUDED.value",
            )
            .bind(scope)
            .bind(views)
            .bind(keys)
            .bind(values)
            .execute(&mut *conn)
            .await?;
        }
        sqlx::query(
            "INSERT INTO threads_v1_view_cursors (scope, cursor) VALUES ($1, $2) \
             ON CONFLICT (scope) DO UPDATE SET cursor = EXCLUDED.cursor",
        )
        .bind(scope)
        .bind(&commit.cursor)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    async fn lock_log(
        conn: &mut PgConnection,
        thread: ThreadId,
        log: LogId,
    ) -> Result<(i64, Option<Head>)> {
        sqlx::query(
            "INSERT INTO threads_v1_logs (thread, log) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(&thread.to_bytes()[..])
        .bind(log.to_bytes())
        .execute(&mut *conn)
        .await?;
        let row = sqlx::query(
            "SELECT id, counter, head FROM threads_v1_logs WHERE thread = $1 AND log = $2 FOR UPDATE",
        )
        .bind(&thread.to_bytes()[..])
        .bind(log.to_bytes())
        .fetch_one(&mut *conn)
        .await?;
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
        Ok((id, head))
    }
}

impl BlockStore for PostgresStore {
    async fn put_blocks(&self, blocks: &[Block]) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        for block in blocks {
            sqlx::query(
                "INSERT INTO threads_v1_blocks (cid, data) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            )
            .bind(block.cid().to_bytes())
            .bind(block.data())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn get_block(&self, cid: &Cid) -> Result<Option<Block>> {
        let data: Option<Vec<u8>> = sqlx::query_scalar(
            "SELECT data FROM threads_v1_blocks WHERE cid = $1 \
             UNION ALL SELECT record FROM threads_v1_entries WHERE record_cid = $1 LIMIT 1",
        )
        .bind(cid.to_bytes())
        .fetch_optional(&self.pool)
        .await?;
        data.map(|d| Block::new(*cid, d).map_err(|e| StoreError::Corrupt(e.to_string())))
            .transpose()
    }

    async fn has_block(&self, cid: &Cid) -> Result<bool> {
        let found: Option<i32> = sqlx::query_scalar(
            "SELECT 1 FROM threads_v1_blocks WHERE cid = $1 \
             UNION ALL SELECT 1 FROM threads_v1_entries WHERE record_cid = $1 LIMIT 1",
        )
        .bind(cid.to_bytes())
        .fetch_optional(&self.pool)
        .await?;
        Ok(found.is_some())
    }

    async fn delete_blocks(&self, cids: &[Cid]) -> Result<()> {
        let keys: Vec<Vec<u8>> = cids.iter().map(Cid::to_bytes).collect();
        sqlx::query("DELETE FROM threads_v1_blocks WHERE cid = ANY($1)")
            .bind(keys)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

impl ThreadBook for PostgresStore {
    async fn put_thread(&self, thread: ThreadId, key: &ThreadKey) -> Result<()> {
        sqlx::query(
            "INSERT INTO threads_v1_threads (thread, key) VALUES ($1, $2) \
             ON CONFLICT (thread) DO UPDATE SET key = excluded.key",
        )
        .bind(&thread.to_bytes()[..])
        .bind(self.secrets.seal(&thread_key_row(&thread), &key.to_bytes()))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn thread_key(&self, thread: ThreadId) -> Result<Option<ThreadKey>> {
        let key: Option<Vec<u8>> =
            sqlx::query_scalar("SELECT key FROM threads_v1_threads WHERE thread = $1")
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
        let rows: Vec<Vec<u8>> =
            sqlx::query_scalar("SELECT thread FROM threads_v1_threads ORDER BY thread")
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
        sqlx::query(
            "DELETE FROM threads_v1_entries WHERE log IN \
             (SELECT id FROM threads_v1_logs WHERE thread = $1)",
        )
        .bind(&id[..])
        .execute(&mut *tx)
        .await?;
        for statement in [
            "DELETE FROM threads_v1_logs WHERE thread = $1",
            "DELETE FROM threads_v1_log_keys WHERE thread = $1",
            "DELETE FROM threads_v1_addrs WHERE thread = $1",
            "DELETE FROM threads_v1_meta WHERE thread = $1",
            "DELETE FROM threads_v1_threads WHERE thread = $1",
        ] {
            sqlx::query(statement)
                .bind(&id[..])
                .execute(&mut *tx)
                .await?;
        }
        for statement in [
            "DELETE FROM threads_v1_view_rows WHERE scope >= $1 AND scope < $2",
            "DELETE FROM threads_v1_view_cursors WHERE scope >= $1 AND scope < $2",
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

impl LogBook for PostgresStore {
    async fn add_log(&self, thread: ThreadId, log: LogId) -> Result<()> {
        let mut conn = self.pool.acquire().await?;
        if !PostgresStore::thread_known(&mut conn, thread).await? {
            return Err(StoreError::UnknownThread(thread));
        }
        sqlx::query(
            "INSERT INTO threads_v1_logs (thread, log) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(&thread.to_bytes()[..])
        .bind(log.to_bytes())
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    async fn logs(&self, thread: ThreadId) -> Result<Vec<LogId>> {
        let rows: Vec<Vec<u8>> =
            sqlx::query_scalar("SELECT log FROM threads_v1_logs WHERE thread = $1 ORDER BY log")
                .bind(&thread.to_bytes()[..])
                .fetch_all(&self.pool)
                .await?;
        rows.iter().map(|b| log_from(b)).collect()
    }

    async fn head(&self, thread: ThreadId, log: LogId) -> Result<Option<Head>> {
        let row =
            sqlx::query("SELECT counter, head FROM threads_v1_logs WHERE thread = $1 AND log = $2")
                .bind(&thread.to_bytes()[..])
                .bind(log.to_bytes())
                .fetch_optional(&self.pool)
                .await?;
        let Some(row) = row else { return Ok(None) };
        let counter = to_u64(row.try_get(0)?)?;
        let head: Option<Vec<u8>> = row.try_get(1)?;
        match head {
            Some(bytes) if counter > 0 => Ok(Some(Head {
                cid: cid_from(&bytes)?,
                counter,
            })),
            _ => Ok(None),
        }
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
             FROM threads_v1_entries e JOIN threads_v1_logs l ON e.log = l.id \
             WHERE l.thread = $1 AND l.log = $2 AND e.counter > $3 ORDER BY e.counter LIMIT $4",
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
            "SELECT SUM(length(e.record) + length(e.event) + length(e.header) + length(e.body))::BIGINT \
             FROM threads_v1_entries e JOIN threads_v1_logs l ON e.log = l.id \
             WHERE l.thread = $1 AND l.log = $2",
        )
        .bind(&thread.to_bytes()[..])
        .bind(log.to_bytes())
        .fetch_one(&self.pool)
        .await?;
        to_u64(total.unwrap_or(0))
    }

    async fn record_cid(&self, thread: ThreadId, log: LogId, counter: u64) -> Result<Option<Cid>> {
        let cid: Option<Vec<u8>> = sqlx::query_scalar(
            "SELECT e.record_cid FROM threads_v1_entries e JOIN threads_v1_logs l ON e.log = l.id \
             WHERE l.thread = $1 AND l.log = $2 AND e.counter = $3",
        )
        .bind(&thread.to_bytes()[..])
        .bind(log.to_bytes())
        .bind(to_i64(counter)?)
        .fetch_optional(&self.pool)
        .await?;
        cid.map(|b| cid_from(&b)).transpose()
    }

    async fn heads_digest(&self, thread: ThreadId) -> Result<HeadsDigest> {
        let rows = sqlx::query(
            "SELECT log, counter, head FROM threads_v1_logs WHERE thread = $1 AND counter > 0",
        )
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

impl KeyBook for PostgresStore {
    async fn put_log_key(&self, thread: ThreadId, identity: &Identity) -> Result<()> {
        sqlx::query(
            "INSERT INTO threads_v1_log_keys (thread, log, secret) VALUES ($1, $2, $3) \
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
        let secret: Option<Vec<u8>> = sqlx::query_scalar(
            "SELECT secret FROM threads_v1_log_keys WHERE thread = $1 AND log = $2",
        )
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

impl AddrBook for PostgresStore {
    async fn add_addr(
        &self,
        thread: ThreadId,
        log: LogId,
        addr: &Multiaddr,
        expires_ms: u64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO threads_v1_addrs (thread, log, addr, expires) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (thread, log, addr) DO UPDATE \
             SET expires = GREATEST(threads_v1_addrs.expires, excluded.expires)",
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
            "SELECT addr FROM threads_v1_addrs WHERE thread = $1 AND log = $2 AND expires > $3 ORDER BY addr",
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
        let done = sqlx::query("DELETE FROM threads_v1_addrs WHERE thread = $1 AND expires <= $2")
            .bind(&thread.to_bytes()[..])
            .bind(to_i64(now_ms)?)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }
}

impl MetaBook for PostgresStore {
    async fn put_meta(&self, thread: ThreadId, key: &str, value: &[u8]) -> Result<()> {
        sqlx::query(
            "INSERT INTO threads_v1_meta (thread, key, value) VALUES ($1, $2, $3) \
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
            sqlx::query_scalar("SELECT value FROM threads_v1_meta WHERE thread = $1 AND key = $2")
                .bind(&thread.to_bytes()[..])
                .bind(key)
                .fetch_optional(&self.pool)
                .await?,
        )
    }
}

impl ViewBook for PostgresStore {
    async fn view_cursor(&self, scope: &str) -> Result<Option<Vec<u8>>> {
        Ok(
            sqlx::query_scalar("SELECT cursor FROM threads_v1_view_cursors WHERE scope = $1")
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
        let rows = sqlx::query(
            "SELECT key, value FROM threads_v1_view_rows \
             WHERE scope = $1 AND view = $2 AND key = ANY($3)",
        )
        .bind(scope)
        .bind(view)
        .bind(keys)
        .fetch_all(&self.pool)
        .await?;
        let mut found: std::collections::HashMap<Vec<u8>, Vec<u8>> =
            std::collections::HashMap::with_capacity(rows.len());
        for row in rows {
            found.insert(row.try_get(0)?, row.try_get(1)?);
        }
        Ok(keys.iter().map(|k| found.get(k).cloned()).collect())
    }

    async fn view_range(
        &self,
        scope: &str,
        view: &str,
        range: &RowRange,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let start = if range.after { ">" } else { ">=" };
        let direction = if range.reverse { "DESC" } else { "ASC" };
        let end = if range.to.is_some() {
            "AND key < $4"
        } else {
            "AND $4::bytea IS NOT NULL"
        };
        let sql = format!(
            "SELECT key, value FROM threads_v1_view_rows \
             WHERE scope = $1 AND view = $2 AND key {start} $3 {end} ORDER BY key {direction} \
             LIMIT $5"
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
        let mut tx = self.pool.begin().await?;
        PostgresStore::view_commit_in(&mut tx, commit).await?;
        tx.commit().await?;
        Ok(())
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
        let mut tx = self.pool.begin().await?;
        let outcome = PostgresStore::append_in(&mut tx, thread, log, expected, batch, last).await?;
        if let AppendOutcome::Appended { .. } = outcome {
            for commit in commits {
                PostgresStore::view_commit_in(&mut tx, commit).await?;
            }
            tx.commit().await?;
        }
        Ok(outcome)
    }

    async fn compact_bodies(&self, thread: ThreadId, log: LogId, counters: &[u64]) -> Result<u64> {
        let mut tx = self.pool.begin().await?;
        let mut dropped = 0;
        for &counter in counters {
            let done = sqlx::query(
                "UPDATE threads_v1_entries e SET body = '\\x'::bytea FROM threads_v1_logs l \
                 WHERE e.log = l.id AND l.thread = $1 AND l.log = $2 AND e.counter = $3 \
                 AND length(e.body) > 0",
            )
            .bind(&thread.to_bytes()[..])
            .bind(log.to_bytes())
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
            "UPDATE threads_v1_entries e SET body = $4 FROM threads_v1_logs l \
             WHERE e.log = l.id AND l.thread = $1 AND l.log = $2 AND e.counter = $3 \
             AND length(e.body) = 0",
        )
        .bind(&thread.to_bytes()[..])
        .bind(log.to_bytes())
        .bind(to_i64(counter)?)
        .bind(body)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }
}

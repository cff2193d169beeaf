//! Write transactions of the SQLite store in one round trip.
//!
//! sqlx runs each SQLite connection on a thread of its own, and every statement a task
//! awaits is a round trip to that thread: two thread wake-ups, tens to hundreds of
//! microseconds on a virtual machine, far more than SQLite takes to insert a row. A write
//! of this store (`BEGIN`, the log's head, the entries, the view rows, the views' cursor,
//! `COMMIT`) is therefore built as one script of statements with its arguments, and sent
//! to the store's writing connection at once: SQLite runs the statements one after the
//! other on that thread, binding the arguments in order (`?` placeholders only), and the
//! first error stops the script.
//!
//! A script that stops halfway leaves its transaction open; the writing connection then
//! rolls it back before anything else. If the task that sent it is dropped before the
//! answer (the connection's thread then stops the script at its next statement), the
//! connection stays "in doubt" and a task is started that rolls it back at once, so a
//! half-run script never commits, never holds SQLite's write lock for long, and never
//! leaks into the next script.

use std::sync::Arc;

use sqlx::sqlite::SqliteArguments;
use sqlx::{Arguments, SqliteConnection};

use tokio::sync::Mutex;

use crate::error::StoreError;
use crate::traits::Result;

/// One argument of a script.
#[derive(Debug, Clone)]
pub(crate) enum Arg<'a> {
    Int(i64),
    Blob(&'a [u8]),
    Owned(Vec<u8>),
    Text(&'a str),
}

/// Statements to run one after the other, with their arguments in order.
#[derive(Debug, Default)]
pub(crate) struct Script<'a> {
    sql: String,
    args: Vec<Arg<'a>>,
    statements: usize,
}

/// Scripts of more statements than this are not kept prepared (a catch-up's commit of
/// thousands of rows is seldom repeated word for word).
const CACHED_STATEMENTS: usize = 16;

impl<'a> Script<'a> {
    /// Adds `sql`, one statement whose `?` placeholders take `args` in order.
    pub(crate) fn push(&mut self, sql: &str, args: impl IntoIterator<Item = Arg<'a>>) {
        self.sql.push_str(sql);
        self.sql.push_str(";\n");
        self.args.extend(args);
        self.statements += 1;
    }

    /// Adds the statements of `other`.
    pub(crate) fn extend(&mut self, other: &Script<'a>) {
        self.sql.push_str(&other.sql);
        self.args.extend(other.args.iter().cloned());
        self.statements += other.statements;
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.statements == 0
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

    /// Runs the statements on `conn` (inside whatever transaction it is in).
    pub(crate) async fn execute(&self, conn: &mut SqliteConnection) -> Result<()> {
        if self.is_empty() {
            return Ok(());
        }
        self.run(conn, self.sql.clone()).await
    }

    /// Runs the statements as one transaction (`BEGIN IMMEDIATE` ... `COMMIT`) on `conn`,
    /// which must not be in a transaction.
    async fn execute_transaction(&self, conn: &mut SqliteConnection) -> Result<()> {
        let sql = format!("BEGIN IMMEDIATE;\n{}COMMIT;", self.sql);
        self.run(conn, sql).await
    }

    async fn run(&self, conn: &mut SqliteConnection, sql: String) -> Result<()> {
        let query = sqlx::query_with(sqlx::AssertSqlSafe(sql), self.arguments()?)
            .persistent(self.statements <= CACHED_STATEMENTS);
        query.execute(conn).await?;
        Ok(())
    }
}

/// The connection a file store writes through, and whether a script may have left a
/// transaction open on it.
#[derive(Debug)]
pub(crate) struct WritingConnection {
    conn: SqliteConnection,
    in_doubt: bool,
}

impl WritingConnection {
    pub(crate) fn new(conn: SqliteConnection) -> WritingConnection {
        WritingConnection {
            conn,
            in_doubt: false,
        }
    }

    /// Runs `script` as one transaction in one round trip. On an error nothing of it is
    /// committed: a transaction it left open is rolled back.
    pub(crate) async fn transact(&mut self, script: &Script<'_>) -> Result<()> {
        if self.in_doubt {
            self.roll_back().await?;
        }
        // Until the answer is in, a dropped future leaves the connection in doubt.
        self.in_doubt = true;
        let result = script.execute_transaction(&mut self.conn).await;
        match result {
            Ok(()) => {
                self.in_doubt = false;
                Ok(())
            }
            Err(e) => {
                // The error is the script's; a failed rollback leaves the connection in
                // doubt, to be rolled back before the next script.
                let _ = self.roll_back().await;
                Err(e)
            }
        }
    }

    /// Rolls back the transaction a dropped script may have left open.
    pub(crate) async fn settle(&mut self) -> Result<()> {
        if self.in_doubt {
            self.roll_back().await?;
        }
        Ok(())
    }

    /// Rolls back whatever transaction is open (none is fine).
    async fn roll_back(&mut self) -> Result<()> {
        match sqlx::query("ROLLBACK").execute(&mut self.conn).await {
            Ok(_) => {}
            Err(sqlx::Error::Database(e)) if e.message().contains("no transaction is active") => {}
            Err(e) => return Err(e.into()),
        }
        self.in_doubt = false;
        Ok(())
    }

    pub(crate) async fn close(self) {
        use sqlx::Connection;
        let _ = self.conn.close().await;
    }
}

/// Rolls the writing connection back, in a task of its own, if dropped before
/// [`SettleOnDrop::disarm`]: a script's future dropped halfway leaves the connection in
/// doubt, with a transaction that holds the database's write lock.
pub(crate) struct SettleOnDrop(pub(crate) Option<Arc<Mutex<Option<WritingConnection>>>>);

impl SettleOnDrop {
    pub(crate) fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for SettleOnDrop {
    fn drop(&mut self) {
        let Some(writer) = self.0.take() else { return };
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Some(writer) = writer.lock().await.as_mut() {
                    let _ = writer.settle().await;
                }
            });
        }
    }
}

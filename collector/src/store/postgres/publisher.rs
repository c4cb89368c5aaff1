//! Which of the replicas on one database publishes the figure series.
//!
//! Every replica computes the same figures from the same rows, so if each one served them,
//! Prometheus (which scrapes every replica, for their own counters) would hold every figure
//! once per replica: `sum by (level)` would double and every `on (unit)` join would fail on
//! duplicate series. One replica publishes; the others serve their own counters and service
//! checks only, and take over when it goes.
//!
//! The claim is a session-level advisory lock, held on a connection of its own for as long as
//! the replica runs. PostgreSQL releases it when that session ends: at once when the process
//! exits or is killed (its socket closes), and within about half a minute when its machine
//! drops off the network, through the TCP keepalives this connection asks the server for. A
//! replica that does not hold the lock tries again every [`RETRY`]; the one holding it checks
//! its connection just as often and stops publishing as soon as a check fails, so two
//! replicas publish at once only for the moments between the server ending a session and its
//! holder's next check.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection};

use crate::Background;

/// The lock's key: "hatang" and 1 in ASCII, the only advisory lock the collector holds for
/// long. (Migrations use sqlx's own key, and only while they run.)
const KEY: i64 = 0x6861_7461_6e67_0001;

/// How often a replica without the lock tries for it, and the holder checks it still has it.
pub(super) const RETRY: Duration = Duration::from_secs(5);

/// Sets how the server watches this session's peer: first keepalive after 10 s of silence,
/// then every 5 s, the session ended after 3 unanswered. Ignored on a Unix socket.
const KEEPALIVES: &str =
    "SET tcp_keepalives_idle = 10; SET tcp_keepalives_interval = 5; SET tcp_keepalives_count = 3";

/// Makes one attempt for the lock, then keeps trying (or keeps it) in the background,
/// recording in `held` whether this replica publishes.
pub(super) async fn claim(options: PgConnectOptions, held: Arc<AtomicBool>) -> Background {
    held.store(false, Ordering::Relaxed);
    let mut session = attempt(&options, None, &held).await;
    Background::spawn(async move {
        loop {
            tokio::time::sleep(RETRY).await;
            session = attempt(&options, session, &held).await;
        }
    })
}

/// One round: keeps or takes the lock on `session` (connecting first when there is none) and
/// records the outcome; the session comes back while it is usable.
async fn attempt(
    options: &PgConnectOptions,
    session: Option<Session>,
    held: &AtomicBool,
) -> Option<Session> {
    let session = match session {
        Some(session) => session,
        None => match tokio::time::timeout(RETRY, Session::open(options)).await {
            Ok(Ok(session)) => session,
            Ok(Err(e)) => return lost(held, &format!("cannot connect: {e}")),
            Err(_) => return lost(held, "connecting timed out"),
        },
    };
    match tokio::time::timeout(RETRY, session.round()).await {
        Ok(Ok((session, has_it))) => {
            if has_it != held.swap(has_it, Ordering::Relaxed) && has_it {
                tracing::info!(
                    "this replica publishes the figure series (it holds the database's figures lock)"
                );
            }
            Some(session)
        }
        Ok(Err(e)) => lost(held, &format!("the lock's session failed: {e}")),
        Err(_) => lost(held, "the lock's session did not answer in time"),
    }
}

/// Records that this replica does not publish, saying why if it did until now.
fn lost(held: &AtomicBool, why: &str) -> Option<Session> {
    if held.swap(false, Ordering::Relaxed) {
        tracing::warn!(
            reason = why,
            "this replica stops publishing the figure series; another takes over once the database releases its lock"
        );
    } else {
        tracing::debug!(reason = why, "the figures lock is out of reach");
    }
    None
}

/// The connection the lock lives on, and whether it has the lock.
struct Session {
    conn: PgConnection,
    locked: bool,
}

impl Session {
    async fn open(options: &PgConnectOptions) -> sqlx::Result<Session> {
        let mut conn = PgConnection::connect_with(options).await?;
        sqlx::raw_sql(KEEPALIVES).execute(&mut conn).await?;
        Ok(Session {
            conn,
            locked: false,
        })
    }

    /// Takes the lock if this session does not have it yet, or checks the session still
    /// answers if it does (a session keeps its lock for as long as it lives).
    async fn round(mut self) -> sqlx::Result<(Session, bool)> {
        if self.locked {
            sqlx::query("SELECT 1").execute(&mut self.conn).await?;
        } else {
            self.locked = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
                .bind(KEY)
                .fetch_one(&mut self.conn)
                .await?;
        }
        let locked = self.locked;
        Ok((self, locked))
    }
}

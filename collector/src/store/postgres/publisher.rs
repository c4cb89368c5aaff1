//! Which of the replicas on one database publishes the figure series.
//!
//! Every replica computes the same figures from the same rows, so if each one served them,
//! Prometheus (which scrapes every replica, for their own counters) would hold every figure
//! once per replica: `sum by (level)` would double and every `on (unit)` join would fail on
//! duplicate series. One replica publishes; the others serve their own counters and service
//! checks only, and take over when it goes.
//!
//! The claim is a session-level advisory lock, held on a connection of its own for as long as
//! the replica runs. PostgreSQL releases it when that session ends:
//!
//! - at once when the process exits or is killed (its socket closes);
//! - when the holder stops talking: the holder checks its session every [`RETRY`], and the
//!   session asks the server (`idle_session_timeout`, PostgreSQL 14 and later) to end it after
//!   [`IDLE_LIMIT`] of silence. That covers a machine that hangs, or drops off the network, also
//!   behind a connection pooler, whose own connection to the server stays up;
//! - on older servers, through the TCP keepalives the session asks the server for (about half
//!   a minute), which see only the server's direct peer.
//!
//! A replica that does not hold the lock tries again every [`RETRY`]; the one holding it stops
//! publishing as soon as a check fails, so two replicas publish at once only for the moments
//! between the server ending a session and its holder's next check.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection};

use crate::Background;

/// The lock's key: "hatang" and 1 in ASCII, the only advisory lock the collector holds for
/// long. (Migrations use sqlx's own key, and only while they run.)
const KEY: i64 = 0x6861_7461_6e67_0001;

/// How often a replica without the lock tries for it, and the holder checks it still has it.
pub(super) const RETRY: Duration = Duration::from_secs(5);

/// How long the server lets the lock's session sit silent before ending it: a few of the
/// holder's checks, so only a holder that stopped altogether loses it.
const IDLE_LIMIT: &str = "SET idle_session_timeout = '20s'";

/// Sets how the server watches this session's peer: first keepalive after 10 s of silence,
/// then every 5 s, the session ended after 3 unanswered. Ignored on a Unix socket.
pub(super) const KEEPALIVES: &str =
    "SET tcp_keepalives_idle = 10; SET tcp_keepalives_interval = 5; SET tcp_keepalives_count = 3";

/// How often, at most, the lock being out of reach is said at WARN.
const WARN_EVERY: Duration = Duration::from_secs(600);

/// Makes one attempt for the lock, then keeps trying (or keeps it) in the background,
/// recording in `held` whether this replica publishes.
pub(super) async fn claim(options: PgConnectOptions, held: Arc<AtomicBool>) -> Background {
    held.store(false, Ordering::Relaxed);
    let mut claim = Claim {
        options,
        held,
        session: None,
        warned_at: None,
    };
    claim.attempt().await;
    if !claim.held.load(Ordering::Relaxed) && claim.session.is_some() {
        tracing::info!(
            "another replica publishes the figure series; this one serves its own counters and takes over if it goes"
        );
    }
    Background::spawn(async move {
        loop {
            tokio::time::sleep(RETRY).await;
            claim.attempt().await;
        }
    })
}

/// This replica's claim: where the outcome goes, and the session the lock lives on.
struct Claim {
    options: PgConnectOptions,
    held: Arc<AtomicBool>,
    session: Option<Session>,
    /// When the lock being out of reach was last said at WARN.
    warned_at: Option<Instant>,
}

impl Claim {
    /// One round: keeps or takes the lock (connecting first when there is no session) and
    /// records the outcome.
    async fn attempt(&mut self) {
        let session = match self.session.take() {
            Some(session) => session,
            None => match tokio::time::timeout(RETRY, Session::open(&self.options)).await {
                Ok(Ok(session)) => session,
                Ok(Err(e)) => return self.lost(&format!("cannot connect: {e}")),
                Err(_) => return self.lost("connecting timed out"),
            },
        };
        match tokio::time::timeout(RETRY, session.round()).await {
            Ok(Ok((session, has_it))) => {
                if has_it != self.held.swap(has_it, Ordering::Relaxed) && has_it {
                    tracing::info!(
                        "this replica publishes the figure series (it holds the database's figures lock)"
                    );
                }
                self.session = Some(session);
                self.warned_at = None;
            }
            Ok(Err(e)) => self.lost(&format!("the lock's session failed: {e}")),
            Err(_) => self.lost("the lock's session did not answer in time"),
        }
    }

    /// Records that this replica does not publish and cannot tell whether another one does:
    /// said at once if it published until now, else at most every [`WARN_EVERY`] (a collector
    /// that can never open the lock's connection, a role's connection limit for one, publishes
    /// nothing, and must say why).
    fn lost(&mut self, why: &str) {
        if self.held.swap(false, Ordering::Relaxed) {
            tracing::warn!(
                reason = why,
                "this replica stops publishing the figure series; another takes over once the database releases its lock"
            );
        } else if self.warned_at.is_none_or(|at| at.elapsed() >= WARN_EVERY) {
            tracing::warn!(
                reason = why,
                "the figures lock is out of reach: this replica does not publish the figure series, and cannot tell whether another one does"
            );
            self.warned_at = Some(Instant::now());
        } else {
            tracing::debug!(reason = why, "the figures lock is still out of reach");
        }
    }
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
        // Unknown before PostgreSQL 14: the keepalives alone watch the session there.
        if let Err(e) = sqlx::raw_sql(IDLE_LIMIT).execute(&mut conn).await {
            tracing::debug!(error = %e, "this server has no idle_session_timeout");
        }
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

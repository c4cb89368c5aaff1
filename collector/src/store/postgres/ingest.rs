//! The PostgreSQL ingest writer: the reports queued on one replica committed together, in a
//! fixed handful of statements per batch whatever its size.
//!
//! One transaction per report cost five or six round trips and as many statements each, and
//! PostgreSQL's per-statement work was most of the machine. A batch is first tried in one
//! statement ([`store_at_once`]): an `INSERT … ON CONFLICT DO NOTHING` of its reports and an
//! `UPDATE agents … FROM UNNEST` of its agents' rows (each agent's reports folded in order into
//! the values one `UPDATE` per report would have left, [`AgentUpdate::then`]) as two parts of
//! one `WITH`, which counts what each did. When every report was new and every agent still
//! enrolled under its key, that is the batch; otherwise it is rolled back and the batch takes
//! the careful way ([`store_together`]):
//!
//! 1. `SELECT … FOR NO KEY UPDATE` of the batch's agents, in id order: whether each is still
//!    enrolled under the key its report came with, and (for reports carrying an inventory) the
//!    inventory on record. Locking in one order keeps two replicas from deadlocking, and holds
//!    off a revocation until the batch is done, as a single report's `UPDATE` did.
//! 2. One `INSERT … SELECT FROM UNNEST(…) ON CONFLICT (report_id) DO NOTHING RETURNING
//!    report_id` of the reports of agents that passed: those returned are new, the rest were
//!    already stored ("duplicate", also when another replica stored them first: the insert waits
//!    for that replica's transaction and then inserts nothing).
//! 3. One `INSERT … FROM UNNEST` of the inventory changes, compared in the batch's order (an
//!    agent's second inventory in a batch against its first).
//! 4. One `UPDATE agents … FROM UNNEST` of the folded rows.
//!
//! A report whose `report_id` occurs earlier in the same batch gets the earlier one's answer, or
//! "duplicate" when that one was stored. If any statement fails, the transaction is rolled back
//! (nothing of it was acknowledged) and the batch is stored one report per transaction, as
//! before, so each report gets an answer of its own.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection};
use tokio::sync::mpsc;

use super::super::batch::{self, Answer, Batch, Job, Prepared};
use super::super::{AgentUpdate, StoreError, Stored, accepted, inventory_changes_of};
use super::PostgresSettings;
use super::publisher::KEEPALIVES;
use crate::changes::Change;

/// Starts the writer task of a store connecting with `options`; it ends when the returned
/// queue's every sender is gone.
pub(super) fn start(options: PgConnectOptions, settings: &PostgresSettings) -> mpsc::Sender<Job> {
    let (queue, mut jobs) = batch::queue();
    let mut writer = Writer {
        options: options.application_name(APPLICATION_NAME),
        connect_timeout: settings.connect_timeout,
        write_timeout: settings.write_timeout,
        session: None,
    };
    tokio::spawn(async move {
        while let Some(first) = jobs.recv().await {
            let batch = Batch::gather(first, &mut jobs);
            let result = writer.store(&batch.reports()).await;
            batch.reply(result);
        }
    });
    queue
}

/// How the writer's session is named in `pg_stat_activity`.
const APPLICATION_NAME: &str = "hatang-collector ingest";

/// A session left idle this long is closed rather than used again: a firewall or NAT between
/// the replica and the server may have dropped it without a word, and a batch sent into such a
/// socket would wait out the write timeout. At full load the writer is never idle.
const IDLE_REUSE: Duration = Duration::from_secs(60);

/// The ingest writer and its own session, kept out of the pool: a batch taken through the pool
/// cost a ping of the connection and then the statement, two round trips, each on whichever of
/// the pool's ten server processes was idle longest. One session kept hot is one round trip a
/// batch (docs/benchmarks.md, "The writer's own session").
struct Writer {
    options: PgConnectOptions,
    connect_timeout: Duration,
    /// How long one batch may take before the session is given up
    /// ([`PostgresSettings::write_timeout`]).
    write_timeout: Duration,
    /// The session and when it was last used; `None` until the first batch, and after one that
    /// failed on a session which then did not answer a ping.
    session: Option<(PgConnection, Instant)>,
}

impl Writer {
    /// Stores `batch` on the writer's session, opening one first if there is none.
    async fn store(&mut self, batch: &[&Prepared]) -> Result<Vec<Answer>, StoreError> {
        let mut session = match self.session.take() {
            Some((session, used)) if used.elapsed() < IDLE_REUSE => session,
            _ => self.connect().await?,
        };
        let Ok(result) =
            tokio::time::timeout(self.write_timeout, store_batch(&mut session, batch)).await
        else {
            // The session is somewhere inside a statement; it is dropped with the future.
            tracing::warn!(
                reports = batch.len(),
                "the database did not answer the ingest writer within {} s; the next batch opens a new session",
                self.write_timeout.as_secs_f32()
            );
            return Err(StoreError::WriteTimeout {
                secs: self.write_timeout.as_secs(),
            });
        };
        // A failure may have come from the session itself (the server restarted, the network
        // dropped it): keep it only if it still answers.
        let healthy = match &result {
            Ok(answers) if answers.iter().all(Result::is_ok) => true,
            _ => matches!(
                tokio::time::timeout(self.connect_timeout, session.ping()).await,
                Ok(Ok(()))
            ),
        };
        if healthy {
            self.session = Some((session, Instant::now()));
        } else {
            tracing::warn!(
                "the ingest writer's database session failed; the next batch opens a new one"
            );
        }
        result
    }

    async fn connect(&self) -> Result<PgConnection, StoreError> {
        match tokio::time::timeout(self.connect_timeout, self.open_session()).await {
            Ok(connected) => Ok(connected?),
            Err(_) => Err(StoreError::ConnectTimeout {
                url: format!("{}:{}", self.options.get_host(), self.options.get_port()),
                secs: self.connect_timeout.as_secs(),
            }),
        }
    }

    /// A new session, with the server told to give up on it as the writer would: a statement
    /// still running, or a transaction left open, after the write timeout is ended (its locks
    /// on the agents' rows released for the other replicas), and a peer gone silent is noticed
    /// by TCP keepalives within about half a minute.
    async fn open_session(&self) -> Result<PgConnection, sqlx::Error> {
        let mut session = PgConnection::connect_with(&self.options).await?;
        // A number of milliseconds and a constant: nothing from outside goes into this text.
        let limit = self.write_timeout.as_millis();
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "SET statement_timeout = {limit}; SET idle_in_transaction_session_timeout = {limit}; {KEEPALIVES}"
        )))
        .execute(&mut session)
        .await?;
        Ok(session)
    }
}

/// Where each report's `report_id` occurs earlier in `batch`, if it does: that one is the one
/// stored, and this one gets its answer.
fn earlier_occurrences(batch: &[&Prepared]) -> Vec<Option<usize>> {
    let mut first_of: HashMap<uuid::Uuid, usize> = HashMap::with_capacity(batch.len());
    batch
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let first = *first_of.entry(p.incoming.report.report_id).or_insert(i);
            (first != i).then_some(first)
        })
        .collect()
}

/// The SQLSTATE of `hatang_batch_check` (migration 0009): the bet of [`store_at_once`] was lost.
const LOST_BET: &str = "HTB01";

/// Stores `batch` in one statement when it can ([`store_at_once`]), else with its agents locked
/// first, else one report at a time.
async fn store_batch(
    session: &mut PgConnection,
    batch: &[&Prepared],
) -> Result<Vec<Answer>, StoreError> {
    match store_at_once(session, batch).await {
        Ok(Some(answers)) => return Ok(answers),
        Ok(None) => {}
        Err(e) => {
            tracing::debug!(reports = batch.len(), error = %e, "ingest batch not stored in one statement; storing it with its agents locked");
        }
    }
    match store_together(session, batch).await {
        Ok(answers) => Ok(answers),
        Err(e) => {
            tracing::warn!(reports = batch.len(), error = %e, "ingest batch failed; storing its reports one at a time");
            let mut answers = Vec::with_capacity(batch.len());
            for prepared in batch {
                let alone = store_together(session, std::slice::from_ref(prepared)).await;
                answers.push(alone.and_then(|mut answer| {
                    // One answer per report, so one here; the empty case is only the type's.
                    answer.pop().unwrap_or_else(|| {
                        Err(StoreError::Conflict("the store gave no answer".into()))
                    })
                }));
            }
            Ok(answers)
        }
    }
}

/// The batch in one statement, `INSERT` and `UPDATE` together, on the bet that every report in
/// it is new and every agent still enrolled under the key its report came with, as nearly all
/// are. The statement ends by checking what both did (`hatang_batch_check`, migration 0009); a
/// lost bet is an error that undoes it (`None`, nothing stored) and [`store_together`] stores
/// the batch. Without inventories the statement is its own transaction: one round trip instead
/// of five. With the database on the same two cores each round trip is a wake-up of the other
/// side, and those, not CPU, bounded the batches.
///
/// Reports that bring an inventory are compared with the inventory on record, which is read
/// under its row's lock first: `BEGIN`, the lock of those agents in id order, the statement,
/// the changes found, `COMMIT`. Not when one agent's reports came with two keys (re-enrolled
/// while they waited).
async fn store_at_once(
    session: &mut PgConnection,
    batch: &[&Prepared],
) -> Result<Option<Vec<Answer>>, StoreError> {
    let earlier = earlier_occurrences(batch);
    let new: Vec<&Prepared> = (0..batch.len())
        .filter(|&i| earlier[i].is_none())
        .map(|i| batch[i])
        .collect();
    let mut updates: Vec<Folded> = Vec::new();
    let mut update_of: HashMap<&str, usize> = HashMap::new();
    for prepared in &new {
        fold(&mut updates, &mut update_of, prepared);
    }
    if new.iter().any(|p| {
        updates[update_of[p.incoming.agent_id.as_str()]].key != p.incoming.key_digest.as_deref()
    }) {
        return Ok(None);
    }
    // Rows locked in id order on every replica, as store_together's lock does.
    updates.sort_unstable_by(|a, b| a.agent.cmp(b.agent));
    let report_ids: Vec<String> = new
        .iter()
        .map(|p| p.incoming.report.report_id.to_string())
        .collect();
    let sql = format!(
        "WITH ins AS (
           INSERT INTO reports (report_id, agent_id, received_at, agent_time, body)
           SELECT * FROM UNNEST($21::text[], $22::text[], $23::bigint[], $24::bigint[], $25::text[])
           ON CONFLICT (report_id) DO NOTHING RETURNING 1),
         upd AS (
           UPDATE agents a SET {AGENT_SET} FROM {AGENT_VALUES}
           WHERE a.id = v.id AND a.revoked_at IS NULL AND (v.key IS NULL OR a.key_hash = v.key)
           RETURNING 1)
         SELECT hatang_batch_check((SELECT COUNT(*) FROM ins) = $26 AND (SELECT COUNT(*) FROM upd) = $27)"
    );
    let mut with_inventory: Vec<&str> = new
        .iter()
        .filter(|p| p.incoming.report.inventory.is_some())
        .map(|p| p.incoming.agent_id.as_str())
        .collect();
    with_inventory.sort_unstable();
    with_inventory.dedup();
    let statement = bind_updates(sqlx::query(sqlx::AssertSqlSafe(sql)), &updates)
        .bind(&report_ids)
        .bind(
            new.iter()
                .map(|p| p.incoming.agent_id.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(
            new.iter()
                .map(|p| p.incoming.received_at)
                .collect::<Vec<_>>(),
        )
        .bind(
            new.iter()
                .map(|p| p.incoming.report.agent_time.unix_timestamp())
                .collect::<Vec<_>>(),
        )
        .bind(
            new.iter()
                .map(|p| p.incoming.body.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(i64::try_from(new.len()).unwrap_or(i64::MAX))
        .bind(i64::try_from(updates.len()).unwrap_or(i64::MAX));
    // Without inventories the statement is the whole transaction: no BEGIN or COMMIT to wait
    // for, and a lost bet is an error that undoes it.
    if with_inventory.is_empty() {
        if !bet_held(statement.execute(&mut *session).await)? {
            return Ok(None);
        }
        let (answers, _no_inventories) = answers_at_once(batch, &earlier, &HashMap::new());
        return Ok(Some(answers));
    }
    let mut tx = session.begin().await?;
    let on_record: HashMap<String, Option<String>> = sqlx::query_as(
        "SELECT id, inventory FROM agents WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE",
    )
    .bind(&with_inventory)
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .collect();
    // A lost bet drops the transaction uncommitted: rolled back.
    if !bet_held(statement.execute(&mut *tx).await)? {
        return Ok(None);
    }
    let (answers, changes) = answers_at_once(batch, &earlier, &on_record);
    insert_changes(&mut tx, batch, &changes).await?;
    tx.commit().await?;
    Ok(Some(answers))
}

/// Whether the statement of [`store_at_once`] stored its batch (`false`: the bet was lost and
/// the statement undone).
fn bet_held(
    stored: Result<sqlx::postgres::PgQueryResult, sqlx::Error>,
) -> Result<bool, StoreError> {
    match stored {
        Ok(_) => Ok(true),
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some(LOST_BET) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// The answers to a batch [`store_at_once`] stored, and the inventory changes its reports
/// brought (each with its report's index), against the inventories `on_record` before it.
fn answers_at_once(
    batch: &[&Prepared],
    earlier: &[Option<usize>],
    on_record: &HashMap<String, Option<String>>,
) -> (Vec<Answer>, Vec<(usize, Change)>) {
    // Every first occurrence was stored; a later one of the same report_id is its duplicate.
    let mut inventories: HashMap<&str, Option<String>> = HashMap::new();
    let mut changes: Vec<(usize, Change)> = Vec::new();
    let mut answers: Vec<Answer> = Vec::with_capacity(batch.len());
    for (i, first) in earlier.iter().enumerate() {
        answers.push(Ok(match first {
            None => {
                let mine = changes_in_turn(&mut inventories, batch[i], |agent| {
                    on_record.get(agent).cloned().flatten()
                });
                let answer = accepted(&mine);
                changes.extend(mine.into_iter().map(|c| (i, c)));
                answer
            }
            Some(_) => Stored::Duplicate,
        }));
    }
    (answers, changes)
}

/// An agent as the batch found it, locked.
#[derive(sqlx::FromRow)]
struct Locked {
    id: String,
    key_hash: Vec<u8>,
    revoked: bool,
    /// Only for agents whose reports in the batch carry an inventory.
    inventory: Option<String>,
}

/// The batch in one transaction; an error means nothing of it was stored.
async fn store_together(
    session: &mut PgConnection,
    batch: &[&Prepared],
) -> Result<Vec<Answer>, StoreError> {
    let earlier = earlier_occurrences(batch);
    let mut tx = session.begin().await?;
    let mut ids: Vec<&str> = batch.iter().map(|p| p.incoming.agent_id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    let with_inventory: Vec<&str> = batch
        .iter()
        .filter(|p| p.incoming.report.inventory.is_some())
        .map(|p| p.incoming.agent_id.as_str())
        .collect();
    let locked: Vec<Locked> = sqlx::query_as(
        "SELECT id, key_hash, revoked_at IS NOT NULL AS revoked,
                CASE WHEN id = ANY($2) THEN inventory END AS inventory
         FROM agents WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE",
    )
    .bind(&ids)
    .bind(&with_inventory)
    .fetch_all(&mut *tx)
    .await?;
    let agents: HashMap<&str, &Locked> = locked.iter().map(|a| (a.id.as_str(), a)).collect();
    let enrolled = |incoming: &super::super::Incoming| {
        agents.get(incoming.agent_id.as_str()).is_some_and(|a| {
            !a.revoked
                && incoming
                    .key_digest
                    .as_deref()
                    .is_none_or(|key| crate::secret::same(&a.key_hash, key))
        })
    };
    // The reports to insert: first occurrences of agents still enrolled under their key.
    let candidates: Vec<usize> = (0..batch.len())
        .filter(|&i| earlier[i].is_none() && enrolled(&batch[i].incoming))
        .collect();
    let report_ids: Vec<String> = candidates
        .iter()
        .map(|&i| batch[i].incoming.report.report_id.to_string())
        .collect();
    let inserted: Vec<String> = sqlx::query_scalar(
        "INSERT INTO reports (report_id, agent_id, received_at, agent_time, body)
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::text[])
         ON CONFLICT (report_id) DO NOTHING RETURNING report_id",
    )
    .bind(&report_ids)
    .bind(
        candidates
            .iter()
            .map(|&i| batch[i].incoming.agent_id.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(
        candidates
            .iter()
            .map(|&i| batch[i].incoming.received_at)
            .collect::<Vec<_>>(),
    )
    .bind(
        candidates
            .iter()
            .map(|&i| batch[i].incoming.report.agent_time.unix_timestamp())
            .collect::<Vec<_>>(),
    )
    .bind(
        candidates
            .iter()
            .map(|&i| batch[i].incoming.body.as_str())
            .collect::<Vec<_>>(),
    )
    .fetch_all(&mut *tx)
    .await?;
    let inserted: HashSet<uuid::Uuid> = inserted.iter().filter_map(|id| id.parse().ok()).collect();

    // In the batch's order: each new report's changes against the inventory before it, and its
    // agent's row folded.
    let mut inventories: HashMap<&str, Option<String>> = HashMap::new();
    let mut changes: Vec<(usize, Change)> = Vec::new();
    let mut updates: Vec<Folded> = Vec::new();
    let mut update_of: HashMap<&str, usize> = HashMap::new();
    let mut answers: Vec<Answer> = Vec::with_capacity(batch.len());
    for (i, Prepared { incoming, .. }) in batch.iter().copied().enumerate() {
        let answer = if let Some(first) = earlier[i] {
            match &answers[first] {
                Ok(_) => Ok(Stored::Duplicate),
                Err(_) => Err(StoreError::Revoked(incoming.agent_id.clone())),
            }
        } else if !enrolled(incoming) {
            Err(StoreError::Revoked(incoming.agent_id.clone()))
        } else if !inserted.contains(&incoming.report.report_id) {
            Ok(Stored::Duplicate)
        } else {
            let mine = changes_in_turn(&mut inventories, batch[i], |agent| {
                agents.get(agent).and_then(|a| a.inventory.clone())
            });
            let answer = accepted(&mine);
            changes.extend(mine.into_iter().map(|c| (i, c)));
            fold(&mut updates, &mut update_of, batch[i]);
            Ok(answer)
        };
        answers.push(answer);
    }

    insert_changes(&mut tx, batch, &changes).await?;
    if !updates.is_empty() {
        update_agents(&mut tx, &updates).await?;
    }
    tx.commit().await?;
    Ok(answers)
}

/// The inventory changes `prepared` brings, against the inventory its agent had just before it:
/// the one in `inventories` (an earlier report of the batch left it) or else `stored(agent)`,
/// the one on record. Leaves the report's inventory in `inventories` for the agent's next.
fn changes_in_turn<'a>(
    inventories: &mut HashMap<&'a str, Option<String>>,
    prepared: &'a Prepared,
    stored: impl FnOnce(&str) -> Option<String>,
) -> Vec<Change> {
    if prepared.incoming.report.inventory.is_none() {
        return Vec::new();
    }
    let agent = prepared.incoming.agent_id.as_str();
    let before = inventories.entry(agent).or_insert_with(|| stored(agent));
    let found = inventory_changes_of(before.as_deref(), &prepared.incoming.report);
    before.clone_from(&prepared.update.inventory);
    found
}

/// One `INSERT` of `changes` (each with the index in `batch` of the report that brought it).
async fn insert_changes(
    tx: &mut PgConnection,
    batch: &[&Prepared],
    changes: &[(usize, Change)],
) -> Result<(), StoreError> {
    if changes.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO inventory_changes (agent_id, report_id, at, component, key, kind, before, after)
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[],
                              $6::text[], $7::text[], $8::text[])",
    )
    .bind(changes.iter().map(|(i, _)| batch[*i].incoming.agent_id.as_str()).collect::<Vec<_>>())
    .bind(
        changes
            .iter()
            .map(|(i, _)| batch[*i].incoming.report.report_id.to_string())
            .collect::<Vec<_>>(),
    )
    .bind(changes.iter().map(|(i, _)| batch[*i].incoming.received_at).collect::<Vec<_>>())
    .bind(changes.iter().map(|(_, c)| c.component).collect::<Vec<_>>())
    .bind(changes.iter().map(|(_, c)| c.key.as_str()).collect::<Vec<_>>())
    .bind(changes.iter().map(|(_, c)| c.kind.as_str()).collect::<Vec<_>>())
    .bind(changes.iter().map(|(_, c)| c.before.as_deref()).collect::<Vec<_>>())
    .bind(changes.iter().map(|(_, c)| c.after.as_deref()).collect::<Vec<_>>())
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// What an agent's row becomes under its folded update `v` (the values of [`AGENT_VALUES`]).
/// GREATEST ignores NULLs: the later of the stored and the new success time, whichever exists.
/// The speed test's three columns change only where a report had one.
const AGENT_SET: &str = "last_report_at = v.last_report_at, interval_secs = v.interval_secs,
           agent_version = v.agent_version,
           inventory = COALESCE(v.inventory, a.inventory), sample = COALESCE(v.sample, a.sample),
           probes = COALESCE(v.probes, a.probes), lan_up = COALESCE(v.lan_up, a.lan_up),
           internet_ok_at = GREATEST(a.internet_ok_at, v.internet_ok_at),
           gov_wan_ok_at = GREATEST(a.gov_wan_ok_at, v.gov_wan_ok_at),
           datacentre_ok_at = GREATEST(a.datacentre_ok_at, v.datacentre_ok_at),
           speed_at = CASE WHEN v.speed THEN v.speed_at ELSE a.speed_at END,
           download_bps = CASE WHEN v.speed THEN v.download_bps ELSE a.download_bps END,
           upload_bps = CASE WHEN v.speed THEN v.upload_bps ELSE a.upload_bps END,
           spool_waiting = COALESCE(v.spool_waiting, a.spool_waiting),
           spool_dropped = COALESCE(v.spool_dropped, a.spool_dropped),
           reports_stored = a.reports_stored + v.reports,
           hostname = COALESCE(v.hostname, a.hostname)";

/// The folded updates as rows `v`, parameters `$1` to `$20` ([`bind_updates`]).
const AGENT_VALUES: &str = "UNNEST($1::text[], $2::bigint[], $3::bigint[], $4::text[], $5::text[],
                     $6::text[], $7::text[], $8::bool[], $9::bigint[], $10::bigint[], $11::bigint[],
                     $12::bool[], $13::bigint[], $14::float8[], $15::float8[], $16::bigint[],
                     $17::bigint[], $18::bigint[], $19::bytea[], $20::text[])
           AS v(id, last_report_at, interval_secs, agent_version, inventory, sample, probes,
                lan_up, internet_ok_at, gov_wan_ok_at, datacentre_ok_at, speed, speed_at,
                download_bps, upload_bps, spool_waiting, spool_dropped, reports, key, hostname)";

type PgQuery<'q> = sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>;

/// Binds `$1` to `$20` of [`AGENT_VALUES`]: each agent's folded update and the key its reports
/// came with.
fn bind_updates<'q>(query: PgQuery<'q>, updates: &'q [Folded<'q>]) -> PgQuery<'q> {
    fn column<'a, T>(updates: &'a [Folded<'a>], f: impl Fn(&'a AgentUpdate) -> T) -> Vec<T> {
        updates.iter().map(|u| f(&u.update)).collect()
    }
    query
        .bind(updates.iter().map(|u| u.agent).collect::<Vec<_>>())
        .bind(column(updates, |u| u.last_report_at))
        .bind(column(updates, |u| u.interval_secs))
        .bind(column(updates, |u| u.agent_version.as_str()))
        .bind(column(updates, |u| u.inventory.as_deref()))
        .bind(column(updates, |u| u.sample.as_deref()))
        .bind(column(updates, |u| u.probes.as_deref()))
        .bind(column(updates, |u| u.lan_up))
        .bind(column(updates, |u| u.internet_ok_at))
        .bind(column(updates, |u| u.gov_wan_ok_at))
        .bind(column(updates, |u| u.datacentre_ok_at))
        .bind(column(updates, |u| u.speed.is_some()))
        .bind(column(updates, |u| u.speed.map(|s| s.0)))
        .bind(column(updates, |u| u.speed.map(|s| s.1)))
        .bind(column(updates, |u| u.speed.and_then(|s| s.2)))
        .bind(column(updates, |u| u.spool_waiting))
        .bind(column(updates, |u| u.spool_dropped))
        .bind(column(updates, |u| u.reports))
        .bind(updates.iter().map(|u| u.key).collect::<Vec<_>>())
        .bind(column(updates, |u| u.hostname.as_deref()))
}

/// One `UPDATE` for every agent of the batch, each row to what its reports leave.
async fn update_agents(tx: &mut PgConnection, updates: &[Folded<'_>]) -> Result<(), StoreError> {
    let sql = format!("UPDATE agents a SET {AGENT_SET} FROM {AGENT_VALUES} WHERE a.id = v.id");
    bind_updates(sqlx::query(sqlx::AssertSqlSafe(sql)), updates)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// An agent's reports in a batch folded into one update of its row, in the batch's order.
struct Folded<'a> {
    agent: &'a str,
    /// The key the agent's reports came with (the first's, where they differ).
    key: Option<&'a [u8]>,
    update: AgentUpdate,
}

/// Adds the report `prepared` to its agent's update in `updates` (`index`: where each agent's is).
fn fold<'a>(
    updates: &mut Vec<Folded<'a>>,
    index: &mut HashMap<&'a str, usize>,
    prepared: &'a Prepared,
) {
    let agent = prepared.incoming.agent_id.as_str();
    let update = prepared.update.clone();
    match index.get(agent) {
        Some(&u) => updates[u].update = updates[u].update.clone().then(update),
        None => {
            index.insert(agent, updates.len());
            updates.push(Folded {
                agent,
                key: prepared.incoming.key_digest.as_deref(),
                update,
            });
        }
    }
}

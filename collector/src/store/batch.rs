//! The queue in front of a store's ingest writer, shared by both stores: requests queue their
//! reports and wait; the writer takes whatever is queued, commits it as one batch and answers
//! every request once the batch's transaction committed.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::{AgentUpdate, Incoming, StoreError, Stored};

/// The most reports one ingest transaction holds. A batch is whatever queued during the previous
/// commit; this bounds how long one commit (and the requests in it) can take.
pub(crate) const MAX_BATCH: usize = 512;

/// Reports that may wait for the ingest writer; one more is refused with [`StoreError::Busy`].
/// Four batches' worth: enough to ride out a slow commit, few enough to bound memory (a queued
/// report holds its parsed form and its text, a few KiB) and the wait of the last one.
pub(crate) const QUEUE: usize = 4 * MAX_BATCH;

/// What storing one report came to.
pub(crate) type Answer = Result<Stored, StoreError>;

/// A report with what it does to its agent's row, worked out by the request that brought it
/// (JSON encoding and all), so the writer, which is one, does only the writing.
#[derive(Debug)]
pub(crate) struct Prepared {
    pub(crate) incoming: Incoming,
    pub(crate) update: AgentUpdate,
}

/// Reports to commit together, and where their answers go: one answer per report, in order, or
/// the error that kept the whole transaction from committing.
#[derive(Debug)]
pub(crate) struct Job {
    reports: Vec<Prepared>,
    reply: oneshot::Sender<Result<Vec<Answer>, StoreError>>,
}

/// A new queue for a writer: the sending side for the store, the receiving side for the writer.
pub(crate) fn queue() -> (mpsc::Sender<Job>, mpsc::Receiver<Job>) {
    mpsc::channel(QUEUE)
}

/// Hands `reports` to the writer behind `queue` and waits until the transaction holding them
/// committed; [`StoreError::Busy`] at once when the queue is full.
pub(crate) async fn submit(
    queue: &mpsc::Sender<Job>,
    reports: Vec<Incoming>,
) -> Result<Vec<Answer>, StoreError> {
    let (reply, answer) = oneshot::channel();
    let reports = reports
        .into_iter()
        .map(|incoming| Prepared {
            update: AgentUpdate::of(&incoming),
            incoming,
        })
        .collect();
    queue
        .try_send(Job { reports, reply })
        .map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => StoreError::Busy,
            mpsc::error::TrySendError::Closed(_) => writer_gone(),
        })?;
    answer.await.unwrap_or_else(|_| Err(writer_gone()))
}

/// [`submit`] for one report.
pub(crate) async fn submit_one(
    queue: &mpsc::Sender<Job>,
    incoming: Incoming,
) -> Result<Stored, StoreError> {
    submit(queue, vec![incoming])
        .await?
        .pop()
        // One answer per report, so one here; the empty case is only the type's.
        .unwrap_or_else(|| Err(writer_gone()))
}

/// The answer when the ingest writer is gone (the store is shutting down).
fn writer_gone() -> StoreError {
    StoreError::Batch(Arc::new(StoreError::Busy))
}

/// The jobs of one batch: the one the writer woke up for, and whatever else is queued, up to
/// [`MAX_BATCH`] reports.
#[derive(Debug)]
pub(crate) struct Batch {
    jobs: Vec<Job>,
}

impl Batch {
    pub(crate) fn gather(first: Job, queue: &mut mpsc::Receiver<Job>) -> Self {
        let mut reports = first.reports.len();
        let mut jobs = vec![first];
        while reports < MAX_BATCH {
            let Ok(job) = queue.try_recv() else { break };
            reports += job.reports.len();
            jobs.push(job);
        }
        Self { jobs }
    }

    /// Every report of the batch, in the order they were queued.
    pub(crate) fn reports(&self) -> Vec<&Prepared> {
        self.jobs.iter().flat_map(|j| &j.reports).collect()
    }

    /// Answers every request: its own reports' answers, or the batch's error.
    pub(crate) fn reply(self, result: Result<Vec<Answer>, StoreError>) {
        match result {
            Ok(answers) => {
                let mut answers = answers.into_iter();
                for job in self.jobs {
                    let mine = answers.by_ref().take(job.reports.len()).collect();
                    // The request may have gone (its client hung up): the report is stored
                    // anyway, and the agent's resend is answered "duplicate".
                    let _ = job.reply.send(Ok(mine));
                }
            }
            Err(e) => {
                let reports: usize = self.jobs.iter().map(|j| j.reports.len()).sum();
                // DEBUG: each request's answer says it at ERROR, at most once per 10 s (see
                // `http::error`); a line per batch was a flood in an outage, every batch failing.
                tracing::debug!(reports, error = %e, "ingest batch not acknowledged");
                let e = Arc::new(e);
                for job in self.jobs {
                    let _ = job.reply.send(Err(StoreError::Batch(e.clone())));
                }
            }
        }
    }
}

//! The loop one worker runs: claim a job, apply it chunk by chunk while its heartbeat keeps the
//! lease, let it go the right way when something fails, and wait for work when there is none.

use super::lease::Lease;
use super::{Runner, Step};
use crate::error::StoreError;
use crate::supervise::panic_message;
use futures_util::FutureExt;
use std::panic::AssertUnwindSafe;
use std::time::Duration;
use tokio::sync::watch;

/// How applying one chunk ended, seen from the worker.
enum Chunk {
    /// The step ran (its own outcome, or the error that rolled the chunk back).
    Stepped(Result<Step, StoreError>),
    /// The step panicked (a bug); its transaction was rolled back.
    Panicked(String),
    /// The heartbeat found the lease taken over while the chunk ran; the chunk was abandoned.
    LeaseLost,
}

impl Runner {
    /// Works on jobs until `stop` is set; a job in hand is then released after its chunk.
    pub(super) async fn worker_loop(&self, worker: usize, mut stop: watch::Receiver<bool>) -> Result<(), StoreError> {
        // The job the last one's final chunk claimed (see `Lease::chain_next_claim`).
        let mut chained: Option<Lease> = None;
        loop {
            if *stop.borrow() {
                if let Some(lease) = chained.take() {
                    lease.release_or_warn().await;
                }
                return Ok(());
            }
            // Interest is registered before looking, so an enqueue in between still wakes us.
            let woken = self.store.inner.job_enqueued.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            let claimed = match chained.take() {
                Some(lease) => Some(lease),
                None => {
                    let claimed = self.claim().await;
                    self.observe_claim(&claimed);
                    claimed.unwrap_or_else(|e| {
                        tracing::warn!(worker, error = %e, "claim failed; retrying after the poll interval");
                        None
                    })
                }
            };
            if let Some(lease) = claimed {
                chained = self.work_on(lease, &stop).await;
                continue;
            }
            let found_nothing = tokio::time::Instant::now();
            tokio::select! {
                _ = &mut woken => {
                    // Woken soon after finding nothing: wait out the gap, so that a stream of
                    // wakes costs one claim per gap (see `RunnerConfig::idle_claim_gap`).
                    tokio::select! {
                        () = tokio::time::sleep_until(found_nothing + self.config.idle_claim_gap) => {}
                        _ = stop.changed() => {}
                    }
                }
                _ = tokio::time::sleep(self.config.poll_interval) => {}
                _ = stop.changed() => {}
            }
        }
    }

    /// Applies `lease`'s job until it ends, its lease is lost, a chunk fails, or `stop` is set
    /// (then it is released). Returns the next job its last chunk claimed, if any.
    async fn work_on(&self, mut lease: Lease, stop: &watch::Receiver<bool>) -> Option<Lease> {
        lease.chain_next_claim();
        let job = lease.job_id().0;
        loop {
            if *stop.borrow() {
                let next = lease.next_lease().await;
                lease.release_or_warn().await;
                if let Ok(Some(next)) = next {
                    next.release_or_warn().await;
                }
                return None;
            }
            let chunk_started = std::time::Instant::now();
            let chunk = self.chunk_with_heartbeat(&mut lease).await;
            metrics::histogram!("catalogd_runner_chunk_seconds").record(chunk_started.elapsed());
            if let Chunk::Stepped(stepped) = &chunk {
                self.store.health().observe(stepped);
            }
            match chunk {
                Chunk::Stepped(Ok(Step::Continue)) => {}
                Chunk::Stepped(Ok(_)) => break,
                Chunk::Stepped(Err(error)) => {
                    // The transaction rolled back; the job resumes from its checkpoint after the
                    // backoff (here or on another node).
                    tracing::warn!(job, %error, "chunk failed; the job is retried after a backoff");
                    self.let_go_or_warn(&lease, &error, stop).await;
                    break;
                }
                Chunk::Panicked(message) => {
                    tracing::error!(job, panic = %message, "chunk panicked; the job is retried after a backoff");
                    let panicked = StoreError::Corrupt(format!("the runner panicked: {message}"));
                    self.let_go_or_warn(&lease, &panicked, stop).await;
                    break;
                }
                Chunk::LeaseLost => {
                    tracing::info!(job, "lease taken over while a chunk ran; it was rolled back");
                    break;
                }
            }
        }
        match lease.next_lease().await {
            Ok(next) => next,
            Err(e) => {
                // Claimed but unreadable for now: the job is due again when the lease expires.
                tracing::warn!(job, error = %e, "reading a chained claim failed");
                None
            }
        }
    }

    /// One [`Lease::step`], with the lease's heartbeat beating every third of the lease while it
    /// runs. A panic in the step is caught here, so the worker lets the job go and goes on.
    async fn chunk_with_heartbeat(&self, lease: &mut Lease) -> Chunk {
        let heartbeat = lease.heartbeat();
        let period = self.config.lease_duration / 3;
        let step = AssertUnwindSafe(lease.step()).catch_unwind();
        tokio::select! {
            biased;
            stepped = step => match stepped {
                Ok(result) => Chunk::Stepped(result),
                Err(panic) => Chunk::Panicked(panic_message(panic.as_ref())),
            },
            () = heartbeat.run(period) => Chunk::LeaseLost,
        }
    }

    /// Lets the job go after its chunk failed with `error` (see [`Lease::let_go_after`]). While
    /// the database is in trouble that write fails too: it is tried again every poll interval
    /// for as long as the lease lasts, so that an outage shorter than the lease costs no attempt
    /// (an expired lease counts one). Gives up at once when `stop` is set.
    async fn let_go_or_warn(&self, lease: &Lease, error: &StoreError, stop: &watch::Receiver<bool>) {
        let job = lease.job_id().0;
        let deadline = tokio::time::Instant::now() + self.config.lease_duration;
        let mut stop = stop.clone();
        loop {
            let let_go = lease.let_go_after(error).await;
            self.store.health().observe(&let_go);
            let Err(e) = let_go else { return };
            let wait = self.config.poll_interval.min(Duration::from_secs(1));
            if !e.code().is_storage_trouble() || *stop.borrow() || tokio::time::Instant::now() + wait >= deadline {
                tracing::warn!(job, error = %e, "could not let the job go; its lease will expire");
                return;
            }
            tracing::debug!(job, error = %e, "letting the job go failed; trying again");
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                _ = stop.changed() => {}
            }
        }
    }
}

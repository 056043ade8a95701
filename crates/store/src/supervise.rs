//! Supervision of the store's background tasks (the runner's workers, its purge and LISTEN loops,
//! the group-commit writer): a task that stops on an error or a panic is logged and started again,
//! as Meilisearch's index-scheduler does with each tick, instead of leaving the process up but
//! silently no longer running jobs or accepting them.

use crate::error::StoreError;
use futures_util::FutureExt;
use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::Duration;
use tokio::sync::watch;

/// Runs the task `start` makes until it returns `Ok` (it stopped as asked) or `stop` is set; when
/// it fails or panics, logs why and starts it again after `restart_delay`.
pub(crate) async fn supervise<F, Fut>(
    task: &str,
    restart_delay: Duration,
    mut stop: Option<watch::Receiver<bool>>,
    mut start: F,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), StoreError>>,
{
    loop {
        match AssertUnwindSafe(start()).catch_unwind().await {
            Ok(Ok(())) => return,
            Ok(Err(error)) => tracing::error!(task, %error, "background task stopped on an error; restarting it"),
            Err(panic) => {
                tracing::error!(task, panic = %panic_message(panic.as_ref()), "background task panicked; restarting it");
            }
        }
        match stop.as_mut() {
            Some(stop) => {
                if *stop.borrow() {
                    return;
                }
                tokio::select! {
                    _ = tokio::time::sleep(restart_delay) => {}
                    _ = stop.changed() => return,
                }
            }
            None => tokio::time::sleep(restart_delay).await,
        }
    }
}

/// The message a panic carried, when it is text.
pub(crate) fn panic_message(panic: &(dyn Any + Send)) -> String {
    if let Some(text) = panic.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = panic.downcast_ref::<String>() {
        text.clone()
    } else {
        "a panic without a message".to_owned()
    }
}

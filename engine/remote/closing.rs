//! Closing what every host's slot holds (an agent, a master) at once: each slot stays locked
//! until what it held is closed, so nothing starts on that host meanwhile.

use std::future::Future;
use std::sync::Arc;

/// Takes what each slot holds with `take` (which returns how to close it, or nothing) and
/// closes them all concurrently; returns once every one is closed.
pub(super) async fn close_each<S, C>(
    slots: Vec<Arc<tokio::sync::Mutex<S>>>,
    mut take: impl FnMut(&mut S) -> Option<C>,
) where
    S: Send + 'static,
    C: Future<Output = ()> + Send + 'static,
{
    let mut closing = Vec::new();
    for slot in slots {
        let mut slot = slot.lock_owned().await;
        if let Some(close) = take(&mut slot) {
            closing.push(tokio::spawn(async move {
                close.await;
                drop(slot);
            }));
        }
    }
    for task in closing {
        let _ = task.await;
    }
}

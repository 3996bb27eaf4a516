//! One tgtd `target show` shared by the target checks that ask for it at the same time.
//!
//! tgtd answers one request at a time, and `show` lists every target: with each resource's
//! stage reading its own, a transition of N resources reads N shows of N targets. Here a caller
//! gets a show that tgtd was *sent after the caller asked* (so it is never older than the
//! caller's question, as its own request would be): callers that ask while a show is being read
//! wait for the next one, which answers all of them. Nothing is kept for later questions.
//!
//! Staleness: a show is as old as the time its result is used, as any read is (tgtd has no
//! conditional change, docs/tgtd-ipc.md §7.7). Between the show and the change, this agent
//! changes only other resources' tids (one resource's stages run one after another; a
//! standby's staging stops before a serve begins, `target/stage.rs`), so the
//! ownership at a resource's tid can change in between only from outside, which a show per
//! resource would not catch either.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tgt_ipc::{Target, TgtClient, TgtError};
use tokio::sync::Mutex;

/// See the module docs.
#[derive(Debug, Default)]
pub(crate) struct SharedShow {
    /// Questions asked so far (each caller's ticket).
    asked: AtomicU64,
    /// The last show and the highest ticket it answers; held while a show is read.
    last: Mutex<Option<(u64, Arc<Vec<Target>>)>>,
}

impl SharedShow {
    /// A `target show` sent after this call began (see the module docs).
    pub(crate) async fn get(&self, client: &TgtClient) -> Result<Arc<Vec<Target>>, TgtError> {
        let ticket = self.asked.fetch_add(1, Ordering::SeqCst) + 1;
        // tokio's mutex is fair: the waiters queued behind a read are served by the next one
        let mut last = self.last.lock().await;
        if let Some((answers, shown)) = &*last {
            if *answers >= ticket {
                return Ok(shown.clone());
            }
        }
        // every ticket up to here was issued before this show is sent
        let answers = self.asked.load(Ordering::SeqCst);
        let shown = Arc::new(client.show_targets().await?);
        *last = Some((answers, shown.clone()));
        Ok(shown)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_failed_show_answers_only_its_caller() {
        let dir = tempfile::tempdir().expect("tempdir");
        let client = TgtClient::at_path(dir.path().join("none"));
        let shared = SharedShow::default();
        assert!(shared.get(&client).await.is_err());
        assert!(shared.last.lock().await.is_none());
        assert!(shared.get(&client).await.is_err());
    }
}

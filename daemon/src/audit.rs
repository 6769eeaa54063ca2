//! The audit log in the running daemon: one writer task appends records (with the changes
//! they record) in group-committed batches, in arrival order; callers wait until their
//! record is durable. A checkpointer signs the chain head with the audit key periodically and
//! at shutdown.

use std::sync::Arc;
use std::time::Duration;

use seald_audit::{Checkpoint, Entry, Record};
use tokio::sync::{mpsc, oneshot};

use crate::registry::Keys;
use crate::store::{Append, Change, Store, StoreError};

/// Records written in one transaction at most.
const MAX_BATCH: usize = 256;

enum Message {
    Append(Box<Append>, oneshot::Sender<Result<Record, StoreError>>),
    /// Everything sent before is written; then the writer stops.
    Close(oneshot::Sender<()>),
}

#[derive(Clone)]
pub struct AuditLog {
    tx: mpsc::Sender<Message>,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditLog")
    }
}

impl AuditLog {
    pub fn start(store: Arc<dyn Store>) -> AuditLog {
        let (tx, rx) = mpsc::channel(4096);
        tokio::spawn(writer(store, rx));
        AuditLog { tx }
    }

    /// Appends `entry` with `change`; returns once both are committed.
    pub async fn append(&self, entry: Entry, change: Change) -> Result<Record, StoreError> {
        let (reply, wait) = oneshot::channel();
        self.tx
            .send(Message::Append(Box::new(Append { entry, change }), reply))
            .await
            .map_err(|_| StoreError::Unavailable("the audit log is closed".to_owned()))?;
        wait.await
            .map_err(|_| StoreError::Unavailable("the audit writer stopped".to_owned()))?
    }

    /// Writes everything queued, then stops the writer.
    pub async fn close(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Message::Close(done)).await.is_ok() {
            let _ = wait.await;
        }
    }
}

async fn writer(store: Arc<dyn Store>, mut rx: mpsc::Receiver<Message>) {
    let mut closing = None;
    while closing.is_none() {
        let Some(first) = rx.recv().await else { break };
        let mut batch = Vec::new();
        let mut replies = Vec::new();
        let mut next = Some(first);
        while let Some(m) = next.take() {
            match m {
                Message::Append(item, reply) => {
                    batch.push(*item);
                    replies.push(reply);
                }
                Message::Close(done) => closing = Some(done),
            }
            if closing.is_none() && replies.len() < MAX_BATCH {
                next = rx.try_recv().ok();
            }
        }
        if batch.is_empty() {
            continue;
        }
        match store.append(batch).await {
            Ok(results) => {
                for (reply, result) in replies.into_iter().zip(results) {
                    let _ = reply.send(result);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "audit append failed; the requests fail too");
                for reply in replies {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
    }
    if let Some(done) = closing {
        let _ = done.send(());
    }
}

/// Signs the chain head with the audit key.
#[derive(Debug, Clone)]
pub struct Checkpointer {
    pub store: Arc<dyn Store>,
    pub keys: Arc<Keys>,
    /// The `[[token]]` holding the audit key, and its label.
    pub token: String,
    pub label: String,
}

impl Checkpointer {
    /// Signs the head unless the newest checkpoint already covers it; returns its sequence
    /// number.
    pub async fn checkpoint(&self) -> Result<Option<u64>, String> {
        let (seq, head_hash) = self.store.head().await.map_err(|e| e.to_string())?;
        if seq == 0 {
            return Ok(None);
        }
        let latest = self
            .store
            .latest_checkpoint()
            .await
            .map_err(|e| e.to_string())?;
        if latest == Some(seq) {
            return Ok(None);
        }
        let time = crate::clock::now_rfc3339();
        let content = Checkpoint::content(seq, &head_hash, &time);
        let (keys, token, label) = (self.keys.clone(), self.token.clone(), self.label.clone());
        let signature = tokio::task::spawn_blocking(move || {
            let key = keys
                .key(&token, &label)
                .map_err(|e| format!("the audit key '{label}': {}", e.detail))?;
            seald_pades::sign_detached(&key, &content).map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| e.to_string())??;
        self.store
            .add_checkpoint(Checkpoint {
                seq,
                head_hash,
                time,
                signature,
            })
            .await
            .map_err(|e| e.to_string())?;
        Ok(Some(seq))
    }

    /// Runs until the returned task is aborted.
    pub fn spawn_periodic(self, every: Duration) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                match self.checkpoint().await {
                    Ok(Some(seq)) => tracing::info!(seq, "audit checkpoint signed"),
                    Ok(None) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "audit checkpoint failed; retrying at the next interval")
                    }
                }
            }
        })
    }
}

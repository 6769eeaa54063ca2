//! The audit log in the running daemon: one writer task appends records (with the changes
//! they record) in group-committed batches, in arrival order; callers wait until their record
//! is durable. A record that points into a job's output file commits only after a flush of
//! that file begun after its bytes were written: one flush per file and batch. A checkpointer signs the chain head with the audit key periodically and
//! at shutdown.

use std::sync::Arc;
use std::time::Duration;

use seald_audit::{Checkpoint, Entry, Record};
use tokio::sync::{mpsc, oneshot};

use crate::outputs::OutputFile;
use crate::registry::Keys;
use crate::store::{Append, Change, Store, StoreError};

/// Records written in one transaction at most.
const MAX_BATCH: usize = 256;
/// How long a batch holding job rows waits for more records, and until it holds how many
/// (of any kind).
const LINGER: std::time::Duration = std::time::Duration::from_millis(1);
const LINGER_UNTIL: usize = 8;

enum Message {
    Append(Item, oneshot::Sender<Result<Record, StoreError>>),
    /// Everything sent before is written; then the writer stops.
    Close(oneshot::Sender<()>),
}

/// A record to append, and the output file to flush before it commits.
struct Item {
    append: Box<Append>,
    flush: Option<Arc<OutputFile>>,
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
        self.send(entry, change, None).await
    }

    /// Like [`AuditLog::append`], for a change that points at bytes written (not yet
    /// flushed) to `file`: the writer flushes the file before the record commits.
    pub async fn append_after_flush(
        &self,
        entry: Entry,
        change: Change,
        file: Arc<OutputFile>,
    ) -> Result<Record, StoreError> {
        self.send(entry, change, Some(file)).await
    }

    async fn send(
        &self,
        entry: Entry,
        change: Change,
        flush: Option<Arc<OutputFile>>,
    ) -> Result<Record, StoreError> {
        let (reply, wait) = oneshot::channel();
        let item = Item {
            append: Box::new(Append { entry, change }),
            flush,
        };
        self.tx
            .send(Message::Append(item, reply))
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
        let mut items = Vec::new();
        let mut replies = Vec::new();
        let mut next = Some(first);
        while let Some(m) = next.take() {
            match m {
                Message::Append(item, reply) => {
                    items.push(item);
                    replies.push(reply);
                }
                Message::Close(done) => closing = Some(done),
            }
            if closing.is_none() && replies.len() < MAX_BATCH {
                next = rx.try_recv().ok();
            }
        }
        // Job rows come steadily: wait a little for more, so that one flush and one commit
        // serve several of them.
        if closing.is_none() && items.iter().any(|i| i.flush.is_some()) {
            let deadline = tokio::time::Instant::now() + LINGER;
            while items.len() < LINGER_UNTIL {
                let m = tokio::select! {
                    m = rx.recv() => m,
                    _ = tokio::time::sleep_until(deadline) => break,
                };
                match m {
                    Some(Message::Append(item, reply)) => {
                        items.push(item);
                        replies.push(reply);
                    }
                    Some(Message::Close(done)) => {
                        closing = Some(done);
                        break;
                    }
                    None => break,
                }
            }
        }
        let (batch, replies) = flush_outputs(items, replies).await;
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

type Reply = oneshot::Sender<Result<Record, StoreError>>;

/// Flushes the output files `items` point into, once each; the items whose file could not
/// be flushed are answered with the error and left out of the batch. No reference to a file
/// is kept past its flush: a runner that ends closes its file only if nothing else holds it.
async fn flush_outputs(items: Vec<Item>, replies: Vec<Reply>) -> (Vec<Append>, Vec<Reply>) {
    let mut files: Vec<Arc<OutputFile>> = Vec::new();
    // Each record, with its file's index in `files`.
    let records: Vec<(Box<Append>, Option<usize>)> = items
        .into_iter()
        .map(|item| {
            let file = item.flush.map(|file| {
                files
                    .iter()
                    .position(|f| Arc::ptr_eq(f, &file))
                    .unwrap_or_else(|| {
                        files.push(file);
                        files.len() - 1
                    })
            });
            (item.append, file)
        })
        .collect();
    let flushed: Vec<Result<(), String>> = if files.is_empty() {
        Vec::new()
    } else {
        let n = files.len();
        tokio::task::spawn_blocking(move || {
            files
                .iter()
                .map(|f| f.flush().map_err(|e| e.to_string()))
                .collect()
        })
        .await
        // A flush that did not finish vouches for nothing.
        .unwrap_or_else(|join| vec![Err(join.to_string()); n])
    };
    let mut batch = Vec::with_capacity(records.len());
    let mut kept = Vec::with_capacity(records.len());
    for ((append, file), reply) in records.into_iter().zip(replies) {
        match file.and_then(|i| flushed[i].as_ref().err()) {
            Some(e) => {
                let e = format!("cannot flush the job's output file: {e}");
                let _ = reply.send(Err(StoreError::Unavailable(e)));
            }
            None => {
                batch.push(*append);
                kept.push(reply);
            }
        }
    }
    (batch, kept)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn item(
        n: u32,
        flush: Option<&Arc<OutputFile>>,
    ) -> (Item, Reply, oneshot::Receiver<Result<Record, StoreError>>) {
        let entry = crate::store::sqlite::tests::entry(n);
        let (reply, wait) = oneshot::channel();
        let item = Item {
            append: Box::new(Append {
                entry,
                change: Change::None,
            }),
            flush: flush.cloned(),
        };
        (item, reply, wait)
    }

    #[tokio::test]
    async fn a_batch_flushes_each_output_file_once_and_leaves_out_the_rows_of_a_file_that_failed() {
        let dir = tempfile::tempdir().expect("dir");
        let good = Arc::new(OutputFile::open(&dir.path().join("a/outputs.pdfs")).expect("open"));
        let bad = Arc::new(OutputFile::open(&dir.path().join("b/outputs.pdfs")).expect("open"));
        for f in [&good, &bad] {
            f.write(b"%PDF-row").expect("write");
        }
        bad.fail_flushes();
        let (mut items, mut replies, mut waits) = (Vec::new(), Vec::new(), Vec::new());
        for (n, file) in [
            (1, Some(&good)),
            (2, Some(&bad)),
            (3, None),
            (4, Some(&good)),
            (5, Some(&good)),
        ] {
            let (i, r, w) = item(n, file);
            items.push(i);
            replies.push(r);
            waits.push(w);
        }
        let (batch, kept) = flush_outputs(items, replies).await;
        assert_eq!(
            good.flushes(),
            1,
            "one flush for the three rows of one file"
        );
        let ids: Vec<_> = batch.iter().map(|a| a.entry.request_id.as_str()).collect();
        assert_eq!(ids, ["r1", "r3", "r4", "r5"]);
        assert_eq!(kept.len(), 4);
        // The row whose bytes are not known to be on disk is answered at once, and not kept.
        let refused = waits.remove(1).await.expect("answered");
        match refused {
            Err(StoreError::Unavailable(m)) => assert!(m.contains("flush"), "{m}"),
            other => panic!("expected a flush failure, got {other:?}"),
        }
    }
}

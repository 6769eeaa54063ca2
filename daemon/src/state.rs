//! What every request handler shares.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use seald_tsa_client::HttpTimestamper;
use tokio::sync::Semaphore;

use crate::audit::AuditLog;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::registry::{Keys, Registry};
use crate::spool::Spool;
use crate::store::Store;

#[derive(Debug)]
pub struct AppState {
    pub config: Config,
    pub store: Arc<dyn Store>,
    pub registry: Registry,
    pub keys: Arc<Keys>,
    pub audit: AuditLog,
    pub metrics: Metrics,
    pub spool: Spool,
    /// Kept responses for Idempotency-Key replays.
    pub responses_dir: PathBuf,
    pub timestamper: Option<Arc<HttpTimestamper>>,
    pub verify_roots: Vec<Vec<u8>>,
    /// Sign requests admitted in front of the token pools (limits.queue_depth).
    pub admission: Arc<Semaphore>,
    /// (application, Idempotency-Key) pairs being processed now.
    pub idempotency_in_flight: Mutex<HashSet<(String, String)>>,
    /// Governance changes run one at a time: each reads, decides and commits against one
    /// state (a seal's holders, the one official seal, a request's node…).
    pub governance: tokio::sync::Mutex<()>,
    /// Signing-password tries, one at a time per employee.
    pub password_tries: crate::password::Tries,
    /// Batch jobs' runners and their fill font.
    pub jobs: crate::jobs::Jobs,
}

/// Holds an Idempotency-Key while its request runs.
#[derive(Debug)]
pub struct KeyClaim<'a> {
    state: &'a AppState,
    pair: (String, String),
}

impl AppState {
    /// Claims `key` for `application`; `None` if a request with it is running now.
    pub fn claim_key(&self, application: &str, key: &str) -> Option<KeyClaim<'_>> {
        let pair = (application.to_owned(), key.to_owned());
        let fresh = self
            .idempotency_in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(pair.clone());
        fresh.then_some(KeyClaim { state: self, pair })
    }
}

impl Drop for KeyClaim<'_> {
    fn drop(&mut self) {
        self.state
            .idempotency_in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.pair);
    }
}

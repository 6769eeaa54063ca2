//! A per-token session pool that signs concurrently and heals itself.
//!
//! One login per token, kept alive by an *anchor* session (closing a token's last session logs
//! it out and invalidates key handles). Worker sessions are bounded and each is held for one
//! operation only. When a call fails in a way that means the token went away or lost its state
//! (session or object handle invalid, not logged in, device removed, …) the pool reconnects —
//! new sessions, login, keys found again — and retries once; requests arriving meanwhile wait
//! for that reconnection. If it does not work (the module may need `C_Finalize`/`C_Initialize`,
//! which it also tries) the pool turns *unavailable*: requests fail at once with
//! [`Error::TokenUnavailable`] while a background thread keeps reconnecting with exponential
//! backoff, so the pool recovers by itself when the token is back. A login the token refuses
//! (wrong or locked PIN, …) stops the pool: trying a wrong PIN again would lock a real token.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, Instant};

use cryptoki::error::RvError;
use cryptoki::mechanism::MechanismType;
use cryptoki::object::ObjectHandle;
use cryptoki::session::Session;
use cryptoki::slot::Slot;
use seald_signer::{SignError, SignatureAlgorithm, Signer};
use serde::Serialize;

use crate::error::{Error, PinRole, Result};
use crate::key::{self, KeyKind, KeySelector, PublicKey};
use crate::mechanism::{self, MechanismSet};
use crate::module::{Access, Module};
use crate::pin::Pin;
use crate::queue::{Dispatch, Queue};
use crate::slot::TokenSelector;

/// Pool settings.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// Worker sessions at most (the anchor session comes on top).
    pub max_sessions: usize,
    /// How long a request waits for a free session (or a reconnection in progress) before
    /// [`Error::PoolBusy`].
    pub acquire_timeout: Duration,
    /// First delay between background reconnection attempts; doubles up to `retry_max`.
    pub retry_initial: Duration,
    pub retry_max: Duration,
    /// While the token is simply absent, re-initialize the module (which disturbs every other
    /// pool on it) at most this often. A module that reports a token it cannot describe is
    /// re-initialized at once.
    pub module_reinit_interval: Duration,
    /// Mechanisms never to use on this token even though it offers them (a token with a broken
    /// implementation of one); seald then falls back to the raw mechanism.
    pub disabled_mechanisms: Vec<MechanismType>,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            max_sessions: 4,
            acquire_timeout: Duration::from_secs(5),
            retry_initial: Duration::from_millis(250),
            retry_max: Duration::from_secs(30),
            module_reinit_interval: Duration::from_secs(60),
            disabled_mechanisms: Vec::new(),
        }
    }
}

/// Whether the pool can sign now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum PoolHealth {
    Ready,
    /// The token is gone or failing; reconnection runs in the background.
    Unavailable {
        cause: String,
        attempts: u32,
    },
    /// The token refused the login; an operator must fix the configuration.
    Failed {
        cause: String,
    },
}

/// A snapshot for health checks and metrics.
#[derive(Debug, Clone, Serialize)]
pub struct PoolStatus {
    pub token: String,
    pub health: PoolHealth,
    pub sessions_open: usize,
    pub sessions_in_use: usize,
    pub max_sessions: usize,
    pub signatures: u64,
    pub failures: u64,
    pub reconnections: u64,
}

/// A session pool for one token. Clones share the pool.
#[derive(Clone)]
pub struct TokenPool {
    shared: Arc<Shared>,
}

impl fmt::Debug for TokenPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenPool")
            .field("token", &self.shared.token)
            .finish_non_exhaustive()
    }
}

struct Shared {
    module: Module,
    token: String,
    pin: Pin,
    config: PoolConfig,
    disabled: MechanismSet,
    state: Mutex<State>,
    /// Signalled when a session is returned, a reconnection ends or the health changes.
    changed: Condvar,
    /// One reconnection at a time. Lock order: `reconnecting`, then `state` or the module gate;
    /// `state` is never held across a PKCS#11 call.
    reconnecting: Mutex<()>,
    /// Shared with the background thread, which must not keep the pool alive.
    stop: Arc<(Mutex<bool>, Condvar)>,
    signatures: AtomicU64,
    failures: AtomicU64,
    reconnections: AtomicU64,
    /// Signature requests on their way to the signing threads.
    signing: Arc<SignQueue>,
}

/// A signature request handed to a signing thread: the key and the message.
type SignQueue = Queue<(Arc<KeySpec>, Vec<u8>), Result<Vec<u8>>>;

struct State {
    health: Health,
    conn: Option<Conn>,
    /// Bumped whenever `conn` is replaced; leases remember the generation they belong to.
    generation: u64,
    /// Idle worker sessions, all of `conn`'s module epoch.
    idle: Vec<Session>,
    /// Worker sessions of the current generation, idle or leased.
    open: usize,
    leased: usize,
    /// Requests waiting (so returning a session wakes somebody only if needed).
    waiting: usize,
    /// A reconnection is under way: requests wait for it rather than fail.
    connecting: bool,
    /// The background reconnection thread runs.
    reconnector: bool,
    /// Sessions of a dropped connection that could not be closed yet (the module was busy),
    /// with their module epoch: closed at the next connection if the epoch is still the same.
    orphans: Vec<(Session, u64)>,
}

enum Health {
    Ready,
    Unavailable {
        cause: String,
        attempts: u32,
        next_attempt: Instant,
    },
    Failed {
        error: Error,
    },
}

/// What one login to the token gives: valid for one module epoch.
struct Conn {
    epoch: u64,
    slot: Slot,
    anchor: Session,
    mechanisms: MechanismSet,
    /// Private key handles found in this connection, with the public key they had.
    keys: HashMap<KeySelector, (ObjectHandle, PublicKey)>,
}

/// How an attempt failed: worth reconnecting for, or not.
enum Failure {
    Reconnect { generation: u64, error: Error },
    Final(Error),
}

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        Failure::Final(error)
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// `now + d`, saturating instead of panicking on absurd durations.
fn after(d: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(d)
        .unwrap_or_else(|| now + Duration::from_secs(365 * 24 * 3600))
}

/// Return values that mean "the token, its login or our handles are gone": reconnect.
fn needs_reconnect(rv: RvError) -> bool {
    matches!(
        rv,
        RvError::SessionHandleInvalid
            | RvError::SessionClosed
            | RvError::UserNotLoggedIn
            | RvError::DeviceRemoved
            | RvError::DeviceError
            | RvError::TokenNotPresent
            | RvError::TokenNotRecognized
            | RvError::ObjectHandleInvalid
            | RvError::KeyHandleInvalid
            | RvError::SlotIdInvalid
            | RvError::CryptokiNotInitialized
            | RvError::GeneralError
    )
}

/// Return values after which only re-initializing the module may help.
fn module_is_stale(rv: RvError) -> bool {
    matches!(
        rv,
        RvError::GeneralError
            | RvError::CryptokiNotInitialized
            | RvError::DeviceError
            | RvError::DeviceRemoved
            | RvError::TokenNotRecognized
    )
}

fn is_reconnectable(error: &Error) -> bool {
    match error {
        Error::TokenNotFound { .. } | Error::NoTokenInSlot { .. } => true,
        other => other.return_value().is_some_and(needs_reconnect),
    }
}

/// Errors retrying cannot fix and must not repeat: every refused login counts towards
/// locking a real token's PIN.
fn is_operator_error(error: &Error) -> bool {
    match error {
        Error::PinIncorrect { .. }
        | Error::PinLocked { .. }
        | Error::PinLength { .. }
        | Error::PinRefused { .. }
        | Error::UserPinNotInitialized { .. }
        | Error::TokenNotInitialized { .. }
        | Error::TokenAmbiguous { .. } => true,
        Error::LoginFailed { failure, .. } => !needs_reconnect(failure.rv),
        _ => false,
    }
}

impl TokenPool {
    /// Opens a pool on the token labelled `token`: finds it, logs in once, and checks the
    /// mechanism list. Fails if the token is absent or the login is refused.
    pub fn open(module: &Module, token: &str, pin: Pin, config: PoolConfig) -> Result<Self> {
        let pool = Self::new(module, token, pin, config);
        {
            let _one = lock(&pool.shared.reconnecting);
            pool.shared.reconnect_locked(0)?;
        }
        Ok(pool)
    }

    /// Like [`TokenPool::open`], but a token that is merely unreachable (absent, unplugged)
    /// does not stop the caller: the pool starts unavailable and reconnects in the background,
    /// as after a token failure. A refused login or an ambiguous label still fails, since
    /// only an operator can fix those. For a service that must start and report readiness.
    pub fn open_lenient(
        module: &Module,
        token: &str,
        pin: Pin,
        config: PoolConfig,
    ) -> Result<Self> {
        let pool = Self::new(module, token, pin, config);
        let result = {
            let _one = lock(&pool.shared.reconnecting);
            pool.shared.reconnect_locked(0)
        };
        match result {
            Ok(()) => {}
            Err(error) if is_operator_error(&error) => return Err(error),
            Err(error) => {
                tracing::warn!(token, %error, "token not reachable at start; reconnecting in the background");
                pool.shared.spawn_reconnector();
            }
        }
        Ok(pool)
    }

    fn new(module: &Module, token: &str, pin: Pin, config: PoolConfig) -> Self {
        let shared = Arc::new(Shared {
            module: module.clone(),
            token: token.to_owned(),
            pin,
            disabled: config.disabled_mechanisms.iter().copied().collect(),
            config: PoolConfig {
                max_sessions: config.max_sessions.max(1),
                ..config
            },
            state: Mutex::new(State {
                health: Health::Ready,
                conn: None,
                generation: 0,
                idle: Vec::new(),
                open: 0,
                leased: 0,
                waiting: 0,
                connecting: false,
                reconnector: false,
                orphans: Vec::new(),
            }),
            changed: Condvar::new(),
            reconnecting: Mutex::new(()),
            stop: Arc::new((Mutex::new(false), Condvar::new())),
            signatures: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            reconnections: AtomicU64::new(0),
            signing: Arc::new(Queue::new(config.max_sessions)),
        });
        TokenPool { shared }
    }

    /// The token's label.
    pub fn token(&self) -> &str {
        &self.shared.token
    }

    /// Prepares a seal key for signing: finds it, checks it can sign with `algorithm` (or the
    /// key's default algorithm) on this token, and reads its certificate chain.
    pub fn key(
        &self,
        selector: KeySelector,
        algorithm: Option<SignatureAlgorithm>,
    ) -> Result<PoolKey> {
        let shared = &self.shared;
        let (info, public_key, chain, mechanisms) = shared.with_session(
            |conn| conn.mechanisms.clone(),
            |session, _generation, mechanisms| {
                let token = shared.token.as_str();
                let info = key::find_private_key(session, token, &selector)?;
                let public_key = key::find_public_key(session, token, &info.id, &info.label)?
                    .ok_or_else(|| Error::KeyUnusable {
                        token: token.to_owned(),
                        key: selector.clone(),
                        reason: "neither a public key object nor a certificate shares its CKA_ID"
                            .to_owned(),
                    })?;
                let chain = crate::cert::chain_for_key(session, token, &info.id, &public_key)?;
                Ok((info, public_key, chain, mechanisms))
            },
        )?;
        let unusable = |reason: String| Error::KeyUnusable {
            token: shared.token.clone(),
            key: selector.clone(),
            reason,
        };
        if !info.can_sign {
            return Err(unusable("its CKA_SIGN is false".to_owned()));
        }
        let algorithm = algorithm.unwrap_or_else(|| info.kind.default_algorithm());
        if !info.kind.supports(algorithm) {
            return Err(unusable(format!(
                "a {} key cannot sign {algorithm}",
                info.kind
            )));
        }
        if mechanism::plan(algorithm, &mechanisms, &shared.disabled).is_none() {
            return Err(Error::MechanismUnsupported {
                token: shared.token.clone(),
                algorithm: algorithm.to_string(),
                disabled: !shared.disabled.is_empty(),
            });
        }
        Ok(PoolKey {
            pool: self.clone(),
            spec: Arc::new(KeySpec {
                selector,
                algorithm,
                public_key,
            }),
            label: info.label,
            id: info.id,
            kind: info.kind,
            chain: chain.iter().map(|c| c.der().to_vec()).collect(),
        })
    }

    /// Health and counters.
    pub fn status(&self) -> PoolStatus {
        let shared = &self.shared;
        let state = lock(&shared.state);
        PoolStatus {
            token: shared.token.clone(),
            health: match &state.health {
                Health::Ready => PoolHealth::Ready,
                Health::Unavailable {
                    cause, attempts, ..
                } => PoolHealth::Unavailable {
                    cause: cause.clone(),
                    attempts: *attempts,
                },
                Health::Failed { error } => PoolHealth::Failed {
                    cause: error.to_string(),
                },
            },
            sessions_open: state.open,
            sessions_in_use: state.leased,
            max_sessions: shared.config.max_sessions,
            signatures: shared.signatures.load(Ordering::Relaxed),
            failures: shared.failures.load(Ordering::Relaxed),
            reconnections: shared.reconnections.load(Ordering::Relaxed),
        }
    }

    /// Waits until the pool is ready (or `timeout` passes); true if it is.
    pub fn wait_ready(&self, timeout: Duration) -> bool {
        let shared = &self.shared;
        let deadline = after(timeout);
        let mut state = lock(&shared.state);
        loop {
            match state.health {
                Health::Ready if state.conn.is_some() => return true,
                Health::Failed { .. } => return false,
                _ => {}
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            state = shared
                .changed
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}

impl Shared {
    /// Logs in to the token anew, replacing connection `generation`. `reconnecting` must be
    /// held. On failure the pool is unavailable (or failed, for a refused login).
    fn reconnect_locked(self: &Arc<Self>, generation: u64) -> Result<()> {
        lock(&self.state).connecting = true;
        self.drop_connection(generation);
        let result = self.connect_or_reinitialize();
        let mut state = lock(&self.state);
        state.connecting = false;
        self.changed.notify_all();
        match result {
            Ok(conn) => {
                state.conn = Some(conn);
                state.health = Health::Ready;
                Ok(())
            }
            Err(error) if is_operator_error(&error) => {
                tracing::error!(token = %self.token, %error, "token pool stopped: an operator must fix this");
                state.health = Health::Failed {
                    error: error.clone(),
                };
                Err(error)
            }
            Err(error) => {
                let attempts = match &state.health {
                    Health::Unavailable { attempts, .. } => attempts + 1,
                    _ => 1,
                };
                state.health = Health::Unavailable {
                    cause: error.to_string(),
                    attempts,
                    next_attempt: after(self.backoff(attempts)),
                };
                Err(error)
            }
        }
    }

    /// Connects; if the module looks stale (or, at most every `module_reinit_interval`, if the
    /// token is just not there), re-initializes the module and connects again.
    fn connect_or_reinitialize(&self) -> Result<Conn> {
        let epoch = self.module.epoch();
        let first = match self.connect() {
            Ok(conn) => return Ok(conn),
            Err(error) => error,
        };
        let stale = match &first {
            Error::TokenNotFound { unreadable, .. } if !unreadable.is_empty() => true,
            Error::TokenNotFound { .. } | Error::NoTokenInSlot { .. } => self
                .module
                .since_reinitialized()
                .is_none_or(|since| since >= self.config.module_reinit_interval),
            other if is_operator_error(other) => false,
            other => other.return_value().is_some_and(module_is_stale),
        };
        if !stale {
            return Err(first);
        }
        tracing::info!(token = %self.token, error = %first, "token not reachable; re-initializing the PKCS#11 module");
        match self.module.reinitialize(epoch) {
            Ok(()) => self.connect(),
            Err(reinit) => {
                tracing::warn!(token = %self.token, error = %reinit, "re-initialization failed");
                Err(first)
            }
        }
    }

    fn backoff(&self, attempts: u32) -> Duration {
        let factor = 1u32 << attempts.saturating_sub(1).min(16);
        self.config
            .retry_initial
            .checked_mul(factor)
            .unwrap_or(self.config.retry_max)
            .min(self.config.retry_max)
    }

    /// Forgets the current connection (if it is still `generation`), closing what can be closed.
    fn drop_connection(&self, generation: u64) {
        let (conn, idle) = {
            let mut state = lock(&self.state);
            if state.generation != generation {
                return;
            }
            state.generation += 1;
            state.open = 0;
            let idle = std::mem::take(&mut state.idle);
            (state.conn.take(), idle)
        };
        let Some(conn) = conn else { return };
        let mut sessions = idle;
        sessions.push(conn.anchor);
        match self.module.access() {
            // Sessions of an older module epoch must never be closed: their handle numbers may
            // now belong to somebody else's sessions.
            Ok(access) if access.epoch() == conn.epoch => {
                for session in sessions {
                    let _ = session.close();
                }
            }
            Ok(_) => {}
            Err(_) => lock(&self.state)
                .orphans
                .extend(sessions.into_iter().map(|s| (s, conn.epoch))),
        }
    }

    fn connect(&self) -> Result<Conn> {
        let access = self.module.access()?;
        let orphans = std::mem::take(&mut lock(&self.state).orphans);
        for (session, epoch) in orphans {
            if epoch == access.epoch() {
                let _ = session.close();
            }
        }
        let pkcs11 = access.pkcs11();
        let (slot, description) =
            crate::slot::find(&access, &TokenSelector::Label(self.token.clone()))?;
        let anchor = pkcs11
            .open_ro_session_no_drop(slot)
            .map_err(|e| Error::call(&self.token, e))?;
        if let Err(error) = crate::login::login(
            &anchor,
            &access,
            slot,
            &self.token,
            PinRole::User,
            &self.pin,
        ) {
            let _ = anchor.close();
            return Err(error);
        }
        let mechanisms = match pkcs11.get_mechanism_list(slot) {
            Ok(list) => list.into_iter().collect(),
            Err(e) => {
                let _ = anchor.close();
                return Err(Error::call(&self.token, e));
            }
        };
        tracing::info!(token = %self.token, slot = slot.id(), serial = %description.token.map(|t| t.serial).unwrap_or_default(), "logged in to token");
        Ok(Conn {
            epoch: access.epoch(),
            slot,
            anchor,
            mechanisms,
            keys: HashMap::new(),
        })
    }

    /// The error a request gets while the pool cannot sign.
    fn unavailable(&self, state: &State) -> Error {
        match &state.health {
            Health::Failed { error } => error.clone(),
            Health::Unavailable {
                cause,
                next_attempt,
                ..
            } => Error::TokenUnavailable {
                token: self.token.clone(),
                cause: cause.clone(),
                retry_in: next_attempt.saturating_duration_since(Instant::now()),
            },
            Health::Ready => Error::TokenUnavailable {
                token: self.token.clone(),
                cause: "reconnecting".to_owned(),
                retry_in: Duration::ZERO,
            },
        }
    }

    /// Runs `op` on a worker session, reconnecting and retrying once if the token lost state.
    /// `prepare` runs under the pool's lock when the session is taken and reads what `op`
    /// needs from the connection (cached key handles, mechanisms) without locking again.
    /// `op` gets the session and the connection generation it belongs to.
    fn with_session<P, T>(
        self: &Arc<Self>,
        prepare: impl Fn(&Conn) -> P,
        mut op: impl FnMut(&Session, u64, P) -> Result<T>,
    ) -> Result<T> {
        match self.attempt(&prepare, &mut op) {
            Ok(value) => Ok(value),
            Err(Failure::Final(error)) => Err(error),
            Err(Failure::Reconnect { generation, error }) => {
                tracing::warn!(token = %self.token, %error, "token call failed; reconnecting");
                self.reconnections.fetch_add(1, Ordering::Relaxed);
                if let Err(reconnect_error) = self.reconnect(generation) {
                    self.spawn_reconnector();
                    return Err(reconnect_error);
                }
                match self.attempt(&prepare, &mut op) {
                    Ok(value) => Ok(value),
                    Err(Failure::Final(error)) => Err(error),
                    Err(Failure::Reconnect { generation, error }) => {
                        // Reconnected but failing again: let the background thread take over.
                        self.mark_unavailable(generation, &error);
                        self.spawn_reconnector();
                        Err(self.unavailable(&lock(&self.state)))
                    }
                }
            }
        }
    }

    /// Reconnects unless somebody already replaced connection `generation`.
    fn reconnect(self: &Arc<Self>, generation: u64) -> Result<()> {
        let _one = lock(&self.reconnecting);
        {
            let state = lock(&self.state);
            if state.generation != generation {
                return match state.health {
                    Health::Ready => Ok(()),
                    _ => Err(self.unavailable(&state)),
                };
            }
        }
        self.reconnect_locked(generation).map_err(|error| {
            if is_operator_error(&error) {
                error
            } else {
                self.unavailable(&lock(&self.state))
            }
        })
    }

    fn mark_unavailable(&self, generation: u64, error: &Error) {
        let mut state = lock(&self.state);
        if state.generation == generation {
            state.health = Health::Unavailable {
                cause: error.to_string(),
                attempts: 1,
                next_attempt: after(self.config.retry_initial),
            };
            self.changed.notify_all();
        }
    }

    /// One try: lease a session, run `op`, return the session.
    fn attempt<P, T>(
        self: &Arc<Self>,
        prepare: &impl Fn(&Conn) -> P,
        op: &mut impl FnMut(&Session, u64, P) -> Result<T>,
    ) -> Result<T, Failure> {
        let (lease, session, prepared) = self.lease(prepare)?;
        match op(&session, lease.generation, prepared) {
            Ok(value) => {
                lease.release(session, true);
                Ok(value)
            }
            Err(error) if is_reconnectable(&error) => {
                let generation = lease.generation;
                lease.release(session, false);
                Err(Failure::Reconnect { generation, error })
            }
            Err(error) => {
                lease.release(session, true);
                Err(Failure::Final(error))
            }
        }
    }

    /// Takes an idle session or opens one, waiting up to `acquire_timeout` for a free one or
    /// for a reconnection in progress.
    fn lease<P>(
        self: &Arc<Self>,
        prepare: &impl Fn(&Conn) -> P,
    ) -> Result<(Lease<'_>, Session, P), Failure> {
        // Only a request that has to wait reads the clock.
        let mut deadline = None;
        let mut state = lock(&self.state);
        let (reuse, generation, slot, epoch, prepared) = loop {
            match &state.health {
                Health::Ready => {}
                Health::Unavailable { .. } => {
                    let error = self.unavailable(&state);
                    // Make sure somebody is bringing the token back.
                    let restart = !state.reconnector;
                    drop(state);
                    if restart {
                        self.spawn_reconnector();
                    }
                    return Err(Failure::Final(error));
                }
                Health::Failed { error } => return Err(Failure::Final(error.clone())),
            }
            match state.conn.as_ref() {
                Some(conn) if !state.idle.is_empty() || state.open < self.config.max_sessions => {
                    let (slot, epoch) = (conn.slot, conn.epoch);
                    let prepared = prepare(conn);
                    let reuse = state.idle.pop();
                    if reuse.is_none() {
                        state.open += 1;
                    }
                    break (reuse, state.generation, slot, epoch, prepared);
                }
                // Every session is in use: wait for one below.
                Some(_) => {}
                // Another request is logging in again: wait for it below.
                None if state.connecting => {}
                None => return Err(Failure::Final(self.unavailable(&state))),
            }
            let now = Instant::now();
            let deadline = *deadline.get_or_insert_with(|| after(self.config.acquire_timeout));
            if now >= deadline {
                return Err(Failure::Final(if state.conn.is_none() {
                    self.unavailable(&state)
                } else {
                    Error::PoolBusy {
                        token: self.token.clone(),
                        sessions: self.config.max_sessions,
                        waited: self.config.acquire_timeout,
                    }
                }));
            }
            state.waiting += 1;
            state = self
                .changed
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
            state.waiting -= 1;
        };
        state.leased += 1;
        drop(state);

        let access = match self.module.access() {
            Ok(access) => access,
            Err(error) => {
                // The module is stuck (another pool is re-initializing it): not our token's
                // fault, so no reconnection; the idle session goes back.
                self.give_back(generation, epoch, reuse, None, true);
                return Err(Failure::Final(error));
            }
        };
        let lease = Lease {
            shared: self,
            generation,
            epoch,
            access,
            done: false,
        };
        if lease.access.epoch() != epoch {
            // Another pool re-initialized the module: our sessions are gone, quietly. The
            // lease's drop forgets the old-epoch session without closing it.
            drop(reuse);
            return Err(Failure::Reconnect {
                generation,
                error: Error::TokenUnavailable {
                    token: self.token.clone(),
                    cause: "module re-initialized".to_owned(),
                    retry_in: Duration::ZERO,
                },
            });
        }
        let session = match reuse {
            Some(session) => session,
            None => match lease.access.pkcs11().open_ro_session_no_drop(slot) {
                Ok(session) => session,
                Err(e) => {
                    let error = Error::call(&self.token, e);
                    return Err(if is_reconnectable(&error) {
                        Failure::Reconnect { generation, error }
                    } else {
                        Failure::Final(error)
                    });
                }
            },
        };
        Ok((lease, session, prepared))
    }

    /// Puts a leased session back (`keep`) or closes it, and wakes a waiter if there is one.
    /// A session is closed only under an access of its own module epoch.
    fn give_back(
        &self,
        generation: u64,
        session_epoch: u64,
        session: Option<Session>,
        access: Option<&Access>,
        keep: bool,
    ) {
        let mut state = lock(&self.state);
        state.leased = state.leased.saturating_sub(1);
        let current = state.generation == generation;
        let wake = state.waiting > 0;
        let session = match session {
            Some(session) if current && keep => {
                state.idle.push(session);
                None
            }
            other => {
                if current {
                    state.open = state.open.saturating_sub(1);
                }
                other
            }
        };
        drop(state);
        if let (Some(session), Some(access)) = (session, access) {
            if access.epoch() == session_epoch {
                let _ = session.close();
            }
        }
        // One session came free (or one slot to open one): one waiter can use it. Waking them
        // all costs a context switch each for nothing, and they queue on the lock.
        if wake {
            self.changed.notify_one();
        }
    }

    /// Finds `key` on the token (once per connection; the handle is cached) and checks it is
    /// still the key the seal was loaded with.
    fn find_key(&self, session: &Session, generation: u64, key: &KeySpec) -> Result<ObjectHandle> {
        let info = key::find_private_key(session, &self.token, &key.selector)?;
        let public_key = key::find_public_key(session, &self.token, &info.id, &info.label)?
            .ok_or_else(|| Error::KeyNotFound {
                token: self.token.clone(),
                key: key.selector.clone(),
                what: "public key for the private key",
            })?;
        let same = public_key == key.public_key;
        let mut state = lock(&self.state);
        // Only into the connection the handle was found in.
        if state.generation == generation {
            if let Some(conn) = state.conn.as_mut() {
                conn.keys
                    .insert(key.selector.clone(), (info.handle, public_key));
            }
        }
        drop(state);
        if !same {
            return Err(self.key_changed(key));
        }
        Ok(info.handle)
    }

    fn key_changed(&self, key: &KeySpec) -> Error {
        Error::KeyUnusable {
            token: self.token.clone(),
            key: key.selector.clone(),
            reason: "the key on the token changed since the seal was loaded (was the token re-initialized?); reload the seal"
                .to_owned(),
        }
    }

    fn sign(self: &Arc<Self>, key: &KeySpec, message: &[u8]) -> Result<Vec<u8>> {
        let prepare = |conn: &Conn| {
            let cached = conn
                .keys
                .get(&key.selector)
                .map(|(handle, public_key)| (*handle, *public_key == key.public_key));
            let plan = mechanism::plan(key.algorithm, &conn.mechanisms, &self.disabled);
            (cached, plan)
        };
        let result = self.with_session(prepare, |session, generation, (cached, plan)| {
            let plan = plan.ok_or_else(|| Error::MechanismUnsupported {
                token: self.token.clone(),
                algorithm: key.algorithm.to_string(),
                disabled: !self.disabled.is_empty(),
            })?;
            let handle = match cached {
                Some((handle, true)) => handle,
                Some((_, false)) => return Err(self.key_changed(key)),
                None => self.find_key(session, generation, key)?,
            };
            let input = mechanism::input(plan, key.algorithm, message);
            let raw = session
                .sign(&mechanism::mechanism(plan, key.algorithm), handle, &input)
                .map_err(|e| Error::call(&self.token, e))?;
            mechanism::output(key.algorithm, raw)
        });
        match &result {
            Ok(_) => self.signatures.fetch_add(1, Ordering::Relaxed),
            Err(_) => self.failures.fetch_add(1, Ordering::Relaxed),
        };
        result
    }

    /// Starts the signing threads, one per session. Each holds the pool only while it
    /// signs, so dropping the pool ends them. If none can be started, every queued request
    /// is answered with the error (the next request to queue tries again).
    fn spawn_signers(self: &Arc<Self>) {
        let mut started = 0;
        let mut failure = None;
        for _ in 0..self.signing.threads() {
            let queue = self.signing.clone();
            let pool = Arc::downgrade(self);
            let spawned = std::thread::Builder::new()
                .name("seald-signer".to_owned())
                .spawn(move || {
                    queue.serve(|(key, message): (Arc<KeySpec>, Vec<u8>)| {
                        let Some(shared) = pool.upgrade() else {
                            return Err(Error::TaskFailed("the token pool was closed".to_owned()));
                        };
                        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                            shared.sign(&key, &message)
                        }))
                        .unwrap_or_else(|_| {
                            Err(Error::TaskFailed("the token call panicked".to_owned()))
                        })
                    })
                });
            match spawned {
                Ok(_) => started += 1,
                Err(error) => failure = Some(error),
            }
        }
        match failure {
            Some(error) if started == 0 => {
                tracing::error!(token = %self.token, %error, "cannot start the token's signing threads");
                let text = format!("cannot start the token's signing threads: {error}");
                self.signing
                    .threads_failed(|| Err(Error::TaskFailed(text.clone())));
            }
            Some(error) => {
                tracing::warn!(token = %self.token, %error, started, "not every signing thread could be started");
            }
            None => {}
        }
    }

    /// Starts the background reconnection thread unless it runs already.
    fn spawn_reconnector(self: &Arc<Self>) {
        {
            let mut state = lock(&self.state);
            if state.reconnector || !matches!(state.health, Health::Unavailable { .. }) {
                return;
            }
            state.reconnector = true;
        }
        let weak: Weak<Shared> = Arc::downgrade(self);
        let stop = self.stop.clone();
        let token = self.token.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("seald-reconnect-{token}"))
            .spawn(move || reconnect_in_background(weak, stop));
        if let Err(error) = spawned {
            // The next request tries again (see `lease`).
            tracing::error!(%token, %error, "cannot start the reconnection thread");
            lock(&self.state).reconnector = false;
        }
    }
}

fn reconnect_in_background(weak: Weak<Shared>, stop: Arc<(Mutex<bool>, Condvar)>) {
    /// Clears the running flag and says whether to stop, unless the pool is still
    /// unavailable (then returns the time to wait before the next attempt).
    fn still_needed(shared: &Shared) -> Option<Duration> {
        let mut state = lock(&shared.state);
        match &state.health {
            Health::Unavailable { next_attempt, .. } => {
                Some(next_attempt.saturating_duration_since(Instant::now()))
            }
            _ => {
                state.reconnector = false;
                None
            }
        }
    }

    loop {
        let wait = {
            let Some(shared) = weak.upgrade() else { return };
            match still_needed(&shared) {
                Some(wait) => wait,
                None => return,
            }
        };
        {
            let (stopped, signal) = &*stop;
            let guard = lock(stopped);
            let (guard, _) = signal
                .wait_timeout_while(guard, wait, |stopped| !*stopped)
                .unwrap_or_else(PoisonError::into_inner);
            if *guard {
                return;
            }
        }
        let Some(shared) = weak.upgrade() else { return };
        let _one = lock(&shared.reconnecting);
        // A request may have brought the token back while we waited.
        if still_needed(&shared).is_none() {
            return;
        }
        let generation = lock(&shared.state).generation;
        match shared.reconnect_locked(generation) {
            Ok(()) => tracing::info!(token = %shared.token, "token is back; pool ready"),
            Err(error) => tracing::debug!(token = %shared.token, %error, "token still unavailable"),
        }
        // The loop's check clears the flag once the pool is ready or failed.
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.signing.close();
        let (stopped, signal) = &*self.stop;
        *lock(stopped) = true;
        signal.notify_all();
        let generation = lock(&self.state).generation;
        self.drop_connection(generation);
    }
}

/// A worker session's loan: the connection generation and module epoch the session belongs
/// to, and the access it is used under. Returned with [`Lease::release`]; if the operation
/// panics, dropping the lease still gives the slot back (the session is then abandoned).
struct Lease<'a> {
    shared: &'a Shared,
    generation: u64,
    epoch: u64,
    access: Access,
    done: bool,
}

impl Lease<'_> {
    fn release(mut self, session: Session, keep: bool) {
        self.done = true;
        self.shared.give_back(
            self.generation,
            self.epoch,
            Some(session),
            Some(&self.access),
            keep,
        );
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.shared
                .give_back(self.generation, self.epoch, None, None, false);
        }
    }
}

/// A seal key in a pool: implements [`Signer`].
#[derive(Clone)]
pub struct PoolKey {
    pool: TokenPool,
    spec: Arc<KeySpec>,
    label: String,
    id: Vec<u8>,
    kind: KeyKind,
    chain: Vec<Vec<u8>>,
}

/// What a signing thread needs of a key: how to find it, that it is still the same key, and
/// the algorithm to sign with.
struct KeySpec {
    selector: KeySelector,
    algorithm: SignatureAlgorithm,
    public_key: PublicKey,
}

impl fmt::Debug for PoolKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolKey")
            .field("token", &self.pool.shared.token)
            .field("label", &self.label)
            .field("kind", &self.kind)
            .field("algorithm", &self.spec.algorithm)
            .finish_non_exhaustive()
    }
}

impl PoolKey {
    pub fn label(&self) -> &str {
        &self.label
    }

    pub fn id(&self) -> &[u8] {
        &self.id
    }

    pub fn kind(&self) -> KeyKind {
        self.kind
    }

    pub fn public_key(&self) -> &PublicKey {
        &self.spec.public_key
    }

    /// This key with `chain` (leaf first, DER) as its certificate chain instead of what the
    /// token holds: a seal registered together with its chain. The leaf must certify this key.
    pub fn with_certificate_chain(mut self, chain: Vec<Vec<u8>>) -> Result<Self> {
        use der::Decode;
        let unusable = |reason: String| Error::KeyUnusable {
            token: self.pool.shared.token.clone(),
            key: self.spec.selector.clone(),
            reason,
        };
        let leaf = chain
            .first()
            .ok_or_else(|| unusable("the certificate chain is empty".to_owned()))?;
        let cert = x509_cert::Certificate::from_der(leaf)
            .map_err(|e| unusable(format!("its certificate is not DER: {e}")))?;
        let key = PublicKey::from_spki(&cert.tbs_certificate.subject_public_key_info)?;
        if key != self.spec.public_key {
            return Err(unusable(
                "the certificate is for another key than the one on the token".to_owned(),
            ));
        }
        self.chain = chain;
        Ok(self)
    }

    /// Signs on the calling thread, or hands the call to the pool's signing threads if
    /// every session is busy (see `queue`); blocks until the signature is back.
    pub fn sign_blocking(&self, message: &[u8]) -> Result<Vec<u8>> {
        let shared = &self.pool.shared;
        let (pending, start_threads) = match shared
            .signing
            .submit(|| (self.spec.clone(), message.to_vec()))
        {
            Dispatch::Inline(_running) => return shared.sign(&self.spec, message),
            Dispatch::Queued {
                pending,
                start_threads,
            } => (pending, start_threads),
        };
        if start_threads {
            // On failure every queued request, this one too, is answered with the error.
            shared.spawn_signers();
        }
        pending
            .wait(after(shared.config.acquire_timeout))
            .unwrap_or_else(|| {
                Err(Error::PoolBusy {
                    token: shared.token.clone(),
                    sessions: shared.config.max_sessions,
                    waited: shared.config.acquire_timeout,
                })
            })
    }

    /// Signs on tokio's blocking pool, never on the async reactor.
    pub async fn sign_async(&self, message: Vec<u8>) -> Result<Vec<u8>> {
        let key = self.clone();
        tokio::task::spawn_blocking(move || key.sign_blocking(&message))
            .await
            .map_err(|e| Error::TaskFailed(e.to_string()))?
    }
}

impl Signer for PoolKey {
    fn algorithm(&self) -> SignatureAlgorithm {
        self.spec.algorithm
    }

    fn certificate_chain(&self) -> &[Vec<u8>] {
        &self.chain
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignError> {
        self.sign_blocking(message).map_err(SignError::from)
    }
}

//! Loading a PKCS#11 module, and the gate that lets it be re-initialized safely.
//!
//! A module is loaded once per process per path (PKCS#11 state is process-global). Some
//! modules never notice a token that comes back after being removed (SoftHSM2 keeps reporting
//! `CKR_GENERAL_ERROR` until `C_Finalize` + `C_Initialize`), and real HSM client libraries need
//! the same after a restart. Re-initializing is only safe when no thread is inside a call and no
//! old session handle is ever used again (handle numbers are reused), so every use of the module
//! goes through an [`Access`] that carries the module's *epoch*: re-initializing waits for all
//! accesses to end and starts a new epoch, and sessions remember the epoch they were opened in.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError, Weak};
use std::time::{Duration, Instant};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::slot::Slot;
use cryptoki_sys::CK_TOKEN_INFO;

use crate::error::{call_failure, Error, Result};
use crate::ffi::TokenInfoReader;
use crate::slot::{SlotDescription, TokenSelector};

/// A loaded, initialized PKCS#11 module. Cheap to clone; all clones share one library state.
#[derive(Clone, Debug)]
pub struct Module {
    inner: Arc<ModuleInner>,
}

#[derive(Debug)]
struct ModuleInner {
    path: PathBuf,
    pkcs11: Pkcs11,
    token_info: TokenInfoReader,
    gate: Mutex<GateState>,
    gate_changed: Condvar,
}

#[derive(Debug)]
struct GateState {
    /// Accesses in progress.
    readers: usize,
    /// A re-initialization is running or waiting; new accesses wait for it.
    reinitializing: bool,
    epoch: u64,
    /// False after a failed re-initialization: calls would fail with "not initialized".
    initialized: bool,
    last_reinitialized: Option<Instant>,
}

/// How long an access waits for a running re-initialization, and a re-initialization for the
/// accesses in progress, before giving up (a hung module call must not hang everyone).
const GATE_WAIT: Duration = Duration::from_secs(10);

fn registry() -> &'static Mutex<HashMap<PathBuf, Weak<ModuleInner>>> {
    static REGISTRY: OnceLock<Mutex<HashMap<PathBuf, Weak<ModuleInner>>>> = OnceLock::new();
    REGISTRY.get_or_init(Default::default)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing panics while holding these locks; if something did, the state is still coherent.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn init_args() -> CInitializeArgs {
    // OS locking is not optional: without it SoftHSM2 (and others) crash or corrupt the token
    // under concurrent use.
    CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)
}

impl Module {
    /// Loads and initializes the module at `path`, or returns the one this process already has.
    pub fn load(path: impl AsRef<Path>) -> Result<Module> {
        let path = path.as_ref();
        let canonical = std::fs::canonicalize(path).map_err(|e| Error::ModuleLoad {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        let mut registry = lock(registry());
        if let Some(inner) = registry.get(&canonical).and_then(Weak::upgrade) {
            return Ok(Module { inner });
        }
        let pkcs11 = Pkcs11::new(&canonical).map_err(|e| Error::ModuleLoad {
            path: path.to_owned(),
            reason: match e {
                CkError::LibraryLoading(inner) => inner.to_string(),
                other => other.to_string(),
            },
        })?;
        match pkcs11.initialize(init_args()) {
            Ok(()) => {}
            // Another loader in this process (not ours) initialized it: usable as is.
            Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
            Err(e) => {
                return Err(match call_failure(&e) {
                    Some(failure) => Error::ModuleInit {
                        path: path.to_owned(),
                        failure,
                    },
                    None => Error::ModuleLoad {
                        path: path.to_owned(),
                        reason: e.to_string(),
                    },
                })
            }
        }
        let token_info = TokenInfoReader::load(&canonical).map_err(|reason| Error::ModuleLoad {
            path: path.to_owned(),
            reason,
        })?;
        let inner = Arc::new(ModuleInner {
            path: canonical.clone(),
            pkcs11,
            token_info,
            gate: Mutex::new(GateState {
                readers: 0,
                reinitializing: false,
                epoch: 0,
                initialized: true,
                last_reinitialized: None,
            }),
            gate_changed: Condvar::new(),
        });
        registry.retain(|_, weak| weak.strong_count() > 0);
        registry.insert(canonical, Arc::downgrade(&inner));
        Ok(Module { inner })
    }

    /// The module's file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The module's self-description (manufacturer, library description, versions).
    pub fn library_description(&self) -> Result<String> {
        let access = self.access()?;
        let info = access
            .pkcs11()
            .get_library_info()
            .map_err(Error::module_call)?;
        Ok(format!(
            "{} {} (library {}.{}, Cryptoki {}.{})",
            info.manufacturer_id().trim(),
            info.library_description().trim(),
            info.library_version().major(),
            info.library_version().minor(),
            info.cryptoki_version().major(),
            info.cryptoki_version().minor(),
        ))
    }

    /// Every slot the module reports, with its token if one is present.
    pub fn slots(&self) -> Result<Vec<SlotDescription>> {
        let access = self.access()?;
        let slots = access
            .pkcs11()
            .get_all_slots()
            .map_err(Error::module_call)?;
        slots
            .into_iter()
            .map(|slot| SlotDescription::read(&access, slot))
            .collect()
    }

    /// Finds the slot holding the selected token.
    pub fn find_slot(&self, selector: &TokenSelector) -> Result<(Slot, SlotDescription)> {
        let access = self.access()?;
        crate::slot::find(&access, selector)
    }

    /// Starts an access: the module stays initialized in this epoch until it is dropped.
    pub(crate) fn access(&self) -> Result<Access> {
        let inner = &self.inner;
        let mut deadline = None;
        let mut gate = lock(&inner.gate);
        while gate.reinitializing {
            let now = Instant::now();
            let deadline = *deadline.get_or_insert(now + GATE_WAIT);
            if now >= deadline {
                return Err(Error::ModuleStuck {
                    path: inner.path.clone(),
                    what: "was being re-initialized",
                    waited: GATE_WAIT,
                });
            }
            gate = inner
                .gate_changed
                .wait_timeout(gate, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        gate.readers += 1;
        let epoch = gate.epoch;
        Ok(Access {
            module: self.inner.clone(),
            epoch,
        })
    }

    /// Finalizes and initializes the module again, unless that already happened since
    /// `seen_epoch`. Every session of the old epoch becomes invalid. The caller must hold no
    /// [`Access`] (it would wait for itself).
    pub(crate) fn reinitialize(&self, seen_epoch: u64) -> Result<()> {
        let inner = &self.inner;
        let stuck = |what| Error::ModuleStuck {
            path: inner.path.clone(),
            what,
            waited: GATE_WAIT,
        };
        let deadline = Instant::now() + GATE_WAIT;
        let mut gate = lock(&inner.gate);
        loop {
            if gate.epoch != seen_epoch && gate.initialized {
                // Somebody else re-initialized it meanwhile.
                return Ok(());
            }
            if !gate.reinitializing {
                break;
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(stuck("was being re-initialized"));
            }
            gate = inner
                .gate_changed
                .wait_timeout(gate, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        gate.reinitializing = true;
        while gate.readers > 0 {
            let now = Instant::now();
            if now >= deadline {
                gate.reinitializing = false;
                inner.gate_changed.notify_all();
                return Err(stuck(
                    "could not be re-initialized: calls in progress did not return",
                ));
            }
            gate = inner
                .gate_changed
                .wait_timeout(gate, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        let epoch = gate.epoch;
        // `reinitializing` keeps every access out; the lock itself is released so that a
        // module hanging in C_Initialize cannot block `epoch()` or the gate's timeouts.
        drop(gate);
        tracing::warn!(module = %inner.path.display(), epoch, "re-initializing PKCS#11 module");
        // C_Finalize may fail on a module in a bad state; C_Initialize is what matters.
        let _ = inner.pkcs11.clone().finalize();
        let result = match inner.pkcs11.initialize(init_args()) {
            Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => Ok(()),
            Err(e) => Err(match call_failure(&e) {
                Some(failure) => Error::ModuleInit {
                    path: inner.path.clone(),
                    failure,
                },
                None => Error::Wrapper(e.to_string()),
            }),
        };
        let mut gate = lock(&inner.gate);
        gate.initialized = result.is_ok();
        gate.epoch += 1;
        gate.last_reinitialized = Some(Instant::now());
        gate.reinitializing = false;
        inner.gate_changed.notify_all();
        result
    }

    /// How long ago this process last re-initialized the module (`None`: never).
    pub(crate) fn since_reinitialized(&self) -> Option<Duration> {
        lock(&self.inner.gate)
            .last_reinitialized
            .map(|at| at.elapsed())
    }

    /// The current epoch (changes with every re-initialization).
    pub(crate) fn epoch(&self) -> u64 {
        lock(&self.inner.gate).epoch
    }
}

impl Drop for ModuleInner {
    fn drop(&mut self) {
        // Last user gone: let the library release its resources.
        let _ = self.pkcs11.clone().finalize();
    }
}

/// Shared use of an initialized module within one epoch.
#[derive(Debug)]
pub(crate) struct Access {
    module: Arc<ModuleInner>,
    epoch: u64,
}

impl Access {
    pub(crate) fn pkcs11(&self) -> &Pkcs11 {
        &self.module.pkcs11
    }

    pub(crate) fn epoch(&self) -> u64 {
        self.epoch
    }

    /// `C_GetTokenInfo`, read without cryptoki's strict `utcTime` parsing (see `ffi`).
    pub(crate) fn token_info(&self, slot: Slot) -> Result<CK_TOKEN_INFO, CkError> {
        self.module.token_info.read(slot.id())
    }
}

impl Drop for Access {
    fn drop(&mut self) {
        let mut gate = lock(&self.module.gate);
        gate.readers -= 1;
        // Only a waiting re-initialization cares (and std's notify is a syscall even when
        // nobody waits: this runs once per signature).
        if gate.readers == 0 && gate.reinitializing {
            self.module.gate_changed.notify_all();
        }
    }
}

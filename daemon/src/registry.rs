//! What is registered, held in memory for every request and reloaded from the store after
//! each administrative change (so a disabled seal or application is refused by the very next
//! request); and the seal keys, prepared on their tokens on first use.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use seald_firmware_bridge::{Device, DeviceSigner, Error as DeviceError};
use seald_pades::SealImage;
use seald_pkcs11::{KeySelector, Module, Pin, PoolConfig, PoolKey, TokenPool};

use crate::config::{ConfigError, DeviceConfig, TokenConfig};
use crate::problem::{self, ApiError};
use crate::store::{ApplicationRow, SealRow, Store, StoreError};

#[derive(Debug)]
pub struct AppEntry {
    pub row: ApplicationRow,
    pub policy: seald_policy::Application,
}

#[derive(Debug)]
pub struct SealEntry {
    pub row: SealRow,
    pub policy: seald_policy::Seal,
}

#[derive(Debug, Default)]
pub struct Snapshot {
    pub by_fingerprint: HashMap<String, Arc<AppEntry>>,
    pub applications: BTreeMap<String, Arc<AppEntry>>,
    pub seals: BTreeMap<String, Arc<SealEntry>>,
    /// The organization, once the enterprise is set up.
    pub org: Option<Arc<seald_policy::Org>>,
    /// Configured approval flows by scenario.
    pub flows: HashMap<seald_policy::Scenario, seald_policy::Flow>,
    /// Registered templates by id.
    pub templates: BTreeMap<String, Arc<seald_policy::Template>>,
}

impl Snapshot {
    /// The flow for `scenario`: as configured, else seald-policy's default.
    pub fn flow(&self, scenario: seald_policy::Scenario) -> seald_policy::Flow {
        self.flows
            .get(&scenario)
            .cloned()
            .unwrap_or_else(|| seald_policy::Flow::default_for(scenario))
    }

    /// Every seal as policy sees it.
    pub fn seal_policies(&self) -> Vec<seald_policy::Seal> {
        self.seals.values().map(|s| s.policy.clone()).collect()
    }
}

#[derive(Debug, Default)]
pub struct Registry {
    current: RwLock<Arc<Snapshot>>,
    /// One reload at a time: a reload that read the store before a change cannot install its
    /// older state after that change's reload.
    reloading: tokio::sync::Mutex<()>,
}

impl Registry {
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub async fn reload(&self, store: &dyn Store) -> Result<(), StoreError> {
        let _one_at_a_time = self.reloading.lock().await;
        let apps = store.applications().await?;
        let seals = store.seals().await?;
        let mut snap = Snapshot {
            org: store.org().await?.map(Arc::new),
            flows: store
                .flows()
                .await?
                .into_iter()
                .map(|f| (f.scenario, f))
                .collect(),
            templates: store
                .templates()
                .await?
                .into_iter()
                .map(|t| (t.id.clone(), Arc::new(t)))
                .collect(),
            ..Snapshot::default()
        };
        for row in apps {
            let entry = Arc::new(AppEntry {
                policy: seald_policy::Application {
                    id: row.id.clone(),
                    enabled: row.enabled,
                    roles: row.roles.clone(),
                    seals: row.seals.clone(),
                    templates: row.templates.clone(),
                    acts_for_employees: row.acts_for_employees,
                    // Validated at registration; an unreadable stored one matches no partner.
                    partner: row
                        .partner
                        .as_deref()
                        .and_then(|c| seald_policy::CreditCode::parse(c).ok()),
                },
                row,
            });
            snap.by_fingerprint
                .insert(entry.row.fingerprint.clone(), entry.clone());
            snap.applications.insert(entry.row.id.clone(), entry);
        }
        for row in seals {
            let entry = Arc::new(SealEntry {
                policy: row.policy(),
                row,
            });
            snap.seals.insert(entry.row.id.clone(), entry);
        }
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(snap);
        Ok(())
    }
}

/// A seal ready to sign: its key (on a token or a serial device) with the registered chain,
/// and its image.
pub struct ReadySeal {
    pub key: Box<dyn seald_signer::Signer>,
    pub image: Option<SealImage>,
}

impl std::fmt::Debug for ReadySeal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadySeal")
            .field("algorithm", &self.key.algorithm())
            .finish()
    }
}

/// The configured tokens' pools, the serial signing devices, and the prepared seal keys.
#[derive(Debug)]
pub struct Keys {
    pools: BTreeMap<String, TokenPool>,
    devices: BTreeMap<String, Arc<Device>>,
    /// Seal id → (the registration it was prepared from, the prepared seal).
    prepared: Mutex<HashMap<String, (String, Arc<ReadySeal>)>>,
}

impl Keys {
    /// Opens a pool per configured token. PINs are read first, so that environment variables
    /// holding them can be removed before any thread starts. A token that is merely absent
    /// does not stop the daemon (it reconnects in the background and /readyz says so); a
    /// refused PIN does.
    pub fn open(tokens: &[TokenConfig], devices: &[DeviceConfig]) -> Result<Keys, ConfigError> {
        let devices = devices
            .iter()
            .enumerate()
            .map(|(i, d)| Ok((d.name.clone(), Arc::new(Device::new(d.bridge(i)?)))))
            .collect::<Result<BTreeMap<_, _>, ConfigError>>()?;
        let mut pins = Vec::new();
        for (i, t) in tokens.iter().enumerate() {
            let pin = match (&t.pin_file, &t.pin_env) {
                (Some(file), _) => Pin::from_file(file)
                    .map_err(|e| ConfigError::new(format!("token[{i}].pin_file"), e))?,
                (None, Some(var)) => {
                    let value = std::env::var(var).map_err(|_| {
                        ConfigError::new(
                            format!("token[{i}].pin_env"),
                            format!("${var} is not set"),
                        )
                    })?;
                    std::env::remove_var(var);
                    Pin::new(value).map_err(|_| {
                        ConfigError::new(format!("token[{i}].pin_env"), format!("${var} is empty"))
                    })?
                }
                (None, None) => {
                    return Err(ConfigError::new(
                        format!("token[{i}].pin_file"),
                        "no PIN source",
                    ))
                }
            };
            pins.push(pin);
        }
        let mut pools = BTreeMap::new();
        for ((i, t), pin) in tokens.iter().enumerate().zip(pins) {
            let module = Module::load(&t.module)
                .map_err(|e| ConfigError::new(format!("token[{i}].module"), e.to_string()))?;
            let pool = TokenPool::open_lenient(
                &module,
                &t.label,
                pin,
                PoolConfig {
                    max_sessions: t.sessions,
                    acquire_timeout: Duration::from_secs(t.acquire_timeout_seconds),
                    retry_max: Duration::from_secs(t.reconnect_max_seconds),
                    module_reinit_interval: Duration::from_secs(t.module_reinit_seconds),
                    ..PoolConfig::default()
                },
            )
            .map_err(|e| ConfigError::new(format!("token[{i}]"), e.to_string()))?;
            pools.insert(t.name.clone(), pool);
        }
        Ok(Keys {
            pools,
            devices,
            prepared: Mutex::new(HashMap::new()),
        })
    }

    pub fn pools(&self) -> impl Iterator<Item = (&String, &TokenPool)> {
        self.pools.iter()
    }

    pub fn devices(&self) -> impl Iterator<Item = (&String, &Arc<Device>)> {
        self.devices.iter()
    }

    pub fn pool(&self, name: &str) -> Option<&TokenPool> {
        self.pools.get(name)
    }

    /// A key by label on a configured token (blocking: it talks to the token).
    pub fn key(&self, token: &str, label: &str) -> Result<PoolKey, ApiError> {
        let pool = self.pool(token).ok_or_else(|| {
            ApiError::new(
                axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                "unknown_token",
                "Unknown token",
                format!("no [[token]] or [[device]] is named '{token}' in the configuration"),
            )
        })?;
        pool.key(KeySelector::Label(label.to_owned()), None)
            .map_err(problem::from_pkcs11)
    }

    /// Prepares `seal` for signing (blocking): its key, its registered chain (which must
    /// certify that key) and its image.
    pub fn prepare(&self, seal: &SealRow) -> Result<ReadySeal, ApiError> {
        let unusable = |code, detail: String| {
            ApiError::new(
                axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                code,
                "Seal unusable",
                detail,
            )
        };
        let chain = seald_pades::parse_certificates(seal.chain_pem.as_bytes())
            .map_err(|e| unusable("invalid_certificate", format!("the certificate chain: {e}")))?;
        let key: Box<dyn seald_signer::Signer> = match self.devices.get(&seal.token) {
            Some(device) => {
                let signer = DeviceSigner::new(device.clone(), chain)
                    .map_err(|e| unusable("seal_key_mismatch", e.to_string()))?;
                // The device must hold the certified key now (and at every signature).
                signer.check_device().map_err(|e| match e {
                    DeviceError::KeyMismatch => unusable(
                        "seal_key_mismatch",
                        format!(
                            "device '{}' holds another key than the seal's certificate",
                            seal.token
                        ),
                    ),
                    e => problem::from_sign_error(&e.into()),
                })?;
                Box::new(signer)
            }
            None => Box::new(
                self.key(&seal.token, &seal.key_label)?
                    .with_certificate_chain(chain)
                    .map_err(|e| unusable("seal_key_mismatch", e.to_string()))?,
            ),
        };
        let image = seal
            .image_png
            .as_deref()
            .map(SealImage::from_png)
            .transpose()
            .map_err(|e| unusable("invalid_image", e.to_string()))?;
        Ok(ReadySeal { key, image })
    }

    /// The prepared seal for the current registration of `seal` (blocking on first use).
    pub fn seal(&self, seal: &SealRow) -> Result<Arc<ReadySeal>, ApiError> {
        let version = format!("{}|{}|{}", seal.updated_at, seal.token, seal.key_label);
        if let Some((v, ready)) = self
            .prepared
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&seal.id)
        {
            if *v == version {
                return Ok(ready.clone());
            }
        }
        let ready = Arc::new(self.prepare(seal)?);
        self.prepared
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(seal.id.clone(), (version, ready.clone()));
        Ok(ready)
    }
}

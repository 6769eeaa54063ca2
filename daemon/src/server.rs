//! Wiring and lifecycle: open the store, start the audit writer and checkpointer, listen
//! (mTLS API, optional loopback plain listener), reload TLS on SIGHUP, and shut down
//! gracefully on SIGTERM/SIGINT: stop accepting, finish in-flight requests, write the
//! remaining audit records and a checkpoint, exit 0.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::{Extension, Router};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use seald_audit::{Decision, Entry};
use seald_tsa_client::HttpTimestamper;
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::Semaphore;

use crate::api;
use crate::audit::{AuditLog, Checkpointer};
use crate::config::Config;
use crate::metrics::Metrics;
use crate::registry::{Keys, Registry};
use crate::spool::Spool;
use crate::state::AppState;
use crate::store::sqlite::SqliteStore;
use crate::store::{ApplicationRow, Change, Store};
use crate::tls::{self, Peer, Tls};

/// What `main` prepared before the runtime started.
#[derive(Debug)]
pub struct Prepared {
    pub config: Config,
    pub tls: Tls,
    pub keys: Arc<Keys>,
    pub timestamper: Option<Arc<HttpTimestamper>>,
    pub verify_roots: Vec<Vec<u8>>,
}

fn io(what: &str, e: impl std::fmt::Display) -> String {
    format!("{what}: {e}")
}

pub async fn run(prepared: Prepared) -> Result<(), String> {
    let Prepared {
        config,
        tls,
        keys,
        timestamper,
        verify_roots,
    } = prepared;
    let data = &config.storage.data_dir;
    std::fs::create_dir_all(data)
        .map_err(|e| io(&format!("storage.data_dir {}", data.display()), e))?;
    let store: Arc<dyn Store> = Arc::new(
        SqliteStore::open(&config.database_path())
            .await
            .map_err(|e| e.to_string())?,
    );
    let spool = Spool::new(
        data.join("spool"),
        config.limits.memory_body_kib << 10,
        config.limits.memory_budget_mib << 20,
    )
    .map_err(|e| io("the spool directory", e))?;
    let responses_dir = data.join("responses");
    std::fs::create_dir_all(&responses_dir).map_err(|e| io("the responses directory", e))?;
    let metrics = Metrics::new().map_err(|e| io("metrics", e))?;
    let audit = AuditLog::start(store.clone());
    let registry = Registry::default();
    registry.reload(&*store).await.map_err(|e| e.to_string())?;
    bootstrap_admins(&config, &*store, &audit, &registry).await?;

    let listener = TcpListener::bind(config.server.listen)
        .await
        .map_err(|e| io(&format!("server.listen {}", config.server.listen), e))?;
    let plain = match config.server.plain_listen {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .map_err(|e| io(&format!("server.plain_listen {addr}"), e))?,
        ),
        None => None,
    };
    let state = Arc::new(AppState {
        admission: Arc::new(Semaphore::new(config.limits.queue_depth)),
        config: config.clone(),
        store: store.clone(),
        registry,
        keys: keys.clone(),
        audit: audit.clone(),
        metrics,
        spool,
        responses_dir: responses_dir.clone(),
        timestamper,
        verify_roots,
        idempotency_in_flight: Mutex::new(Default::default()),
        governance: tokio::sync::Mutex::new(()),
        password_tries: Default::default(),
        jobs: Default::default(),
    });
    let checkpointer = Checkpointer {
        store: store.clone(),
        keys,
        token: config.audit.token.clone(),
        label: config.audit.key.clone(),
    };
    let periodic = checkpointer.clone().spawn_periodic(Duration::from_secs(
        config.audit.checkpoint_interval_seconds,
    ));
    let expiry = spawn_expiry(state.clone());
    let job_expiry = crate::jobs::spawn_expiry(state.clone());
    // Jobs a restart interrupted go on where they stopped.
    if let Err(e) = crate::jobs::resume_all(&state).await {
        tracing::error!(error = %e, "cannot resume batch jobs");
    }

    let graceful = GracefulShutdown::new();
    let api_router = api::router(state.clone());
    let tls = Arc::new(tls);
    let mut terminate = signal(SignalKind::terminate()).map_err(|e| io("SIGTERM handler", e))?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(|e| io("SIGINT handler", e))?;
    let mut hangup = signal(SignalKind::hangup()).map_err(|e| io("SIGHUP handler", e))?;

    let api_addr = listener.local_addr().map_err(|e| io("listener", e))?;
    // Machine-readable for scripts and tests, which wait for these lines.
    println!("LISTENING https://{api_addr}");
    let plain_task = match plain {
        Some(l) => {
            let addr = l.local_addr().map_err(|e| io("plain listener", e))?;
            println!("LISTENING http://{addr}");
            Some(tokio::spawn(serve_plain(
                l,
                api::plain_router(state.clone()),
            )))
        }
        None => None,
    };
    tracing::info!(%api_addr, "seald is serving");

    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (tcp, remote) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = tcp.set_nodelay(true);
                let acceptor = tokio_rustls::TlsAcceptor::from(tls.current());
                let router = api_router.clone();
                let watcher = graceful.watcher();
                tokio::spawn(async move {
                    let stream = match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => {
                            tracing::info!(%remote, error = %e, "TLS handshake refused");
                            return;
                        }
                        Err(_) => return,
                    };
                    let peer = stream
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|c| c.first())
                        .and_then(|c| Peer::from_certificate(c));
                    let Some(peer) = peer else { return };
                    let service = TowerToHyperService::new(router.layer(Extension(peer)));
                    let conn = hyper::server::conn::http1::Builder::new()
                        .timer(TokioTimer::new())
                        .header_read_timeout(Duration::from_secs(30))
                        .keep_alive(true)
                        .serve_connection(TokioIo::new(stream), service);
                    let _ = watcher.watch(conn).await;
                });
            }
            _ = hangup.recv() => {
                match tls.reload(&config.server) {
                    Ok(()) => tracing::info!("TLS certificates, client CAs and CRLs reloaded"),
                    Err(e) => tracing::error!(error = %e, "TLS reload failed; keeping the running configuration"),
                }
            }
            _ = terminate.recv() => break,
            _ = interrupt.recv() => break,
        }
    }
    tracing::info!("shutting down: no new connections; finishing requests in flight");
    drop(listener);
    if let Some(t) = plain_task {
        t.abort();
    }
    let grace = config.request_timeout() + Duration::from_secs(5);
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("requests still running after {grace:?}; stopping anyway");
    }
    periodic.abort();
    expiry.abort();
    job_expiry.abort();
    audit.close().await;
    match checkpointer.checkpoint().await {
        Ok(Some(seq)) => tracing::info!(seq, "final audit checkpoint signed"),
        Ok(None) => {}
        Err(e) => tracing::error!(error = %e, "final audit checkpoint failed"),
    }
    drop(state);
    tracing::info!("seald stopped");
    Ok(())
}

async fn serve_plain(listener: TcpListener, router: Router) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let router = router.clone();
        tokio::spawn(async move {
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(30))
                .serve_connection(TokioIo::new(tcp), TowerToHyperService::new(router));
            let _ = conn.await;
        });
    }
}

/// Forgets kept responses older than limits.idempotency_hours, every ten minutes.
fn spawn_expiry(state: Arc<AppState>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(600));
        loop {
            tick.tick().await;
            let before =
                crate::clock::now_unix() - (state.config.limits.idempotency_hours as i64) * 3600;
            match state.store.expire_idempotency(before).await {
                Ok(paths) => {
                    for p in paths {
                        let _ = std::fs::remove_file(state.responses_dir.join(p));
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot expire kept responses"),
            }
        }
    })
}

/// Registers the configured bootstrap certificates as admin applications (once each).
async fn bootstrap_admins(
    config: &Config,
    store: &dyn Store,
    audit: &AuditLog,
    registry: &Registry,
) -> Result<(), String> {
    for path in &config.bootstrap.admin_certificates {
        let pem = std::fs::read_to_string(path)
            .map_err(|e| format!("bootstrap.admin_certificates: {}: {e}", path.display()))?;
        let fingerprint = tls::fingerprint_pem(&pem)
            .map_err(|e| format!("bootstrap.admin_certificates: {}: {e}", path.display()))?;
        if registry
            .snapshot()
            .by_fingerprint
            .contains_key(&fingerprint)
        {
            continue;
        }
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "admin".to_owned());
        let id: String = format!("bootstrap-{stem}")
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '-'
                }
            })
            .take(64)
            .collect();
        let now = crate::clock::now_rfc3339();
        let row = ApplicationRow {
            id: id.clone(),
            name: format!("bootstrap admin ({})", path.display()),
            fingerprint: fingerprint.clone(),
            certificate_pem: pem,
            roles: vec![seald_policy::AppRole::Admin],
            acts_for_employees: false,
            partner: None,
            seals: vec![],
            templates: None,
            enabled: true,
            created_at: now.clone(),
            updated_at: now.clone(),
        };
        let entry = Entry {
            time: now,
            principal: "seald".to_owned(),
            action: "application.register".to_owned(),
            seal: None,
            document_id: None,
            input_sha256: None,
            output_sha256: None,
            decision: Decision::Allowed,
            reason: None,
            request_id: crate::spool::random_id(),
            detail: Some(serde_json::json!({"application": id, "fingerprint": fingerprint, "roles": ["admin"], "bootstrap": true}).to_string()),
        };
        audit
            .append(entry, Change::PutApplication(row))
            .await
            .map_err(|e| e.to_string())?;
        tracing::info!(%id, "bootstrap admin application registered");
    }
    registry.reload(store).await.map_err(|e| e.to_string())
}

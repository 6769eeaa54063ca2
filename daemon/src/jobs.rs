//! Running batch jobs: each pending row is filled into the template, sealed with the
//! template's auto-sign seal in its signing area, written under the data dir, and marked
//! sealed in the transaction of its audit record — so a row is sealed at most once, and a job
//! interrupted at any moment (kill -9 included) resumes where it stopped. Policy decides each
//! row as the sign path decides an auto-sign request; a refusal stops the job with its code.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use seald_audit::{Decision, Entry};
use seald_pades::FillFont;
use serde_json::json;

use crate::config::Level;
use crate::problem::{self, ApiError};
use crate::signing::{place_in_area, sign_options, Plan, SignQuery};
use crate::spool;
use crate::state::AppState;
use crate::store::{Change, JobRecord, JobRow, JobRowStatus, JobStatus, StoreError};

/// Which jobs have a runner now, and the fill font (read once).
#[derive(Debug, Default)]
pub struct Jobs {
    running: Mutex<HashSet<String>>,
    font: OnceLock<Result<Arc<FillFont>, String>>,
}

impl Jobs {
    /// Whether job `id` has a runner now.
    pub fn is_running(&self, id: &str) -> bool {
        self.running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(id)
    }

    /// The configured fill font, or why it cannot be used.
    pub fn font(&self, state: &AppState) -> Result<Arc<FillFont>, ApiError> {
        let c = &state.config.jobs;
        self.font
            .get_or_init(|| {
                FillFont::open(&c.font, c.font_index)
                    .map(Arc::new)
                    .map_err(|e| format!("jobs.font {}: {e}", c.font.display()))
            })
            .clone()
            .map_err(|e| {
                ApiError::new(
                    axum::http::StatusCode::SERVICE_UNAVAILABLE,
                    "fill_font_unavailable",
                    "The fill font is unavailable",
                    e,
                )
            })
    }
}

/// Where a job's outputs go.
pub fn job_dir(state: &AppState, id: &str) -> PathBuf {
    state.config.storage.data_dir.join("jobs").join(id)
}

pub fn output_path(state: &AppState, id: &str, row: u64) -> PathBuf {
    job_dir(state, id).join(format!("{row:06}.pdf"))
}

/// Starts the runner of job `id` unless one runs.
pub fn start(state: Arc<AppState>, id: String) {
    let fresh = state
        .jobs
        .running
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(id.clone());
    if !fresh {
        return;
    }
    tokio::spawn(async move {
        if let Err(e) = run(&state, &id).await {
            tracing::error!(job = %id, error = %e.detail, "job runner failed");
            let _ = set_status(&state, &id, LIVE, JobStatus::Failed, Some(e.code)).await;
        }
        state
            .jobs
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&id);
        // Resumed while this runner was finishing: the new state needs a runner.
        if let Ok(Some(j)) = state.store.job(&id).await {
            if j.status.is_live() {
                start(state.clone(), id);
            }
        }
    });
}

/// At startup: running jobs resume; a job interrupted while its rows were being read cannot
/// know it read them all, and fails (upload it again).
pub async fn resume_all(state: &Arc<AppState>) -> Result<(), StoreError> {
    for j in state.store.jobs_in(JobStatus::Validating).await? {
        let _ = set_status(
            state,
            &j.id,
            &[JobStatus::Validating],
            JobStatus::Failed,
            Some("interrupted_while_validating"),
        )
        .await;
    }
    let mut live = state.store.jobs_in(JobStatus::Running).await?;
    live.extend(state.store.jobs_in(JobStatus::Paused).await?);
    for j in live {
        tracing::info!(job = %j.id, "resuming job");
        start(state.clone(), j.id);
    }
    Ok(())
}

fn entry(j: &JobRecord, action: &str, decision: Decision, reason: Option<&str>) -> Entry {
    Entry {
        time: crate::clock::now_rfc3339(),
        principal: j.spec.application.clone(),
        action: action.to_owned(),
        seal: None,
        document_id: None,
        input_sha256: None,
        output_sha256: None,
        decision,
        reason: reason.map(str::to_owned),
        request_id: format!("job:{}", j.id),
        detail: None,
    }
}

/// Moves job `id` to `status` from one of `from` (audited). `Ok(None)` when the job was no
/// longer in one of those (someone else changed it first: theirs stands).
pub async fn set_status(
    state: &AppState,
    id: &str,
    from: &[JobStatus],
    status: JobStatus,
    error: Option<&str>,
) -> Result<Option<JobRecord>, ApiError> {
    let mut j = state
        .store
        .job(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("there is no job '{id}'")))?;
    let now = crate::clock::now_unix();
    let mut e = entry(&j, "job.status", Decision::Allowed, None);
    e.detail = Some(json!({"job": id, "status": status, "error": error}).to_string());
    let change = Change::JobStatus {
        id: id.to_owned(),
        from: from.to_vec(),
        to: status,
        error: error.map(str::to_owned),
        now,
    };
    match state.audit.append(e, change).await {
        Ok(_) => {}
        Err(StoreError::Conflict(_)) => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    j.status = status;
    j.error = error.map(str::to_owned);
    j.updated_at = now;
    announce_end(state, &j).await;
    Ok(Some(j))
}

/// The states the runner moves a job from.
const LIVE: &[JobStatus] = &[JobStatus::Running, JobStatus::Paused];

/// A webhook URL a job may name: http or https, and a signing key configured.
pub fn check_webhook(state: &AppState, url: &str) -> Result<(), ApiError> {
    let ok = reqwest::Url::parse(url)
        .ok()
        .is_some_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
    if !ok {
        return Err(ApiError::bad_parameter(format!(
            "webhook must be an http or https URL, not '{url}'"
        )));
    }
    if state.config.jobs.webhook_secret_file.is_none() {
        return Err(ApiError::bad_parameter(
            "a job with a webhook needs jobs.webhook_secret_file configured (its bodies are signed)",
        ));
    }
    Ok(())
}

/// HMAC-SHA256 (RFC 2104) of `body` with `key`, hex.
pub fn hmac_sha256(key: &[u8], body: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| k.iter().map(|b| b ^ byte).collect::<Vec<u8>>();
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(body)
        .finalize();
    hex::encode(
        Sha256::new()
            .chain_update(pad(0x5c))
            .chain_update(inner)
            .finalize(),
    )
}

/// Announces the end of `j` to its webhook, if it names one.
pub async fn announce_end(state: &AppState, j: &JobRecord) {
    if let (true, Some(url)) = (j.status.is_end(), &j.spec.webhook) {
        announce(state, j, url.clone()).await;
    }
}

/// POSTs the job's end to its webhook (three tries, in the background); failures are logged.
async fn announce(state: &AppState, j: &JobRecord, url: String) {
    let Some(path) = state.config.jobs.webhook_secret_file.clone() else {
        return;
    };
    let counts = state.store.job_counts(&j.id).await.unwrap_or_default();
    let body = json!({
        "event": format!("job.{}", j.status.as_str()),
        "job": j.id, "status": j.status, "error": j.error, "template": j.spec.template,
        "rows": {"uploaded": j.spec.rows_uploaded, "valid": j.spec.rows_valid,
                 "invalid": counts.invalid, "sealed": counts.sealed, "pending": counts.pending},
    })
    .to_string();
    let event = format!("job.{}", j.status.as_str());
    let id = j.id.clone();
    tokio::task::spawn_blocking(move || {
        let key = match std::fs::read(&path) {
            Ok(k) => zeroize::Zeroizing::new(k),
            Err(e) => {
                tracing::error!(job = %id, error = %e, "cannot read jobs.webhook_secret_file");
                return;
            }
        };
        let signature = format!("sha256={}", hmac_sha256(key.trim_ascii(), body.as_bytes()));
        let client = reqwest::blocking::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .build();
        let Ok(client) = client else { return };
        for attempt in 1..=3u32 {
            let sent = client
                .post(&url)
                .header("Content-Type", "application/json")
                .header("Seald-Event", &event)
                .header("Seald-Signature", &signature)
                .body(body.clone())
                .send();
            match sent {
                Ok(r) if r.status().is_success() => {
                    tracing::info!(job = %id, %event, "webhook delivered");
                    return;
                }
                Ok(r) => {
                    tracing::warn!(job = %id, attempt, status = %r.status(), "webhook refused")
                }
                Err(e) => {
                    let e = e.without_url();
                    tracing::warn!(job = %id, attempt, error = %e, "webhook unreachable")
                }
            }
            std::thread::sleep(std::time::Duration::from_secs(u64::from(attempt)));
        }
        tracing::error!(job = %id, %event, "webhook not delivered after 3 tries");
    });
}

/// What stopped a row: policy (the job stops with the code) or a failure.
enum RowError {
    Refused(ApiError),
    Failed(ApiError),
}

async fn run(state: &Arc<AppState>, id: &str) -> Result<(), ApiError> {
    let font = state.jobs.font(state)?;
    let mut pdf: Option<(String, Arc<[u8]>)> = None;
    let mut after = 0u64;
    loop {
        let Some(j) = state.store.job(id).await? else {
            return Ok(());
        };
        if !j.status.is_live() {
            return Ok(());
        }
        let registry = state.registry.snapshot();
        let Some(template) = registry.templates.get(&j.spec.template).cloned() else {
            refuse(
                state,
                &j,
                None,
                &ApiError::governance(seald_policy::DenyCode::TemplateNotFound),
            )
            .await?;
            return Ok(());
        };
        // The template PDF, read once per version.
        if pdf
            .as_ref()
            .is_none_or(|(sha, _)| *sha != template.pdf_sha256)
        {
            let bytes = state
                .store
                .template_pdf(&template.pdf_sha256)
                .await?
                .ok_or_else(|| ApiError::internal("the template PDF is missing from the store"))?;
            pdf = Some((template.pdf_sha256.clone(), bytes.into()));
        }
        let Some((_, template_pdf)) = pdf.clone() else {
            return Ok(());
        };
        let concurrency = state.config.jobs.concurrency;
        let rows = state
            .store
            .job_rows(
                id,
                Some(JobRowStatus::Pending),
                after,
                (concurrency * 4) as u32,
            )
            .await?;
        let Some(last) = rows.last() else {
            if state.store.job_counts(id).await?.pending == 0 {
                set_status(state, id, LIVE, JobStatus::Completed, None).await?;
            }
            return Ok(());
        };
        after = last.row;
        for chunk in rows.chunks(concurrency) {
            let work = chunk.iter().map(|row| {
                seal_row(
                    state,
                    &j,
                    &template,
                    template_pdf.clone(),
                    font.clone(),
                    row,
                )
            });
            let mut tsa_down = false;
            let mut sealed_any = false;
            for outcome in futures_util::future::join_all(work).await {
                match outcome {
                    Ok(()) => sealed_any = true,
                    Err(RowError::Refused(e)) => {
                        refuse(state, &j, None, &e).await?;
                        return Ok(());
                    }
                    // The rows stay pending: the job waits for a TSA instead of failing them.
                    Err(RowError::Failed(e)) if e.code == "tsa_unavailable" => tsa_down = true,
                    Err(RowError::Failed(e)) => return Err(e),
                }
            }
            let now = state.store.job(id).await?;
            let Some(current) = now.filter(|j| j.status.is_live()) else {
                // Canceled (or stopped) meanwhile: no further row.
                return Ok(());
            };
            if tsa_down {
                if current.status != JobStatus::Paused {
                    tracing::warn!(job = %id, "no time-stamp authority answers: the job waits");
                    let paused = &[JobStatus::Running];
                    set_status(
                        state,
                        id,
                        paused,
                        JobStatus::Paused,
                        Some("tsa_unavailable"),
                    )
                    .await?;
                }
                tokio::time::sleep(state.config.jobs.tsa_retry()).await;
                // From the first pending row again.
                after = 0;
                break;
            }
            if sealed_any && current.status == JobStatus::Paused {
                tracing::info!(job = %id, "a time-stamp authority answers again: the job goes on");
                set_status(state, id, &[JobStatus::Paused], JobStatus::Running, None).await?;
            }
        }
    }
}

/// Stops the job with the code of a refusal (the refused attempt is audited).
async fn refuse(
    state: &AppState,
    j: &JobRecord,
    row: Option<&JobRow>,
    e: &ApiError,
) -> Result<(), ApiError> {
    let mut denied = entry(j, "sign", Decision::Denied, Some(e.code));
    denied.document_id = row.map(|r| r.document_id.clone());
    denied.detail = Some(json!({"job": j.id, "row": row.map(|r| r.row)}).to_string());
    state.audit.append(denied, Change::None).await?;
    state.metrics.denied(e.code);
    set_status(state, &j.id, LIVE, JobStatus::Stopped, Some(e.code)).await?;
    Ok(())
}

/// Fills, seals, writes and records one row.
async fn seal_row(
    state: &Arc<AppState>,
    j: &JobRecord,
    template: &seald_policy::Template,
    template_pdf: Arc<[u8]>,
    font: Arc<FillFont>,
    row: &JobRow,
) -> Result<(), RowError> {
    let failed = RowError::Failed;
    let registry = state.registry.snapshot();
    let app = registry
        .applications
        .get(&j.spec.application)
        .cloned()
        .ok_or_else(|| {
            RowError::Refused(ApiError::denied(
                seald_policy::DenyCode::ApplicationDisabled,
            ))
        })?;
    // The employee who started the job still may (resigned, or the authorization revoked:
    // the job stops at the next row).
    if let Some(org) = &registry.org {
        seald_policy::template::authorize_auto_sign(org, &j.spec.started_by)
            .map_err(|code| RowError::Refused(ApiError::denied(code)))?;
    }
    let seal_id = template.auto_sign_seal().unwrap_or_default().to_owned();
    let seal =
        registry.seals.get(&seal_id).cloned().ok_or_else(|| {
            RowError::Refused(ApiError::denied(seald_policy::DenyCode::SealNotFound))
        })?;
    let area = template.area(&j.spec.area).cloned().ok_or_else(|| {
        RowError::Refused(ApiError::denied(
            seald_policy::DenyCode::SigningAreaNotFound,
        ))
    })?;
    // Filled on a blocking thread; decided on the filled document (a contract approval, say,
    // is for that version); then sealed on a blocking thread, where the token signs.
    let values: BTreeMap<String, String> = row
        .values
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let fill = tokio::task::spawn_blocking(move || -> Result<Vec<u8>, ApiError> {
        if values.is_empty() {
            return Ok(template_pdf.to_vec());
        }
        let doc =
            seald_pades::Document::from_bytes(template_pdf).map_err(|e| problem::from_pades(&e))?;
        seald_pades::fill_document_to_vec(&doc, &font, &values)
            .map(|(_, bytes)| bytes)
            .map_err(|e| problem::from_pades(&e))
    });
    let filled = match fill.await {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(e)) => return Err(failed(e)),
        Err(join) => return Err(failed(ApiError::internal(join.to_string()))),
    };
    let filled_sha = spool::sha256(&filled);
    let decided = crate::api::decide_job_row(
        state,
        &app.policy,
        template,
        &j.spec.area,
        (&row.document_id, &filled_sha),
    )
    .await;
    let (permit, consumption) = match decided {
        Ok(d) => d,
        Err(e) if e.by_policy => return Err(RowError::Refused(e)),
        Err(e) => return Err(failed(e)),
    };
    let level = Level::parse(&j.spec.level).unwrap_or_default();
    let st = state.clone();
    let document_id = row.document_id.clone();
    let sign = tokio::task::spawn_blocking(move || -> Result<Vec<u8>, ApiError> {
        let ready = st.keys.seal(&seal.row)?;
        let mut query = SignQuery {
            document_id: Some(document_id),
            ..Default::default()
        };
        place_in_area(&mut query, &area)?;
        let plan = Plan { level, query };
        let timestamper = st
            .timestamper
            .as_deref()
            .map(|t| t as &dyn seald_pades::Timestamper);
        let options = sign_options(&ready, &plan, timestamper, false);
        let doc = seald_pades::Document::from_bytes(filled).map_err(|e| problem::from_pades(&e))?;
        seald_pades::sign_document_to_vec(&doc, &options)
            .map(|(_, bytes)| bytes)
            .map_err(|e| problem::from_pades(&e))
    });
    let signed = match sign.await {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(e)) => return Err(failed(e)),
        Err(join) => return Err(failed(ApiError::internal(join.to_string()))),
    };
    let path = output_path(state, &j.id, row.row);
    let output_sha = spool::sha256(&signed);
    write_durably(&path, &signed).await.map_err(|e| {
        failed(ApiError::internal(format!(
            "cannot write {}: {e}",
            path.display()
        )))
    })?;
    let mut e = entry(j, "sign", Decision::Allowed, None);
    e.seal = Some(seal_id);
    e.document_id = Some(row.document_id.clone());
    e.input_sha256 = Some(filled_sha);
    e.output_sha256 = Some(output_sha.clone());
    e.detail = Some(
        json!({
            "job": j.id, "row": row.row, "template_id": template.id, "area": j.spec.area,
            "level": j.spec.level, "started_by": j.spec.started_by,
            "permit": match permit {
                seald_policy::Permit::AutoSign { template } => format!("auto_sign:{template}"),
                other => format!("{other:?}"),
            },
        })
        .to_string(),
    );
    let mut changes = vec![Change::SealJobRow {
        job: j.id.clone(),
        row: row.row,
        output_sha256: output_sha,
        now: crate::clock::now_unix(),
    }];
    if let Some(c) = consumption.clone() {
        changes.push(Change::ConsumeLimits(Box::new(c)));
    }
    match state.audit.append(e, Change::Many(changes)).await {
        Ok(record) => {
            state.metrics.audit_head.set(record.seq as i64);
            let seal = template.auto_sign_seal().unwrap_or_default();
            state
                .metrics
                .signs
                .with_label_values(&[seal, "signed"])
                .inc();
            Ok(())
        }
        // A limit a concurrent request took: the job stops with the limit's code.
        Err(StoreError::Conflict(_)) if consumption.is_some() => {
            let code = match &consumption {
                Some(c) => crate::api::limit_reached(state, c).await,
                None => None,
            };
            let code = code.unwrap_or(seald_policy::DenyCode::ContractQuotaExhausted);
            Err(RowError::Refused(ApiError::denied(code)))
        }
        Err(e) => Err(failed(e.into())),
    }
}

/// Writes `bytes` to `path` through a temporary file, synced, then renamed: a committed row's
/// output is whole on disk.
async fn write_durably(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use tokio::io::AsyncWriteExt;
    if let Some(dir) = path.parent() {
        tokio::fs::create_dir_all(dir).await?;
    }
    let tmp = path.with_extension("pdf.tmp");
    let mut f = tokio::fs::File::create(&tmp).await?;
    f.write_all(bytes).await?;
    f.sync_all().await?;
    drop(f);
    tokio::fs::rename(&tmp, path).await
}

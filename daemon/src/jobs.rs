//! Running batch jobs: each pending row is filled into the template, sealed with the
//! template's auto-sign seal in its signing area, written under the data dir, and marked
//! sealed in the transaction of its audit record — so a row is sealed at most once, and a job
//! interrupted at any moment (kill -9 included) resumes where it stopped. Policy decides each
//! row as the sign path decides an auto-sign request; a refusal stops the job with its code.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
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

/// Which jobs have a runner now, their output files, and the fill font (read once).
#[derive(Debug, Default)]
pub struct Jobs {
    running: Mutex<HashSet<String>>,
    files: crate::outputs::OpenFiles,
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

/// Where jobs' outputs go: a directory per job.
fn jobs_dir(state: &AppState) -> PathBuf {
    state.config.storage.data_dir.join("jobs")
}

/// A sealed row's PDF, read back and checked against its recorded SHA-256.
pub async fn read_output(state: &AppState, id: &str, row: &JobRow) -> Result<Vec<u8>, ApiError> {
    let (Some(sha256), JobRowStatus::Sealed) = (row.output_sha256.clone(), row.status) else {
        return Err(ApiError::not_found(format!(
            "row {} of job {id} is not sealed",
            row.row
        )));
    };
    let dir = jobs_dir(state).join(id);
    let (extent, n) = (row.output, row.row);
    let read = tokio::task::spawn_blocking(move || match extent {
        Some(extent) => crate::outputs::read(&dir.join("outputs.pdfs"), extent, &sha256),
        // Sealed before outputs shared one file (migration 0010): checked the same way.
        None => std::fs::read(dir.join(format!("{n:06}.pdf"))).and_then(|bytes| {
            if spool::sha256(&bytes) == sha256 {
                Ok(bytes)
            } else {
                Err(std::io::Error::other(
                    "it does not match the recorded SHA-256",
                ))
            }
        }),
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))?;
    read.map_err(|e| ApiError::internal(format!("the output of row {n} is unreadable: {e}")))
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
        state.jobs.files.close(&id);
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

/// Deletes the jobs that ended more than `[jobs] keep_finished_seconds` ago, with their rows
/// and output files (audited: `job.expired`; the rows' own records stay). Returns how many.
pub async fn expire(state: &AppState) -> Result<usize, ApiError> {
    let before = crate::clock::now_unix()
        - i64::try_from(state.config.jobs.keep_finished_seconds).unwrap_or(i64::MAX);
    let mut expired = 0;
    for status in [
        JobStatus::Completed,
        JobStatus::Canceled,
        JobStatus::Stopped,
        JobStatus::Failed,
    ] {
        for j in state.store.jobs_in(status).await? {
            if j.updated_at >= before || state.jobs.is_running(&j.id) {
                continue;
            }
            let mut e = entry(&j, "job.expired", Decision::Allowed, None);
            e.detail = Some(
                json!({"job": j.id, "status": j.status, "updated_at": j.updated_at}).to_string(),
            );
            let change = Change::DeleteJob {
                id: j.id.clone(),
                before,
            };
            match state.audit.append(e, change).await {
                Ok(_) => {}
                // Resumed (or changed) meanwhile: kept.
                Err(StoreError::Conflict(_)) => continue,
                Err(e) => return Err(e.into()),
            }
            let dir = jobs_dir(state).join(&j.id);
            if let Err(e) = tokio::fs::remove_dir_all(&dir).await {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!(job = %j.id, error = %e, "cannot remove an expired job's outputs");
                }
            }
            tracing::info!(job = %j.id, "finished job expired");
            expired += 1;
        }
    }
    Ok(expired)
}

/// Runs [`expire`] at startup and then every quarter of the keeping time (at most every
/// ten minutes).
pub fn spawn_expiry(state: Arc<AppState>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let every = (state.config.jobs.keep_finished_seconds / 4).clamp(1, 600);
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(every));
        loop {
            tick.tick().await;
            if let Err(e) = expire(&state).await {
                tracing::warn!(error = %e.detail, "cannot expire finished jobs");
            }
        }
    })
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

/// Pending rows read from the store at a time.
const PAGE: u32 = 256;
/// How often the runner looks whether the job was canceled or stopped meanwhile.
const STATUS_EVERY: std::time::Duration = std::time::Duration::from_millis(250);

/// Why the runner stopped taking rows.
enum Halt {
    /// No time-stamp authority answers: the rows stay pending and the job waits.
    TsaDown,
    /// The job is no longer live (canceled, stopped).
    Gone,
}

async fn run(state: &Arc<AppState>, id: &str) -> Result<(), ApiError> {
    use futures_util::stream::{FuturesUnordered, StreamExt};
    let font = state.jobs.font(state)?;
    let mut pdf: Option<(String, Arc<[u8]>)> = None;
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
        // Rows go through in a pipeline: up to `concurrency` at once are being filled,
        // sealed (at most the token's sessions sign at a time), written or recorded, so the
        // token never waits for a disk or the store. Once something stops the job, no further
        // row starts, and those under way finish (each is recorded or stays pending).
        let concurrency = state.config.jobs.concurrency;
        let mut after = 0u64;
        let mut page = std::collections::VecDeque::new();
        let mut exhausted = false;
        // The next page is read while the rows of this one still run, so that the token
        // does not wait for the store every PAGE rows.
        let mut next_page: Option<tokio::task::JoinHandle<Result<Vec<JobRow>, StoreError>>> = None;
        let mut under_way = FuturesUnordered::new();
        let mut halt: Option<Halt> = None;
        let mut refusal: Option<ApiError> = None;
        let mut failure: Option<ApiError> = None;
        let mut sealed_any = false;
        let mut looked = std::time::Instant::now();
        loop {
            while halt.is_none() && refusal.is_none() && failure.is_none() {
                if under_way.len() >= concurrency {
                    break;
                }
                if page.len() <= concurrency && !exhausted && next_page.is_none() {
                    let (st, job) = (state.clone(), id.to_owned());
                    next_page = Some(tokio::spawn(async move {
                        st.store
                            .job_rows(&job, Some(JobRowStatus::Pending), after, PAGE)
                            .await
                    }));
                }
                if page.is_empty() {
                    let Some(reading) = next_page.take() else {
                        break;
                    };
                    let read = reading
                        .await
                        .unwrap_or_else(|e| Err(StoreError::Unavailable(e.to_string())));
                    // No `?` while rows are under way: they are drained first, so none goes
                    // on signing and writing without a runner.
                    let rows = match read {
                        Ok(rows) => rows,
                        Err(e) => {
                            failure = Some(e.into());
                            break;
                        }
                    };
                    exhausted = rows.len() < PAGE as usize;
                    if let Some(last) = rows.last() {
                        after = last.row;
                    }
                    page.extend(rows);
                }
                let Some(row) = page.pop_front() else { break };
                under_way.push(seal_row(
                    state,
                    &j,
                    &template,
                    template_pdf.clone(),
                    font.clone(),
                    row,
                ));
            }
            let Some(outcome) = under_way.next().await else {
                break;
            };
            match outcome {
                Ok(()) => sealed_any = true,
                Err(RowError::Refused(e)) => refusal = refusal.or(Some(e)),
                // The rows stay pending: the job waits for a TSA instead of failing them.
                Err(RowError::Failed(e)) if e.code == "tsa_unavailable" => {
                    halt = Some(Halt::TsaDown)
                }
                Err(RowError::Failed(e)) => failure = failure.or(Some(e)),
            }
            if halt.is_none() && looked.elapsed() >= STATUS_EVERY {
                looked = std::time::Instant::now();
                let live = match state.store.job(id).await {
                    Ok(j) => j.filter(|j| j.status.is_live()),
                    Err(e) => {
                        failure = failure.or(Some(e.into()));
                        continue;
                    }
                };
                match live {
                    None => halt = Some(Halt::Gone),
                    Some(current) if sealed_any && current.status == JobStatus::Paused => {
                        tracing::info!(job = %id, "a time-stamp authority answers again: the job goes on");
                        let resumed =
                            set_status(state, id, &[JobStatus::Paused], JobStatus::Running, None)
                                .await;
                        if let Err(e) = resumed {
                            failure = failure.or(Some(e));
                        }
                    }
                    Some(_) => {}
                }
            }
        }
        if let Some(e) = refusal {
            refuse(state, &j, None, &e).await?;
            return Ok(());
        }
        if let Some(e) = failure {
            return Err(e);
        }
        match halt {
            Some(Halt::Gone) => return Ok(()),
            Some(Halt::TsaDown) => {
                let current = state.store.job(id).await?;
                let Some(current) = current.filter(|j| j.status.is_live()) else {
                    return Ok(());
                };
                if current.status != JobStatus::Paused {
                    tracing::warn!(job = %id, "no time-stamp authority answers: the job waits");
                    let running = &[JobStatus::Running];
                    set_status(
                        state,
                        id,
                        running,
                        JobStatus::Paused,
                        Some("tsa_unavailable"),
                    )
                    .await?;
                }
                tokio::time::sleep(state.config.jobs.tsa_retry()).await;
            }
            None => {
                if state.store.job_counts(id).await?.pending == 0 {
                    set_status(state, id, LIVE, JobStatus::Completed, None).await?;
                    return Ok(());
                }
                // Rows still pending (a resumed job's, say): from the first again.
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
    row: JobRow,
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
    let values: BTreeMap<String, String> = row
        .values
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let (jobs_at, job_id) = (jobs_dir(state), j.id.clone());
    let level = Level::parse(&j.spec.level).unwrap_or_default();
    let (st, handle) = (state.clone(), tokio::runtime::Handle::current());
    let (policy, tpl, area_id) = (app.policy.clone(), template.clone(), j.spec.area.clone());
    let document_id = row.document_id.clone();
    // Filled, decided on the filled document (a contract approval, say, is for that
    // version), sealed, hashed and written durably, all on one blocking thread: every hop
    // between threads costs the token a share of a core.
    let work = tokio::task::spawn_blocking(move || -> Result<_, RowError> {
        let failed = RowError::Failed;
        let pades = |e: seald_pades::Error| failed(problem::from_pades(&e));
        let filled = if values.is_empty() {
            template_pdf.to_vec()
        } else {
            let doc = seald_pades::Document::from_bytes(template_pdf).map_err(pades)?;
            seald_pades::fill_document_to_vec(&doc, &font, &values)
                .map_err(pades)?
                .1
        };
        let filled_sha = spool::sha256(&filled);
        let decided = handle.block_on(crate::api::decide_job_row(
            &st,
            &policy,
            &tpl,
            &area_id,
            (&document_id, &filled_sha),
        ));
        let (permit, consumption) = match decided {
            Ok(d) => d,
            Err(e) if e.by_policy => return Err(RowError::Refused(e)),
            Err(e) => return Err(failed(e)),
        };
        let ready = st.keys.seal(&seal.row).map_err(failed)?;
        let mut query = SignQuery {
            document_id: Some(document_id),
            ..Default::default()
        };
        place_in_area(&mut query, &area).map_err(failed)?;
        let plan = Plan { level, query };
        let timestamper = st
            .timestamper
            .as_deref()
            .map(|t| t as &dyn seald_pades::Timestamper);
        let options = sign_options(&ready, &plan, timestamper, false);
        let doc = seald_pades::Document::from_bytes(filled).map_err(pades)?;
        let (_, signed) = seald_pades::sign_document_to_vec(&doc, &options).map_err(pades)?;
        let outputs = st.jobs.files.get(&jobs_at, &job_id).map_err(|e| {
            failed(ApiError::internal(format!(
                "cannot open the job's output file: {e}"
            )))
        })?;
        // Flushed by the audit writer, once for all the rows of its batch.
        let extent = outputs.write(&signed).map_err(|e| {
            failed(ApiError::internal(format!(
                "cannot write the job's output file: {e}"
            )))
        })?;
        Ok((
            permit,
            consumption,
            filled_sha,
            spool::sha256(&signed),
            (outputs, extent),
        ))
    });
    let (permit, consumption, filled_sha, output_sha, (outputs, extent)) = match work.await {
        Ok(done) => done?,
        Err(join) => return Err(failed(ApiError::internal(join.to_string()))),
    };
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
    let sealed = Change::SealJobRow {
        job: j.id.clone(),
        row: row.row,
        output_sha256: output_sha,
        output: extent,
        now: crate::clock::now_unix(),
    };
    // A row that consumes no limit goes in with the batch's other rows in one statement.
    let change = match consumption.clone() {
        Some(c) => Change::Many(vec![sealed, Change::ConsumeLimits(Box::new(c))]),
        None => sealed,
    };
    match state.audit.append_after_flush(e, change, outputs).await {
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

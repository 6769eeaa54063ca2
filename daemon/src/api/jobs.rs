//! Batch jobs over HTTP: upload a template's rows as CSV or XLSX (every row checked before
//! anything is sealed), follow the job, cancel or resume it, read the per-row results and download the
//! sealed PDFs. The rows are sealed by `crate::jobs`.

use std::collections::BTreeMap;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use seald_policy::{fill, template, DenyCode};
use serde::Deserialize;
use serde_json::{json, Value};

use super::governance::Acting;
use super::{Caller, PeerExt, St};
use crate::jobs;
use crate::problem::ApiError;
use crate::rows;
use crate::spool::Content;
use crate::state::AppState;
use crate::store::{Change, JobRecord, JobRow, JobRowStatus, JobSpec, JobStatus};

/// Rows are stored this many at a time while a file is read.
const BATCH: usize = 1000;
/// At most this many invalid rows are listed in the upload's answer (all are in the results).
const LISTED: usize = 100;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobQuery {
    template_id: String,
    /// The template's signing area (default: its first area fitting the auto-sign seal).
    area: Option<String>,
    level: Option<String>,
    /// The column naming each row's document id (default `document_id` when there is one).
    document_id_column: Option<String>,
    /// An http(s) URL told of the job's end (a POST signed with HMAC-SHA256).
    webhook: Option<String>,
    /// How each row's PDF is named: a pattern of `{document_id}`, `{row}` and `{FIELD}` (a
    /// template field's value); default `{document_id}`.
    output_name: Option<String>,
    /// An XLSX workbook's sheet holding the rows (default: its first sheet).
    sheet: Option<String>,
}

/// A rows file that cannot be read on.
impl From<rows::FileError> for ApiError {
    fn from(e: rows::FileError) -> Self {
        unprocessable(e.code, e.detail)
    }
}

fn unprocessable(code: &'static str, detail: impl Into<String>) -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        code,
        "Invalid rows file",
        detail,
    )
}

/// `POST /v1/jobs?template_id=…`: body the rows as CSV (`text/csv`) or an XLSX workbook, a
/// header row naming the fields. Answers 201 with the validation report and starts sealing the
/// valid rows.
pub async fn create(
    State(state): St,
    axum::Extension(peer): PeerExt,
    Query(q): Query<JobQuery>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    const ACTION: &str = "job.create";
    let caller = Caller::new(&state, peer);
    let act = match Acting::begin(&state, caller, &headers, ACTION).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let result = create_job(&state, &act, q, &headers, body).await;
    match result {
        Ok(r) => r,
        Err(e) => act.finish(&state, ACTION, Err(e)).await,
    }
}

async fn create_job(
    state: &std::sync::Arc<AppState>,
    act: &Acting,
    q: JobQuery,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let t = act
        .caller
        .registry
        .templates
        .get(&q.template_id)
        .cloned()
        .ok_or_else(|| ApiError::governance(DenyCode::TemplateNotFound))?;
    act.policy(template::may_start_job(&act.org, &act.employee, &t))?;
    let seal_kind = t
        .auto_sign_seal()
        .and_then(|s| act.caller.registry.seals.get(s))
        .map(|s| s.policy.kind);
    let area = match &q.area {
        Some(a) => t
            .area(a)
            .ok_or_else(|| ApiError::governance(DenyCode::SigningAreaNotFound))?,
        None => t
            .areas
            .iter()
            .find(|a| !a.page_seal && (a.seal_type.is_none() || a.seal_type == seal_kind))
            .ok_or_else(|| ApiError::governance(DenyCode::SealTypeMismatch))?,
    }
    .id
    .clone();
    let level = crate::signing::level(state, q.level.as_deref())?;
    let font = state.jobs.font(state)?;
    if let Some(url) = &q.webhook {
        crate::jobs::check_webhook(state, url)?;
    }
    if let Some(pattern) = &q.output_name {
        check_output_name(pattern, &t)?;
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase());
    let format = content_type
        .as_deref()
        .and_then(rows::Format::from_media_type)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "Unsupported media type",
                format!(
                    "send the rows as CSV (Content-Type: text/csv) or as an XLSX workbook \
                     (Content-Type: {})",
                    rows::XLSX_MEDIA_TYPE
                ),
            )
        })?;
    if q.sheet.is_some() && format != rows::Format::Xlsx {
        return Err(ApiError::bad_parameter(
            "sheet= names a sheet of an XLSX workbook; these rows are CSV",
        ));
    }
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let received = state
        .spool
        .receive(body, declared, state.config.max_body())
        .await?;
    let now = crate::clock::now_unix();
    let id = format!("job-{}", crate::spool::random_id());
    let mut job = JobRecord {
        id: id.clone(),
        spec: JobSpec {
            template: t.id.clone(),
            area,
            level: if level == crate::config::Level::BT {
                "b-t"
            } else {
                "b-b"
            }
            .to_owned(),
            started_by: act.employee.clone(),
            application: act.caller.principal(),
            rows_uploaded: 0,
            rows_valid: 0,
            rows_invalid: 0,
            webhook: q.webhook.clone(),
            output_name: q.output_name.clone(),
        },
        status: JobStatus::Validating,
        error: None,
        created_at: now,
        updated_at: now,
    };
    act.commit(
        state,
        "job.create",
        t.auto_sign_seal(),
        json!({"job": id, "template": t.id, "input_sha256": received.sha256}),
        Change::PutJob(Box::new(job.clone())),
    )
    .await?;
    // Reading and checking the rows (a workbook's sheet can be a gigabyte of XML) runs on a
    // blocking thread, which stores each batch of rows from there: never on the async workers.
    let sheet = q.sheet.clone();
    let source = match &received.content {
        Content::Memory { bytes, .. } => Ok(bytes.clone()),
        Content::File(f) => Err(f.path().to_owned()),
    };
    let (st, handle) = (state.clone(), tokio::runtime::Handle::current());
    let (reading, template, fill_font) = (job.clone(), t.clone(), font.clone());
    let id_column = q.document_id_column.clone();
    let read = tokio::task::spawn_blocking(move || -> Result<_, ApiError> {
        let input = match source {
            Ok(bytes) => rows::open(format, std::io::Cursor::new(bytes), sheet.as_deref())?,
            Err(path) => {
                let file = std::fs::File::open(&path).map_err(|e| {
                    ApiError::internal(format!("cannot read the spooled rows: {e}"))
                })?;
                rows::open(format, std::io::BufReader::new(file), sheet.as_deref())?
            }
        };
        read_rows(
            &st,
            &handle,
            &reading,
            &template,
            &fill_font,
            id_column.as_deref(),
            input,
        )
    })
    .await
    .unwrap_or_else(|e| Err(ApiError::internal(format!("reading the rows failed: {e}"))));
    let report = match read {
        Ok(r) => r,
        Err(e) => {
            let validating = &[JobStatus::Validating];
            let _ = jobs::set_status(state, &id, validating, JobStatus::Failed, Some(e.code)).await;
            return Err(e);
        }
    };
    job.spec.rows_uploaded = report.uploaded;
    job.spec.rows_valid = report.uploaded - report.invalid.len() as u64 - report.more_invalid;
    job.spec.rows_invalid = report.invalid.len() as u64 + report.more_invalid;
    job.status = if job.spec.rows_valid == 0 {
        JobStatus::Completed
    } else {
        JobStatus::Running
    };
    job.updated_at = crate::clock::now_unix();
    let detail = json!({
        "job": id, "status": job.status, "rows_uploaded": job.spec.rows_uploaded,
        "rows_valid": job.spec.rows_valid, "rows_invalid": job.spec.rows_invalid,
    });
    act.commit(
        state,
        "job.start",
        t.auto_sign_seal(),
        detail,
        Change::PutJob(Box::new(job.clone())),
    )
    .await?;
    if job.status == JobStatus::Running {
        jobs::start(state.clone(), id.clone());
    } else {
        jobs::announce_end(state, &job).await;
    }
    let body = json!({
        "id": id, "status": job.status, "template": t.id, "area": job.spec.area, "level": job.spec.level,
        "rows": {"uploaded": job.spec.rows_uploaded, "valid": job.spec.rows_valid, "invalid": job.spec.rows_invalid},
        "invalid_rows": report.invalid,
    });
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

struct Report {
    uploaded: u64,
    /// The first invalid rows, with their errors.
    invalid: Vec<Value>,
    /// Invalid rows beyond those listed.
    more_invalid: u64,
}

/// Reads and checks every row, storing them as it goes (a batch at a time: memory stays flat).
/// Blocking: runs on a blocking thread, and stores through `handle`.
fn read_rows(
    state: &AppState,
    handle: &tokio::runtime::Handle,
    job: &JobRecord,
    t: &seald_policy::Template,
    font: &seald_pades::FillFont,
    id_column: Option<&str>,
    mut input: Box<dyn rows::Rows + Send + '_>,
) -> Result<Report, ApiError> {
    let header: Vec<String> = input.header().to_vec();
    let mut names = std::collections::HashSet::new();
    if let Some(twice) = header.iter().find(|h| !names.insert(h.as_str())) {
        return Err(unprocessable(
            "duplicate_column",
            format!("two columns are named '{twice}'"),
        ));
    }
    let id_column = id_column.map(str::to_owned).or_else(|| {
        header
            .iter()
            .any(|h| h == "document_id")
            .then(|| "document_id".to_owned())
    });
    for h in &header {
        if Some(h) != id_column.as_ref() && !t.fields.iter().any(|f| f.name == *h) {
            return Err(unprocessable(
                "unknown_column",
                format!(
                    "column '{h}' is not a field of template '{}' (its fields: {})",
                    t.id,
                    t.fields
                        .iter()
                        .map(|f| f.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
    }
    if let Some(c) = &id_column {
        if !header.contains(c) {
            return Err(unprocessable(
                "unknown_column",
                format!("there is no column '{c}'"),
            ));
        }
    }
    for f in t.fields.iter().filter(|f| f.required) {
        if !header.contains(&f.name) {
            return Err(unprocessable(
                "missing_column",
                format!("the required field '{}' has no column", f.name),
            ));
        }
    }
    let max = state.config.jobs.max_rows;
    let mut report = Report {
        uploaded: 0,
        invalid: Vec::new(),
        more_invalid: 0,
    };
    let mut batch: Vec<JobRow> = Vec::with_capacity(BATCH);
    let mut seen_ids = std::collections::HashSet::new();
    while let Some(record) = input.next_row() {
        let record = record?;
        report.uploaded += 1;
        if report.uploaded > max {
            return Err(unprocessable(
                "too_many_rows",
                format!("more than jobs.max_rows = {max} rows"),
            ));
        }
        let n = report.uploaded;
        let (values, mut errors) = match record {
            Ok(r) => {
                let values: BTreeMap<String, String> = header.iter().cloned().zip(r).collect();
                let as_ref: BTreeMap<&str, &str> = values
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                let mut errors: Vec<Value> = fill::check_values(t, &as_ref)
                    .into_iter()
                    .map(|(field, e)| json!({"field": field, "code": e.code(), "message": e.explain()}))
                    .collect();
                // Every character must be drawable with the fill font.
                for f in &t.fields {
                    let missing = values.get(&f.name).and_then(|v| font.missing_glyph(v));
                    if let Some(c) = missing {
                        errors.push(json!({
                            "field": f.name, "code": "unsupported_character",
                            "message": format!("the fill font has no glyph for '{c}' (U+{:04X})", u32::from(c)),
                        }));
                    }
                }
                (values, errors)
            }
            Err(p) => (
                BTreeMap::new(),
                vec![json!({"field": null, "code": p.code, "message": p.message})],
            ),
        };
        let document_id = id_column
            .as_ref()
            .and_then(|c| values.get(c))
            .filter(|d| !d.is_empty())
            .cloned()
            .unwrap_or_else(|| format!("{}-{n}", job.id));
        if seald_policy::grant::check_document_id(&document_id).is_err() {
            errors.push(json!({"field": id_column, "code": "invalid_document_id", "message": "a document id is 1 to 255 printable ASCII characters"}));
        } else if !seen_ids.insert(document_id.clone()) {
            errors.push(json!({"field": id_column, "code": "duplicate_document_id", "message": "another row names the same document id"}));
        }
        let mut values = values;
        if let Some(c) = &id_column {
            values.remove(c);
        }
        let status = if errors.is_empty() {
            JobRowStatus::Pending
        } else {
            if report.invalid.len() < LISTED {
                report.invalid.push(json!({"row": n, "errors": errors}));
            } else {
                report.more_invalid += 1;
            }
            JobRowStatus::Invalid
        };
        batch.push(JobRow {
            row: n,
            status,
            document_id,
            values,
            errors: (!errors.is_empty()).then_some(Value::Array(errors)),
            output_sha256: None,
            output: None,
            audit_seq: None,
            done_at: None,
        });
        if batch.len() == BATCH {
            handle.block_on(state.store.insert_job_rows(&job.id, &batch))?;
            batch.clear();
        }
    }
    if !batch.is_empty() {
        handle.block_on(state.store.insert_job_rows(&job.id, &batch))?;
    }
    Ok(report)
}

/// The job, if the caller may see it: the application that started it, or an admin.
async fn visible(
    state: &AppState,
    caller: &Caller,
    id: &str,
    action: &str,
) -> Result<JobRecord, ApiError> {
    let app = caller.require_app(state, action).await?;
    match state.store.job(id).await? {
        Some(j)
            if j.spec.application == app.row.id
                || app.policy.has_role(seald_policy::AppRole::Admin) =>
        {
            Ok(j)
        }
        _ => Err(ApiError::not_found(format!("there is no job '{id}'"))),
    }
}

/// `GET /v1/jobs/{id}`: status, rows done of total, failures, rate and ETA.
pub async fn show(
    State(state): St,
    axum::Extension(peer): PeerExt,
    Path(id): Path<String>,
) -> Response {
    let caller = Caller::new(&state, peer);
    let j = match visible(&state, &caller, &id, "job.show").await {
        Ok(j) => j,
        Err(e) => return caller.fail(e),
    };
    let c = match state.store.job_counts(&id).await {
        Ok(c) => c,
        Err(e) => return caller.fail(e.into()),
    };
    let elapsed = match (c.first_done_at, c.last_done_at) {
        (Some(a), Some(b)) if b > a => (b - a) as f64,
        _ => 0.0,
    };
    let rate = (elapsed > 0.0).then(|| c.sealed.saturating_sub(1) as f64 / elapsed);
    let eta = rate
        .filter(|r| *r > 0.0)
        .map(|r| (c.pending as f64 / r).ceil() as u64);
    Json(json!({
        "id": j.id, "status": j.status, "error": j.error, "template": j.spec.template,
        "area": j.spec.area, "level": j.spec.level, "started_by": j.spec.started_by,
        "rows": {"uploaded": j.spec.rows_uploaded, "valid": j.spec.rows_valid, "invalid": c.invalid,
                 "sealed": c.sealed, "pending": c.pending},
        "rate_per_second": rate, "eta_seconds": eta, "runner_active": state.jobs.is_running(&id),
        "created_at": j.created_at, "updated_at": j.updated_at,
    }))
    .into_response()
}

fn not_changeable(j: &JobRecord) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "job_not_changeable",
        "The job cannot change so",
        format!("the job is {}", j.status.as_str()),
    )
}

/// `POST /v1/jobs/{id}/cancel`: no further row is sealed (a cancel is never undone by the
/// runner).
pub async fn cancel(
    State(state): St,
    axum::Extension(peer): PeerExt,
    Path(id): Path<String>,
) -> Response {
    let caller = Caller::new(&state, peer);
    let result = async {
        let j = visible(&state, &caller, &id, "job.cancel").await?;
        let from = [
            JobStatus::Running,
            JobStatus::Paused,
            JobStatus::Stopped,
            JobStatus::Failed,
        ];
        match jobs::set_status(&state, &id, &from, JobStatus::Canceled, None).await? {
            Some(j) => Ok(Json(json!({"id": id, "status": j.status})).into_response()),
            None => Err(not_changeable(&state.store.job(&id).await?.unwrap_or(j))),
        }
    }
    .await;
    result.unwrap_or_else(|e| caller.fail(e))
}

/// `POST /v1/jobs/{id}/resume`: a stopped (or failed) job goes on, once what stopped it is
/// fixed — resumed by an employee who may start jobs of its template now.
pub async fn resume(
    State(state): St,
    axum::Extension(peer): PeerExt,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    const ACTION: &str = "job.resume";
    let caller = Caller::new(&state, peer);
    let act = match Acting::begin(&state, caller, &headers, ACTION).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let result = async {
        let j = visible(&state, &act.caller, &id, ACTION).await?;
        let t = act
            .caller
            .registry
            .templates
            .get(&j.spec.template)
            .cloned()
            .ok_or_else(|| ApiError::governance(DenyCode::TemplateNotFound))?;
        act.policy(template::may_start_job(&act.org, &act.employee, &t))?;
        let from = [JobStatus::Stopped, JobStatus::Failed];
        match jobs::set_status(&state, &id, &from, JobStatus::Running, None).await? {
            Some(j) => {
                jobs::start(state.clone(), id.clone());
                Ok(Json(json!({"id": id, "status": j.status})).into_response())
            }
            None => Err(not_changeable(&j)),
        }
    }
    .await;
    act.finish(&state, ACTION, result).await
}

fn csv_field(v: &str) -> String {
    if v.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", v.replace('"', "\"\""))
    } else {
        v.to_owned()
    }
}

/// `GET /v1/jobs/{id}/results`: one CSV line per row — row, status, error code and message,
/// document id, output SHA-256, audit record.
pub async fn results(
    State(state): St,
    axum::Extension(peer): PeerExt,
    Path(id): Path<String>,
) -> Response {
    let caller = Caller::new(&state, peer);
    let pattern = match visible(&state, &caller, &id, "job.results").await {
        Ok(j) => j.spec.output_name,
        Err(e) => return caller.fail(e),
    };
    let header =
        "row,status,code,message,document_id,output_sha256,audit_record,file_name\n".to_owned();
    // Sealed rows' file names, unique as in the ZIP (both go in row order).
    let start = Some((0u64, std::collections::HashSet::new()));
    let pages = futures_util::stream::unfold(start, move |progress| {
        let state = state.clone();
        let id = id.clone();
        let pattern = pattern.clone();
        async move {
            let (after, mut names) = progress?;
            let rows = match state.store.job_rows(&id, None, after, 1000).await {
                Ok(r) => r,
                Err(e) => return Some((Err(std::io::Error::other(e.to_string())), None)),
            };
            let last = rows.last()?.row;
            let mut text = String::new();
            for r in &rows {
                let first = r.errors.as_ref().and_then(|e| e.get(0));
                let code = first.and_then(|e| e["code"].as_str()).unwrap_or("");
                let message = first
                    .map(|e| {
                        format!(
                            "{}{}",
                            e["field"]
                                .as_str()
                                .map(|f| format!("{f}: "))
                                .unwrap_or_default(),
                            e["message"].as_str().unwrap_or("")
                        )
                    })
                    .unwrap_or_default();
                let status = match r.status {
                    JobRowStatus::Invalid => "invalid",
                    JobRowStatus::Pending => "pending",
                    JobRowStatus::Sealed => "sealed",
                };
                text.push_str(&format!(
                    "{},{status},{code},{},{},{},{},{}\n",
                    r.row,
                    csv_field(&message),
                    csv_field(&r.document_id),
                    r.output_sha256.as_deref().unwrap_or(""),
                    r.audit_seq.map(|s| s.to_string()).unwrap_or_default(),
                    csv_field(&match r.status {
                        JobRowStatus::Sealed => {
                            unique(&mut names, output_name(pattern.as_deref(), r), r.row)
                        }
                        _ => String::new(),
                    }),
                ));
            }
            Some((Ok(axum::body::Bytes::from(text)), Some((last, names))))
        }
    });
    let head = futures_util::stream::once(async move { Ok(axum::body::Bytes::from(header)) });
    let mut response =
        Body::from_stream(futures_util::StreamExt::chain(head, pages)).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    response
}

/// `GET /v1/jobs/{id}/rows/{row}/pdf`: one sealed PDF.
pub async fn row_pdf(
    State(state): St,
    axum::Extension(peer): PeerExt,
    Path((id, row)): Path<(String, u64)>,
) -> Response {
    let caller = Caller::new(&state, peer);
    let pattern = match visible(&state, &caller, &id, "job.download").await {
        Ok(j) => j.spec.output_name,
        Err(e) => return caller.fail(e),
    };
    let sealed = state
        .store
        .job_rows(&id, Some(JobRowStatus::Sealed), row.saturating_sub(1), 1)
        .await;
    let sealed = match sealed {
        Ok(rows) => match rows.into_iter().next().filter(|r| r.row == row) {
            Some(r) => r,
            None => {
                return caller.fail(ApiError::not_found(format!(
                    "row {row} of job {id} is not sealed"
                )))
            }
        },
        Err(e) => return caller.fail(e.into()),
    };
    match jobs::read_output(&state, &id, &sealed).await {
        Ok(bytes) => {
            let mut r = bytes.into_response();
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/pdf"),
            );
            // RFC 6266 / 8187: the UTF-8 name percent-encoded.
            let encoded: String = output_name(pattern.as_deref(), &sealed)
                .bytes()
                .map(|b| {
                    if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.') {
                        char::from(b).to_string()
                    } else {
                        format!("%{b:02X}")
                    }
                })
                .collect();
            if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename*=UTF-8''{encoded}"))
            {
                r.headers_mut().insert(header::CONTENT_DISPOSITION, v);
            }
            r
        }
        Err(e) => caller.fail(e),
    }
}

/// `name`, or (taken already) `name-rowN.pdf`, `name-rowN-2.pdf`…: the first not in `taken`,
/// which it joins.
fn unique(taken: &mut std::collections::HashSet<String>, name: String, row: u64) -> String {
    let stem = name.trim_end_matches(".pdf").to_owned();
    let mut candidate = name;
    let mut n = 1;
    while !taken.insert(candidate.clone()) {
        candidate = match n {
            1 => format!("{stem}-row{row}.pdf"),
            _ => format!("{stem}-row{row}-{n}.pdf"),
        };
        n += 1;
    }
    candidate
}

/// The placeholders an output-name pattern may use besides the template's fields.
const NAME_PLACEHOLDERS: [&str; 2] = ["document_id", "row"];

/// Checks an output-name pattern: balanced braces, known placeholders, at most 200 chars.
fn check_output_name(pattern: &str, t: &seald_policy::Template) -> Result<(), ApiError> {
    let bad = |why: String| ApiError::bad_parameter(format!("output_name '{pattern}': {why}"));
    if pattern.chars().count() > 200 || pattern.trim().is_empty() {
        return Err(bad("give 1 to 200 characters".to_owned()));
    }
    let mut rest = pattern;
    while let Some(open) = rest.find(['{', '}']) {
        if rest[open..].starts_with('}') {
            return Err(bad("a '}' without its '{'".to_owned()));
        }
        let Some(close) = rest[open..].find('}') else {
            return Err(bad("a '{' without its '}'".to_owned()));
        };
        let name = &rest[open + 1..open + close];
        let known = NAME_PLACEHOLDERS.contains(&name) || t.fields.iter().any(|f| f.name == name);
        if !known {
            let fields: Vec<&str> = t.fields.iter().map(|f| f.name.as_str()).collect();
            return Err(bad(format!(
                "no placeholder {{{name}}}: use {{document_id}}, {{row}} or a field of template '{}' ({})",
                t.id,
                fields.join(", ")
            )));
        }
        rest = &rest[open + close + 1..];
    }
    Ok(())
}

/// Row `r`'s PDF file name: `pattern` (default `{document_id}`) with its placeholders
/// filled, made safe — anything but letters, digits, '-', '_' and '.' becomes '_', no
/// leading dot, at most 200 characters — and `.pdf` appended.
pub(crate) fn output_name(pattern: Option<&str>, r: &JobRow) -> String {
    let mut name = String::new();
    let mut rest = pattern.unwrap_or("{document_id}");
    while let Some(open) = rest.find('{') {
        name.push_str(&rest[..open]);
        let Some(close) = rest[open..].find('}') else {
            break;
        };
        let key = &rest[open + 1..open + close];
        match key {
            "document_id" => name.push_str(&r.document_id),
            "row" => name.push_str(&r.row.to_string()),
            field => name.push_str(r.values.get(field).map_or("", String::as_str)),
        }
        rest = &rest[open + close + 1..];
    }
    name.push_str(rest);
    let safe: String = name
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .take(200)
        .collect();
    let safe = safe.trim_start_matches('.');
    if safe.is_empty() {
        format!("row-{}.pdf", r.row)
    } else {
        format!("{safe}.pdf")
    }
}

/// `GET /v1/jobs/{id}/outputs.zip`: every sealed PDF so far, one stored entry each (named by
/// document id), streamed; ZIP64 when it outgrows the classic format.
pub async fn outputs_zip(
    State(state): St,
    axum::Extension(peer): PeerExt,
    Path(id): Path<String>,
) -> Response {
    let caller = Caller::new(&state, peer);
    let pattern = match visible(&state, &caller, &id, "job.download").await {
        Ok(j) => j.spec.output_name,
        Err(e) => return caller.fail(e),
    };
    let name = format!("attachment; filename=\"{id}.zip\"");
    let pages = futures_util::stream::unfold(
        Some((
            0u64,
            crate::zip::Zip::default(),
            std::collections::HashSet::new(),
        )),
        move |progress| {
            let state = state.clone();
            let id = id.clone();
            let pattern = pattern.clone();
            async move {
                let (after, mut zip, mut names) = progress?;
                let rows = match state
                    .store
                    .job_rows(&id, Some(JobRowStatus::Sealed), after, 50)
                    .await
                {
                    Ok(r) => r,
                    Err(e) => return Some((Err(std::io::Error::other(e.to_string())), None)),
                };
                let Some(last) = rows.last().map(|r| r.row) else {
                    return Some((Ok(axum::body::Bytes::from(zip.finish())), None));
                };
                let mut chunk = Vec::new();
                for r in &rows {
                    // Distinct ids can make one file name: the row number tells them apart.
                    let entry = unique(&mut names, output_name(pattern.as_deref(), r), r.row);
                    match jobs::read_output(&state, &id, r).await {
                        Ok(pdf) => chunk.extend(zip.entry(&entry, &pdf)),
                        Err(e) => return Some((Err(std::io::Error::other(e.detail)), None)),
                    }
                }
                Some((Ok(axum::body::Bytes::from(chunk)), Some((last, zip, names))))
            }
        },
    );
    let mut response = Body::from_stream(pages).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/zip"),
    );
    if let Ok(v) = HeaderValue::from_str(&name) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    response
}

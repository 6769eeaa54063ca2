//! Performing a signature for a request: the plan from its query (level, placement, texts),
//! and the signing itself on a blocking thread, in memory or through the spool. The HTTP
//! handler (`api::sign`) authenticates, asks policy, audits and answers around it.

use axum::extract::Query;
use axum::http::Uri;
use seald_pades::{Placement, SealAppearance, SignOptions, SigningTime};
use serde::Deserialize;

use crate::config::Level;
use crate::problem::{self, ApiError};
use crate::registry::ReadySeal;
use crate::spool::{self, Content, Received, SpoolFile};
use crate::state::AppState;

/// The query of a sign request.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignQuery {
    pub level: Option<String>,
    pub page: Option<u32>,
    pub x: Option<f64>,
    pub y: Option<f64>,
    pub width: Option<f64>,
    pub field: Option<String>,
    pub reason: Option<String>,
    pub location: Option<String>,
    pub document_id: Option<String>,
    pub template_id: Option<String>,
    /// The template's signing area the seal goes into (it gives the position).
    pub area: Option<String>,
}

/// Places the seal where the template's signing `area` says. Positions given in the query
/// too would contradict it; a page seal across pages is not drawn yet.
pub fn place_in_area(q: &mut SignQuery, area: &seald_policy::SigningArea) -> Result<(), ApiError> {
    if q.page.is_some() || q.x.is_some() || q.y.is_some() || q.width.is_some() || q.field.is_some()
    {
        return Err(ApiError::bad_parameter(
            "the signing area places the seal: leave out page, x, y, width and field",
        ));
    }
    let seald_policy::template::AreaPage::Page(page) = area.page else {
        return Err(page_seal_unavailable());
    };
    if area.page_seal {
        return Err(page_seal_unavailable());
    }
    q.page = Some(page);
    q.x = Some(area.x);
    q.y = Some(area.y);
    q.width = Some(area.width);
    Ok(())
}

fn page_seal_unavailable() -> ApiError {
    ApiError::new(
        axum::http::StatusCode::UNPROCESSABLE_ENTITY,
        "page_seal_unavailable",
        "Page seals are not drawn yet",
        "this signing area is a page seal (across the pages' edges), which seald does not draw yet",
    )
}

fn check_text(name: &str, value: &Option<String>) -> Result<(), ApiError> {
    match value {
        Some(v) if v.len() > 1024 || v.chars().any(char::is_control) => {
            Err(ApiError::bad_parameter(format!(
                "{name} must be at most 1024 characters without control characters"
            )))
        }
        _ => Ok(()),
    }
}

/// The signing plan from the query, before the seal is known.
pub struct Plan {
    pub level: Level,
    pub query: SignQuery,
}

/// The level asked for (`b-b`, `b-t`), else the configured default; b-t needs a TSA.
pub fn level(state: &AppState, asked: Option<&str>) -> Result<Level, ApiError> {
    let level = match asked {
        None => state
            .config
            .tsa
            .as_ref()
            .map(|t| t.default_level)
            .unwrap_or_default(),
        Some(l) => Level::parse(l).ok_or_else(|| {
            ApiError::bad_parameter(format!("level must be b-b or b-t, not '{l}'"))
        })?,
    };
    if level == Level::BT && state.timestamper.is_none() {
        return Err(ApiError::bad_parameter(
            "level b-t needs a time-stamp authority, and none is configured ([tsa])",
        ));
    }
    Ok(level)
}

pub fn plan(state: &AppState, uri: &Uri) -> Result<Plan, ApiError> {
    let Query(query) = Query::<SignQuery>::try_from_uri(uri)
        .map_err(|e| ApiError::bad_parameter(e.body_text()))?;
    let level = level(state, query.level.as_deref())?;
    for (name, v) in [("x", query.x), ("y", query.y)] {
        if v.is_some_and(|v| !v.is_finite() || !(0.0..=5000.0).contains(&v)) {
            return Err(ApiError::bad_parameter(format!(
                "{name} must be 0 to 5000 (mm)"
            )));
        }
    }
    if query
        .width
        .is_some_and(|w| !w.is_finite() || !(1.0..=1000.0).contains(&w))
    {
        return Err(ApiError::bad_parameter("width must be 1 to 1000 (mm)"));
    }
    if query.page == Some(0) {
        return Err(ApiError::bad_parameter("pages are numbered from 1"));
    }
    for (name, v) in [
        ("field", &query.field),
        ("reason", &query.reason),
        ("location", &query.location),
        ("document_id", &query.document_id),
        ("template_id", &query.template_id),
        ("area", &query.area),
    ] {
        check_text(name, v)?;
    }
    Ok(Plan { level, query })
}

/// A signed document: in memory when its input was, else in a spool file.
pub enum Signed {
    Memory(Vec<u8>),
    File(SpoolFile),
}

pub struct SignedOutput {
    pub data: Signed,
    pub sha256: String,
    pub field: String,
    pub timestamped: bool,
}

pub fn sign_blocking(
    ready: &ReadySeal,
    input: &Received,
    output: SpoolFile,
    plan: &Plan,
    timestamper: Option<&dyn seald_pades::Timestamper>,
) -> Result<SignedOutput, ApiError> {
    let doc = input.document().map_err(|e| problem::from_pades(&e))?;
    // Streamed to the client right away; kept responses are renamed only after this.
    let options = sign_options(ready, plan, timestamper, false);
    let (signed, data, sha256) = match &input.content {
        Content::Memory { .. } => {
            let (signed, bytes) = seald_pades::sign_document_to_vec(&doc, &options)
                .map_err(|e| problem::from_pades(&e))?;
            let sha256 = spool::sha256(&bytes);
            (signed, Signed::Memory(bytes), sha256)
        }
        Content::File(_) => {
            let signed = seald_pades::sign_document(&doc, output.path(), &options)
                .map_err(|e| problem::from_pades(&e))?;
            let sha256 = spool::sha256_file(output.path()).map_err(|e| {
                ApiError::internal(format!("cannot read the signed output back: {e}"))
            })?;
            (signed, Signed::File(output), sha256)
        }
    };
    Ok(SignedOutput {
        data,
        sha256,
        field: signed.field,
        timestamped: signed.timestamped,
    })
}

/// How `plan` signs with `ready`: placement, texts, level.
pub fn sign_options<'a>(
    ready: &'a ReadySeal,
    plan: &Plan,
    timestamper: Option<&'a dyn seald_pades::Timestamper>,
    durable: bool,
) -> SignOptions<'a> {
    let q = &plan.query;
    let time = SigningTime::now(0);
    let appearance = ready.image.clone().map(|image| SealAppearance {
        image,
        date_line: None,
    });
    let placement = match (&q.field, appearance) {
        (Some(name), seal) => Placement::Field {
            name: name.clone(),
            seal,
        },
        (None, Some(seal)) => Placement::Visible {
            page: q.page.unwrap_or(1),
            x_mm: q.x.unwrap_or(20.0),
            y_mm: q.y.unwrap_or(20.0),
            width_mm: q.width.unwrap_or(40.0),
            seal,
        },
        (None, None) => Placement::Invisible {
            page: q.page.unwrap_or(1),
        },
    };
    SignOptions {
        signer: ready.key.as_ref(),
        placement,
        field_name: None,
        reason: q.reason.clone(),
        location: q.location.clone(),
        contact_info: None,
        time,
        timestamper: if plan.level == Level::BT {
            timestamper
        } else {
            None
        },
        durable,
    }
}

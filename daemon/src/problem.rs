//! RFC 9457 problem details: every error the API returns, with a stable machine `code`
//! (docs/api.md lists them), a `title`, a `detail` for people, and the right status.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use seald_policy::DenyCode;
use serde::Serialize;

use crate::store::StoreError;

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub title: &'static str,
    pub detail: String,
    /// Seconds, for 503s worth retrying.
    pub retry_after: Option<u32>,
    /// seald-policy refused it (audited as `denied`, not `failed`).
    pub by_policy: bool,
}

#[derive(Serialize)]
struct Body<'a> {
    #[serde(rename = "type")]
    kind: String,
    title: &'a str,
    status: u16,
    detail: &'a str,
    code: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_id: Option<&'a str>,
}

impl ApiError {
    pub fn new(
        status: StatusCode,
        code: &'static str,
        title: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        ApiError {
            status,
            code,
            title,
            detail: detail.into(),
            retry_after: None,
            by_policy: false,
        }
    }

    /// A refusal by seald-policy.
    fn policy(
        status: StatusCode,
        code: DenyCode,
        title: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        ApiError {
            by_policy: true,
            ..Self::new(status, code.code(), title, detail)
        }
    }

    pub fn retry_after(mut self, seconds: u32) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    pub fn bad_parameter(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_parameter",
            "Invalid parameter",
            detail,
        )
    }

    pub fn bad_body(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_body",
            "Invalid request body",
            detail,
        )
    }

    pub fn unregistered(fingerprint: &str) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "unregistered_application",
            "Unregistered client certificate",
            format!("the client certificate is valid but no application is registered for it (SPKI SHA-256 {fingerprint})"),
        )
    }

    pub fn denied(code: DenyCode) -> Self {
        let status = match code {
            DenyCode::SealNotFound
            | DenyCode::TemplateNotFound
            | DenyCode::BatchConfirmationNotFound => StatusCode::NOT_FOUND,
            _ => StatusCode::FORBIDDEN,
        };
        Self::policy(status, code, "Refused by policy", code.explain())
    }

    /// A governance action refused by policy: 404 for what does not exist, 409 for what
    /// conflicts with the current state, 422 for invalid content, else 403.
    pub fn governance(code: DenyCode) -> Self {
        use DenyCode::*;
        let (status, title) = match code {
            SealNotFound
            | EmployeeNotFound
            | DepartmentNotFound
            | RoleNotFound
            | TemplateNotFound
            | GroupMemberNotFound
            | BatchConfirmationNotFound => (StatusCode::NOT_FOUND, "Not found"),
            SealExists
            | RoleExists
            | OfficialSealExists
            | TemplateSealExists
            | SuperAdministratorExists
            | SuperAdministratorRequired
            | LegalRepresentativeExists
            | RoleInUse
            | NotPending
            | NotResubmittable
            | ApprovalExpired
            | AlreadyApproved
            | AlreadyHolder
            | InvalidSealTransition
            | SealPendingReview
            | SealDeleted
            | SealDisabled
            | NoEligibleApprover
            | AutoSignDisabled
            | InvitationUsed
            | InvitationExpired
            | PartnerAuthorizationRevoked
            | PracticeSealUnauthorized => {
                (StatusCode::CONFLICT, "Conflicts with the current state")
            }
            InvalidName
            | InvalidPhone
            | InvalidCreditCode
            | DepartmentCycle
            | FlowInvalid
            | InvalidApplication
            | PracticeSealHolder
            | HandoverInvalid
            | TemplateSealUnavailable
            | InvalidSigningPassword
            | InvalidTemplate
            | InvalidBatchConfirmation
            | InvalidPartnerAuthorization
            | InvalidGroupMember
            | SealTypeMismatch
            | InvalidLimits => (StatusCode::UNPROCESSABLE_ENTITY, "Invalid content"),
            _ => (StatusCode::FORBIDDEN, "Refused by policy"),
        };
        Self::policy(status, code, title, code.explain())
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", "Not found", detail)
    }

    pub fn internal(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal error",
            detail,
        )
    }

    /// Renders with the request id the client can quote.
    pub fn into_response_with(self, request_id: Option<&str>) -> Response {
        let body = Body {
            kind: format!("https://seald.invalid/problems/{}", self.code),
            title: self.title,
            status: self.status.as_u16(),
            detail: &self.detail,
            code: self.code,
            request_id,
        };
        let json = serde_json::to_vec(&body).unwrap_or_default();
        let mut response = (self.status, json).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(s) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        if let Some(id) = request_id.and_then(|id| HeaderValue::from_str(id).ok()) {
            headers.insert("seald-request-id", id);
        }
        response
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.into_response_with(None)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(m) => {
                ApiError::new(StatusCode::CONFLICT, "conflict", "Conflict", m)
            }
            StoreError::Unavailable(m) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                "Storage unavailable",
                m,
            )
            .retry_after(5),
            StoreError::Corrupt(m) => ApiError::internal(m),
        }
    }
}

/// What a PAdES error means for the client.
pub fn from_pades(e: &seald_pades::Error) -> ApiError {
    use seald_pades::Error as E;
    let unprocessable =
        |code, title| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, title, e.to_string());
    match e {
        E::NotPdf(_) => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "not_pdf",
            "Not a PDF",
            e.to_string(),
        ),
        E::Encrypted => unprocessable("encrypted_pdf", "Encrypted PDF"),
        E::Damaged(_)
        | E::Syntax { .. }
        | E::TooDeep { .. }
        | E::MissingObject(_)
        | E::Unsupported(_) => unprocessable("malformed_pdf", "Malformed PDF"),
        E::TooLarge { .. } => unprocessable("pdf_too_complex", "PDF beyond seald's limits"),
        E::NoSuchPage { .. } => unprocessable("no_such_page", "No such page"),
        E::CertifiedNoChanges => unprocessable("certified_no_changes", "Certified document"),
        E::NoSuchField(_) => unprocessable("no_such_field", "No such signature field"),
        E::Fill(_) => unprocessable("fill_failed", "The template cannot be filled"),
        E::FieldAlreadySigned(_) => ApiError::new(
            StatusCode::CONFLICT,
            "field_already_signed",
            "Field already signed",
            e.to_string(),
        ),
        E::InvalidRequest(_) => ApiError::bad_parameter(e.to_string()),
        E::Signer(s) => from_sign_error(s),
        E::Timestamp(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "tsa_unavailable",
            "No time-stamp authority answered",
            e.to_string(),
        )
        .retry_after(10),
        E::Io { .. } => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "spool_unavailable",
            "Spool I/O failed",
            e.to_string(),
        )
        .retry_after(5),
        _ => ApiError::internal(e.to_string()),
    }
}

pub fn from_sign_error(e: &seald_signer::SignError) -> ApiError {
    use seald_signer::SignErrorKind as K;
    match e.kind() {
        K::Unavailable => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "token_unavailable",
            "Seal token unavailable",
            e.to_string(),
        )
        .retry_after(5),
        K::Busy => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "token_busy",
            "Seal token busy",
            e.to_string(),
        )
        .retry_after(1),
        K::NoUserPresence => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "touch_timeout",
            "Nobody touched the signing device",
            e.to_string(),
        ),
        K::Misconfigured => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "seal_misconfigured",
            "Seal key unusable",
            e.to_string(),
        ),
        K::Failed => ApiError::new(
            StatusCode::BAD_GATEWAY,
            "token_failed",
            "Seal token failed",
            e.to_string(),
        ),
    }
}

/// A pool error while preparing a seal key (the same kinds as when signing).
pub fn from_pkcs11(e: seald_pkcs11::Error) -> ApiError {
    from_sign_error(&seald_signer::SignError::from(e))
}

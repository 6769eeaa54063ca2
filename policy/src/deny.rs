//! Why a request is refused. The `code` strings are stable: integrators and approvers' tools
//! match on them, and docs/policy.md lists every one (a test keeps the two in step).

use serde::Serialize;

macro_rules! deny_codes {
    ($($variant:ident => $code:literal, $explain:literal;)*) => {
        /// A refusal, with a stable machine code and a sentence for people.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
        #[serde(rename_all = "snake_case")]
        pub enum DenyCode {
            $($variant,)*
        }

        impl DenyCode {
            /// Every code, in the order docs/policy.md lists them.
            pub const ALL: &'static [DenyCode] = &[$(DenyCode::$variant,)*];

            pub fn code(self) -> &'static str {
                match self {
                    $(DenyCode::$variant => $code,)*
                }
            }

            /// A sentence for people.
            pub fn explain(self) -> &'static str {
                match self {
                    $(DenyCode::$variant => $explain,)*
                }
            }
        }
    };
}

deny_codes! {
    // Applications (the mTLS principals).
    ApplicationDisabled => "application_disabled", "this application is disabled";
    NotAdmin => "not_admin", "this application does not hold the admin role";
    NotSigner => "not_signer", "this application does not hold the signer role";
    SealNotGranted => "seal_not_granted", "this application may not use this seal";
    TemplateNotGranted => "template_not_granted", "this application may use the seal only for other templates";
    TemplateRequired => "template_required", "this application may use the seal only for named templates: pass template_id";
    CannotActForEmployees => "cannot_act_for_employees", "this application is not registered to act for employees";
    // Seals.
    SealNotFound => "seal_not_found", "there is no such seal";
    SealExists => "seal_exists", "a seal with this id exists already";
    SealPendingReview => "seal_pending_review", "the seal waits for its creation to be approved and does not sign yet";
    SealDisabled => "seal_disabled", "the seal is disabled and does not sign";
    SealDeleted => "seal_deleted", "the seal is deleted and never signs again";
    OfficialSealExists => "official_seal_exists", "the enterprise already has an official seal (one per enterprise)";
    TemplateSealExists => "template_seal_exists", "the enterprise already has a template-generated seal of this type";
    TemplateSealUnavailable => "template_seal_unavailable", "template-generated seals are not available yet: upload the seal image";
    LegalRepresentativeOnly => "legal_representative_only", "only the legal representative manages the legal-representative seal";
    PracticeSealUnauthorized => "practice_seal_unauthorized", "the practice seal's holder has not authorized it";
    PracticeSealHolder => "practice_seal_holder", "a practice seal has exactly one holder: the person it belongs to";
    NotPracticeSealHolder => "not_practice_seal_holder", "only the practice seal's holder can authorize it";
    InvalidSealTransition => "invalid_seal_transition", "the seal cannot go from its status to the one asked";
    PageSealDisabled => "page_seal_disabled", "page seals (across pages) are switched off for this enterprise";
    // Templates and auto-sign.
    TemplateNotFound => "template_not_found", "there is no such template";
    TemplateDisabled => "template_disabled", "the template is disabled and signs nothing";
    InvalidTemplate => "invalid_template", "a template has an id (1 to 64 of A-Z a-z 0-9 . - _), a name, a PDF, 1 to 50 signing areas with distinct ids and positions in millimetres (x, y 0 to 5000, width 1 to 1000, pages from 1, or \"all\" for a page seal and only for one), and at most 200 distinct fill-in fields";
    SigningAreaNotFound => "signing_area_not_found", "the template has no signing area with this id";
    SigningAreaRequired => "signing_area_required", "an auto-sign request names the template's signing area (area) its seal goes into";
    SealTypeMismatch => "seal_type_mismatch", "the signing area requires a seal of another type";
    DocumentNotFromTemplate => "document_not_from_template", "the document is not the template's PDF (nor a later revision of it: it must begin with the template PDF's bytes)";
    AutoSignDisabled => "auto_sign_disabled", "auto-sign is switched off for this enterprise (only the super administrator or the legal representative switches it on)";
    AutoSignTemplateRequired => "auto_sign_template_required", "a request no employee acts for is an auto-sign request: it names an auto-sign template (template_id) bound to this seal";
    AutoSignSealMismatch => "auto_sign_seal_mismatch", "the auto-sign template is bound to another seal";
    AutoSignNotAuthorized => "auto_sign_not_authorized", "the employee does not hold the auto-sign authorization (for a template: the one who made it auto-sign no longer does)";
    AuthorizationReserved => "authorization_reserved", "only the super administrator or the legal representative grants and revokes the auto-sign, batch-sign and partner authorizations";
    // Partners.
    PartnerNotAuthorized => "partner_not_authorized", "the partner enterprise holds no authorization from this enterprise";
    PartnerSealNotAuthorized => "partner_seal_not_authorized", "the partner's authorization does not cover this seal";
    PartnerTemplateNotAuthorized => "partner_template_not_authorized", "the partner's authorization covers documents from other templates (name one of them in template_id)";
    PartnerAuthorizationExpired => "partner_authorization_expired", "the partner's authorization has passed its expiry";
    PartnerAuthorizationRevoked => "partner_authorization_revoked", "the partner's authorization has been revoked";
    InvalidPartnerAuthorization => "invalid_partner_authorization", "a partner authorization names another enterprise, at least one seal, templates if it is per template, and an expiry within three years";
    InvitationExpired => "invitation_expired", "the invitation link is more than 30 days old";
    InvitationUsed => "invitation_used", "the invitation link has been used already";
    NotPartnerApplication => "not_partner_application", "only a partner enterprise's application sends invitations";
    // Groups.
    GroupReserved => "group_reserved", "only the super administrator or the legal representative adds and removes group members";
    InvalidGroupMember => "invalid_group_member", "a group member is another enterprise (its unified social credit code and name); scopes name seal and template ids";
    GroupMemberNotFound => "group_member_not_found", "the seal's enterprise is not (or no longer) a member of this group";
    GroupRoleRequired => "group_role_required", "a member's seal is used only by the parent's employees holding a group role: group contract administrators for any document, group salespeople for documents from the member's templates, group seal administrators to manage it";
    GroupSealOutOfScope => "group_seal_out_of_scope", "the member has not granted the parent this seal";
    GroupTemplateOutOfScope => "group_template_out_of_scope", "the member has not granted the parent this template";
    GroupContractsOutOfScope => "group_contracts_out_of_scope", "the member has not granted the parent its contracts: only documents from granted templates";
    // Batch jobs.
    BatchNotAllowed => "batch_not_allowed", "the template does not allow batch jobs";
    // Batch signing.
    BatchSignNotAuthorized => "batch_sign_not_authorized", "the employee does not hold the batch-sign authorization";
    InvalidBatchConfirmation => "invalid_batch_confirmation", "a batch confirmation asks for 1 to the configured maximum of signatures within a positive lifetime up to the configured maximum";
    BatchConfirmationNotFound => "batch_confirmation_not_found", "there is no such batch confirmation for this employee (and seal)";
    BatchConfirmationExpired => "batch_confirmation_expired", "the batch confirmation has passed its lifetime: confirm again with the signing password";
    BatchConfirmationUsedUp => "batch_confirmation_used_up", "the batch confirmation has been used for as many signatures as it was confirmed for";
    // The organization.
    EmployeeNotFound => "employee_not_found", "there is no such employee";
    EmployeeResigned => "employee_resigned", "the employee has resigned and can no longer act";
    DepartmentNotFound => "department_not_found", "there is no such department";
    DepartmentCycle => "department_cycle", "a department cannot be inside itself";
    InvalidCreditCode => "invalid_credit_code", "the unified social credit code is not 18 valid characters with a matching check digit";
    InvalidName => "invalid_name", "names are 1 to 100 characters without control characters";
    InvalidPhone => "invalid_phone", "a phone number is 5 to 20 digits, optionally after a leading +";
    RoleNotFound => "role_not_found", "there is no such role";
    RoleExists => "role_exists", "a role with this id exists already";
    RoleHeld => "role_held", "the employee holds this role already";
    RoleNotApplicable => "role_not_applicable", "the super administrator and legal representative roles are not applied for: they are assigned and transferred";
    SystemRoleImmutable => "system_role_immutable", "system roles cannot be edited or deleted";
    SuperAdministratorExists => "super_administrator_exists", "the enterprise already has its super administrator: transfer the role instead";
    SuperAdministratorRequired => "super_administrator_required", "the enterprise must keep exactly one super administrator: transfer the role first";
    LegalRepresentativeExists => "legal_representative_exists", "the enterprise already has a legal representative";
    RoleInUse => "role_in_use", "the role is still assigned to employees";
    PermissionDenied => "permission_denied", "the acting employee lacks the permission for this, or it is outside their data scope";
    HandoverInvalid => "handover_invalid", "a handover goes to another, active employee";
    // Approval flows and seal-use applications.
    FlowInvalid => "flow_invalid", "an approval flow has 1 to 10 nodes, each with at least one approver, and a positive deadline";
    NoEligibleApprover => "no_eligible_approver", "a node of the approval flow has nobody left who may approve (resigned, or only the submitter)";
    NotPending => "not_pending", "the approval request is no longer pending";
    NotResubmittable => "not_resubmittable", "only a rejected, expired or canceled request can be resubmitted";
    ApprovalExpired => "approval_expired", "the approval request passed its deadline and expired";
    SelfApproval => "self_approval", "nobody approves their own request";
    NotAnApprover => "not_an_approver", "the acting employee is not an approver of the request's current node";
    AlreadyApproved => "already_approved", "the acting employee already approved this node";
    NotSubmitter => "not_submitter", "only the submitter can cancel or resubmit a request";
    AlreadyHolder => "already_holder", "the employee holds the seal and needs no seal-use application";
    InvalidApplication => "invalid_application", "a seal-use application names a document id, the document's SHA-256, 1 to 1000 uses and a deadline within a year";
    DocumentRequired => "document_required", "a signature under a seal-use grant names the document (document_id and its SHA-256)";
    DocumentChanged => "document_changed", "the seal-use grant is for another version of this document (its SHA-256 differs)";
    GrantUsedUp => "grant_used_up", "the seal-use grant for this document has been used as often as approved";
    GrantExpired => "grant_expired", "the seal-use grant for this document has passed its deadline";
    ContractApprovalRequired => "contract_approval_required", "contract approval is required for this enterprise: the document (this version of it) needs an approved contract approval before any seal is applied";
    OutsideTimeWindow => "outside_time_window", "the seal may not be used at this time (its allowed weekdays and hours, in the enterprise's time zone)";
    SealDailyCapReached => "seal_daily_cap_reached", "the seal has been used as often today as its daily cap allows";
    SealMonthlyCapReached => "seal_monthly_cap_reached", "the seal has been used as often this month as its monthly cap allows";
    ContractQuotaExhausted => "contract_quota_exhausted", "the enterprise's contract quota is used up";
    InvalidLimits => "invalid_limits", "limits are positive caps, windows with weekdays 1 to 7 and HH:MM times (from before to), and a UTC offset within ±14:00";
    QuotaReserved => "quota_reserved", "only the super administrator or the legal representative sets the contract quota and time zone";
    FeaturesReserved => "features_reserved", "only the super administrator or the legal representative switches the enterprise's features";
    SealUseApprovalRequired => "seal_use_approval_required", "the employee does not hold the seal: apply to use it for this document and wait for approval";
    SigningPasswordRequired => "signing_password_required", "the employee must confirm the signature with their signing password";
    SigningPasswordNotSet => "signing_password_not_set", "the employee has no signing password yet: they set one before sealing by hand";
    SigningPasswordWrong => "signing_password_wrong", "the signing password is wrong";
    SigningPasswordLocked => "signing_password_locked", "too many wrong signing passwords: it is locked for a while";
    InvalidSigningPassword => "invalid_signing_password", "a signing password is exactly six digits";
}

impl std::fmt::Display for DenyCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

impl std::error::Error for DenyCode {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_snake_case_and_match_serde() {
        let mut seen = std::collections::HashSet::new();
        for code in DenyCode::ALL {
            let text = code.code();
            assert!(seen.insert(text), "{text} twice");
            assert!(text.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'));
            assert_eq!(
                serde_json::to_string(code).expect("allowed"),
                format!("\"{text}\"")
            );
            assert!(!code.explain().is_empty());
        }
    }
}

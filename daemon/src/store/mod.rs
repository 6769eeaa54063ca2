//! Storage behind one trait: the registry (applications, seals), the audit chain with its
//! checkpoints, and kept idempotent responses. SQLite is the default ([`sqlite::SqliteStore`]);
//! the trait is what a PostgreSQL store for clusters implements next.
//!
//! Every change goes through [`Store::append`]: an audit entry together with the change it
//! records, committed in one transaction, so the log can never claim what did not happen nor
//! miss what did. A batch of appends shares one transaction (group commit) but each item
//! succeeds or fails on its own.

use std::future::Future;
use std::pin::Pin;

use seald_audit::{Checkpoint, Entry, Record};
use seald_policy::batch::BatchConfirmation;
use seald_policy::limits::{LocalTime, SealLimits, Usage};
use seald_policy::partner::{PartnerAuthorization, PartnerInvitation};
use seald_policy::password::PasswordState;
use seald_policy::{
    AppRole as Role, ApprovalRequest, Department, Employee, Enterprise, Flow, Grant, Org, RoleDef,
    Seal, SealSource, SealStatus, SealType, Template,
};

mod governance;
mod jobs;
pub mod sqlite;
mod templates;

pub type Fut<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached or written (disk full, locked, I/O error).
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    /// The change conflicts with what is stored (a certificate registered twice, …).
    #[error("{0}")]
    Conflict(String),
    /// Stored data that cannot be read back (a hand-edited row, say).
    #[error("stored data is unreadable: {0}")]
    Corrupt(String),
}

/// A registered client application (an mTLS principal).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplicationRow {
    pub id: String,
    pub name: String,
    /// SHA-256 (hex) of the certificate's SubjectPublicKeyInfo.
    pub fingerprint: String,
    pub certificate_pem: String,
    pub roles: Vec<Role>,
    pub seals: Vec<String>,
    pub templates: Option<Vec<String>>,
    pub enabled: bool,
    /// Its requests may name the employee they act for.
    pub acts_for_employees: bool,
    /// The partner enterprise (unified social credit code) whose system it is.
    pub partner: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// A registered seal: a key on a configured token, its chain and its image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealRow {
    pub id: String,
    pub name: String,
    /// A `[[token]]` name from the configuration.
    pub token: String,
    pub key_label: String,
    /// Leaf first.
    pub chain_pem: String,
    pub image_png: Option<Vec<u8>>,
    pub status: SealStatus,
    pub governance: SealGovernance,
    pub created_at: String,
    pub updated_at: String,
}

/// What seal governance keeps of a seal besides its status (see seald_policy::Seal).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SealGovernance {
    pub kind: SealType,
    pub source: SealSource,
    pub department: Option<String>,
    pub holders: Vec<String>,
    pub created_by: Option<String>,
    pub practice_authorized: bool,
    pub limits: SealLimits,
    /// A group member's seal: the member's credit code.
    pub enterprise: Option<seald_policy::CreditCode>,
}

impl SealRow {
    /// The seal as policy sees it.
    pub fn policy(&self) -> Seal {
        let g = &self.governance;
        Seal {
            id: self.id.clone(),
            status: self.status,
            name: self.name.clone(),
            kind: g.kind,
            source: g.source,
            department: g.department.clone(),
            holders: g.holders.clone(),
            created_by: g.created_by.clone(),
            practice_authorized: g.practice_authorized,
            limits: g.limits.clone(),
            enterprise: g.enterprise.clone(),
        }
    }
}

/// The rows an organization change writes: what differs between the stored organization and
/// the new one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrgChange {
    pub enterprise: Option<Enterprise>,
    pub departments: Vec<Department>,
    pub employees: Vec<Employee>,
    /// Custom roles added or changed.
    pub roles: Vec<RoleDef>,
    pub deleted_roles: Vec<String>,
    /// Group members added or changed, and removed (by credit code).
    pub members: Vec<seald_policy::group::GroupMember>,
    pub removed_members: Vec<String>,
}

impl OrgChange {
    pub fn diff(old: Option<&Org>, new: &Org) -> OrgChange {
        let changed = |a: &Department| old.is_none_or(|o| o.department(&a.id) != Some(a));
        let changed_employee = |e: &Employee| old.is_none_or(|o| o.employee(&e.id) != Some(e));
        let changed_role =
            |r: &RoleDef| r.system.is_none() && old.is_none_or(|o| o.role(&r.id) != Some(r));
        OrgChange {
            enterprise: (old.map(|o| &o.enterprise) != Some(&new.enterprise))
                .then(|| new.enterprise.clone()),
            departments: new
                .departments
                .iter()
                .filter(|d| changed(d))
                .cloned()
                .collect(),
            employees: new
                .employees
                .iter()
                .filter(|e| changed_employee(e))
                .cloned()
                .collect(),
            roles: new
                .roles
                .iter()
                .filter(|r| changed_role(r))
                .cloned()
                .collect(),
            deleted_roles: old
                .map(|o| {
                    o.roles
                        .iter()
                        .filter(|r| new.role(&r.id).is_none())
                        .map(|r| r.id.clone())
                        .collect()
                })
                .unwrap_or_default(),
            members: new
                .members
                .iter()
                .filter(|m| old.is_none_or(|o| o.member(m.credit_code.as_str()) != Some(m)))
                .cloned()
                .collect(),
            removed_members: old
                .map(|o| {
                    o.members
                        .iter()
                        .filter(|m| new.member(m.credit_code.as_str()).is_none())
                        .map(|m| m.credit_code.as_str().to_owned())
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    /// What the audit record says was changed.
    pub fn summary(&self) -> serde_json::Value {
        serde_json::json!({
            "enterprise": self.enterprise.as_ref().map(|e| &e.id),
            "departments": self.departments.iter().map(|d| &d.id).collect::<Vec<_>>(),
            "employees": self.employees.iter().map(|e| &e.id).collect::<Vec<_>>(),
            "roles": self.roles.iter().map(|r| &r.id).collect::<Vec<_>>(),
            "deleted_roles": self.deleted_roles,
            "members": self.members.iter().map(|m| m.credit_code.as_str()).collect::<Vec<_>>(),
            "removed_members": self.removed_members,
        })
    }
}

/// A response kept for replays of its Idempotency-Key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyRow {
    pub application: String,
    pub key: String,
    pub body_sha256: String,
    /// The audit record of the signature; filled in by the store when it is appended.
    pub audit_seq: u64,
    pub audit_hash: String,
    /// The signed PDF, relative to the data dir.
    pub output_path: String,
    pub output_sha256: String,
    /// Unix seconds.
    pub created_at: i64,
}

/// The change an audit entry records.
#[derive(Debug, Clone)]
pub enum Change {
    /// Nothing besides the record (a signature, a refusal, a failure).
    None,
    PutApplication(ApplicationRow),
    PutSeal(SealRow),
    /// A signature whose response is kept for its Idempotency-Key.
    Idempotency(IdempotencyRow),
    /// Enterprise, departments, employees, custom roles.
    Org(Box<OrgChange>),
    /// A seal's status and governance (holders, authorization…).
    SealPolicy {
        seal: Box<Seal>,
        updated_at: String,
    },
    PutFlow(Box<Flow>),
    /// Inserts or replaces an approval request.
    PutApproval(Box<ApprovalRequest>),
    PutGrant(Grant),
    /// Takes one use of grant `id` for a document with hash `sha256` at `now`; a conflict if
    /// it has none left, has expired or is for another document (a concurrent request used it).
    ConsumeGrant {
        id: String,
        sha256: String,
        now: i64,
    },
    /// Sets (`Some`: an Argon2id PHC string) or clears an employee's signing password; either
    /// way the wrong-try count and any lockout start afresh.
    SigningPassword {
        employee: String,
        hash: Option<String>,
    },
    /// The wrong-try count and lockout after a try of the signing password.
    PasswordAttempt {
        employee: String,
        state: PasswordState,
    },
    /// One more signature against the seal's caps and the enterprise's quota; a conflict if
    /// a concurrent request took the last one.
    ConsumeLimits(Box<Consumption>),
    /// Inserts or replaces a template; its PDF is stored (once per SHA-256) when given, else
    /// the one it names must be stored already.
    PutTemplate {
        template: Box<Template>,
        pdf: Option<Vec<u8>>,
    },
    DeleteTemplate(String),
    /// A new batch-sign confirmation; the token it is presented with is kept as its SHA-256.
    OpenBatch {
        confirmation: Box<BatchConfirmation>,
        token_sha256: String,
    },
    /// Takes one signature of batch confirmation `id` at `now`; a conflict if it has none
    /// left or has expired (a concurrent request took the last one).
    ConsumeBatch {
        id: String,
        now: i64,
    },
    /// Ends batch confirmation `id` at `now`.
    CloseBatch {
        id: String,
        now: i64,
    },
    /// Inserts or replaces a partner authorization (a grant, a revocation).
    PutPartnerAuthorization(Box<PartnerAuthorization>),
    /// A partner's new invitation link, kept as its token's SHA-256.
    PutInvitation {
        invitation: Box<PartnerInvitation>,
        token_sha256: String,
    },
    /// Marks an invitation accepted; a conflict if it was accepted already (single use).
    AcceptInvitation(Box<PartnerInvitation>),
    /// Inserts or replaces a batch job (its status too).
    PutJob(Box<JobRecord>),
    /// Deletes job `id` and its rows, only if it has ended and not changed since `before`
    /// (a conflict otherwise: resumed meanwhile, say).
    DeleteJob {
        id: String,
        before: i64,
    },
    /// Moves job `id` to `to` (with `error`) only from one of `from`; a conflict otherwise
    /// (someone else changed it: a cancel is never overwritten by the runner).
    JobStatus {
        id: String,
        from: Vec<JobStatus>,
        to: JobStatus,
        error: Option<String>,
        now: i64,
    },
    /// Row `row` of `job` goes from pending to sealed with this output, pointing at the
    /// record; a conflict if it is not pending (it was sealed already).
    SealJobRow {
        job: String,
        row: u64,
        output_sha256: String,
        /// Where its bytes lie in the job's output file.
        output: crate::outputs::Extent,
        now: i64,
    },
    /// Several changes in one record (a resignation, an approval that activates a seal).
    Many(Vec<Change>),
}

/// What a batch job is: the template, where and how it seals, who started it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct JobSpec {
    pub template: String,
    /// The template's signing area the seal goes into.
    pub area: String,
    /// `b-b` or `b-t`.
    pub level: String,
    /// The employee who started it (holding the auto-sign authorization).
    pub started_by: String,
    /// The application that sent it.
    pub application: String,
    pub rows_uploaded: u64,
    pub rows_valid: u64,
    pub rows_invalid: u64,
    /// Where the job's end is announced (HMAC-signed), if anywhere.
    #[serde(default)]
    pub webhook: Option<String>,
    /// The output-name pattern (`{document_id}` when none).
    #[serde(default)]
    pub output_name: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// Rows are being read and checked.
    Validating,
    Running,
    /// No time-stamp authority answers (B-T): the job waits and retries, then goes on.
    Paused,
    Completed,
    Canceled,
    /// Policy refused a row (auto-sign switched off, authorization revoked, quota used
    /// up…): the job waits with the code in `error`.
    Stopped,
    /// It cannot go on (interrupted while validating, an unreadable template).
    Failed,
}

impl JobStatus {
    /// The job ended (or stopped): its webhook hears of it.
    pub fn is_end(self) -> bool {
        matches!(
            self,
            JobStatus::Completed | JobStatus::Canceled | JobStatus::Stopped | JobStatus::Failed
        )
    }

    /// Its runner goes on (running, or paused waiting for a TSA).
    pub fn is_live(self) -> bool {
        matches!(self, JobStatus::Running | JobStatus::Paused)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Validating => "validating",
            JobStatus::Running => "running",
            JobStatus::Paused => "paused",
            JobStatus::Completed => "completed",
            JobStatus::Canceled => "canceled",
            JobStatus::Stopped => "stopped",
            JobStatus::Failed => "failed",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRecord {
    pub id: String,
    pub spec: JobSpec,
    pub status: JobStatus,
    pub error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobRowStatus {
    Invalid,
    Pending,
    Sealed,
}

/// One row of a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRow {
    /// 1 for the first row after the header.
    pub row: u64,
    pub status: JobRowStatus,
    pub document_id: String,
    pub values: std::collections::BTreeMap<String, String>,
    /// Why an invalid row is: `[{field, code, message}]`.
    pub errors: Option<serde_json::Value>,
    pub output_sha256: Option<String>,
    /// Where a sealed row's bytes lie in the job's output file (none for rows sealed before
    /// migration 0010, which have a file of their own).
    pub output: Option<crate::outputs::Extent>,
    pub audit_seq: Option<u64>,
    pub done_at: Option<i64>,
}

/// How far a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct JobCounts {
    pub invalid: u64,
    pub pending: u64,
    pub sealed: u64,
    pub first_done_at: Option<i64>,
    pub last_done_at: Option<i64>,
}

/// What [`Change::ConsumeLimits`] counts and against which limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consumption {
    pub seal: String,
    /// The local day, and the first and last day of its month.
    pub day: i64,
    pub month: (i64, i64),
    pub per_day: Option<u32>,
    pub per_month: Option<u32>,
    /// The contract quota, if any, and the document it counts (once).
    pub quota: Option<u64>,
    pub document_id: Option<String>,
    /// For a group member's seal: the member (its own quota, and whether it draws on the
    /// parent's `quota`).
    pub member: Option<seald_policy::group::GroupMember>,
}

/// One item of [`Store::append`].
#[derive(Debug, Clone)]
pub struct Append {
    pub entry: Entry,
    pub change: Change,
}

pub trait Store: Send + Sync + 'static {
    /// Cheap round trip (readiness).
    fn ping(&self) -> Fut<'_, ()>;
    fn applications(&self) -> Fut<'_, Vec<ApplicationRow>>;
    fn seals(&self) -> Fut<'_, Vec<SealRow>>;
    fn idempotency<'a>(
        &'a self,
        application: &'a str,
        key: &'a str,
    ) -> Fut<'a, Option<IdempotencyRow>>;
    /// Forgets kept responses created before `before` (unix seconds); returns their paths so
    /// the caller can delete the files.
    fn expire_idempotency(&self, before: i64) -> Fut<'_, Vec<String>>;
    /// Appends each item's record and applies its change atomically, in order; one
    /// transaction for the batch, one result per item.
    fn append(&self, batch: Vec<Append>) -> Fut<'_, Vec<Result<Record, StoreError>>>;
    /// The newest record's sequence number and hash (0 and the genesis hash when empty).
    fn head(&self) -> Fut<'_, (u64, String)>;
    /// Records with `seq > after`, in order, at most `limit`.
    fn records(&self, after: u64, limit: u32) -> Fut<'_, Vec<Record>>;
    /// The first record at or after `time` (RFC 3339), for exports.
    fn first_seq_since<'a>(&'a self, time: &'a str) -> Fut<'a, u64>;
    fn add_checkpoint(&self, checkpoint: Checkpoint) -> Fut<'_, ()>;
    fn checkpoints(&self) -> Fut<'_, Vec<Checkpoint>>;
    /// The sequence number the newest checkpoint covers, if any.
    fn latest_checkpoint(&self) -> Fut<'_, Option<u64>>;
    /// The organization (with the system roles), once the enterprise is set up.
    fn org(&self) -> Fut<'_, Option<Org>>;
    /// Configured approval flows (scenarios without one use seald-policy's default).
    fn flows(&self) -> Fut<'_, Vec<Flow>>;
    fn approval<'a>(&'a self, id: &'a str) -> Fut<'a, Option<ApprovalRequest>>;
    /// Approval requests in state pending (expired ones included until marked).
    fn pending_approvals(&self) -> Fut<'_, Vec<ApprovalRequest>>;
    /// What the seal has been used for on `at`'s day and month, the contracts counted, and
    /// whether `document_id` is one of them.
    fn usage<'a>(
        &'a self,
        seal: &'a str,
        at: LocalTime,
        document_id: Option<&'a str>,
    ) -> Fut<'a, Usage>;
    /// Contracts counted per local day, oldest first.
    fn quota_usage(&self) -> Fut<'_, Vec<(i64, u64)>>;
    /// Contract approvals of document `document_id`, approved or pending.
    fn contract_approvals<'a>(&'a self, document_id: &'a str) -> Fut<'a, Vec<ApprovalRequest>>;
    /// `employee`'s grants for `seal`, oldest first.
    fn grants_for<'a>(&'a self, employee: &'a str, seal: &'a str) -> Fut<'a, Vec<Grant>>;
    /// Registered templates, by id.
    fn templates(&self) -> Fut<'_, Vec<Template>>;
    /// A template PDF by its SHA-256.
    fn template_pdf<'a>(&'a self, sha256: &'a str) -> Fut<'a, Option<Vec<u8>>>;
    /// The batch confirmation presented with the token of this SHA-256.
    fn batch_confirmation<'a>(
        &'a self,
        token_sha256: &'a str,
    ) -> Fut<'a, Option<BatchConfirmation>>;
    fn batch_confirmation_by_id<'a>(&'a self, id: &'a str) -> Fut<'a, Option<BatchConfirmation>>;
    /// Partner authorizations, of one partner (credit code) or all, oldest first.
    fn partner_authorizations<'a>(
        &'a self,
        partner: Option<&'a str>,
    ) -> Fut<'a, Vec<PartnerAuthorization>>;
    /// The invitation whose link token has this SHA-256.
    fn invitation<'a>(&'a self, token_sha256: &'a str) -> Fut<'a, Option<PartnerInvitation>>;
    /// Stores a job's rows as read (one transaction per call).
    fn insert_job_rows<'a>(&'a self, job: &'a str, rows: &'a [JobRow]) -> Fut<'a, ()>;
    fn job<'a>(&'a self, id: &'a str) -> Fut<'a, Option<JobRecord>>;
    fn jobs_in(&self, status: JobStatus) -> Fut<'_, Vec<JobRecord>>;
    /// Rows of `job` after row `after`, in order, at most `limit`, of one status or all.
    fn job_rows<'a>(
        &'a self,
        job: &'a str,
        status: Option<JobRowStatus>,
        after: u64,
        limit: u32,
    ) -> Fut<'a, Vec<JobRow>>;
    fn job_counts<'a>(&'a self, job: &'a str) -> Fut<'a, JobCounts>;
    /// `employee`'s signing password hash (None if not set) and its lockout state.
    fn signing_password<'a>(
        &'a self,
        employee: &'a str,
    ) -> Fut<'a, (Option<String>, PasswordState)>;
}

impl std::fmt::Debug for dyn Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Store")
    }
}

//! Approval flows (one per scenario: nodes in order, or-sign or joint-sign, a deadline) and
//! the requests that go through them, with every state change as a pure function of the
//! request, the organization and the time.

use serde::{Deserialize, Serialize};

use crate::org::Org;
use crate::role::SystemRole;
use crate::DenyCode;

/// A flow has at most this many nodes.
pub const MAX_NODES: usize = 10;
/// The pending center's "expiring soon": within this many seconds (3 days).
pub const EXPIRING_SOON: i64 = 3 * 24 * 3600;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scenario {
    SealCreation,
    /// 用印申请: an employee who does not hold a seal asks to use it for one document.
    SealUse,
    ContractApproval,
    PermissionApplication,
}

impl Scenario {
    pub const ALL: &'static [Scenario] = &[
        Scenario::SealCreation,
        Scenario::SealUse,
        Scenario::ContractApproval,
        Scenario::PermissionApplication,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scenario::SealCreation => "seal_creation",
            Scenario::SealUse => "seal_use",
            Scenario::ContractApproval => "contract_approval",
            Scenario::PermissionApplication => "permission_application",
        }
    }
}

/// Who may approve at a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Approver {
    /// Every active employee holding the role (by role id).
    Role(String),
    /// One named employee.
    Member(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignMode {
    /// 或签: one eligible approver's approval completes the node.
    Or,
    /// 会签: every eligible approver must approve.
    Joint,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    pub approvers: Vec<Approver>,
    pub mode: SignMode,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flow {
    pub scenario: Scenario,
    pub nodes: Vec<Node>,
    /// A request expires this many seconds after it was (re)submitted.
    pub deadline_seconds: i64,
}

impl Flow {
    pub fn new(
        scenario: Scenario,
        nodes: Vec<Node>,
        deadline_seconds: i64,
    ) -> Result<Flow, DenyCode> {
        let flow = Flow {
            scenario,
            nodes,
            deadline_seconds,
        };
        flow.validate()?;
        Ok(flow)
    }

    pub fn validate(&self) -> Result<(), DenyCode> {
        if self.nodes.is_empty()
            || self.nodes.len() > MAX_NODES
            || self.nodes.iter().any(|n| n.approvers.is_empty())
            || self.deadline_seconds <= 0
            || self.deadline_seconds > 366 * 24 * 3600
        {
            return Err(DenyCode::FlowInvalid);
        }
        Ok(())
    }

    /// Roles and members must exist in `org` when the flow is configured.
    pub fn validate_in(&self, org: &Org) -> Result<(), DenyCode> {
        self.validate()?;
        for approver in self.nodes.iter().flat_map(|n| &n.approvers) {
            match approver {
                Approver::Role(r) if org.role(r).is_none() => return Err(DenyCode::RoleNotFound),
                Approver::Member(m) => {
                    org.active_employee(m)?;
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// The flow an enterprise starts with for `scenario` (one or-sign node, 7 days). Seal
    /// creation: the seal administrators and the legal representative (never the creator).
    pub fn default_for(scenario: Scenario) -> Flow {
        let roles: &[SystemRole] = match scenario {
            Scenario::SealCreation => &[
                SystemRole::SealAdministrator,
                SystemRole::LegalRepresentative,
            ],
            Scenario::SealUse => &[SystemRole::SealApprover, SystemRole::SealAdministrator],
            Scenario::ContractApproval => &[SystemRole::ContractAdministrator],
            Scenario::PermissionApplication => &[SystemRole::SuperAdministrator],
        };
        Flow {
            scenario,
            nodes: vec![Node {
                approvers: roles
                    .iter()
                    .map(|r| Approver::Role(r.id().to_owned()))
                    .collect(),
                mode: SignMode::Or,
            }],
            deadline_seconds: 7 * 24 * 3600,
        }
    }
}

/// A seal-use application's content: which seal, for which document, how often, until when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealUse {
    pub seal: String,
    pub document_id: String,
    /// SHA-256 of the PDF, lowercase hex.
    pub document_sha256: String,
    pub uses: u32,
    /// Unix seconds; the grant is void from then on.
    pub valid_until: i64,
}

/// What a request asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "scenario")]
pub enum Subject {
    SealCreation {
        seal: String,
    },
    SealUse(SealUse),
    ContractApproval {
        document_id: String,
        document_sha256: String,
    },
    PermissionApplication {
        role: String,
    },
}

impl Subject {
    pub fn scenario(&self) -> Scenario {
        match self {
            Subject::SealCreation { .. } => Scenario::SealCreation,
            Subject::SealUse(_) => Scenario::SealUse,
            Subject::ContractApproval { .. } => Scenario::ContractApproval,
            Subject::PermissionApplication { .. } => Scenario::PermissionApplication,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalState {
    Pending,
    Approved,
    Rejected,
    Expired,
    Canceled,
}

impl ApprovalState {
    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalState::Pending => "pending",
            ApprovalState::Approved => "approved",
            ApprovalState::Rejected => "rejected",
            ApprovalState::Expired => "expired",
            ApprovalState::Canceled => "canceled",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepAction {
    Submit,
    Approve,
    Reject,
    Cancel,
    Resubmit,
    Expire,
    /// A handover moved the request or an approver duty to another employee.
    Handover,
}

/// One entry of a request's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    pub action: StepAction,
    pub actor: Option<String>,
    pub node: usize,
    pub at: i64,
    #[serde(default)]
    pub comment: Option<String>,
}

/// What an action did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// A joint-sign node recorded the approval and waits for the others.
    Recorded,
    /// The request moved on to `node`; `stalled` when nobody there may approve it.
    Advanced {
        node: usize,
        stalled: bool,
    },
    Approved,
    Rejected,
    Canceled,
    Resubmitted,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalRequest {
    pub id: String,
    pub submitter: String,
    pub subject: Subject,
    pub reason: String,
    /// The flow as configured when the request was submitted: later changes do not move
    /// requests already on their way.
    pub flow: Flow,
    pub state: ApprovalState,
    /// The current node (0-based).
    pub node: usize,
    /// Who approved the current node so far.
    pub approved_by: Vec<String>,
    pub history: Vec<Step>,
    pub submitted_at: i64,
    pub expires_at: i64,
}

/// Who submits a request, under which id, and why.
#[derive(Debug, Clone, Copy)]
pub struct Submission<'a> {
    pub id: &'a str,
    pub submitter: &'a str,
    pub reason: &'a str,
}

fn check_reason(reason: &str) -> Result<(), DenyCode> {
    if reason.chars().count() > 1000 || reason.chars().any(|c| c.is_control() && c != '\n') {
        return Err(DenyCode::InvalidApplication);
    }
    Ok(())
}

impl ApprovalRequest {
    /// Submits `subject` through `flow`. Refused when the first node has nobody who may
    /// approve (a request nobody can decide is reported, not left to expire).
    pub fn submit(
        org: &Org,
        flow: &Flow,
        submission: Submission<'_>,
        subject: Subject,
        now: i64,
    ) -> Result<ApprovalRequest, DenyCode> {
        let Submission {
            id,
            submitter,
            reason,
        } = submission;
        org.active_employee(submitter)?;
        flow.validate()?;
        check_reason(reason)?;
        if flow.scenario != subject.scenario() {
            return Err(DenyCode::FlowInvalid);
        }
        let request = ApprovalRequest {
            id: id.to_owned(),
            submitter: submitter.to_owned(),
            subject,
            reason: reason.to_owned(),
            flow: flow.clone(),
            state: ApprovalState::Pending,
            node: 0,
            approved_by: Vec::new(),
            history: vec![Step {
                action: StepAction::Submit,
                actor: Some(submitter.to_owned()),
                node: 0,
                at: now,
                comment: None,
            }],
            submitted_at: now,
            expires_at: now.saturating_add(flow.deadline_seconds),
        };
        if request.eligible(org, 0).is_empty() {
            return Err(DenyCode::NoEligibleApprover);
        }
        Ok(request)
    }

    /// The employees who may approve node `node` now: the node's roles' active members and
    /// its named active members, never the submitter.
    pub fn eligible(&self, org: &Org, node: usize) -> Vec<String> {
        let Some(n) = self.flow.nodes.get(node) else {
            return Vec::new();
        };
        let mut ids: Vec<String> = n
            .approvers
            .iter()
            .flat_map(|a| -> Vec<String> {
                match a {
                    Approver::Role(r) => org.members_of(r).map(|e| e.id.clone()).collect(),
                    Approver::Member(m) => org
                        .employee(m)
                        .filter(|e| e.is_active())
                        .map(|e| vec![e.id.clone()])
                        .unwrap_or_default(),
                }
            })
            .filter(|id| *id != self.submitter)
            .collect();
        ids.sort();
        ids.dedup();
        ids
    }

    pub fn is_pending(&self, now: i64) -> bool {
        self.state == ApprovalState::Pending && now < self.expires_at
    }

    /// Marks a pending request past its deadline expired; says whether it changed.
    pub fn expire_if_due(&mut self, now: i64) -> bool {
        if self.state == ApprovalState::Pending && now >= self.expires_at {
            self.state = ApprovalState::Expired;
            self.step(StepAction::Expire, None, now, None);
            return true;
        }
        false
    }

    /// A pending request whose current node has nobody who may approve it.
    pub fn stalled(&self, org: &Org) -> Option<usize> {
        (self.state == ApprovalState::Pending && self.eligible(org, self.node).is_empty())
            .then_some(self.node)
    }

    /// Whether the request waits for `employee`'s decision.
    pub fn waits_for(&self, org: &Org, employee: &str, now: i64) -> bool {
        self.is_pending(now)
            && !self.approved_by.iter().any(|a| a == employee)
            && self.eligible(org, self.node).iter().any(|e| e == employee)
    }

    fn step(&mut self, action: StepAction, actor: Option<&str>, at: i64, comment: Option<&str>) {
        self.history.push(Step {
            action,
            actor: actor.map(str::to_owned),
            node: self.node,
            at,
            comment: comment.map(str::to_owned),
        });
    }

    /// The checks every approver action shares.
    fn check_approver(&self, org: &Org, actor: &str, now: i64) -> Result<(), DenyCode> {
        if self.state != ApprovalState::Pending {
            return Err(DenyCode::NotPending);
        }
        if now >= self.expires_at {
            return Err(DenyCode::ApprovalExpired);
        }
        org.active_employee(actor)?;
        if actor == self.submitter {
            return Err(DenyCode::SelfApproval);
        }
        if !self.eligible(org, self.node).iter().any(|e| e == actor) {
            return Err(DenyCode::NotAnApprover);
        }
        Ok(())
    }

    pub fn approve(
        &mut self,
        org: &Org,
        actor: &str,
        now: i64,
        comment: Option<&str>,
    ) -> Result<Transition, DenyCode> {
        self.check_approver(org, actor, now)?;
        if self.approved_by.iter().any(|a| a == actor) {
            return Err(DenyCode::AlreadyApproved);
        }
        self.approved_by.push(actor.to_owned());
        self.step(StepAction::Approve, Some(actor), now, comment);
        Ok(self.settle(org).unwrap_or(Transition::Recorded))
    }

    /// Moves on if the current node is complete: one approval for or-sign; for joint-sign,
    /// every approver still eligible (resigned ones drop out) has approved. Called after an
    /// approval, and after the organization changed (a resignation can complete a node).
    pub fn settle(&mut self, org: &Org) -> Option<Transition> {
        if self.state != ApprovalState::Pending || self.approved_by.is_empty() {
            return None;
        }
        let eligible = self.eligible(org, self.node);
        let complete = match self.flow.nodes[self.node].mode {
            SignMode::Or => self.approved_by.iter().any(|a| eligible.contains(a)),
            SignMode::Joint => {
                !eligible.is_empty() && eligible.iter().all(|e| self.approved_by.contains(e))
            }
        };
        if !complete {
            return None;
        }
        self.approved_by.clear();
        if self.node + 1 == self.flow.nodes.len() {
            self.state = ApprovalState::Approved;
            return Some(Transition::Approved);
        }
        self.node += 1;
        Some(Transition::Advanced {
            node: self.node,
            stalled: self.eligible(org, self.node).is_empty(),
        })
    }

    pub fn reject(
        &mut self,
        org: &Org,
        actor: &str,
        now: i64,
        comment: Option<&str>,
    ) -> Result<Transition, DenyCode> {
        self.check_approver(org, actor, now)?;
        self.state = ApprovalState::Rejected;
        self.step(StepAction::Reject, Some(actor), now, comment);
        Ok(Transition::Rejected)
    }

    pub fn cancel(&mut self, actor: &str, now: i64) -> Result<Transition, DenyCode> {
        if actor != self.submitter {
            return Err(DenyCode::NotSubmitter);
        }
        if !self.is_pending(now) {
            return Err(DenyCode::NotPending);
        }
        self.state = ApprovalState::Canceled;
        self.step(StepAction::Cancel, Some(actor), now, None);
        Ok(Transition::Canceled)
    }

    /// Starts a rejected, expired or canceled request again from its first node, with a new
    /// deadline.
    pub fn resubmit(&mut self, org: &Org, actor: &str, now: i64) -> Result<Transition, DenyCode> {
        if actor != self.submitter {
            return Err(DenyCode::NotSubmitter);
        }
        org.active_employee(actor)?;
        let expired = self.state == ApprovalState::Pending && now >= self.expires_at;
        if !matches!(
            self.state,
            ApprovalState::Rejected | ApprovalState::Expired | ApprovalState::Canceled
        ) && !expired
        {
            return Err(DenyCode::NotResubmittable);
        }
        if self.eligible(org, 0).is_empty() {
            return Err(DenyCode::NoEligibleApprover);
        }
        self.state = ApprovalState::Pending;
        self.node = 0;
        self.approved_by.clear();
        self.submitted_at = now;
        self.expires_at = now.saturating_add(self.flow.deadline_seconds);
        self.step(StepAction::Resubmit, Some(actor), now, None);
        Ok(Transition::Resubmitted)
    }

    /// Whether `employee` may see this request: its submitter, anyone who acted on it,
    /// anyone who may approve it now, and the super administrator.
    pub fn visible_to(&self, org: &Org, employee: &str) -> bool {
        self.submitter == employee
            || self
                .history
                .iter()
                .any(|s| s.actor.as_deref() == Some(employee))
            || self.eligible(org, self.node).iter().any(|e| e == employee)
            || org
                .employee(employee)
                .is_some_and(|e| org.has_role(e, SystemRole::SuperAdministrator))
    }

    /// Submits a contract for approval: the document by id and SHA-256.
    pub fn contract_approval(
        org: &Org,
        flow: &Flow,
        submission: Submission<'_>,
        document_id: &str,
        document_sha256: &str,
        now: i64,
    ) -> Result<ApprovalRequest, DenyCode> {
        crate::grant::check_document_id(document_id)?;
        crate::grant::check_sha256(document_sha256)?;
        let subject = Subject::ContractApproval {
            document_id: document_id.to_owned(),
            document_sha256: document_sha256.to_owned(),
        };
        ApprovalRequest::submit(org, flow, submission, subject, now)
    }

    /// An employee applies for a role (permission application). The super administrator and
    /// legal representative roles are assigned, never applied for.
    pub fn role_application(
        org: &Org,
        flow: &Flow,
        submission: Submission<'_>,
        role: &str,
        now: i64,
    ) -> Result<ApprovalRequest, DenyCode> {
        let def = org.role(role).ok_or(DenyCode::RoleNotFound)?;
        if matches!(
            def.system,
            Some(SystemRole::SuperAdministrator | SystemRole::LegalRepresentative)
        ) {
            return Err(DenyCode::RoleNotApplicable);
        }
        if org
            .active_employee(submission.submitter)?
            .roles
            .iter()
            .any(|r| r == role)
        {
            return Err(DenyCode::RoleHeld);
        }
        let subject = Subject::PermissionApplication {
            role: role.to_owned(),
        };
        ApprovalRequest::submit(org, flow, submission, subject, now)
    }

    /// The organization once an approved permission application takes effect: the submitter
    /// holds the role.
    pub fn role_granted(&self, org: &Org) -> Result<Org, DenyCode> {
        let Subject::PermissionApplication { role } = &self.subject else {
            return Err(DenyCode::InvalidApplication);
        };
        if self.state != ApprovalState::Approved {
            return Err(DenyCode::NotPending);
        }
        let mut changed = org.clone();
        let e = changed
            .employee_mut(&self.submitter)
            .ok_or(DenyCode::EmployeeNotFound)?;
        if !e.is_active() {
            return Err(DenyCode::EmployeeResigned);
        }
        if !e.roles.contains(role) {
            e.roles.push(role.clone());
            e.roles.sort();
        }
        changed.validate()?;
        Ok(changed)
    }

    /// Whether `employee` submitted this pending request or is named in a node not yet
    /// passed.
    pub fn involves(&self, employee: &str) -> bool {
        let named = Approver::Member(employee.to_owned());
        self.state == ApprovalState::Pending
            && (self.submitter == employee
                || self
                    .flow
                    .nodes
                    .iter()
                    .skip(self.node)
                    .any(|n| n.approvers.contains(&named)))
    }

    /// Hands `from`'s part in this request to `to`: the request itself if `from` submitted
    /// it, and `from`'s named-member places in the nodes not yet passed.
    pub fn hand_over(&mut self, from: &str, to: &str, now: i64) -> bool {
        if self.state != ApprovalState::Pending {
            return false;
        }
        let mut changed = false;
        if self.submitter == from {
            self.submitter = to.to_owned();
            changed = true;
        }
        for node in self.flow.nodes.iter_mut().skip(self.node) {
            for approver in &mut node.approvers {
                if *approver == Approver::Member(from.to_owned()) {
                    *approver = Approver::Member(to.to_owned());
                    changed = true;
                }
            }
        }
        if changed {
            self.step(StepAction::Handover, Some(to), now, Some(from));
        }
        changed
    }
}

/// An approver's to-do list.
#[derive(Debug, Default)]
pub struct PendingCenter<'a> {
    /// Pending requests whose current node waits for me.
    pub waiting_for_me: Vec<&'a ApprovalRequest>,
    /// Pending requests I submitted.
    pub submitted_by_me: Vec<&'a ApprovalRequest>,
    /// Of those two, the ones that expire within three days.
    pub expiring_soon: Vec<&'a ApprovalRequest>,
    /// Of those two, the ones stuck at a node nobody may approve.
    pub stalled: Vec<&'a ApprovalRequest>,
}

pub fn pending_center<'a>(
    requests: &'a [ApprovalRequest],
    org: &Org,
    me: &str,
    now: i64,
) -> PendingCenter<'a> {
    let mut center = PendingCenter::default();
    for r in requests.iter().filter(|r| r.is_pending(now)) {
        let mine = r.submitter == me;
        let waiting = r.waits_for(org, me, now);
        if waiting {
            center.waiting_for_me.push(r);
        }
        if mine {
            center.submitted_by_me.push(r);
        }
        if (mine || waiting) && r.expires_at - now <= EXPIRING_SOON {
            center.expiring_soon.push(r);
        }
        if mine && r.stalled(org).is_some() {
            center.stalled.push(r);
        }
    }
    center
}

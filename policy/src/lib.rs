//! seald's seal-governance model and every decision it makes. Pure: no I/O, no async, no
//! clock — callers pass a snapshot of what is stored and the time (unix seconds), and store
//! what comes back. Every refusal carries a stable [`DenyCode`] (the daemon's problem+json
//! `code`; docs/policy.md lists them with worked examples).
//!
//! - [`enterprise`]: the enterprise, its unified social credit code and feature switches;
//! - [`org`]: departments, employees and the roles they hold, data scopes;
//! - [`role`]: system roles (fixed) and custom roles (permission points and a scope);
//! - [`seal`]: seal types, lifecycle and holders, and who may change them;
//! - [`flow`]: approval flows and the requests going through them, the pending center;
//! - [`grant`]: seal-use applications and the grants their approval yields;
//! - [`template`]: templates, signing areas, fill-in fields, auto-sign templates and the
//!   auto-sign and batch-sign authorizations;
//! - [`group`]: a group's member subsidiaries, the scopes they grant, their quota pool;
//! - [`partner`]: partner enterprises' authorizations and invitation links;
//! - [`fill`]: the values a template's fill-in fields accept (per row of a batch job);
//! - [`batch`]: batch-sign confirmations (one signing password for many documents);
//! - [`limits`]: caps per seal per day and month, time windows, the contract quota;
//! - [`password`]: the signing password's rules and lockout;
//! - [`admin`]: administering roles, departments, employees, flows, resignations;
//! - [`decision`]: [`decide`] — allow (with what permits it), needs approval, or deny;
//! - [`application`]: the mTLS principals (integrators' systems).

pub mod admin;
pub mod application;
pub mod batch;
pub mod decision;
pub mod deny;
pub mod enterprise;
pub mod fill;
pub mod flow;
pub mod grant;
pub mod group;
pub mod limits;
pub mod org;
pub mod partner;
pub mod password;
pub mod role;
pub mod seal;
pub mod template;

pub use application::{AppRole, Application};
pub use decision::{
    decide, explain, Decision, DocumentRef, Evaluated, Explanation, Outcome, Permit, Request, Rule,
    SignRequest, Snapshot,
};
pub use deny::DenyCode;
pub use enterprise::{CreditCode, Enterprise, Features};
pub use flow::{ApprovalRequest, ApprovalState, Approver, Flow, Node, Scenario, SignMode, Subject};
pub use grant::Grant;
pub use org::{Department, Employee, EmployeeStatus, Org};
pub use role::{DataScope, Permission, RoleDef, SystemRole};
pub use seal::{Seal, SealSource, SealStatus, SealType};
pub use template::{Authorization, SigningArea, Template};

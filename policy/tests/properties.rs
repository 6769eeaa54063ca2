//! Properties over random sequences of administrative actions, approvals, time and signing
//! attempts: a non-holder never signs without an approved, unexpired, unconsumed grant for
//! that very document, and a grant is never used more often than approved, also when
//! requests decided at the same moment commit one after the other.

mod world;

use proptest::prelude::*;
use seald_policy::flow::{SealUse, Submission, Transition};
use seald_policy::*;
use std::collections::HashMap;
use world::*;

const PEOPLE: &[&str] = &[
    "alice", "bob", "carol", "sa1", "sa2", "appr", "legal", "boss",
];
const SEALS: &[&str] = &[
    "official",
    "contract",
    "finance",
    "legal-seal",
    "pending",
    "practice-ok",
];
const DOCS: &[(&str, &str)] = &[(DOC, SHA), (DOC, OTHER_SHA), ("other-doc", SHA)];

#[derive(Debug, Clone)]
enum Op {
    SetHolders {
        actor: usize,
        seal: usize,
        holders: Vec<usize>,
    },
    Status {
        actor: usize,
        seal: usize,
        to: usize,
    },
    Apply {
        who: usize,
        seal: usize,
        doc: usize,
        uses: u32,
        days: i64,
    },
    Approve {
        actor: usize,
        request: usize,
    },
    Reject {
        actor: usize,
        request: usize,
    },
    Cancel {
        request: usize,
    },
    Resubmit {
        request: usize,
    },
    Tick {
        seconds: i64,
    },
    Sign {
        who: usize,
        seal: usize,
        doc: usize,
    },
    /// A signing attempt by a request's submitter, for its seal and document (or the other
    /// version of it), whatever became of the request.
    SignApplied {
        request: usize,
        other_version: bool,
    },
    Resign {
        who: usize,
        to: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let p = 0..PEOPLE.len();
    let s = 0..SEALS.len();
    prop_oneof![
        1 => (p.clone(), s.clone(), prop::collection::vec(0..PEOPLE.len(), 0..3))
            .prop_map(|(actor, seal, holders)| Op::SetHolders { actor, seal, holders }),
        1 => (p.clone(), s.clone(), 0..4usize).prop_map(|(actor, seal, to)| Op::Status { actor, seal, to }),
        3 => (p.clone(), s.clone(), 0..DOCS.len(), 1..3u32, 1..10i64)
            .prop_map(|(who, seal, doc, uses, days)| Op::Apply { who, seal, doc, uses, days }),
        3 => (p.clone(), 0..8usize).prop_map(|(actor, request)| Op::Approve { actor, request }),
        1 => (p.clone(), 0..8usize).prop_map(|(actor, request)| Op::Reject { actor, request }),
        1 => (0..8usize).prop_map(|request| Op::Cancel { request }),
        1 => (0..8usize).prop_map(|request| Op::Resubmit { request }),
        1 => (0..4 * DAY).prop_map(|seconds| Op::Tick { seconds }),
        6 => (p.clone(), s.clone(), 0..DOCS.len()).prop_map(|(who, seal, doc)| Op::Sign { who, seal, doc }),
        5 => (0..8usize, prop::bool::weighted(0.2))
            .prop_map(|(request, other_version)| Op::SignApplied { request, other_version }),
        1 => (p.clone(), p).prop_map(|(who, to)| Op::Resign { who, to }),
    ]
}

struct World {
    org: Org,
    seals: Vec<Seal>,
    requests: Vec<ApprovalRequest>,
    grants: Vec<Grant>,
    /// Uses approved per grant, and uses taken.
    approved_uses: HashMap<String, u32>,
    taken: HashMap<String, u32>,
    now: i64,
}

impl World {
    fn new() -> World {
        World {
            org: org(),
            seals: seals(),
            requests: Vec::new(),
            grants: Vec::new(),
            approved_uses: HashMap::new(),
            taken: HashMap::new(),
            now: NOW,
        }
    }

    fn seal_index(&self, id: &str) -> usize {
        self.seals.iter().position(|s| s.id == id).expect("allowed")
    }

    fn run(&mut self, op: &Op) {
        let now = self.now;
        match op {
            Op::SetHolders {
                actor,
                seal,
                holders,
            } => {
                let i = self.seal_index(SEALS[*seal]);
                let holders: Vec<String> = holders.iter().map(|h| PEOPLE[*h].to_owned()).collect();
                if let Ok(changed) =
                    seal::set_holders(&self.org, PEOPLE[*actor], &self.seals[i], &holders)
                {
                    self.seals[i] = changed;
                }
            }
            Op::Status { actor, seal, to } => {
                let i = self.seal_index(SEALS[*seal]);
                let to = [
                    SealStatus::PendingReview,
                    SealStatus::Active,
                    SealStatus::Disabled,
                    SealStatus::Deleted,
                ][*to];
                if seal::change_status(&self.org, PEOPLE[*actor], &self.seals[i], to).is_ok() {
                    self.seals[i].status = to;
                }
            }
            Op::Apply {
                who,
                seal,
                doc,
                uses,
                days,
            } => {
                let i = self.seal_index(SEALS[*seal]);
                let (document_id, sha) = DOCS[*doc];
                let application = SealUse {
                    seal: SEALS[*seal].to_owned(),
                    document_id: document_id.to_owned(),
                    document_sha256: sha.to_owned(),
                    uses: *uses,
                    valid_until: now + days * DAY,
                };
                let id = format!("r{}", self.requests.len());
                let flow = Flow::default_for(Scenario::SealUse);
                if let Ok(r) = grant::apply(
                    &self.org,
                    &self.seals[i],
                    &flow,
                    Submission {
                        id: &id,
                        submitter: PEOPLE[*who],
                        reason: "",
                    },
                    application,
                    now,
                ) {
                    self.requests.push(r);
                }
            }
            Op::Approve { actor, request } => {
                let Some(r) = self.requests.get_mut(*request) else {
                    return;
                };
                if r.approve(&self.org, PEOPLE[*actor], now, None) == Ok(Transition::Approved) {
                    let g = Grant::from_approved(r, &format!("g-{}", r.id)).expect("allowed");
                    self.approved_uses.insert(g.id.clone(), g.uses_left);
                    self.grants.push(g);
                }
            }
            Op::Reject { actor, request } => {
                if let Some(r) = self.requests.get_mut(*request) {
                    let _ = r.reject(&self.org, PEOPLE[*actor], now, None);
                }
            }
            Op::Cancel { request } => {
                if let Some(r) = self.requests.get_mut(*request) {
                    let submitter = r.submitter.clone();
                    let _ = r.cancel(&submitter, now);
                }
            }
            Op::Resubmit { request } => {
                if let Some(r) = self.requests.get_mut(*request) {
                    // A resubmitted request that was approved before cannot be: only
                    // rejected, expired or canceled ones go round again.
                    let submitter = r.submitter.clone();
                    let _ = r.resubmit(&self.org, &submitter, now);
                }
            }
            Op::Tick { seconds } => {
                self.now += seconds;
                let now = self.now;
                for r in &mut self.requests {
                    r.expire_if_due(now);
                }
            }
            Op::Resign { who, to } => {
                if let Ok(h) = admin::resign(
                    &self.org,
                    &self.seals,
                    &self.requests,
                    "boss",
                    PEOPLE[*who],
                    PEOPLE[*to],
                ) {
                    h.apply(&mut self.org, &mut self.seals, &mut self.requests, now);
                }
            }
            Op::Sign { who, seal, doc } => self.sign(PEOPLE[*who], SEALS[*seal], DOCS[*doc]),
            Op::SignApplied {
                request,
                other_version,
            } => {
                let Some(r) = self.requests.get(*request) else {
                    return;
                };
                let Subject::SealUse(u) = &r.subject else {
                    return;
                };
                let sha = if *other_version { OTHER_SHA } else { SHA };
                let (who, seal, doc) = (r.submitter.clone(), u.seal.clone(), u.document_id.clone());
                self.sign(&who, &seal, (&doc, sha));
            }
        }
    }

    fn sign(&mut self, who: &str, seal_id: &str, (doc, sha): (&str, &str)) {
        let app = oa();
        let decision = {
            let snapshot = Snapshot {
                application: &app,
                org: Some(&self.org),
                seal: self.seals.iter().find(|s| s.id == seal_id),
                grants: &self.grants,
                approvals: &self.requests,
                usage: Default::default(),
                template: None,
                batch: None,
                partners: &[],
            };
            let request = Request::Sign(SignRequest {
                seal: seal_id,
                employee: Some(who),
                document: Some(DocumentRef {
                    id: doc,
                    sha256: sha,
                }),
                password_confirmed: true,
                ..Default::default()
            });
            decide(&snapshot, &request, self.now)
        };
        let Decision::Allow(permit) = decision else {
            return;
        };
        let seal = self
            .seals
            .iter()
            .find(|s| s.id == seal_id)
            .expect("allowed");
        assert_eq!(
            seal.status,
            SealStatus::Active,
            "{seal_id} signed while {:?}",
            seal.status
        );
        assert!(
            self.org.active_employee(who).is_ok(),
            "{who} signed while not active"
        );
        match permit {
            Permit::Holder => assert!(
                seal.is_holder(who),
                "{who} signed as holder of {seal_id} without holding it"
            ),
            Permit::Grant { id } => {
                let g = self
                    .grants
                    .iter_mut()
                    .find(|g| g.id == id)
                    .expect("a grant that exists");
                assert!(!seal.is_holder(who));
                assert_eq!((g.employee.as_str(), g.seal.as_str()), (who, seal_id));
                assert_eq!(
                    (g.document_id.as_str(), g.document_sha256.as_str()),
                    (doc, sha)
                );
                assert!(self.now < g.valid_until, "an expired grant was used");
                let approval = self
                    .requests
                    .iter()
                    .find(|r| r.id == g.approval)
                    .expect("allowed");
                assert_eq!(approval.state, ApprovalState::Approved);
                // The daemon consumes in the audit transaction; here, right away.
                g.consume(sha, self.now)
                    .expect("an allowed grant can be consumed");
                let taken = self.taken.entry(id.clone()).or_default();
                *taken += 1;
                assert!(
                    *taken <= self.approved_uses[&id],
                    "grant {id} used more often than approved"
                );
            }
            Permit::Application
            | Permit::AutoSign { .. }
            | Permit::Partner { .. }
            | Permit::Group { .. } => {
                panic!("an employee's request was allowed as the application's own")
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    /// Signing attempts spread over days, each allowed one consumed: no day passes the
    /// seal's daily cap, no month its monthly cap, and the quota counts each document once.
    #[test]
    fn caps_and_quota_are_never_exceeded(
        per_day in 1..5u32,
        per_month in 1..12u32,
        quota in 1..6u64,
        attempts in prop::collection::vec((0..40i64, 0..4usize), 1..80),
    ) {
        let app = oa();
        let mut org = org();
        org.enterprise.contract_quota = Some(quota);
        let mut s = seals();
        s[1].limits = limits::SealLimits { per_day: Some(per_day), per_month: Some(per_month), windows: vec![] };
        let mut attempts = attempts;
        attempts.sort();
        let (mut by_day, mut by_month) = (std::collections::HashMap::new(), std::collections::HashMap::new());
        let mut counted: Vec<usize> = Vec::new();
        for (day, doc) in attempts {
            let now = NOW + day * DAY;
            let at = limits::local_time(now, org.enterprise.utc_offset_minutes);
            let usage = limits::Usage {
                seal_today: *by_day.get(&at.day).unwrap_or(&0),
                seal_this_month: *by_month.get(&at.month.0).unwrap_or(&0),
                contracts_used: counted.len() as u64,
                document_counted: counted.contains(&doc),
                ..Default::default()
            };
            let snapshot = Snapshot { org: Some(&org), usage, ..Snapshot::of(&app, Some(&s[1])) };
            let id = format!("doc-{doc}");
            let request = Request::Sign(SignRequest {
                seal: "contract",
                employee: Some("alice"),
                document: Some(DocumentRef { id: &id, sha256: SHA }),
                password_confirmed: true,
                ..Default::default()
            });
            if decide(&snapshot, &request, now) == Decision::Allow(Permit::Holder) {
                *by_day.entry(at.day).or_insert(0) += 1;
                *by_month.entry(at.month.0).or_insert(0) += 1;
                if !counted.contains(&doc) {
                    counted.push(doc);
                }
            }
        }
        prop_assert!(by_day.values().all(|&n| n <= per_day));
        prop_assert!(by_month.values().all(|&n| n <= per_month));
        prop_assert!(counted.len() as u64 <= quota);
    }

    #[test]
    fn no_sequence_lets_a_non_holder_sign_without_a_live_grant(ops in prop::collection::vec(op(), 1..60)) {
        let mut world = World::new();
        for op in &ops {
            world.run(op);
        }
    }

    #[test]
    fn requests_decided_together_use_a_grant_at_most_as_often_as_approved(
        uses in 1..4u32,
        concurrent in 1..8usize,
        order in prop::collection::vec(any::<prop::sample::Index>(), 8),
    ) {
        // `concurrent` requests are decided against the same snapshot (all see the grant
        // unused), then commit one by one in a random order, each consuming inside its
        // commit as the daemon does.
        let mut g = grant("g1", "bob", "contract", uses, NOW + DAY);
        let app = oa();
        let org = org();
        let s = seals();
        let snapshot_grants = vec![g.clone()];
        let decisions: Vec<Decision> = (0..concurrent)
            .map(|_| {
                let snapshot = Snapshot {
                    application: &app,
                    org: Some(&org),
                    seal: Some(find(&s, "contract")),
                    grants: &snapshot_grants,
                    approvals: &[],
                    usage: Default::default(),
                    template: None,
                    batch: None,
                    partners: &[],
                };
                let request = Request::Sign(SignRequest {
                    seal: "contract",
                    employee: Some("bob"),
                    document: Some(DocumentRef { id: DOC, sha256: SHA }),
                    password_confirmed: true,
                    ..Default::default()
                });
                decide(&snapshot, &request, NOW)
            })
            .collect();
        let allowed = Decision::Allow(Permit::Grant { id: "g1".to_owned() });
        prop_assert!(decisions.iter().all(|d| *d == allowed), "every request sees the grant unused");
        let mut pending: Vec<usize> = (0..concurrent).collect();
        let mut committed = 0u32;
        for pick in &order {
            if pending.is_empty() {
                break;
            }
            pending.remove(pick.index(pending.len()));
            if g.consume(SHA, NOW).is_ok() {
                committed += 1;
            }
        }
        for _ in pending {
            if g.consume(SHA, NOW).is_ok() {
                committed += 1;
            }
        }
        prop_assert_eq!(committed, uses.min(concurrent as u32));
    }
}

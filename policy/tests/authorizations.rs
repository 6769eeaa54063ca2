//! Properties of the unattended and batch authorizations: revoking one takes effect for the
//! very next request, and a batch confirmation is never stretched past its count or its
//! lifetime, also when requests decided together commit one after the other.

mod world;

use proptest::prelude::*;
use seald_policy::batch::{BatchAsk, BatchBounds, BatchConfirmation};
use seald_policy::*;
use world::*;

/// The HR system: its own (auto-sign) requests, and bob's through it.
fn hr() -> Application {
    Application {
        id: "hr".to_owned(),
        ..oa()
    }
}

fn decide_auto_sign(org: &Org, template: &Template) -> Decision {
    let app = hr();
    let s = seals();
    let snapshot = Snapshot {
        template: Some(template),
        ..Snapshot::of(&app, Some(find(&s, "contract")))
    };
    let snapshot = Snapshot {
        org: Some(org),
        ..snapshot
    };
    let request = Request::Sign(SignRequest {
        seal: "contract",
        template: Some(&template.id),
        area: Some("employer"),
        from_template: true,
        ..Default::default()
    });
    decide(&snapshot, &request, NOW)
}

fn decide_partner(org: &Org, partners: &[partner::PartnerAuthorization]) -> Decision {
    let app = Application {
        id: "partner".to_owned(),
        acts_for_employees: false,
        partner: Some(CreditCode::parse(PARTNER).expect("valid")),
        ..oa()
    };
    let s = seals();
    let t = templates();
    let snapshot = Snapshot {
        org: Some(org),
        template: Some(&t[0]),
        partners,
        ..Snapshot::of(&app, Some(find(&s, "contract")))
    };
    let request = Request::Sign(SignRequest {
        seal: "contract",
        template: Some("nda"),
        area: Some("party-a"),
        from_template: true,
        ..Default::default()
    });
    decide(&snapshot, &request, NOW)
}

fn decide_batch(org: &Org, batch: &BatchConfirmation, now: i64) -> Decision {
    let app = hr();
    let mut s = seals();
    s[1].holders.push("bob".to_owned());
    let snapshot = Snapshot {
        org: Some(org),
        batch: Some(batch),
        ..Snapshot::of(&app, Some(&s[1]))
    };
    let request = Request::Sign(SignRequest {
        seal: "contract",
        employee: Some("bob"),
        batch_confirmed: true,
        ..Default::default()
    });
    decide(&snapshot, &request, now)
}

#[derive(Debug, Clone)]
enum Change {
    /// boss's auto-sign authorization (granted by the legal representative).
    AutoSignAuthorization(bool),
    /// The enterprise's auto-sign switch.
    AutoSign(bool),
    /// The labour template enabled or not.
    Template(bool),
    /// bob's batch-sign authorization.
    BatchAuthorization(bool),
    /// boss resigns (handing over to the legal representative).
    Resign,
    /// The partner's authorization revoked, or a new one granted.
    Partner(bool),
}

fn change() -> impl Strategy<Value = Change> {
    prop_oneof![
        any::<bool>().prop_map(Change::AutoSignAuthorization),
        any::<bool>().prop_map(Change::AutoSign),
        any::<bool>().prop_map(Change::Template),
        any::<bool>().prop_map(Change::BatchAuthorization),
        Just(Change::Resign),
        any::<bool>().prop_map(Change::Partner),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn revocation_takes_effect_for_the_very_next_request(
        changes in prop::collection::vec(change(), 1..30),
    ) {
        let mut org = org();
        org.enterprise.features.auto_sign = true;
        let mut template = templates()[1].clone();
        let ask = BatchAsk { seal: None, count: 1000, lifetime_seconds: 3600 };
        let batch = batch::confirm(&org, "bob", &ask, BatchBounds { max_count: 1000, max_lifetime_seconds: 3600 }, "b1", NOW - 1)
            .expect("confirmed");
        // What the model says should be allowed, kept apart from the organization.
        let (mut authorized, mut switched_on, mut enabled, mut batch_ok, mut boss_active) =
            (true, true, true, true, true);
        let mut partners = vec![partner_authorization()];
        let mut partner_ok = true;
        for c in &changes {
            // Every change goes through the administering functions, as the daemon's do.
            match *c {
                Change::AutoSignAuthorization(on) => {
                    if let Ok(o) = template::set_authorization(&org, "legal", "boss", Authorization::AutoSign, on) {
                        org = o;
                        authorized = on;
                    } else {
                        prop_assert!(!boss_active && on, "only granting to the resigned fails");
                    }
                }
                Change::AutoSign(on) => {
                    let features = Features { auto_sign: on, ..org.enterprise.features };
                    org = admin::set_features(&org, "legal", features).expect("the legal representative switches");
                    switched_on = on;
                }
                Change::Template(on) => {
                    let super_administrator = if boss_active { "boss" } else { "legal" };
                    template = template::set_enabled(&org, super_administrator, &template, on)
                        .expect("the super administrator manages templates");
                    enabled = on;
                }
                Change::BatchAuthorization(on) => {
                    org = template::set_authorization(&org, "legal", "bob", Authorization::BatchSign, on)
                        .expect("bob is active");
                    batch_ok = on;
                }
                Change::Partner(grant) => {
                    let principal = if boss_active { "boss" } else { "legal" };
                    if grant {
                        let code = CreditCode::parse(PARTNER).expect("valid");
                        let g = partner::PartnerGrant {
                            seals: vec!["contract".to_owned()],
                            scope: partner::PartnerScope::Initiated,
                            expires_at: NOW + DAY,
                        };
                        let id = format!("pa-{}", partners.len() + 1);
                        partners.push(
                            partner::authorize(&org, principal, &seals(), &[], (&code, "合作方"), &g, &id, NOW - 1)
                                .expect("granted"),
                        );
                        partner_ok = true;
                    } else {
                        for p in partners.iter_mut().filter(|p| p.revoked_at.is_none()) {
                            *p = partner::revoke(&org, principal, p, NOW).expect("revoked");
                        }
                        partner_ok = false;
                    }
                }
                Change::Resign => {
                    if boss_active {
                        // The super administrator role moves to the legal representative first.
                        org = admin::transfer_super_administrator(&org, "boss", "legal").expect("transferred");
                        let mut s = seals();
                        admin::resign(&org, &s, &[], "legal", "boss", "legal")
                            .expect("resigned")
                            .apply(&mut org, &mut s, &mut [], NOW);
                        boss_active = false;
                    }
                }
            }
            // The very next request sees the change.
            let auto = decide_auto_sign(&org, &template);
            let expect_auto = authorized && switched_on && enabled && boss_active;
            prop_assert_eq!(
                matches!(auto, Decision::Allow(Permit::AutoSign { .. })),
                expect_auto,
                "after {:?}: {:?}", c, auto
            );
            let by_partner = decide_partner(&org, &partners);
            prop_assert_eq!(
                matches!(by_partner, Decision::Allow(Permit::Partner { .. })),
                partner_ok && switched_on,
                "after {:?}: {:?}", c, by_partner
            );
            let by_batch = decide_batch(&org, &batch, NOW);
            prop_assert_eq!(by_batch == Decision::Allow(Permit::Holder), batch_ok, "after {:?}: {:?}", c, by_batch);
        }
    }

    #[test]
    fn a_batch_confirmation_is_never_stretched_past_its_count_or_lifetime(
        count in 1..20u32,
        lifetime in 1..600i64,
        // Waves of requests decided together: (seconds elapsed before, requests in the wave,
        // their commit order, seconds each commit comes after its decision).
        waves in prop::collection::vec(
            (0..120i64, 1..8usize, prop::collection::vec(any::<prop::sample::Index>(), 8), 0..5i64),
            1..20,
        ),
    ) {
        let org = org();
        let ask = BatchAsk { seal: Some("contract".to_owned()), count, lifetime_seconds: lifetime };
        let bounds = BatchBounds { max_count: 20, max_lifetime_seconds: 600 };
        let mut stored = batch::confirm(&org, "bob", &ask, bounds, "b1", NOW).expect("confirmed");
        let mut now = NOW;
        let mut signed = 0u32;
        for (elapsed, size, order, commit_delay) in &waves {
            now += elapsed;
            // Every request of the wave is decided against the same stored state.
            let allowed = (0..*size)
                .filter(|_| decide_batch(&org, &stored, now) == Decision::Allow(Permit::Holder))
                .count();
            if now >= NOW + lifetime || stored.used >= count {
                prop_assert_eq!(allowed, 0, "allowed past its lifetime or count");
            } else {
                prop_assert_eq!(allowed, *size);
            }
            // They commit in a random order, each taking its use the way the store does:
            // only if one is left and the confirmation is still alive at commit time.
            let mut pending: Vec<usize> = (0..allowed).collect();
            let commit_at = now + commit_delay;
            let mut picks = order.iter();
            while !pending.is_empty() {
                let i = picks.next().map_or(0, |p| p.index(pending.len()));
                pending.remove(i);
                if stored.consume("bob", "contract", commit_at).is_ok() {
                    signed += 1;
                    prop_assert!(commit_at < NOW + lifetime, "a use taken after the lifetime");
                }
            }
            prop_assert!(signed <= count, "{} signatures on a confirmation for {}", signed, count);
            prop_assert_eq!(stored.used, signed);
        }
    }
}

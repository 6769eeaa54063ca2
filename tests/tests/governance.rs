//! Seal governance end to end through the running daemon: an enterprise set up over the API,
//! seals created and approved, holders, seal-use applications and their grants, the
//! legal-representative seal, resignations in the middle of a flow.

use std::fs;
use std::time::{SystemTime, UNIX_EPOCH};

use reqwest::blocking::Client;
use seald_tests::daemon::{client_cert, send, sha256_hex, Answer, Daemon, Setup};
use seald_tests::pdf::Validators;
use serde_json::{json, Value};

/// A daemon with an enterprise: boss (super administrator), legal (legal representative),
/// sa1 and sa2 (seal administrators), appr (seal approver), alice and bob (business staff);
/// clients `admin` (the administering application) and `oa` (a signer acting for employees).
struct World {
    setup: Setup,
    d: Daemon,
    admin: Client,
    oa: Client,
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

/// Everyone's signing password in these tests.
const PASSWORD: &str = "246810";

impl World {
    fn new() -> World {
        World::with_config("")
    }

    fn with_config(extra: &str) -> World {
        World::from_setup(Setup::new(extra))
    }

    /// A world on a prepared setup (a TSA in its configuration, say).
    fn from_setup(setup: Setup) -> World {
        client_cert(&setup.tls, "oa", false);
        let d = setup.start();
        let (admin, oa) = (d.client("admin"), d.client("oa"));
        let w = World {
            setup,
            d,
            admin,
            oa,
        };
        let set_up = w.call(&w.admin, "POST", "/v1/org", None, Some(json!({
            "enterprise": {"id": "acme", "name": "示例科技有限公司", "credit_code": "91350100M000100Y43"},
            "department": {"id": "hq", "name": "总部"},
            "super_administrator": {"id": "boss", "name": "王总", "phone": "13800138000"},
        })));
        assert_eq!(set_up.status, 200, "{} {}", text(&set_up), w.d.log_text());
        for (id, roles) in [
            ("legal", &["legal_representative"][..]),
            ("sa1", &["seal_administrator"]),
            ("sa2", &["seal_administrator"]),
            ("appr", &["seal_approver"]),
            ("alice", &["business_staff"]),
            ("bob", &["business_staff"]),
        ] {
            let person =
                json!({"name": format!("员工{id}"), "phone": "13900139000", "department": "hq"});
            let put = w.call(
                &w.admin,
                "PUT",
                &format!("/v1/org/employees/{id}"),
                Some("boss"),
                Some(person),
            );
            assert_eq!(put.status, 200, "{} {}", text(&put), w.d.log_text());
            let given = w.call(
                &w.admin,
                "PUT",
                &format!("/v1/org/employees/{id}/roles"),
                Some("boss"),
                Some(json!({"roles": roles})),
            );
            assert_eq!(given.status, 200, "{}", text(&given));
        }
        for id in ["boss", "legal", "sa1", "sa2", "appr", "alice", "bob"] {
            let set = w.call(
                &w.admin,
                "PUT",
                &format!("/v1/org/employees/{id}/signing-password"),
                Some(id),
                Some(json!({"new": PASSWORD})),
            );
            assert_eq!(set.status, 200, "{}", text(&set));
        }
        w
    }

    fn call(
        &self,
        client: &Client,
        method: &str,
        path: &str,
        employee: Option<&str>,
        body: Option<Value>,
    ) -> Answer {
        let url = format!("{}{path}", self.d.api);
        let mut request = match method {
            "GET" => client.get(url),
            "PUT" => client.put(url),
            "DELETE" => client.delete(url),
            _ => client.post(url),
        };
        if let Some(e) = employee {
            request = request.header("Seald-Employee", e);
        }
        if let Some(b) = body {
            request = request
                .header("Content-Type", "application/json")
                .body(serde_json::to_vec(&b).expect("json"));
        }
        send(request)
    }

    /// Registers seal `id` (the test key) as `employee`.
    fn create_seal(&self, id: &str, kind: &str, employee: &str, holders: &[&str]) -> Answer {
        let chain = fs::read_to_string(&self.setup.chain).expect("chain");
        self.call(
            &self.admin,
            "POST",
            "/v1/admin/seals",
            Some(employee),
            Some(json!({
                "id": id, "name": format!("印章 {id}"), "token": "hsm", "key_label": "seal",
                "certificate_chain_pem": chain, "kind": kind, "holders": holders,
            })),
        )
    }

    /// The OA system: signer for `seals`, acting for employees.
    fn register_oa(&self, seals: &[&str]) {
        let cert = fs::read_to_string(self.setup.tls.join("oa.crt")).expect("oa cert");
        let r = self.call(
            &self.admin,
            "POST",
            "/v1/admin/applications",
            None,
            Some(json!({
                "id": "oa", "name": "OA", "certificate_pem": cert, "roles": ["signer"],
                "seals": seals, "acts_for_employees": true,
            })),
        );
        assert_eq!(r.status, 200, "{}", text(&r));
    }

    fn sign(&self, seal: &str, employee: &str, document_id: &str, pdf: &[u8]) -> Answer {
        self.sign_with(seal, employee, document_id, pdf, Some(PASSWORD))
    }

    fn sign_with(
        &self,
        seal: &str,
        employee: &str,
        document_id: &str,
        pdf: &[u8],
        password: Option<&str>,
    ) -> Answer {
        let mut headers = vec![("Seald-Employee", employee)];
        if let Some(p) = password {
            headers.push(("Seald-Signing-Password", p));
        }
        self.sign_request(&self.oa, seal, Some(document_id), &headers, pdf)
    }

    /// A sign request through `client` with these extra headers.
    fn sign_request(
        &self,
        client: &Client,
        seal: &str,
        document_id: Option<&str>,
        headers: &[(&str, &str)],
        pdf: &[u8],
    ) -> Answer {
        let query = document_id
            .map(|d| format!("?document_id={d}"))
            .unwrap_or_default();
        let mut request = client
            .post(format!("{}/v1/seals/{seal}/sign{query}", self.d.api))
            .header("Content-Type", "application/pdf");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        send(request.body(pdf.to_vec()))
    }

    fn approval(&self, id: &str, action: &str, employee: &str) -> Answer {
        self.call(
            &self.oa,
            "POST",
            &format!("/v1/approvals/{id}/{action}"),
            Some(employee),
            None,
        )
    }

    fn pending(&self, employee: &str) -> Value {
        let r = self.call(
            &self.oa,
            "GET",
            "/v1/approvals/pending",
            Some(employee),
            None,
        );
        assert_eq!(r.status, 200, "{}", text(&r));
        r.json()
    }

    /// pdfsig, pyHanko and qpdf all accept `pdf`.
    fn validated(&self, pdf: &[u8]) {
        let out = self.setup.dir().join("governed.pdf");
        fs::write(&out, pdf).expect("write");
        let v = Validators::new(self.setup.dir(), &[self.setup.seal.root()]);
        v.qpdf(&out).expect("qpdf --check");
        let sigs = v.pdfsig(&out);
        assert!(
            sigs.len() == 1 && sigs[0].valid && sigs[0].trusted,
            "{sigs:?}"
        );
        let ph = v.pyhanko(&out, true);
        assert_eq!(
            (ph[0]["intact"].clone(), ph[0]["valid"].clone()),
            (json!(true), json!(true)),
            "{}",
            ph[0]
        );
    }

    fn audit_detail(&self, seq: &str) -> Value {
        let detail = self.setup.sql(&format!(
            "SELECT detail FROM audit_records WHERE seq = {seq}"
        ));
        serde_json::from_str(&detail).unwrap_or(Value::Null)
    }
}

/// `a` is refused with `status` and problem `code`.
#[track_caller]
fn assert_refused(a: &Answer, status: u16, code: &str) {
    assert_eq!((a.status, a.code().as_str()), (status, code), "{}", text(a));
}

fn text(a: &Answer) -> String {
    format!("{} {}", a.status, String::from_utf8_lossy(&a.body))
}

fn ids(list: &Value) -> Vec<String> {
    list.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|r| r["id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_seal_administrators_seal_is_approved_by_another_then_used_by_its_holder() {
    let w = World::new();
    // Only someone with seal management creates seals.
    let refused = w.create_seal("contract", "contract", "alice", &["alice"]);
    assert_refused(&refused, 403, "permission_denied");
    let created = w.create_seal("contract", "contract", "sa1", &["alice"]);
    assert_eq!(created.status, 200, "{}", text(&created));
    assert_eq!(created.json()["status"], "pending_review");
    let approval = created.json()["approval"]
        .as_str()
        .expect("an approval request")
        .to_owned();
    w.register_oa(&["contract"]);

    let pdf = w.setup.sample();
    let early = w.sign("contract", "alice", "C-1", &pdf);
    assert_refused(&early, 403, "seal_pending_review");
    // The creator does not approve their own seal; the other seal administrator does.
    let own = w.approval(&approval, "approve", "sa1");
    assert_refused(&own, 403, "self_approval");
    let waiting = w.pending("sa2");
    assert_eq!(
        ids(&waiting["waiting_for_me"]),
        [approval.as_str()],
        "{waiting}"
    );
    assert_eq!(
        ids(&w.pending("sa1")["submitted_by_me"]),
        [approval.as_str()]
    );
    let approved = w.approval(&approval, "approve", "sa2");
    assert_eq!(approved.status, 200, "{}", text(&approved));
    assert_eq!(approved.json()["state"], "approved");
    let shown = send(w.oa.get(format!("{}/v1/seals/contract", w.d.api))).json();
    assert_eq!(shown["status"], "active", "{shown}");
    assert!(w.pending("sa2")["waiting_for_me"]
        .as_array()
        .is_some_and(Vec::is_empty));

    let signed = w.sign("contract", "alice", "C-1", &pdf);
    assert_eq!(signed.status, 200, "{}", text(&signed));
    w.validated(&signed.body);
    let seq = signed.header("seald-audit-record").expect("record");
    let detail = w.audit_detail(&seq);
    assert_eq!(
        (detail["employee"].clone(), detail["permit"].clone()),
        (json!("alice"), json!("holder")),
        "{detail}"
    );
    // The acting employee is named only by applications registered to act for employees.
    let cert = fs::read_to_string(w.setup.tls.join("app.crt")).expect("app cert");
    let erp = w.call(&w.admin, "POST", "/v1/admin/applications", None, Some(json!({
        "id": "erp", "name": "ERP", "certificate_pem": cert, "roles": ["signer"], "seals": ["contract"],
    })));
    assert_eq!(erp.status, 200, "{}", text(&erp));
    let for_alice = w.sign_request(
        &w.d.client("app"),
        "contract",
        Some("C-2"),
        &[("Seald-Employee", "alice")],
        &pdf,
    );
    assert_eq!(
        for_alice.code(),
        "cannot_act_for_employees",
        "{}",
        text(&for_alice)
    );
}

#[test]
fn a_non_holder_applies_is_approved_signs_once_and_is_refused_the_second_time() {
    let w = World::new();
    let created = w.create_seal("contract", "contract", "boss", &["alice"]);
    assert_eq!(created.json()["status"], "active", "{}", text(&created));
    w.register_oa(&["contract"]);
    let pdf = w.setup.sample();
    let sha = sha256_hex(&pdf);

    let refused = w.sign("contract", "bob", "C-7", &pdf);
    assert_refused(&refused, 403, "seal_use_approval_required");
    let no_document = w.sign_request(
        &w.oa,
        "contract",
        None,
        &[
            ("Seald-Employee", "bob"),
            ("Seald-Signing-Password", PASSWORD),
        ],
        &pdf,
    );
    assert_eq!(
        no_document.code(),
        "document_required",
        "{}",
        text(&no_document)
    );

    let apply = |uses: u32| {
        w.call(
            &w.oa,
            "POST",
            "/v1/approvals",
            Some("bob"),
            Some(json!({
                "seal": "contract", "document_id": "C-7", "document_sha256": sha,
                "uses": uses, "valid_until": now() + 86_400, "reason": "客户合同盖章",
            })),
        )
    };
    let applied = apply(1);
    assert_eq!(applied.status, 201, "{}", text(&applied));
    let id = applied.json()["id"].as_str().expect("id").to_owned();
    let waiting = w.sign("contract", "bob", "C-7", &pdf);
    assert_eq!(waiting.code(), "seal_use_approval_required");
    assert!(
        String::from_utf8_lossy(&waiting.body).contains(&id),
        "names the pending request: {}",
        text(&waiting)
    );
    let holder_applies = w.call(&w.oa, "POST", "/v1/approvals", Some("alice"), Some(json!({
        "seal": "contract", "document_id": "C-7", "document_sha256": sha, "valid_until": now() + 86_400,
    })));
    assert_eq!(holder_applies.code(), "already_holder");

    assert_eq!(w.approval(&id, "approve", "appr").status, 200);
    // The grant is for this document as applied for: another version of it is refused.
    let mut changed = pdf.clone();
    changed.extend_from_slice(b"\n% edited\n");
    let other = w.sign("contract", "bob", "C-7", &changed);
    assert_eq!(other.code(), "document_changed", "{}", text(&other));
    let once = w.sign("contract", "bob", "C-7", &pdf);
    assert_eq!(once.status, 200, "{}", text(&once));
    w.validated(&once.body);
    let detail = w.audit_detail(&once.header("seald-audit-record").expect("record"));
    assert!(
        detail["permit"]
            .as_str()
            .is_some_and(|p| p.starts_with("grant:")),
        "{detail}"
    );
    let twice = w.sign("contract", "bob", "C-7", &pdf);
    assert_refused(&twice, 403, "grant_used_up");

    // A single-use grant under eight concurrent requests: exactly one signs.
    let again = apply(1);
    let id2 = again.json()["id"].as_str().expect("id").to_owned();
    assert_eq!(w.approval(&id2, "approve", "appr").status, 200);
    let answers: Vec<Answer> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| s.spawn(|| w.sign("contract", "bob", "C-7", &pdf)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    let ok = answers.iter().filter(|a| a.status == 200).count();
    let used_up = answers
        .iter()
        .filter(|a| a.status == 403 && a.code() == "grant_used_up")
        .count();
    assert_eq!(
        (ok, used_up),
        (1, 7),
        "{:?}",
        answers.iter().map(text).collect::<Vec<_>>()
    );
    // A retry with the same Idempotency-Key replays the signature; it uses nothing more.
    let third = apply(1);
    let id3 = third.json()["id"].as_str().expect("id").to_owned();
    assert_eq!(w.approval(&id3, "approve", "appr").status, 200);
    let keyed = || {
        w.sign_request(
            &w.oa,
            "contract",
            Some("C-7"),
            &[
                ("Seald-Employee", "bob"),
                ("Seald-Signing-Password", PASSWORD),
                ("Idempotency-Key", "oa-C-7-1"),
            ],
            &pdf,
        )
    };
    let first = keyed();
    assert_eq!(first.status, 200, "{}", text(&first));
    let replayed = keyed();
    assert_eq!(replayed.status, 200, "{}", text(&replayed));
    assert_eq!(
        replayed.header("idempotent-replayed").as_deref(),
        Some("true")
    );
    assert_eq!(replayed.body, first.body);
    // The key names that request: the same body for another document, or by another
    // employee, is another request.
    let other = w.sign_request(
        &w.oa,
        "contract",
        Some("C-8"),
        &[
            ("Seald-Employee", "bob"),
            ("Seald-Signing-Password", PASSWORD),
            ("Idempotency-Key", "oa-C-7-1"),
        ],
        &pdf,
    );
    assert_refused(&other, 409, "idempotency_key_reused");
    let uses = w
        .setup
        .sql("SELECT group_concat(uses_left) FROM seal_grants");
    assert_eq!(uses, "0,0,0");
    let grant_signatures = w.setup.sql(
        "SELECT count(*) FROM audit_records WHERE action = 'sign' AND decision = 'allowed' AND detail LIKE '%\"permit\":\"grant:%'",
    );
    assert_eq!(grant_signatures, "3", "one signature per single-use grant");
}

#[test]
fn the_legal_representative_seal_is_his_alone() {
    let w = World::new();
    let by_boss = w.create_seal("legal-seal", "legal_representative", "boss", &["legal"]);
    assert_eq!(
        by_boss.code(),
        "legal_representative_only",
        "{}",
        text(&by_boss)
    );
    let by_legal = w.create_seal("legal-seal", "legal_representative", "legal", &["legal"]);
    assert_eq!(by_legal.json()["status"], "active", "{}", text(&by_legal));
    w.register_oa(&["legal-seal"]);
    for (who, path, method, body) in [
        ("sa1", "/v1/admin/seals/legal-seal/disable", "POST", None),
        (
            "boss",
            "/v1/admin/seals/legal-seal/holders",
            "PUT",
            Some(json!({"holders": ["legal", "alice"]})),
        ),
        ("boss", "/v1/admin/seals/legal-seal", "DELETE", None),
    ] {
        let r = w.call(&w.admin, method, path, Some(who), body);
        assert_eq!(
            (r.status, r.code()),
            (403, "legal_representative_only".to_owned()),
            "{who} {path}: {}",
            text(&r)
        );
    }
    let pdf = w.setup.sample();
    let alice = w.sign("legal-seal", "alice", "L-1", &pdf);
    assert_eq!(
        alice.code(),
        "legal_representative_only",
        "{}",
        text(&alice)
    );
    let applies = w.call(&w.oa, "POST", "/v1/approvals", Some("alice"), Some(json!({
        "seal": "legal-seal", "document_id": "L-1", "document_sha256": sha256_hex(&pdf), "valid_until": now() + 3600,
    })));
    assert_eq!(applies.code(), "legal_representative_only");
    let signed = w.sign("legal-seal", "legal", "L-1", &pdf);
    assert_eq!(signed.status, 200, "{}", text(&signed));
    w.validated(&signed.body);
    let disabled = w.call(
        &w.admin,
        "POST",
        "/v1/admin/seals/legal-seal/disable",
        Some("legal"),
        None,
    );
    assert_eq!(disabled.status, 200, "{}", text(&disabled));
    let after = w.sign("legal-seal", "legal", "L-1", &pdf);
    assert_eq!(
        after.code(),
        "seal_disabled",
        "a disabled seal never signs: {}",
        text(&after)
    );
    // Every refusal above is in the audit log, with its code.
    let denied = w.setup.sql("SELECT count(*) FROM audit_records WHERE decision = 'denied' AND reason = 'legal_representative_only'");
    assert_eq!(denied, "6");
}

#[test]
fn an_approver_who_resigns_mid_flow_hands_over_and_a_flow_left_without_approvers_is_reported() {
    let w = World::new();
    assert_eq!(
        w.create_seal("contract", "contract", "boss", &["alice"])
            .status,
        200
    );
    w.register_oa(&["contract"]);
    // Two nodes: appr, then sa2 by name.
    let flow = json!({"nodes": [
        {"approvers": [{"member": "appr"}], "mode": "or"},
        {"approvers": [{"member": "sa2"}], "mode": "or"},
    ], "deadline_seconds": 86_400});
    let configured = w.call(
        &w.admin,
        "PUT",
        "/v1/org/flows/seal_use",
        Some("boss"),
        Some(flow),
    );
    assert_eq!(configured.status, 200, "{}", text(&configured));
    let pdf = w.setup.sample();
    let applied = w.call(&w.oa, "POST", "/v1/approvals", Some("bob"), Some(json!({
        "seal": "contract", "document_id": "C-9", "document_sha256": sha256_hex(&pdf), "valid_until": now() + 86_400,
    })));
    let id = applied.json()["id"].as_str().expect("id").to_owned();
    assert_eq!(w.approval(&id, "approve", "appr").json()["node"], 1);
    // sa2 resigns before deciding; sa1 takes over.
    let resigned = w.call(
        &w.admin,
        "POST",
        "/v1/org/employees/sa2/resign",
        Some("boss"),
        Some(json!({"successor": "sa1"})),
    );
    assert_eq!(resigned.status, 200, "{}", text(&resigned));
    assert_eq!(resigned.json()["requests"], json!([id]));
    let gone = w.approval(&id, "approve", "sa2");
    assert_eq!(gone.code(), "employee_resigned", "{}", text(&gone));
    assert_eq!(ids(&w.pending("sa1")["waiting_for_me"]), [id.as_str()]);
    assert_eq!(
        w.approval(&id, "approve", "sa1").json()["state"],
        "approved"
    );
    assert_eq!(w.sign("contract", "bob", "C-9", &pdf).status, 200);

    // A joint node by role, held back only by an administrator who resigns: it completes,
    // and its grant exists at once.
    let joint = json!({"nodes": [{"approvers": [{"role": "seal_administrator"}], "mode": "joint"}], "deadline_seconds": 86_400});
    assert_eq!(
        w.call(
            &w.admin,
            "PUT",
            "/v1/org/flows/seal_use",
            Some("boss"),
            Some(joint)
        )
        .status,
        200
    );
    let applied = w.call(&w.oa, "POST", "/v1/approvals", Some("bob"), Some(json!({
        "seal": "contract", "document_id": "C-12", "document_sha256": sha256_hex(&pdf), "valid_until": now() + 86_400,
    })));
    let joint_id = applied.json()["id"].as_str().expect("id").to_owned();
    let both = w.call(
        &w.admin,
        "PUT",
        "/v1/org/employees/alice/roles",
        Some("boss"),
        Some(json!({"roles": ["seal_administrator"]})),
    );
    assert_eq!(both.status, 200, "alice and sa1 administer seals now");
    assert_eq!(
        w.approval(&joint_id, "approve", "alice").json()["state"],
        "pending"
    );
    assert_eq!(
        w.call(
            &w.admin,
            "POST",
            "/v1/org/employees/sa1/resign",
            Some("boss"),
            Some(json!({"successor": "legal"}))
        )
        .status,
        200
    );
    let shown = w
        .call(
            &w.oa,
            "GET",
            &format!("/v1/approvals/{joint_id}"),
            Some("bob"),
            None,
        )
        .json();
    assert_eq!(shown["state"], "approved", "{shown}");
    assert_eq!(
        w.sign("contract", "bob", "C-12", &pdf).status,
        200,
        "the grant came with the approval"
    );

    // A node by role whose only member resigns: the request is reported as stalled.
    let by_role = json!({"nodes": [{"approvers": [{"role": "seal_approver"}], "mode": "or"}], "deadline_seconds": 86_400});
    assert_eq!(
        w.call(
            &w.admin,
            "PUT",
            "/v1/org/flows/seal_use",
            Some("boss"),
            Some(by_role)
        )
        .status,
        200
    );
    let applied = w.call(&w.oa, "POST", "/v1/approvals", Some("bob"), Some(json!({
        "seal": "contract", "document_id": "C-10", "document_sha256": sha256_hex(&pdf), "valid_until": now() + 86_400,
    })));
    let stalled_id = applied.json()["id"].as_str().expect("id").to_owned();
    assert_eq!(
        w.call(
            &w.admin,
            "POST",
            "/v1/org/employees/appr/resign",
            Some("boss"),
            Some(json!({"successor": "alice"}))
        )
        .status,
        200
    );
    let bob = w.pending("bob");
    assert_eq!(ids(&bob["stalled"]), [stalled_id.as_str()], "{bob}");
    let shown = w
        .call(
            &w.oa,
            "GET",
            &format!("/v1/approvals/{stalled_id}"),
            Some("bob"),
            None,
        )
        .json();
    assert_eq!(
        (shown["stalled"].clone(), shown["eligible"].clone()),
        (json!(true), json!([])),
        "{shown}"
    );
    // New applications into that flow are refused rather than left to expire.
    let refused = w.call(&w.oa, "POST", "/v1/approvals", Some("bob"), Some(json!({
        "seal": "contract", "document_id": "C-11", "document_sha256": sha256_hex(&pdf), "valid_until": now() + 86_400,
    })));
    assert_refused(&refused, 409, "no_eligible_approver");
}

#[test]
fn governance_refuses_bad_input_with_typed_errors() {
    let w = World::new();
    let again = w.call(
        &w.admin,
        "POST",
        "/v1/org",
        None,
        Some(json!({
            "enterprise": {"id": "x", "name": "x", "credit_code": "91350100M000100Y43"},
            "department": {"id": "hq", "name": "总部"},
            "super_administrator": {"id": "boss", "name": "王总", "phone": "13800138000"},
        })),
    );
    assert_eq!(
        (again.status, again.code()),
        (409, "enterprise_exists".to_owned())
    );
    let cases = [
        (
            "PUT",
            "/v1/org/employees/carol",
            Some("boss"),
            json!({"name": "C", "phone": "12ab", "department": "hq"}),
            422,
            "invalid_phone",
        ),
        (
            "PUT",
            "/v1/org/employees/carol",
            Some("boss"),
            json!({"name": "C", "phone": "13800138000", "department": "nowhere"}),
            404,
            "department_not_found",
        ),
        (
            "PUT",
            "/v1/org/employees/carol",
            None,
            json!({"name": "C", "phone": "13800138000", "department": "hq"}),
            400,
            "employee_required",
        ),
        (
            "PUT",
            "/v1/org/employees/carol",
            Some("alice"),
            json!({"name": "C", "phone": "13800138000", "department": "hq"}),
            403,
            "permission_denied",
        ),
        (
            "PUT",
            "/v1/org/employees/carol",
            Some("ghost"),
            json!({"name": "C", "phone": "13800138000", "department": "hq"}),
            403,
            "employee_not_found",
        ),
        (
            "PUT",
            "/v1/org/employees/alice/roles",
            Some("boss"),
            json!({"roles": ["super_administrator"]}),
            409,
            "super_administrator_exists",
        ),
        (
            "PUT",
            "/v1/org/employees/alice/roles",
            Some("boss"),
            json!({"roles": ["legal_representative"]}),
            409,
            "legal_representative_exists",
        ),
        (
            "PUT",
            "/v1/org/roles/seal_approver",
            Some("boss"),
            json!({"name": "x", "permissions": [], "scope": "own"}),
            403,
            "system_role_immutable",
        ),
        (
            "PUT",
            "/v1/org/departments/hq",
            Some("boss"),
            json!({"name": "总部", "parent": "hq"}),
            422,
            "department_cycle",
        ),
        (
            "PUT",
            "/v1/org/flows/seal_use",
            Some("boss"),
            json!({"nodes": [], "deadline_seconds": 60}),
            422,
            "flow_invalid",
        ),
        (
            "PUT",
            "/v1/org/flows/nope",
            Some("boss"),
            json!({"nodes": [], "deadline_seconds": 60}),
            404,
            "not_found",
        ),
        (
            "POST",
            "/v1/org/employees/boss/resign",
            Some("boss"),
            json!({"successor": "alice"}),
            409,
            "super_administrator_required",
        ),
        (
            "POST",
            "/v1/approvals",
            Some("bob"),
            json!({"seal": "nope", "document_id": "d", "document_sha256": "00", "valid_until": 1}),
            404,
            "seal_not_found",
        ),
    ];
    for (method, path, employee, body, status, code) in cases {
        let r = w.call(&w.admin, method, path, employee, Some(body));
        assert_eq!(
            (r.status, r.code()),
            (status, code.to_owned()),
            "{method} {path}: {}",
            text(&r)
        );
    }
    let template = w.call(&w.admin, "POST", "/v1/admin/seals", Some("boss"), Some(json!({
        "id": "t", "name": "t", "token": "hsm", "key_label": "seal", "certificate_chain_pem": "", "source": "template",
    })));
    assert_eq!(
        (template.status, template.code()),
        (422, "template_seal_unavailable".to_owned())
    );
    // Nothing of the refused changes was stored.
    let org = w.call(&w.admin, "GET", "/v1/org", None, None).json();
    assert!(
        org["employees"]
            .as_array()
            .is_some_and(|e| e.iter().all(|e| e["id"] != "carol")),
        "{org}"
    );
}

/// `sealctl org|role|seal|approval` drive the same flow as the API, with `--json`, and a
/// refusal exits 1 naming seald's code.
#[test]
fn sealctl_administers_governance_with_json_answers() {
    use seald_tests::{run, run_ok};
    let setup = Setup::new("");
    let d = setup.start();
    let ctl = |who: Option<&str>, args: &[&str]| {
        let mut cmd = setup.sealctl(&d, "admin");
        if let Some(who) = who {
            cmd.env("SEALD_EMPLOYEE", who);
        }
        cmd.args(args);
        cmd
    };
    let json_of = |out: String| -> Value {
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
    };
    run_ok(&mut ctl(
        None,
        &[
            "org",
            "init",
            "--id",
            "acme",
            "--name",
            "示例科技有限公司",
            "--credit-code",
            "91350100M000100Y43",
            "--department-name",
            "总部",
            "--admin-id",
            "boss",
            "--admin-name",
            "王总",
            "--admin-phone",
            "13800138000",
        ],
    ));
    for (id, role) in [
        ("sa1", "seal_administrator"),
        ("sa2", "seal_administrator"),
        ("alice", "business_staff"),
        ("bob", "business_staff"),
        ("appr", "seal_approver"),
    ] {
        run_ok(&mut ctl(
            Some("boss"),
            &[
                "org",
                "employee",
                id,
                "--name",
                id,
                "--phone",
                "13900139000",
                "--department",
                "hq",
            ],
        ));
        run_ok(&mut ctl(
            Some("boss"),
            &["org", "roles", id, "--role", role],
        ));
    }
    run_ok(&mut ctl(
        Some("boss"),
        &[
            "org",
            "department",
            "sales",
            "--name",
            "销售部",
            "--parent",
            "hq",
        ],
    ));
    run_ok(&mut ctl(
        Some("boss"),
        &[
            "role",
            "put",
            "branch-seals",
            "--name",
            "分部印章",
            "--permission",
            "seal_management",
            "--scope",
            "department",
        ],
    ));
    let roles = json_of(run_ok(&mut ctl(Some("boss"), &["role", "list", "--json"])));
    assert!(
        roles
            .as_array()
            .is_some_and(|r| r.iter().any(|r| r["id"] == "branch-seals")),
        "{roles}"
    );
    run_ok(&mut ctl(Some("boss"), &["role", "delete", "branch-seals"]));

    let chain = setup.chain.display().to_string();
    let image = setup.image.display().to_string();
    let registered = json_of(run_ok(&mut ctl(
        Some("sa1"),
        &[
            "seal",
            "register",
            "--id",
            "contract",
            "--name",
            "合同专用章",
            "--token",
            "hsm",
            "--key",
            "seal",
            "--chain",
            &chain,
            "--image",
            &image,
            "--kind",
            "contract",
            "--holder",
            "alice",
            "--json",
        ],
    )));
    assert_eq!(registered["status"], "pending_review", "{registered}");
    let approval = registered["approval"]
        .as_str()
        .expect("approval")
        .to_owned();
    let pending = json_of(run_ok(&mut ctl(
        Some("sa2"),
        &["approval", "pending", "--json"],
    )));
    assert_eq!(ids(&pending["waiting_for_me"]), [approval.as_str()]);
    let own = run(&mut ctl(Some("sa1"), &["approval", "approve", &approval]));
    assert_eq!(own.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&own.stderr).contains("self_approval"),
        "{own:?}"
    );
    let approved = json_of(run_ok(&mut ctl(
        Some("sa2"),
        &[
            "approval",
            "approve",
            &approval,
            "--comment",
            "同意",
            "--json",
        ],
    )));
    assert_eq!(approved["state"], "approved");

    run_ok(&mut ctl(
        Some("sa1"),
        &[
            "seal", "holders", "contract", "--holder", "alice", "--holder", "sa1",
        ],
    ));
    let sample = setup.dir().join("samples/contract.pdf");
    let sample = sample.display().to_string();
    let applied = json_of(run_ok(&mut ctl(
        Some("bob"),
        &[
            "approval",
            "apply",
            "--seal",
            "contract",
            "--document-id",
            "C-3",
            "--file",
            &sample,
            "--reason",
            "报价单",
            "--json",
        ],
    )));
    let id = applied["id"].as_str().expect("id").to_owned();
    assert_eq!(
        applied["subject"]["document_sha256"],
        json!(sha256_hex(&fs::read(&sample).expect("pdf")))
    );
    run_ok(&mut ctl(
        Some("appr"),
        &["approval", "reject", &id, "--comment", "缺附件"],
    ));
    run_ok(&mut ctl(Some("bob"), &["approval", "resubmit", &id]));
    run_ok(&mut ctl(Some("bob"), &["approval", "cancel", &id]));
    let shown = json_of(run_ok(&mut ctl(
        Some("bob"),
        &["approval", "show", &id, "--json"],
    )));
    assert_eq!(shown["state"], "canceled", "{shown}");

    run_ok(&mut ctl(
        Some("boss"),
        &[
            "org",
            "flow",
            "seal_use",
            "--node",
            "or:member=appr",
            "--node",
            "joint:role=seal_administrator",
            "--deadline-hours",
            "24",
        ],
    ));
    let flows = json_of(run_ok(&mut ctl(Some("boss"), &["org", "flows", "--json"])));
    let seal_use = flows["flows"]
        .as_array()
        .and_then(|f| f.iter().find(|f| f["scenario"] == "seal_use").cloned())
        .expect("seal_use");
    assert_eq!(
        seal_use["flow"]["nodes"].as_array().map(Vec::len),
        Some(2),
        "{seal_use}"
    );
    let bad_node = run(&mut ctl(
        Some("boss"),
        &["org", "flow", "seal_use", "--node", "sometimes:appr"],
    ));
    assert_eq!(bad_node.status.code(), Some(2), "a usage error");

    // Signing passwords: from the environment (or a prompt), never from argv.
    let mut set = ctl(Some("alice"), &["password", "set", "alice"]);
    set.env("SEALD_NEW_SIGNING_PASSWORD", "112233");
    run_ok(&mut set);
    let mut change = ctl(Some("alice"), &["password", "set", "alice", "--change"]);
    change
        .env("SEALD_SIGNING_PASSWORD", "000000")
        .env("SEALD_NEW_SIGNING_PASSWORD", "445566");
    let refused = run(&mut change);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("signing_password_wrong"),
        "{refused:?}"
    );
    run_ok(&mut ctl(Some("boss"), &["password", "reset", "alice"]));
    let org = json_of(run_ok(&mut ctl(Some("boss"), &["org", "show", "--json"])));
    let alice = org["employees"]
        .as_array()
        .and_then(|e| e.iter().find(|e| e["id"] == "alice").cloned())
        .expect("alice");
    assert_eq!(alice["has_signing_password"], false, "{alice}");

    let resigned = json_of(run_ok(&mut ctl(
        Some("boss"),
        &["org", "resign", "alice", "--successor", "bob", "--json"],
    )));
    assert_eq!(resigned["seals"], json!(["contract"]));
    run_ok(&mut ctl(
        Some("sa1"),
        &[
            "seal",
            "limits",
            "contract",
            "--per-day",
            "10",
            "--window",
            "1-5 09:00-18:00",
            "--window",
            "6,7 10:00-12:00",
        ],
    ));
    let limited = json_of(run_ok(&mut ctl(None, &["seal", "list", "--json"])));
    let windows = limited["seals"][0]["limits"]["windows"].clone();
    assert_eq!(windows[1]["weekdays"], json!([6, 7]), "{limited}");
    run_ok(&mut ctl(
        Some("boss"),
        &[
            "org",
            "quota",
            "--contracts",
            "500",
            "--utc-offset",
            "+08:00",
        ],
    ));
    let usage = json_of(run_ok(&mut ctl(Some("boss"), &["org", "usage", "--json"])));
    assert_eq!(
        (usage["contract_quota"].clone(), usage["used"].clone()),
        (json!(500), json!(0))
    );
    run_ok(&mut ctl(Some("sa1"), &["seal", "disable", "contract"]));
    run_ok(&mut ctl(Some("sa1"), &["seal", "enable", "contract"]));
    run_ok(&mut ctl(
        Some("boss"),
        &["org", "transfer-super-admin", "--to", "sa2"],
    ));
    let org = json_of(run_ok(&mut ctl(Some("sa2"), &["org", "show", "--json"])));
    let sa2 = org["employees"]
        .as_array()
        .and_then(|e| e.iter().find(|e| e["id"] == "sa2").cloned())
        .expect("sa2");
    assert!(
        sa2["roles"]
            .as_array()
            .is_some_and(|r| r.contains(&json!("super_administrator"))),
        "{sa2}"
    );
    run_ok(&mut ctl(Some("sa1"), &["seal", "delete", "contract"]));
    let listed = json_of(run_ok(&mut ctl(None, &["seal", "list", "--json"])));
    assert_eq!(listed["seals"][0]["status"], "deleted", "{listed}");
    // Every change above is in the audit log, as the employee who made it.
    let by_employee = setup.sql("SELECT count(*) FROM audit_records WHERE decision = 'allowed' AND detail LIKE '%\"employee\":%'");
    assert!(
        by_employee.parse::<u32>().expect("count") >= 20,
        "{by_employee}"
    );
}

#[test]
fn seal_images_are_png_or_jpeg_up_to_5_mb_and_stored_as_png() {
    use base64::Engine;
    let w = World::new();
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    let chain = fs::read_to_string(&w.setup.chain).expect("chain");
    let register = |id: &str, image: &[u8]| {
        w.call(&w.admin, "POST", "/v1/admin/seals", Some("boss"), Some(json!({
            "id": id, "name": id, "token": "hsm", "key_label": "seal", "certificate_chain_pem": chain,
            "kind": "contract", "image_base64": b64(image),
        })))
    };
    let jpeg =
        fs::read(seald_tests::workspace_root().join("pades/tests/data/red16.jpg")).expect("jpeg");
    let stored = register("from-jpeg", &jpeg);
    assert_eq!(stored.status, 200, "{}", text(&stored));
    let shown = send(w.admin.get(format!("{}/v1/seals/from-jpeg", w.d.api))).json();
    let png = base64::engine::general_purpose::STANDARD
        .decode(shown["image_png_base64"].as_str().expect("image"))
        .expect("base64");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "stored as PNG");
    for (image, says) in [
        (b"GIF89a not a seal".to_vec(), "PNG or a JPEG"),
        (vec![0x89; 5 * 1024 * 1024 + 1], "5 MB"),
    ] {
        let r = register("bad", &image);
        assert_eq!((r.status, r.code()), (422, "invalid_image".to_owned()));
        assert!(
            String::from_utf8_lossy(&r.body).contains(says),
            "{}",
            text(&r)
        );
    }
}

#[test]
fn permission_applications_grant_the_role_and_requests_are_seen_only_by_those_involved() {
    let w = World::new();
    let applied = w.call(
        &w.admin,
        "POST",
        "/v1/approvals",
        Some("alice"),
        Some(json!({
            "scenario": "permission_application", "role": "seal_approver", "reason": "接替审批",
        })),
    );
    assert_eq!(applied.status, 201, "{}", text(&applied));
    let id = applied.json()["id"].as_str().expect("id").to_owned();
    assert_eq!(applied.json()["eligible"], json!(["boss"]));
    let refused = w.call(
        &w.admin,
        "POST",
        "/v1/approvals",
        Some("alice"),
        Some(json!({
            "scenario": "permission_application", "role": "super_administrator",
        })),
    );
    assert_eq!(refused.code(), "role_not_applicable", "{}", text(&refused));
    // bob is not involved: the request does not exist for him.
    let hidden = w.call(
        &w.admin,
        "GET",
        &format!("/v1/approvals/{id}"),
        Some("bob"),
        None,
    );
    assert_eq!(hidden.status, 404, "{}", text(&hidden));
    let approved = w.call(
        &w.admin,
        "POST",
        &format!("/v1/approvals/{id}/approve"),
        Some("boss"),
        None,
    );
    assert_eq!(approved.status, 200, "{}", text(&approved));
    let org = w.call(&w.admin, "GET", "/v1/org", None, None).json();
    let alice = org["employees"]
        .as_array()
        .and_then(|e| e.iter().find(|e| e["id"] == "alice").cloned())
        .expect("alice");
    assert!(
        alice["roles"]
            .as_array()
            .is_some_and(|r| r.contains(&json!("seal_approver"))),
        "{alice}"
    );
    // Nobody holds contract_administrator: the default contract flow has no approver, and
    // says so instead of accepting a request nobody can decide.
    let contract = w.call(&w.admin, "POST", "/v1/approvals", Some("bob"), Some(json!({
        "scenario": "contract_approval", "document_id": "K-1", "document_sha256": "ab".repeat(32),
    })));
    assert_refused(&contract, 409, "no_eligible_approver");
}

/// `POST /v1/policy/explain` gives the decision the very same sign request then gets, case by
/// case, and consumes nothing.
#[test]
fn explain_agrees_with_the_real_decision_and_consumes_nothing() {
    let w = World::new();
    assert_eq!(
        w.create_seal("contract", "contract", "boss", &["alice"])
            .status,
        200
    );
    assert_eq!(
        w.create_seal("spare", "other", "boss", &["alice"]).status,
        200
    );
    w.register_oa(&["contract", "spare"]);
    assert_eq!(
        w.call(
            &w.admin,
            "POST",
            "/v1/admin/seals/spare/disable",
            Some("boss"),
            None
        )
        .status,
        200
    );
    let pdf = w.setup.sample();
    let sha = sha256_hex(&pdf);
    let explain = |seal: &str, employee: &str, doc: &str, sha: &str| {
        w.call(
            &w.oa,
            "POST",
            "/v1/policy/explain",
            Some(employee),
            Some(json!({
                "seal": seal, "document_id": doc, "document_sha256": sha,
                "signing_password_confirmed": true,
            })),
        )
        .json()
    };
    // (seal, employee, document, body) → explained, then really sent.
    let mut changed = pdf.clone();
    changed.extend_from_slice(b"\n% v2\n");
    let check = |label: &str, seal: &str, employee: &str, body: &[u8]| {
        let e = explain(seal, employee, "C-5", &sha256_hex(body));
        let real = w.sign(seal, employee, "C-5", body);
        match e["decision"].as_str() {
            Some("allow") => assert_eq!(real.status, 200, "{label}: {e} vs {}", text(&real)),
            _ => {
                assert_ne!(real.status, 200, "{label}: {e}");
                assert_eq!(
                    e["code"].as_str(),
                    Some(real.code().as_str()),
                    "{label}: {e} vs {}",
                    text(&real)
                );
            }
        }
        e
    };
    let e = check("holder", "contract", "alice", &pdf);
    assert_eq!(e["permit"], "holder");
    let e = check("non-holder", "contract", "bob", &pdf);
    assert_eq!(e["decision"], "needs_approval");
    check("disabled seal", "spare", "alice", &pdf);
    check("unknown seal", "nope", "alice", &pdf);
    check("unknown employee", "contract", "nobody", &pdf);
    let applied = w.call(&w.oa, "POST", "/v1/approvals", Some("bob"), Some(json!({
        "seal": "contract", "document_id": "C-5", "document_sha256": sha, "uses": 1, "valid_until": now() + 3600,
    })));
    let id = applied.json()["id"].as_str().expect("id").to_owned();
    let e = check("pending application", "contract", "bob", &pdf);
    assert_eq!(e["pending"], json!(id));
    assert_eq!(w.approval(&id, "approve", "appr").status, 200);
    check("another version", "contract", "bob", &changed);
    // Explaining a grant's use, again and again, uses nothing.
    for _ in 0..3 {
        let e = explain("contract", "bob", "C-5", &sha);
        assert!(
            e["permit"]
                .as_str()
                .is_some_and(|p| p.starts_with("grant:")),
            "{e}"
        );
    }
    let e = check("grant", "contract", "bob", &pdf);
    assert!(e["permit"]
        .as_str()
        .is_some_and(|p| p.starts_with("grant:")));
    let e = check("grant used", "contract", "bob", &pdf);
    assert_eq!(e["code"], "grant_used_up");
    let rule = e["rules"]
        .as_array()
        .and_then(|r| r.iter().find(|r| r["rule"] == "seal_use_grant").cloned());
    assert_eq!(
        rule,
        Some(json!({"rule": "seal_use_grant", "outcome": "failed", "code": "grant_used_up"}))
    );
    // Nothing of the explanations is in the audit log: only the real attempts.
    let attempts = w
        .setup
        .sql("SELECT count(*) FROM audit_records WHERE action = 'sign'");
    assert_eq!(
        attempts, "9",
        "one record per real sign request (nine were sent)"
    );
}

#[test]
fn signing_passwords_lock_after_wrong_tries_and_never_leave_seald() {
    let w = World::with_config("[signing_password]\nmax_failures = 3\nlockout_seconds = 2\n");
    assert_eq!(
        w.create_seal("contract", "contract", "boss", &["alice"])
            .status,
        200
    );
    w.register_oa(&["contract"]);
    let pdf = w.setup.sample();
    let code = |a: &Answer| (a.status, a.code());
    // An application that may not act for alice cannot try her password (or lock it).
    let cert = fs::read_to_string(w.setup.tls.join("app.crt")).expect("app cert");
    let erp = w.call(&w.admin, "POST", "/v1/admin/applications", None, Some(json!({
        "id": "erp", "name": "ERP", "certificate_pem": cert, "roles": ["signer"], "seals": ["contract"],
    })));
    assert_eq!(erp.status, 200, "{}", text(&erp));
    for _ in 0..4 {
        let probe = w.sign_request(
            &w.d.client("app"),
            "contract",
            Some("P-0"),
            &[
                ("Seald-Employee", "alice"),
                ("Seald-Signing-Password", "000000"),
            ],
            &pdf,
        );
        assert_eq!(probe.code(), "cannot_act_for_employees", "{}", text(&probe));
    }
    // Nor when a rule decided later (the document's contract approval) comes first.
    let switch = |on: bool| {
        w.call(
            &w.admin,
            "PUT",
            "/v1/org/features",
            Some("boss"),
            Some(json!({"forced_contract_approval": on})),
        )
    };
    assert_eq!(switch(true).status, 200);
    for _ in 0..4 {
        let probe = w.sign_request(
            &w.d.client("app"),
            "contract",
            Some("P-0"),
            &[
                ("Seald-Employee", "alice"),
                ("Seald-Signing-Password", "000000"),
            ],
            &pdf,
        );
        assert_eq!(probe.status, 403, "{}", text(&probe));
        assert_ne!(probe.code(), "signing_password_wrong", "{}", text(&probe));
    }
    assert_eq!(switch(false).status, 200);
    let none = w.sign_with("contract", "alice", "P-1", &pdf, None);
    assert_eq!(
        code(&none),
        (403, "signing_password_required".to_owned()),
        "{}",
        text(&none)
    );
    let malformed = w.sign_with("contract", "alice", "P-1", &pdf, Some("12ab56"));
    assert_eq!(
        code(&malformed),
        (422, "invalid_signing_password".to_owned())
    );
    for left in [2, 1] {
        let wrong = w.sign_with("contract", "alice", "P-1", &pdf, Some("000000"));
        assert_eq!(
            code(&wrong),
            (403, "signing_password_wrong".to_owned()),
            "{}",
            text(&wrong)
        );
        assert!(
            String::from_utf8_lossy(&wrong.body).contains(&format!("{left} more wrong tries")),
            "{}",
            text(&wrong)
        );
    }
    let third = w.sign_with("contract", "alice", "P-1", &pdf, Some("000000"));
    assert_eq!(code(&third), (403, "signing_password_locked".to_owned()));
    // Locked: the right password is refused too, until the lockout is over.
    let right = w.sign("contract", "alice", "P-1", &pdf);
    assert_eq!(code(&right), (403, "signing_password_locked".to_owned()));
    assert!(
        seald_tests::daemon::wait_until(std::time::Duration::from_secs(10), || {
            w.sign("contract", "alice", "P-1", &pdf).status == 200
        }),
        "the lockout ends by itself"
    );
    // Changing it needs the old one; nobody sets another's; an administrator resets it.
    let set = |who: &str, body: Value| {
        w.call(
            &w.admin,
            "PUT",
            "/v1/org/employees/alice/signing-password",
            Some(who),
            Some(body),
        )
    };
    assert_eq!(
        code(&set("alice", json!({"new": "135790"}))),
        (403, "signing_password_required".to_owned())
    );
    assert_eq!(
        code(&set("alice", json!({"old": "999999", "new": "135790"}))),
        (403, "signing_password_wrong".to_owned())
    );
    assert_eq!(
        code(&set("bob", json!({"new": "135790"}))),
        (403, "permission_denied".to_owned())
    );
    assert_eq!(
        code(&set("alice", json!({"new": "1357"}))),
        (422, "invalid_signing_password".to_owned())
    );
    assert_eq!(
        set("alice", json!({"old": PASSWORD, "new": "135790"})).status,
        200
    );
    assert_eq!(
        w.sign_with("contract", "alice", "P-2", &pdf, Some("135790"))
            .status,
        200
    );
    assert_eq!(
        code(&w.sign("contract", "alice", "P-2", &pdf)),
        (403, "signing_password_wrong".to_owned())
    );
    let reset = |who: &str| {
        w.call(
            &w.admin,
            "POST",
            "/v1/org/employees/alice/signing-password/reset",
            Some(who),
            None,
        )
    };
    assert_eq!(code(&reset("bob")), (403, "permission_denied".to_owned()));
    assert_eq!(reset("boss").status, 200);
    let unset = w.sign_with("contract", "alice", "P-3", &pdf, Some("135790"));
    assert_eq!(
        code(&unset),
        (403, "signing_password_not_set".to_owned()),
        "{}",
        text(&unset)
    );
    assert_eq!(set("alice", json!({"new": "864200"})).status, 200);
    assert_eq!(
        w.sign_with("contract", "alice", "P-3", &pdf, Some("864200"))
            .status,
        200
    );
    // Every wrong try is in the audit log; no password is anywhere in seald's files.
    let wrong = w
        .setup
        .sql("SELECT count(*) FROM audit_records WHERE reason = 'signing_password_wrong'");
    assert_eq!(wrong, "4");
    let mut files = vec![w.d.log.clone()];
    for entry in fs::read_dir(&w.setup.data).expect("data dir") {
        let path = entry.expect("entry").path();
        if path.is_file() {
            files.push(path);
        }
    }
    for file in files {
        let bytes = fs::read(&file).expect("read");
        for secret in [PASSWORD, "135790", "864200"] {
            assert!(
                !bytes.windows(6).any(|w| w == secret.as_bytes()),
                "{secret} appears in {}",
                file.display()
            );
        }
    }
}

#[test]
fn forced_contract_approval_holds_every_seal_until_the_document_is_approved() {
    let w = World::new();
    assert_eq!(
        w.create_seal("contract", "contract", "boss", &["alice"])
            .status,
        200
    );
    w.register_oa(&["contract"]);
    let switch = |who: &str, on: bool| {
        w.call(
            &w.admin,
            "PUT",
            "/v1/org/features",
            Some(who),
            Some(json!({"forced_contract_approval": on})),
        )
    };
    let refused = switch("sa1", true);
    assert_refused(&refused, 403, "features_reserved");
    assert_eq!(switch("legal", true).status, 200);
    let pdf = w.setup.sample();
    let sha = sha256_hex(&pdf);
    let held = w.sign("contract", "alice", "K-9", &pdf);
    assert_eq!(held.code(), "contract_approval_required", "{}", text(&held));
    // Someone who administers contracts approves it.
    let given = w.call(
        &w.admin,
        "PUT",
        "/v1/org/employees/sa2/roles",
        Some("boss"),
        Some(json!({"roles": ["contract_administrator"]})),
    );
    assert_eq!(given.status, 200);
    let submitted = w.call(
        &w.oa,
        "POST",
        "/v1/approvals",
        Some("bob"),
        Some(json!({
            "scenario": "contract_approval", "document_id": "K-9", "document_sha256": sha,
        })),
    );
    assert_eq!(submitted.status, 201, "{}", text(&submitted));
    let id = submitted.json()["id"].as_str().expect("id").to_owned();
    let waiting = w.sign("contract", "alice", "K-9", &pdf);
    assert_eq!(waiting.code(), "contract_approval_required");
    assert!(
        String::from_utf8_lossy(&waiting.body).contains(&id),
        "names the pending approval: {}",
        text(&waiting)
    );
    assert_eq!(w.approval(&id, "approve", "sa2").status, 200);
    let signed = w.sign("contract", "alice", "K-9", &pdf);
    assert_eq!(signed.status, 200, "{}", text(&signed));
    w.validated(&signed.body);
    // Only that version of the document: an edited one waits again.
    let mut edited = pdf.clone();
    edited.extend_from_slice(b"\n% edited\n");
    assert_eq!(
        w.sign("contract", "alice", "K-9", &edited).code(),
        "contract_approval_required"
    );
    // Switched off, holders seal as before.
    assert_eq!(switch("boss", false).status, 200);
    assert_eq!(w.sign("contract", "alice", "K-10", &edited).status, 200);
    let org = w.call(&w.admin, "GET", "/v1/org", None, None).json();
    assert_eq!(
        org["enterprise"]["features"]["forced_contract_approval"],
        false
    );
    // Switched off, a template that requires contract approval still holds its documents.
    let t = json!({
        "name": "框架合同", "requires_contract_approval": true, "pdf_base64": b64(&pdf),
        "areas": [{"id": "a", "party": "甲方", "page": 1, "x": 120, "y": 30, "width": 40}],
    });
    assert_eq!(w.put_template("k", "boss", t).status, 200);
    let by_hand = [
        ("Seald-Employee", "alice"),
        ("Seald-Signing-Password", PASSWORD),
    ];
    let held = sign_query(
        &w,
        &w.oa,
        "contract",
        "document_id=K-11&template_id=k",
        &by_hand,
        &pdf,
    );
    assert_refused(&held, 403, "contract_approval_required");
    // K-9 (this very version) is approved: sealed from the template too.
    let signed = sign_query(
        &w,
        &w.oa,
        "contract",
        "document_id=K-9&template_id=k",
        &by_hand,
        &pdf,
    );
    assert_eq!(signed.status, 200, "{}", text(&signed));
}

#[test]
fn time_windows_daily_caps_and_the_contract_quota_hold_under_concurrent_requests() {
    let w = World::new();
    assert_eq!(
        w.create_seal("contract", "contract", "boss", &["alice"])
            .status,
        200
    );
    w.register_oa(&["contract"]);
    let pdf = w.setup.sample();
    let limits = |who: &str, body: Value| {
        w.call(
            &w.admin,
            "PUT",
            "/v1/admin/seals/contract/limits",
            Some(who),
            Some(body),
        )
    };
    let quota =
        |who: &str, body: Value| w.call(&w.admin, "PUT", "/v1/org/quota", Some(who), Some(body));
    // Put the enterprise's clock at about noon, and allow the seal only from 00:00 to 01:00.
    let utc_minute = (now().rem_euclid(86_400) / 60) as i32;
    let offset = (720 - utc_minute + 720).rem_euclid(1440) - 720;
    assert_eq!(
        quota(
            "boss",
            json!({"contract_quota": null, "utc_offset_minutes": offset})
        )
        .status,
        200
    );
    let night =
        json!({"windows": [{"weekdays": [1, 2, 3, 4, 5, 6, 7], "from": "00:00", "to": "01:00"}]});
    assert_eq!(limits("alice", night.clone()).code(), "permission_denied");
    let bad = limits(
        "sa1",
        json!({"windows": [{"weekdays": [8], "from": "00:00", "to": "01:00"}]}),
    );
    assert_eq!((bad.status, bad.code()), (422, "invalid_limits".to_owned()));
    assert_eq!(limits("sa1", night).status, 200);
    let outside = w.sign("contract", "alice", "T-1", &pdf);
    assert_eq!(outside.code(), "outside_time_window", "{}", text(&outside));
    // All day, at most 3 a day: of 8 concurrent requests, exactly 3 sign.
    let all_day = json!({"per_day": 4, "windows": [{"weekdays": [1, 2, 3, 4, 5, 6, 7], "from": "00:00", "to": "24:00"}]});
    assert_eq!(limits("sa1", all_day).status, 200);
    let keyed = || {
        w.sign_request(
            &w.oa,
            "contract",
            Some("T-K"),
            &[
                ("Seald-Employee", "alice"),
                ("Seald-Signing-Password", PASSWORD),
                ("Idempotency-Key", "t-k"),
            ],
            &pdf,
        )
    };
    let first = keyed();
    assert_eq!(first.status, 200, "{}", text(&first));
    let answers: Vec<Answer> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|n| {
                let pdf = &pdf;
                let w = &w;
                s.spawn(move || w.sign("contract", "alice", &format!("T-{n}"), pdf))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    let ok = answers.iter().filter(|a| a.status == 200).count();
    let capped = answers
        .iter()
        .filter(|a| a.status == 403 && a.code() == "seal_daily_cap_reached")
        .count();
    assert_eq!(
        (ok, capped),
        (3, 5),
        "{:?}",
        answers.iter().map(text).collect::<Vec<_>>()
    );
    assert_eq!(w.setup.sql("SELECT sum(count) FROM seal_usage"), "4");
    // The cap is reached, but a retry of the keyed signature gets its saved answer.
    let replayed = keyed();
    assert_eq!(replayed.status, 200, "{}", text(&replayed));
    assert_eq!(
        replayed.header("idempotent-replayed").as_deref(),
        Some("true")
    );
    // The contract quota counts documents: 2 in all.
    assert_eq!(limits("sa1", json!({})).status, 200);
    assert_eq!(
        quota(
            "sa1",
            json!({"contract_quota": 2, "utc_offset_minutes": offset})
        )
        .code(),
        "quota_reserved"
    );
    assert_eq!(
        quota(
            "legal",
            json!({"contract_quota": 2, "utc_offset_minutes": offset})
        )
        .status,
        200
    );
    for (doc, expect) in [("Q-1", 200), ("Q-1", 200), ("Q-2", 200), ("Q-3", 403)] {
        let a = w.sign("contract", "alice", doc, &pdf);
        assert_eq!(a.status, expect, "{doc}: {}", text(&a));
        if expect == 403 {
            assert_eq!(a.code(), "contract_quota_exhausted");
        }
    }
    let shown = w
        .call(&w.admin, "GET", "/v1/org/quota", Some("boss"), None)
        .json();
    assert_eq!(
        (shown["used"].clone(), shown["left"].clone()),
        (json!(2), json!(0)),
        "{shown}"
    );
    assert_eq!(shown["by_day"].as_array().map(Vec::len), Some(1), "{shown}");
    // Explain says the same before anything is sent.
    let e = w.call(&w.oa, "POST", "/v1/policy/explain", Some("alice"), Some(json!({
        "seal": "contract", "document_id": "Q-4", "document_sha256": sha256_hex(&pdf), "signing_password_confirmed": true,
    }))).json();
    assert_eq!(e["code"], "contract_quota_exhausted", "{e}");
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

impl World {
    /// PUT /v1/templates/{id} as `employee`.
    fn put_template(&self, id: &str, employee: &str, body: Value) -> Answer {
        self.call(
            &self.admin,
            "PUT",
            &format!("/v1/templates/{id}"),
            Some(employee),
            Some(body),
        )
    }

    /// `employee` grants (or revokes) `what` to `to`.
    fn authorize(&self, employee: &str, to: &str, what: &str, granted: bool) -> Answer {
        self.call(
            &self.admin,
            "PUT",
            &format!("/v1/org/employees/{to}/authorizations/{what}"),
            Some(employee),
            Some(json!({ "granted": granted })),
        )
    }

    /// The registration of a signer application `id` with a new client certificate, `extra`
    /// fields merged in (seals, partner…).
    fn register_app(&self, id: &str, extra: Value) -> Answer {
        if !self.setup.tls.join(format!("{id}.crt")).exists() {
            client_cert(&self.setup.tls, id, false);
        }
        let cert = fs::read_to_string(self.setup.tls.join(format!("{id}.crt"))).expect("cert");
        let mut body = json!({"id": id, "name": id, "certificate_pem": cert, "roles": ["signer"]});
        for (k, v) in extra.as_object().expect("an object") {
            body[k] = v.clone();
        }
        self.call(
            &self.admin,
            "POST",
            "/v1/admin/applications",
            None,
            Some(body),
        )
    }

    /// A registered signer application `id` (see `register_app`) and its client.
    fn app(&self, id: &str, extra: Value) -> Client {
        let r = self.register_app(id, extra);
        assert_eq!(r.status, 200, "{}", text(&r));
        self.d.client(id)
    }

    /// An HR system that seals on its own (auto-sign, no employee), registered for `seals`.
    fn hr(&self, seals: &[&str]) -> Client {
        self.app("hr", json!({ "seals": seals }))
    }

    /// A new employee `id` with `role` and the signing password.
    fn staff(&self, id: &str, role: &str) {
        let person = json!({"name": id, "phone": "13900139000", "department": "hq"});
        let path = format!("/v1/org/employees/{id}");
        let put = self.call(&self.admin, "PUT", &path, Some("boss"), Some(person));
        assert_eq!(put.status, 200, "{}", text(&put));
        let roles = json!({ "roles": [role] });
        let path = format!("/v1/org/employees/{id}/roles");
        assert_eq!(
            self.call(&self.admin, "PUT", &path, Some("boss"), Some(roles))
                .status,
            200
        );
        let set = json!({ "new": PASSWORD });
        let path = format!("/v1/org/employees/{id}/signing-password");
        assert_eq!(
            self.call(&self.admin, "PUT", &path, Some(id), Some(set))
                .status,
            200
        );
    }

    /// Switches the features as the legal representative.
    fn features(&self, auto_sign: bool, forced_contract_approval: bool) {
        let f = json!({"auto_sign": auto_sign, "page_seal": false, "forced_contract_approval": forced_contract_approval});
        let r = self.call(
            &self.admin,
            "PUT",
            "/v1/org/features",
            Some("legal"),
            Some(f),
        );
        assert_eq!(r.status, 200, "{}", text(&r));
    }

    fn audit_actions(&self, action: &str) -> String {
        self.setup.sql(&format!(
            "SELECT group_concat(detail, ' | ') FROM audit_records WHERE action = '{action}'"
        ))
    }
}

/// A POST of `pdf` to `/v1/seals/{seal}/sign?{query}` through `client`, with `headers`.
fn sign_query(
    w: &World,
    client: &Client,
    seal: &str,
    query: &str,
    headers: &[(&str, &str)],
    pdf: &[u8],
) -> Answer {
    let mut request = client
        .post(format!("{}/v1/seals/{seal}/sign?{query}", w.d.api))
        .header("Content-Type", "application/pdf");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    send(request.body(pdf.to_vec()))
}

#[test]
fn an_hr_auto_sign_template_seals_labour_contracts_with_no_employee_until_revoked() {
    let w = World::new();
    assert_eq!(w.create_seal("hr", "hr", "boss", &["alice"]).status, 200);
    assert_eq!(
        w.create_seal("contract", "contract", "boss", &["alice"])
            .status,
        200
    );
    let hr = w.hr(&["hr", "contract"]);
    let template_pdf = w.setup.sample();
    let labour = json!({
        "name": "劳动合同", "allow_batch": true,
        "areas": [{"id": "employer", "party": "用人单位", "seal_type": "hr", "page": 1, "x": 120, "y": 30, "width": 40}],
        "fields": [{"name": "姓名", "kind": "text", "required": true}, {"name": "身份证号", "kind": "id_number", "required": true}],
        "pdf_base64": b64(&template_pdf), "auto_sign_seal": "hr",
    });
    // Auto-sign is off: no auto-sign template can be made, so the HR system has none.
    let off = w.put_template("labour", "boss", labour.clone());
    assert_refused(&off, 409, "auto_sign_disabled");
    let q = "template_id=labour&area=employer";
    let r = sign_query(&w, &hr, "hr", q, &[], &template_pdf);
    assert_refused(&r, 404, "template_not_found");
    let features =
        json!({"auto_sign": true, "page_seal": false, "forced_contract_approval": false});
    let on = w.call(
        &w.admin,
        "PUT",
        "/v1/org/features",
        Some("boss"),
        Some(features),
    );
    assert_eq!(on.status, 200, "{}", text(&on));
    // Only holders of the auto-sign authorization make auto-sign templates, and only the super
    // administrator or the legal representative grants it.
    let unauthorized = w.put_template("labour", "boss", labour.clone());
    assert_refused(&unauthorized, 403, "auto_sign_not_authorized");
    let reserved = w.authorize("sa1", "sa1", "auto_sign", true);
    assert_eq!(
        (reserved.status, reserved.code()),
        (403, "authorization_reserved".to_owned())
    );
    assert_eq!(w.authorize("legal", "boss", "auto_sign", true).status, 200);
    let created = w.put_template("labour", "boss", labour.clone());
    assert_eq!(created.status, 200, "{}", text(&created));
    assert_eq!(
        created.json()["auto_sign"],
        json!({"seal": "hr", "authorized_by": "boss"})
    );
    let listed = send(hr.get(format!("{}/v1/templates", w.d.api))).json();
    assert_eq!(listed["templates"][0]["id"], "labour", "{listed}");
    let stored = send(hr.get(format!("{}/v1/templates/labour/pdf", w.d.api)));
    assert_eq!(
        stored.body, template_pdf,
        "the template PDF comes back as uploaded"
    );

    // The HR system seals the template's document in its area, with no employee.
    let signed = sign_query(&w, &hr, "hr", q, &[], &template_pdf);
    assert_eq!(signed.status, 200, "{}", text(&signed));
    w.validated(&signed.body);
    let detail = w.audit_detail(&signed.header("seald-audit-record").expect("record"));
    assert_eq!(
        (
            detail["permit"].clone(),
            detail["area"].clone(),
            detail["employee"].clone()
        ),
        (json!("auto_sign:labour"), json!("employer"), Value::Null),
        "{detail}"
    );
    // A later revision of the template's PDF is the template's document too.
    let again = sign_query(&w, &hr, "hr", q, &[], &signed.body);
    assert_eq!(again.status, 200, "{}", text(&again));
    // What the rules refuse, each with its code; explain says the same before anything is sent.
    let mut foreign = b"%not the template\n".to_vec();
    foreign.extend_from_slice(&template_pdf);
    // (what, seal, query, body, status, code)
    type Refusal<'a> = (&'a str, &'a str, &'a str, &'a [u8], u16, &'a str);
    let cases: Vec<Refusal> = vec![
        (
            "no template",
            "hr",
            "",
            &template_pdf,
            403,
            "auto_sign_template_required",
        ),
        (
            "no area",
            "hr",
            "template_id=labour",
            &template_pdf,
            403,
            "signing_area_required",
        ),
        (
            "another area",
            "hr",
            "template_id=labour&area=employee",
            &template_pdf,
            403,
            "signing_area_not_found",
        ),
        (
            "another seal",
            "contract",
            q,
            &template_pdf,
            403,
            "seal_type_mismatch",
        ),
        (
            "not the template's PDF",
            "hr",
            q,
            &foreign,
            403,
            "document_not_from_template",
        ),
        (
            "an unknown template",
            "hr",
            "template_id=nda&area=employer",
            &template_pdf,
            404,
            "template_not_found",
        ),
    ];
    for (label, seal, query, pdf, status, code) in cases {
        let r = sign_query(&w, &hr, seal, query, &[], pdf);
        assert_eq!(
            (r.status, r.code()),
            (status, code.to_owned()),
            "{label}: {}",
            text(&r)
        );
        let mut ask = json!({"seal": seal, "from_template": pdf == template_pdf.as_slice()});
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').expect("k=v");
            ask[k] = json!(v);
        }
        let e = w
            .call(&hr, "POST", "/v1/policy/explain", None, Some(ask))
            .json();
        assert_eq!(
            (e["decision"].as_str(), e["code"].as_str()),
            (Some("deny"), Some(code)),
            "{label}: {e}"
        );
    }
    // The area places the seal; a position in the query too is a contradiction.
    let placed = sign_query(&w, &hr, "hr", &format!("{q}&page=2"), &[], &template_pdf);
    assert_eq!(placed.status, 400, "{}", text(&placed));

    // Revoking the authorizer's authorization stops the template at the very next request…
    assert_eq!(w.authorize("legal", "boss", "auto_sign", false).status, 200);
    let revoked = sign_query(&w, &hr, "hr", q, &[], &template_pdf);
    assert_refused(&revoked, 403, "auto_sign_not_authorized");
    // …and granting it again restarts it; disabling or deleting the template stops it too.
    assert_eq!(w.authorize("legal", "boss", "auto_sign", true).status, 200);
    assert_eq!(sign_query(&w, &hr, "hr", q, &[], &template_pdf).status, 200);
    let disabled = w.call(
        &w.admin,
        "POST",
        "/v1/templates/labour/disable",
        Some("boss"),
        None,
    );
    assert_eq!(disabled.status, 200, "{}", text(&disabled));
    let r = sign_query(&w, &hr, "hr", q, &[], &template_pdf);
    assert_eq!((r.status, r.code()), (403, "template_disabled".to_owned()));
    assert_eq!(
        w.call(
            &w.admin,
            "POST",
            "/v1/templates/labour/enable",
            Some("boss"),
            None
        )
        .status,
        200
    );
    assert_eq!(sign_query(&w, &hr, "hr", q, &[], &template_pdf).status, 200);
    // Switching auto-sign off stops every auto-sign template.
    let features =
        |on: bool| json!({"auto_sign": on, "page_seal": false, "forced_contract_approval": false});
    let switch = |on: bool| {
        w.call(
            &w.admin,
            "PUT",
            "/v1/org/features",
            Some("legal"),
            Some(features(on)),
        )
        .status
    };
    assert_eq!(switch(false), 200);
    let r = sign_query(&w, &hr, "hr", q, &[], &template_pdf);
    assert_refused(&r, 403, "auto_sign_disabled");
    assert_eq!(switch(true), 200);
    assert_eq!(sign_query(&w, &hr, "hr", q, &[], &template_pdf).status, 200);
    assert_eq!(
        w.call(
            &w.admin,
            "DELETE",
            "/v1/templates/labour",
            Some("boss"),
            None
        )
        .status,
        200
    );
    let r = sign_query(&w, &hr, "hr", q, &[], &template_pdf);
    assert_eq!((r.status, r.code()), (404, "template_not_found".to_owned()));
    // Every grant and revocation is in the audit log.
    let grants = w.audit_actions("org.authorization");
    assert_eq!(grants.matches("\"granted\":true").count(), 2, "{grants}");
    assert_eq!(grants.matches("\"granted\":false").count(), 1, "{grants}");
}

#[test]
fn a_batch_confirmation_seals_up_to_its_count_within_its_lifetime_and_no_further() {
    let w = World::with_config("[batch_sign]\nmax_count = 5\nmax_lifetime_seconds = 600\n");
    assert_eq!(
        w.create_seal("contract", "contract", "boss", &["alice", "bob"])
            .status,
        200
    );
    w.register_oa(&["contract"]);
    let confirm = |employee: &str, password: &str, body: Value| {
        let r =
            w.oa.post(format!("{}/v1/batch-confirmations", w.d.api))
                .header("Seald-Employee", employee)
                .header("Seald-Signing-Password", password)
                .header("Content-Type", "application/json")
                .body(body.to_string());
        send(r)
    };
    let ask = json!({"count": 3, "lifetime_seconds": 600});
    let r = confirm("alice", PASSWORD, ask.clone());
    assert_refused(&r, 403, "batch_sign_not_authorized");
    assert_eq!(w.authorize("boss", "alice", "batch_sign", true).status, 200);
    for bad in [
        json!({"count": 6, "lifetime_seconds": 60}),
        json!({"count": 3, "lifetime_seconds": 601}),
        json!({"count": 0, "lifetime_seconds": 60}),
    ] {
        let r = confirm("alice", PASSWORD, bad.clone());
        assert_eq!(
            (r.status, r.code()),
            (422, "invalid_batch_confirmation".to_owned()),
            "{bad}: {}",
            text(&r)
        );
    }
    let wrong = confirm("alice", "135790", ask.clone());
    assert_refused(&wrong, 403, "signing_password_wrong");
    let opened = confirm("alice", PASSWORD, ask.clone());
    assert_eq!(opened.status, 201, "{}", text(&opened));
    let token = opened.json()["token"].as_str().expect("token").to_owned();
    let id = opened.json()["id"].as_str().expect("id").to_owned();
    assert!(
        !w.d.log_text().contains(&token),
        "the token is never logged"
    );
    assert!(
        !w.setup
            .sql("SELECT group_concat(detail) FROM audit_records")
            .contains(&token),
        "nor recorded"
    );

    let pdf = w.setup.sample();
    let by_batch = |employee: &str, token: &str| {
        let headers = [
            ("Seald-Employee", employee),
            ("Seald-Batch-Confirmation", token),
        ];
        w.sign_request(&w.oa, "contract", None, &headers, &pdf)
    };
    // Another employee (who may batch-sign too) cannot use alice's confirmation.
    assert_eq!(w.authorize("boss", "bob", "batch_sign", true).status, 200);
    let r = by_batch("bob", &token);
    assert_refused(&r, 404, "batch_confirmation_not_found");
    for i in 0..3 {
        let r = by_batch("alice", &token);
        assert_eq!(r.status, 200, "signature {i}: {}", text(&r));
        if i == 0 {
            w.validated(&r.body);
            let detail = w.audit_detail(&r.header("seald-audit-record").expect("record"));
            assert_eq!(detail["batch"], json!(id), "{detail}");
        }
    }
    let r = by_batch("alice", &token);
    assert_refused(&r, 403, "batch_confirmation_used_up");
    let shown = w
        .call(
            &w.oa,
            "GET",
            &format!("/v1/batch-confirmations/{id}"),
            Some("alice"),
            None,
        )
        .json();
    assert_eq!(
        (shown["used"].clone(), shown["left"].clone()),
        (json!(3), json!(0)),
        "{shown}"
    );

    // Requests racing for the last signatures: exactly as many sign as are left.
    let opened = confirm(
        "alice",
        PASSWORD,
        json!({"count": 2, "lifetime_seconds": 600}),
    );
    let token = opened.json()["token"].as_str().expect("token").to_owned();
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let all: Vec<_> = (0..6)
            .map(|_| s.spawn(|| by_batch("alice", &token).status))
            .collect();
        all.into_iter().map(|h| h.join().expect("thread")).collect()
    });
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        2,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 403),
        "{statuses:?}"
    );

    // Ended early, or past its lifetime: refused.
    let opened = confirm(
        "alice",
        PASSWORD,
        json!({"count": 5, "lifetime_seconds": 600}),
    )
    .json();
    let (token, id) = (
        opened["token"].as_str().expect("t").to_owned(),
        opened["id"].as_str().expect("i").to_owned(),
    );
    assert_eq!(by_batch("alice", &token).status, 200);
    let closed = w.call(
        &w.oa,
        "DELETE",
        &format!("/v1/batch-confirmations/{id}"),
        Some("alice"),
        None,
    );
    assert_eq!(closed.status, 200, "{}", text(&closed));
    let r = by_batch("alice", &token);
    assert_refused(&r, 403, "batch_confirmation_expired");
    let short = confirm(
        "alice",
        PASSWORD,
        json!({"count": 5, "lifetime_seconds": 1}),
    )
    .json();
    let expires_at = short["expires_at"].as_i64().expect("expires_at");
    // Wait for the clock to pass the lifetime (a condition on time, not a guess).
    while now() < expires_at {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let r = by_batch("alice", short["token"].as_str().expect("t"));
    assert_refused(&r, 403, "batch_confirmation_expired");
    // Revoking the batch-sign authorization stops the rest at the very next request.
    let opened = confirm("alice", PASSWORD, ask).json();
    let token = opened["token"].as_str().expect("t").to_owned();
    assert_eq!(
        w.authorize("legal", "alice", "batch_sign", false).status,
        200
    );
    let r = by_batch("alice", &token);
    assert_refused(&r, 403, "batch_sign_not_authorized");
    // A password and a confirmation together are one too many.
    let both = w.sign_request(
        &w.oa,
        "contract",
        None,
        &[
            ("Seald-Employee", "alice"),
            ("Seald-Batch-Confirmation", &token),
            ("Seald-Signing-Password", PASSWORD),
        ],
        &pdf,
    );
    assert_eq!(both.status, 400, "{}", text(&both));
}

#[test]
fn sealctl_manages_templates_and_the_auto_sign_and_batch_sign_authorizations() {
    use seald_tests::{run, run_ok};
    let w = World::new();
    assert_eq!(w.create_seal("hr", "hr", "boss", &["alice"]).status, 200);
    let ctl = |who: &str, args: &[&str]| {
        let mut cmd = w.setup.sealctl(&w.d, "admin");
        cmd.env("SEALD_EMPLOYEE", who).args(args);
        cmd
    };
    let json_of = |out: String| -> Value {
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
    };
    run_ok(&mut ctl("boss", &["org", "features", "--auto-sign"]));
    // A refusal is a clear message and exit status 1.
    let refused = run(&mut ctl("sa1", &["autosign", "grant", "boss"]));
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("authorization_reserved"));
    run_ok(&mut ctl("legal", &["autosign", "grant", "boss"]));
    let dir = w.setup.dir();
    let file = dir.join("labour.json");
    fs::write(&file, json!({
        "name": "劳动合同",
        "areas": [{"id": "employer", "party": "用人单位", "seal_type": "hr", "page": 1, "x": 120, "y": 30, "width": 40}],
        "fields": [{"name": "姓名", "kind": "text", "required": true}],
        "auto_sign_seal": "hr",
    }).to_string()).expect("write");
    let pdf = dir.join("labour.pdf");
    fs::write(&pdf, w.setup.sample()).expect("write");
    let (file, pdf) = (file.to_str().expect("utf-8"), pdf.to_str().expect("utf-8"));
    let put = json_of(run_ok(&mut ctl(
        "boss",
        &[
            "template", "--json", "put", "labour", "--file", file, "--pdf", pdf,
        ],
    )));
    assert_eq!(put["auto_sign"]["authorized_by"], "boss", "{put}");
    let listed = run_ok(&mut ctl("boss", &["template", "list"]));
    assert!(listed.contains("labour\tenabled\tauto-sign:hr"), "{listed}");
    let back = dir.join("back.pdf");
    run_ok(&mut ctl(
        "boss",
        &[
            "template",
            "pdf",
            "labour",
            "--out",
            back.to_str().expect("utf-8"),
        ],
    ));
    assert_eq!(fs::read(&back).expect("read"), w.setup.sample());
    run_ok(&mut ctl("boss", &["template", "disable", "labour"]));
    let shown = json_of(run_ok(&mut ctl("boss", &["template", "show", "labour"])));
    assert_eq!(shown["enabled"], false, "{shown}");
    // Batch signing: granted, confirmed with the password from the environment.
    run_ok(&mut ctl("boss", &["batchsign", "grant", "alice"]));
    let mut confirm = ctl(
        "alice",
        &[
            "batchsign",
            "--json",
            "confirm",
            "--count",
            "2",
            "--lifetime",
            "60",
        ],
    );
    confirm.env("SEALD_SIGNING_PASSWORD", PASSWORD);
    let opened = json_of(run_ok(&mut confirm));
    let id = opened["id"].as_str().expect("id").to_owned();
    assert_eq!(opened["token"].as_str().map(str::len), Some(64), "{opened}");
    let left = json_of(run_ok(&mut ctl(
        "alice",
        &["batchsign", "--json", "show", &id],
    )));
    assert_eq!(left["left"], 2, "{left}");
    run_ok(&mut ctl("alice", &["batchsign", "end", &id]));
    // Partners: a direct grant, listed, revoked.
    let granted = json_of(run_ok(&mut ctl(
        "legal",
        &[
            "partner",
            "--json",
            "grant",
            "--partner",
            PARTNER,
            "--name",
            "合作方",
            "--seal",
            "hr",
            "--template",
            "labour",
            "--days",
            "30",
        ],
    )));
    assert_eq!(
        granted["scope"],
        json!({"kind": "templates", "templates": ["labour"]}),
        "{granted}"
    );
    let id = granted["id"].as_str().expect("id").to_owned();
    let listed = run_ok(&mut ctl("boss", &["partner", "list"]));
    assert!(listed.contains(&id) && listed.contains(PARTNER), "{listed}");
    run_ok(&mut ctl("boss", &["partner", "revoke", &id]));
    let listed = run_ok(&mut ctl("boss", &["partner", "list"]));
    assert!(listed.contains("revoked_at="), "{listed}");
    // The quota, top-level.
    run_ok(&mut ctl("boss", &["quota", "set", "--contracts", "7"]));
    let quota = json_of(run_ok(&mut ctl("boss", &["quota", "--json", "show"])));
    assert_eq!(
        (quota["contract_quota"].clone(), quota["left"].clone()),
        (json!(7), json!(7)),
        "{quota}"
    );
    // Groups: a member added and shown, then removed.
    run_ok(&mut ctl(
        "boss",
        &[
            "group",
            "add",
            MEMBER,
            "--name",
            "子公司",
            "--quota",
            "10",
            "--draw-on-parent",
        ],
    ));
    let group = json_of(run_ok(&mut ctl("boss", &["group", "--json", "show"])));
    assert_eq!(group["members"][0]["contract_quota"], 10, "{group}");
    run_ok(&mut ctl("boss", &["group", "remove", MEMBER]));
    let shown = run_ok(&mut ctl("boss", &["group", "show"]));
    assert!(!shown.contains(MEMBER), "{shown}");
    run_ok(&mut ctl("legal", &["autosign", "revoke", "boss"]));
    let org = json_of(run_ok(&mut ctl("boss", &["org", "--json", "show"])));
    let boss = org["employees"]
        .as_array()
        .and_then(|e| e.iter().find(|e| e["id"] == "boss"))
        .cloned();
    assert_eq!(
        boss.map(|b| b["auto_sign_authorized"].clone()),
        Some(json!(false)),
        "{org}"
    );
}

/// The partner enterprise's unified social credit code.
const PARTNER: &str = "91310000MA1FL0001R";

#[test]
fn a_partner_invites_is_authorized_seals_within_its_scope_and_is_refused_once_revoked_or_expired() {
    let w = World::new();
    assert_eq!(
        w.create_seal("contract", "contract", "boss", &["alice"])
            .status,
        200
    );
    w.register_oa(&["contract"]);
    let features =
        json!({"auto_sign": true, "page_seal": false, "forced_contract_approval": false});
    assert_eq!(
        w.call(
            &w.admin,
            "PUT",
            "/v1/org/features",
            Some("boss"),
            Some(features)
        )
        .status,
        200
    );
    let template_pdf = w.setup.sample();
    let nda = json!({
        "name": "采购订单",
        "areas": [{"id": "party-a", "party": "甲方", "seal_type": "contract", "page": 1, "x": 120, "y": 30, "width": 40}],
        "pdf_base64": b64(&template_pdf),
    });
    assert_eq!(w.put_template("order", "boss", nda.clone()).status, 200);
    // A template of this enterprise's own, which no partner is authorized for.
    assert_eq!(w.put_template("internal", "boss", nda).status, 200);
    // The partner's system: signer for the contract seal, registered for the partner.
    let partner_app = json!({"seals": ["contract"], "partner": PARTNER});
    let mut bad = partner_app.clone();
    bad["acts_for_employees"] = json!(true);
    assert_refused(&w.register_app("partner", bad), 422, "invalid_roles");
    let bad = json!({"seals": ["contract"], "partner": "91310000MA1FL0001X"});
    assert_refused(&w.register_app("partner", bad), 422, "invalid_credit_code");
    let partner = w.app("partner", partner_app);
    let q = "template_id=order&area=party-a";
    let r = sign_query(&w, &partner, "contract", q, &[], &template_pdf);
    assert_refused(&r, 403, "partner_not_authorized");
    // A partner's system sees only the templates its enterprise is authorized for: none yet.
    let listed = |client: &Client| -> Vec<String> {
        let v = send(client.get(format!("{}/v1/templates", w.d.api))).json();
        ids(&v["templates"])
    };
    assert!(listed(&partner).is_empty());
    assert_eq!(
        listed(&w.oa),
        ["internal", "order"],
        "this enterprise's systems see all"
    );

    // The partner sends an invitation link; only its own kind of application may.
    let invite = |client: &Client| {
        w.call(
            client,
            "POST",
            "/v1/partners/invitations",
            None,
            Some(json!({"name": "合作方有限公司", "message": "请授权合同章用于采购订单"})),
        )
    };
    let r = invite(&w.oa);
    assert_refused(&r, 403, "not_partner_application");
    let invitation = invite(&partner);
    assert_eq!(invitation.status, 201, "{}", text(&invitation));
    let token = invitation.json()["token"]
        .as_str()
        .expect("token")
        .to_owned();
    let expires_at = invitation.json()["expires_at"]
        .as_i64()
        .expect("expires_at");
    assert!(
        (30 * 86_400 - 5..=30 * 86_400).contains(&(expires_at - now())),
        "30 days"
    );
    let link = format!("/v1/partners/invitations/{token}");
    let shown = w.call(&w.admin, "GET", &link, Some("boss"), None).json();
    assert_eq!(
        (shown["partner"].clone(), shown["usable"].clone()),
        (json!(PARTNER), json!(true)),
        "{shown}"
    );
    let grant = json!({"seals": ["contract"], "scope": {"kind": "templates", "templates": ["order"]}, "expires_at": now() + 86_400});
    let accept = |employee: &str| {
        w.call(
            &w.admin,
            "POST",
            &format!("{link}/accept"),
            Some(employee),
            Some(grant.clone()),
        )
    };
    let r = accept("sa1");
    assert_refused(&r, 403, "authorization_reserved");
    let accepted = accept("boss");
    assert_eq!(accepted.status, 201, "{}", text(&accepted));
    let authorization = accepted.json()["id"].as_str().expect("id").to_owned();
    let r = accept("legal");
    assert_eq!(
        (r.status, r.code()),
        (409, "invitation_used".to_owned()),
        "single use: {}",
        text(&r)
    );
    assert_eq!(listed(&partner), ["order"]);
    for path in ["/v1/templates/internal", "/v1/templates/internal/pdf"] {
        let hidden = send(partner.get(format!("{}{path}", w.d.api)));
        assert_refused(&hidden, 404, "template_not_found");
    }
    assert_eq!(
        send(partner.get(format!("{}/v1/templates/order/pdf", w.d.api))).body,
        template_pdf
    );

    // Within its scope the partner's documents are sealed; outside it, refused.
    let signed = sign_query(&w, &partner, "contract", q, &[], &template_pdf);
    assert_eq!(signed.status, 200, "{}", text(&signed));
    w.validated(&signed.body);
    let detail = w.audit_detail(&signed.header("seald-audit-record").expect("record"));
    assert_eq!(
        detail["permit"],
        json!(format!("partner:{authorization}")),
        "{detail}"
    );
    let r = sign_query(&w, &partner, "contract", "", &[], &template_pdf);
    assert_refused(&r, 403, "partner_template_not_authorized");
    let e = w
        .call(
            &partner,
            "POST",
            "/v1/policy/explain",
            None,
            Some(json!({"seal": "contract"})),
        )
        .json();
    assert_eq!(e["code"], "partner_template_not_authorized", "{e}");
    let r = sign_query(
        &w,
        &partner,
        "contract",
        q,
        &[("Seald-Employee", "alice")],
        &template_pdf,
    );
    assert_refused(&r, 403, "cannot_act_for_employees");
    // Revoked: the very next request is refused.
    let revoked = w.call(
        &w.admin,
        "POST",
        &format!("/v1/partners/{authorization}/revoke"),
        Some("legal"),
        None,
    );
    assert_eq!(revoked.status, 200, "{}", text(&revoked));
    let r = sign_query(&w, &partner, "contract", q, &[], &template_pdf);
    assert_refused(&r, 403, "partner_authorization_revoked");
    // A direct grant for documents the partner initiates, which expires in two seconds.
    let expires = now() + 2;
    let direct = w.call(
        &w.admin,
        "POST",
        "/v1/partners",
        Some("boss"),
        Some(json!({
            "partner": PARTNER, "name": "合作方有限公司", "seals": ["contract"],
            "scope": {"kind": "initiated"}, "expires_at": expires,
        })),
    );
    assert_eq!(direct.status, 201, "{}", text(&direct));
    let r = sign_query(
        &w,
        &partner,
        "contract",
        "document_id=PO-1",
        &[],
        &template_pdf,
    );
    assert_eq!(r.status, 200, "{}", text(&r));
    while now() < expires {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let r = sign_query(
        &w,
        &partner,
        "contract",
        "document_id=PO-2",
        &[],
        &template_pdf,
    );
    assert_refused(&r, 403, "partner_authorization_expired");
    let listed = w
        .call(&w.admin, "GET", "/v1/partners", Some("boss"), None)
        .json();
    assert_eq!(
        listed["authorizations"].as_array().map(Vec::len),
        Some(2),
        "{listed}"
    );
    for action in [
        "partner.invite",
        "partner.accept",
        "partner.revoke",
        "partner.authorize",
    ] {
        assert!(!w.audit_actions(action).is_empty(), "{action} is audited");
    }
    assert!(
        !w.d.log_text().contains(&token),
        "the link's token is never logged"
    );
}

/// The group member's unified social credit code.
const MEMBER: &str = "91440300MA5G000020";

#[test]
fn a_group_parent_seals_for_a_member_only_within_its_scope_and_quota_until_it_is_removed() {
    let w = World::new();
    w.staff("gca", "group_contract_administrator");
    w.staff("gsp", "group_salesperson");
    // The parent's principal adds the member: its own quota of one contract, then the
    // parent's pool (one contract too).
    let terms = json!({"name": "子公司有限公司", "contract_quota": 1, "draw_on_parent": true});
    let member_path = format!("/v1/group/members/{MEMBER}");
    let r = w.call(
        &w.admin,
        "PUT",
        &member_path,
        Some("sa1"),
        Some(terms.clone()),
    );
    assert_refused(&r, 403, "group_reserved");
    assert_eq!(
        w.call(&w.admin, "PUT", &member_path, Some("boss"), Some(terms))
            .status,
        200
    );
    let quota = json!({"contract_quota": 1, "utc_offset_minutes": 480});
    assert_eq!(
        w.call(&w.admin, "PUT", "/v1/org/quota", Some("boss"), Some(quota))
            .status,
        200
    );
    // The member's own system grants the parent its contracts and one seal.
    let member = w.app("member", json!({ "partner": MEMBER }));
    let scope = |contracts: bool| json!({"contracts": contracts, "seals": ["sub-contract"], "templates": []});
    let scope_path = format!("{member_path}/scope");
    let r = w.call(&w.admin, "PUT", &scope_path, None, Some(scope(true)));
    assert_eq!(
        (r.status, r.code()),
        (403, "not_partner_application".to_owned()),
        "only the member grants: {}",
        text(&r)
    );
    assert_eq!(
        w.call(&member, "PUT", &scope_path, None, Some(scope(true)))
            .status,
        200
    );
    // The parent keeps the member's seals: one in scope, one not.
    let chain = fs::read_to_string(&w.setup.chain).expect("chain");
    let member_seal = |id: &str| {
        w.call(
            &w.admin,
            "POST",
            "/v1/admin/seals",
            Some("boss"),
            Some(json!({
                "id": id, "name": "子公司合同章", "token": "hsm", "key_label": "seal",
                "certificate_chain_pem": chain, "kind": "contract", "enterprise": MEMBER,
            })),
        )
    };
    let r = member_seal("sub-other");
    assert_refused(&r, 403, "group_seal_out_of_scope");
    let r = member_seal("sub-contract");
    assert_eq!(r.status, 200, "{}", text(&r));
    assert_eq!(r.json()["status"], "active");
    w.register_oa(&["sub-contract"]);
    // The parent's seal administrators do not manage it; only group seal management would.
    let r = w.call(
        &w.admin,
        "POST",
        "/v1/admin/seals/sub-contract/disable",
        Some("sa1"),
        None,
    );
    assert_refused(&r, 403, "group_role_required");

    let pdf = w.setup.sample();
    let signed = w.sign("sub-contract", "gca", "SUB-1", &pdf);
    assert_eq!(signed.status, 200, "{}", text(&signed));
    w.validated(&signed.body);
    let detail = w.audit_detail(&signed.header("seald-audit-record").expect("record"));
    assert_eq!(
        detail["permit"],
        json!(format!("group:{MEMBER}")),
        "{detail}"
    );
    for (who, code) in [
        ("gsp", "group_role_required"),
        ("alice", "group_role_required"),
    ] {
        let r = w.sign("sub-contract", who, "SUB-1", &pdf);
        assert_eq!(
            (r.status, r.code()),
            (403, code.to_owned()),
            "{who}: {}",
            text(&r)
        );
    }
    // Quota: SUB-1 took the member's one contract, SUB-2 draws on the parent's pool, SUB-3
    // finds both used up; SUB-1 again is free.
    assert_eq!(w.sign("sub-contract", "gca", "SUB-2", &pdf).status, 200);
    let r = w.sign("sub-contract", "gca", "SUB-3", &pdf);
    assert_refused(&r, 403, "contract_quota_exhausted");
    assert_eq!(w.sign("sub-contract", "gca", "SUB-1", &pdf).status, 200);
    assert_eq!(
        w.setup.sql(&format!(
            "SELECT sum(count) FROM member_quota_usage WHERE member = '{MEMBER}'"
        )),
        "1"
    );
    assert_eq!(w.setup.sql("SELECT sum(count) FROM quota_usage"), "1");
    // The member narrows its scope: its contracts are no longer the parent's to seal.
    assert_eq!(
        w.call(&member, "PUT", &scope_path, None, Some(scope(false)))
            .status,
        200
    );
    let r = w.sign("sub-contract", "gca", "SUB-1", &pdf);
    assert_refused(&r, 403, "group_contracts_out_of_scope");
    assert_eq!(
        w.call(&member, "PUT", &scope_path, None, Some(scope(true)))
            .status,
        200
    );
    assert_eq!(w.sign("sub-contract", "gca", "SUB-1", &pdf).status, 200);
    // Removing the member revokes everything at once.
    let removed = w.call(&w.admin, "DELETE", &member_path, Some("legal"), None);
    assert_eq!(removed.status, 200, "{}", text(&removed));
    let r = w.sign("sub-contract", "gca", "SUB-1", &pdf);
    assert_refused(&r, 403, "group_member_not_found");
    let group = w
        .call(&w.admin, "GET", "/v1/group", Some("boss"), None)
        .json();
    assert_eq!(group["members"], json!([]), "{group}");
}

/// One sign request, described for both `POST /v1/policy/explain` and the real thing.
struct Ask<'a> {
    label: &'a str,
    client: &'a Client,
    seal: &'a str,
    template: Option<&'a str>,
    area: Option<&'a str>,
    document: Option<&'a str>,
    employee: Option<&'a str>,
    password: bool,
    batch: Option<&'a str>,
    body: &'a [u8],
}

impl World {
    /// Explains `a`, sends it, and checks that the two agree (allow and 200, or the same
    /// code); returns the explanation.
    fn agree(&self, a: &Ask<'_>, template_pdf: &[u8]) -> Value {
        let mut headers: Vec<(&str, &str)> = Vec::new();
        if let Some(e) = a.employee {
            headers.push(("Seald-Employee", e));
        }
        if let Some(b) = a.batch {
            headers.push(("Seald-Batch-Confirmation", b));
        }
        let mut ask = json!({
            "seal": a.seal, "template_id": a.template, "area": a.area,
            "from_template": a.body.starts_with(template_pdf),
            "signing_password_confirmed": a.password,
        });
        if let Some(d) = a.document {
            ask["document_id"] = json!(d);
            ask["document_sha256"] = json!(sha256_hex(a.body));
        }
        let mut request = a
            .client
            .post(format!("{}/v1/policy/explain", self.d.api))
            .header("Content-Type", "application/json");
        for (k, v) in &headers {
            request = request.header(*k, *v);
        }
        let e = send(request.body(ask.to_string())).json();
        if a.password {
            headers.push(("Seald-Signing-Password", PASSWORD));
        }
        let query: Vec<String> = [
            ("template_id", a.template),
            ("area", a.area),
            ("document_id", a.document),
        ]
        .iter()
        .filter_map(|(k, v)| v.map(|v| format!("{k}={v}")))
        .collect();
        let real = sign_query(self, a.client, a.seal, &query.join("&"), &headers, a.body);
        let label = a.label;
        match e["decision"].as_str() {
            Some("allow") => assert_eq!(real.status, 200, "{label}: {e} vs {}", text(&real)),
            _ => assert_eq!(
                (e["code"].as_str(), real.status != 200),
                (Some(real.code().as_str()), true),
                "{label}: {e} vs {}",
                text(&real)
            ),
        }
        e
    }
}

#[test]
fn explain_agrees_with_the_real_decision_across_templates_auto_sign_partners_groups_and_batches() {
    let w = World::new();
    assert_eq!(
        w.create_seal("contract", "contract", "boss", &["alice"])
            .status,
        200
    );
    assert_eq!(w.create_seal("hr", "hr", "boss", &["alice"]).status, 200);
    w.features(true, false);
    assert_eq!(w.authorize("legal", "boss", "auto_sign", true).status, 200);
    let pdf = w.setup.sample();
    let area = |id: &str, kind: &str| json!({"id": id, "party": "甲方", "seal_type": kind, "page": 1, "x": 120, "y": 30, "width": 40});
    let labour = json!({"name": "劳动合同", "areas": [area("employer", "hr")], "pdf_base64": b64(&pdf), "auto_sign_seal": "hr"});
    assert_eq!(w.put_template("labour", "boss", labour).status, 200);
    let order =
        json!({"name": "订单", "areas": [area("party-a", "contract")], "pdf_base64": b64(&pdf)});
    assert_eq!(w.put_template("order", "boss", order).status, 200);
    // A group member and its seal; the group roles.
    let terms = json!({"name": "子公司", "contract_quota": null, "draw_on_parent": false});
    assert_eq!(
        w.call(
            &w.admin,
            "PUT",
            &format!("/v1/group/members/{MEMBER}"),
            Some("boss"),
            Some(terms)
        )
        .status,
        200
    );
    let member = w.app("member", json!({ "partner": MEMBER }));
    let scope = json!({"contracts": true, "seals": ["sub"], "templates": ["order"]});
    assert_eq!(
        w.call(
            &member,
            "PUT",
            &format!("/v1/group/members/{MEMBER}/scope"),
            None,
            Some(scope)
        )
        .status,
        200
    );
    let chain = fs::read_to_string(&w.setup.chain).expect("chain");
    let sub = w.call(
        &w.admin,
        "POST",
        "/v1/admin/seals",
        Some("boss"),
        Some(json!({
            "id": "sub", "name": "子公司合同章", "token": "hsm", "key_label": "seal",
            "certificate_chain_pem": chain, "kind": "contract", "enterprise": MEMBER,
        })),
    );
    assert_eq!(sub.status, 200, "{}", text(&sub));
    w.staff("gca", "group_contract_administrator");
    w.staff("gsp", "group_salesperson");
    w.register_oa(&["contract", "hr", "sub"]);
    let hr = w.hr(&["hr", "contract"]);
    let partner = w.app(
        "partner",
        json!({"seals": ["contract", "hr"], "partner": PARTNER}),
    );
    let grant = json!({
        "partner": PARTNER, "name": "合作方", "seals": ["contract"],
        "scope": {"kind": "templates", "templates": ["order"]}, "expires_at": now() + 3600,
    });
    assert_eq!(
        w.call(&w.admin, "POST", "/v1/partners", Some("boss"), Some(grant))
            .status,
        201
    );
    // alice's batch confirmation; bob may batch-sign too.
    assert_eq!(w.authorize("boss", "alice", "batch_sign", true).status, 200);
    assert_eq!(w.authorize("boss", "bob", "batch_sign", true).status, 200);
    let opened = send(
        w.oa.post(format!("{}/v1/batch-confirmations", w.d.api))
            .header("Seald-Employee", "alice")
            .header("Seald-Signing-Password", PASSWORD)
            .header("Content-Type", "application/json")
            .body(json!({"count": 2, "lifetime_seconds": 600}).to_string()),
    );
    assert_eq!(opened.status, 201, "{}", text(&opened));
    let token = opened.json()["token"].as_str().expect("token").to_owned();
    let mut foreign = b"%another document\n".to_vec();
    foreign.extend_from_slice(&pdf);

    let base = Ask {
        label: "",
        client: &w.oa,
        seal: "contract",
        template: None,
        area: None,
        document: Some("D-1"),
        employee: Some("alice"),
        password: true,
        batch: None,
        body: &pdf,
    };
    let auto = Ask {
        client: &hr,
        employee: None,
        password: false,
        seal: "hr",
        template: Some("labour"),
        area: Some("employer"),
        ..base
    };
    let by_partner = Ask {
        client: &partner,
        employee: None,
        password: false,
        template: Some("order"),
        area: Some("party-a"),
        ..base
    };
    let by_oa = Ask {
        employee: None,
        password: false,
        ..base
    };
    // (the request, the permit it is allowed with or the code it is refused with)
    let cases = [
        (
            Ask {
                label: "a holder",
                ..base
            },
            "holder",
        ),
        (
            Ask {
                label: "a holder without the password",
                password: false,
                ..base
            },
            "signing_password_required",
        ),
        (
            Ask {
                label: "a non-holder",
                employee: Some("bob"),
                ..base
            },
            "seal_use_approval_required",
        ),
        (
            Ask {
                label: "a holder in the template's area",
                template: Some("order"),
                area: Some("party-a"),
                ..base
            },
            "holder",
        ),
        (
            Ask {
                label: "another document than the template's",
                template: Some("order"),
                area: Some("party-a"),
                body: &foreign,
                ..base
            },
            "document_not_from_template",
        ),
        (
            Ask {
                label: "the wrong seal type for the area",
                seal: "hr",
                template: Some("order"),
                area: Some("party-a"),
                ..base
            },
            "seal_type_mismatch",
        ),
        (
            Ask {
                label: "an unknown template",
                template: Some("nda"),
                ..base
            },
            "template_not_found",
        ),
        (
            Ask {
                label: "auto-sign",
                ..auto
            },
            "auto_sign:labour",
        ),
        (
            Ask {
                label: "auto-sign without its area",
                area: None,
                ..auto
            },
            "signing_area_required",
        ),
        (
            Ask {
                label: "auto-sign on another document",
                body: &foreign,
                ..auto
            },
            "document_not_from_template",
        ),
        (
            Ask {
                label: "auto-sign with a template that is not auto-sign",
                seal: "contract",
                template: Some("order"),
                area: Some("party-a"),
                ..auto
            },
            "auto_sign_template_required",
        ),
        (
            Ask {
                label: "auto-sign with no template",
                template: None,
                area: None,
                ..auto
            },
            "auto_sign_template_required",
        ),
        (
            Ask {
                label: "a partner in scope",
                ..by_partner
            },
            "partner:",
        ),
        (
            Ask {
                label: "a partner outside its templates",
                template: None,
                area: None,
                ..by_partner
            },
            "partner_template_not_authorized",
        ),
        (
            Ask {
                label: "a partner with a seal not authorized",
                seal: "hr",
                template: Some("labour"),
                area: Some("employer"),
                ..by_partner
            },
            "partner_seal_not_authorized",
        ),
        (
            Ask {
                label: "a batch confirmation",
                password: false,
                batch: Some(&token),
                ..base
            },
            "holder",
        ),
        (
            Ask {
                label: "someone else's batch confirmation",
                employee: Some("bob"),
                password: false,
                batch: Some(&token),
                ..base
            },
            "batch_confirmation_not_found",
        ),
        (
            Ask {
                label: "a group contract administrator",
                seal: "sub",
                employee: Some("gca"),
                ..base
            },
            "group:",
        ),
        (
            Ask {
                label: "a group salesperson from a granted template",
                seal: "sub",
                employee: Some("gsp"),
                template: Some("order"),
                area: Some("party-a"),
                ..base
            },
            "group:",
        ),
        (
            Ask {
                label: "a group salesperson without a template",
                seal: "sub",
                employee: Some("gsp"),
                ..base
            },
            "group_role_required",
        ),
        (
            Ask {
                label: "a parent employee without a group role",
                seal: "sub",
                ..base
            },
            "group_role_required",
        ),
        (
            Ask {
                label: "a member's seal with nobody acting",
                seal: "sub",
                template: Some("order"),
                area: Some("party-a"),
                ..by_oa
            },
            "group_role_required",
        ),
        (
            Ask {
                label: "the batch confirmation's last signature",
                password: false,
                batch: Some(&token),
                ..base
            },
            "holder",
        ),
        (
            Ask {
                label: "the batch confirmation used up",
                password: false,
                batch: Some(&token),
                ..base
            },
            "batch_confirmation_used_up",
        ),
    ];
    for (ask, expected) in &cases {
        let e = w.agree(ask, &pdf);
        let got = match e["decision"].as_str() {
            Some("allow") => e["permit"].as_str(),
            _ => e["code"].as_str(),
        };
        assert!(
            got.is_some_and(|g| g.starts_with(expected)),
            "{}: expected {expected}, {e}",
            ask.label
        );
    }
    let attempts = w
        .setup
        .sql("SELECT count(*) FROM audit_records WHERE action = 'sign'");
    assert_eq!(
        attempts,
        cases.len().to_string(),
        "one record per real request, none for explain"
    );
}

use seald_tests::id_number;

impl World {
    fn job(&self, id: &str) -> Value {
        let r = self.call(&self.oa, "GET", &format!("/v1/jobs/{id}"), None, None);
        assert_eq!(r.status, 200, "{}", text(&r));
        r.json()
    }
}

impl World {
    /// The hr seal, auto-sign on with boss authorized, the labour template (its three fields)
    /// as an auto-sign template of the hr seal that allows batch jobs, and the OA system.
    fn labour_jobs(&self) {
        assert_eq!(self.create_seal("hr", "hr", "boss", &["alice"]).status, 200);
        self.features(true, false);
        assert_eq!(
            self.authorize("legal", "boss", "auto_sign", true).status,
            200
        );
        let template_pdf =
            fs::read(self.setup.dir().join("samples/labour-template.pdf")).expect("template");
        let labour = json!({
            "name": "劳动合同", "allow_batch": true, "auto_sign_seal": "hr", "pdf_base64": b64(&template_pdf),
            "areas": [{"id": "employer", "party": "用人单位", "seal_type": "hr", "page": 1, "x": 120, "y": 230, "width": 40}],
            "fields": [
                {"name": "姓名", "kind": "text", "required": true},
                {"name": "身份证号", "kind": "id_number", "required": true},
                {"name": "入职日期", "kind": "date"},
            ],
        });
        assert_eq!(self.put_template("labour", "boss", labour).status, 200);
        self.register_oa(&["hr"]);
    }

    /// POST /v1/jobs?template_id=labour&{query} with `csv`, as `employee`.
    fn upload(&self, employee: &str, query: &str, csv: &str) -> Answer {
        self.upload_as(employee, query, "text/csv", csv.as_bytes().to_vec())
    }

    /// POST /v1/jobs?template_id=labour&{query} with `body` of `media_type`, as `employee`.
    fn upload_as(&self, employee: &str, query: &str, media_type: &str, body: Vec<u8>) -> Answer {
        send(
            self.oa
                .post(format!("{}/v1/jobs?template_id=labour{query}", self.d.api))
                .header("Seald-Employee", employee)
                .header("Content-Type", media_type)
                .body(body),
        )
    }

    /// Waits (at most `seconds`) until the job satisfies `ready`.
    fn wait_job(&self, id: &str, seconds: u64, ready: impl Fn(&Value) -> bool) -> Value {
        let ok = seald_tests::daemon::wait_until(std::time::Duration::from_secs(seconds), || {
            ready(&self.job(id))
        });
        let now = self.job(id);
        assert!(
            ok,
            "the job did not get there: {now}\n{}",
            self.d.log_text()
        );
        now
    }

    /// The job's records: allowed sign records, and the distinct rows they name.
    fn job_records(&self, id: &str) -> String {
        self.setup.sql(&format!(
            "SELECT count(*), count(DISTINCT json_extract(detail, '$.row')) FROM audit_records WHERE action = 'sign' AND decision = 'allowed' AND json_extract(detail, '$.job') = '{id}'"
        ))
    }
}

/// `n` valid rows.
fn labour_rows(n: u32) -> String {
    let mut csv = String::from("document_id,姓名,身份证号,入职日期\n");
    for i in 1..=n {
        csv.push_str(&format!("HR-{i:04},员工{i},{},2026-12-01\n", id_number(i)));
    }
    csv
}

fn sealed(job: &Value) -> u64 {
    job["rows"]["sealed"].as_u64().unwrap_or(0)
}

/// A one-shot HTTP receiver on 127.0.0.1: its URL, and what the first POST to it carried
/// (its headers, lower-cased, and its body).
/// What a webhook call carried: its headers (names lower-cased) and its body.
type Delivery = (Vec<(String, String)>, Vec<u8>);

fn webhook_receiver() -> (String, std::sync::mpsc::Receiver<Delivery>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let Ok((stream, _)) = listener.accept() else {
            return;
        };
        let mut reader = BufReader::new(stream);
        let mut headers = Vec::new();
        let mut line = String::new();
        let _ = reader.read_line(&mut line);
        loop {
            line.clear();
            if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
                break;
            }
            if let Some((k, v)) = line.trim().split_once(':') {
                headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
            }
        }
        let len: usize = headers
            .iter()
            .find(|(k, _)| k == "content-length")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0u8; len];
        let _ = reader.read_exact(&mut body);
        let _ = reader
            .get_mut()
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        let _ = tx.send((headers, body));
    });
    (url, rx)
}

/// HMAC-SHA256 (RFC 2104), written here apart from seald's.
fn hmac_sha256(key: &[u8], data: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    let mut block = key.to_vec();
    block.resize(64, 0);
    let xor = |b: u8| block.iter().map(|k| k ^ b).collect::<Vec<u8>>();
    let mut inner = Sha256::new();
    inner.update(xor(0x36));
    inner.update(data);
    let mut outer = Sha256::new();
    outer.update(xor(0x5c));
    outer.update(inner.finalize());
    hex::encode(outer.finalize())
}

#[test]
fn a_batch_job_seals_every_valid_row_exactly_once_across_a_kill_9_and_reports_the_rest() {
    let setup = Setup::new("");
    let secret = setup.dir().join("webhook.secret");
    fs::write(&secret, "s3cret-key\n").expect("secret");
    let config = fs::read_to_string(&setup.config).expect("config")
        + &format!("[jobs]\nwebhook_secret_file = \"{}\"\n", secret.display());
    fs::write(&setup.config, config).expect("config");
    let mut w = World::from_setup(setup);
    w.labour_jobs();
    let (hook, delivered) = webhook_receiver();
    // 330 rows: 326 valid, and a wrong ID number, a missing name, an impossible date, and a
    // character the font lacks. (Enough rows that the kill comes while the job runs.)
    let mut csv = String::from("document_id,姓名,身份证号,入职日期\n");
    for n in 1..=330u32 {
        let (name, id, date) = match n {
            // A character the fill font cannot draw.
            31 => ("员工\u{1F600}".to_owned(), id_number(n), "2026-12-01"),
            7 => (
                "员工7".to_owned(),
                "110105199001010071".to_owned(),
                "2026-12-01",
            ),
            13 => (String::new(), id_number(n), "2026-12-01"),
            21 => ("员工21".to_owned(), id_number(n), "2026-02-30"),
            _ => (format!("员工{n}"), id_number(n), "2026-12-01"),
        };
        csv.push_str(&format!("HR-{n:03},{name},{id},{date}\n"));
    }
    let with_hook = format!("&webhook={hook}");
    let upload = |employee: &str, body: &str| w.upload(employee, &with_hook, body);
    // Only a holder of the auto-sign authorization starts one.
    assert_refused(&upload("alice", &csv), 403, "auto_sign_not_authorized");
    let bad_header = w.upload("boss", "", "姓名,工号\n张三,1\n");
    assert_refused(&bad_header, 422, "unknown_column");
    let created = upload("boss", &csv);
    assert_eq!(created.status, 201, "{}", text(&created));
    let report = created.json();
    assert_eq!(
        report["rows"],
        json!({"uploaded": 330, "valid": 326, "invalid": 4}),
        "{report}"
    );
    let codes: Vec<(u64, String)> = report["invalid_rows"]
        .as_array()
        .expect("invalid rows")
        .iter()
        .map(|r| {
            (
                r["row"].as_u64().unwrap_or(0),
                r["errors"][0]["code"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        codes,
        [
            (7, "invalid_id_number".to_owned()),
            (13, "field_required".to_owned()),
            (21, "invalid_date".to_owned()),
            (31, "unsupported_character".to_owned())
        ]
    );
    let id = report["id"].as_str().expect("id").to_owned();
    // Killed (SIGKILL) while it seals, then restarted: it goes on where it stopped.
    w.wait_job(&id, 60, |j| sealed(j) >= 3);
    w.d.signal("KILL");
    assert!(seald_tests::daemon::wait_until(
        std::time::Duration::from_secs(10),
        || !w.d.running()
    ));
    let before = w
        .setup
        .sql("SELECT count(*) FROM job_rows WHERE status = 'sealed'");
    w.d = w.setup.start();
    let done = w.wait_job(&id, 120, |j| j["status"] == "completed");
    assert_eq!(sealed(&done), 326, "{done}");
    assert!(
        before.parse::<u64>().unwrap_or(0) < 326,
        "the kill came before the end ({before} sealed)"
    );
    // Exactly one audit record per sealed row, each row once.
    assert_eq!(w.job_records(&id), "326|326", "records, distinct rows");
    // The webhook heard of the end, signed with the configured key.
    let (headers, body) = delivered
        .recv_timeout(std::time::Duration::from_secs(30))
        .expect("the webhook was called");
    let header = |k: &str| headers.iter().find(|(h, _)| h == k).map(|(_, v)| v.clone());
    assert_eq!(header("seald-event").as_deref(), Some("job.completed"));
    assert_eq!(
        header("seald-signature"),
        Some(format!("sha256={}", hmac_sha256(b"s3cret-key", &body)))
    );
    let announced: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(
        (
            announced["job"].clone(),
            announced["rows"]["sealed"].clone()
        ),
        (json!(id), json!(326)),
        "{announced}"
    );
    // The results: a line per row.
    let results = send(w.oa.get(format!("{}/v1/jobs/{id}/results", w.d.api)));
    let results = String::from_utf8_lossy(&results.body).into_owned();
    assert_eq!(results.lines().count(), 331, "{results}");
    assert_eq!(
        results.lines().filter(|l| l.contains(",sealed,")).count(),
        326,
        "{results}"
    );
    assert!(
        results
            .lines()
            .any(|l| l.starts_with("7,invalid,invalid_id_number,")),
        "{results}"
    );
    // A sealed row's PDF: valid everywhere, with its values as text.
    let row = send(w.oa.get(format!("{}/v1/jobs/{id}/rows/2/pdf", w.d.api)));
    assert_eq!(row.status, 200, "{}", text(&row));
    w.validated(&row.body);
    let out = w.setup.dir().join("row2.pdf");
    fs::write(&out, &row.body).expect("write");
    let extracted = seald_tests::run_ok(std::process::Command::new("pdftotext").arg(&out).arg("-"));
    assert!(
        extracted.contains("员工2") && extracted.contains(&id_number(2)),
        "{extracted}"
    );
    // All of them as one ZIP, read back by Python's zipfile.
    let zip = send(w.oa.get(format!("{}/v1/jobs/{id}/outputs.zip", w.d.api)));
    assert_eq!(zip.status, 200, "{}", text(&zip));
    let zip_path = w.setup.dir().join("outputs.zip");
    fs::write(&zip_path, &zip.body).expect("write");
    let listed = seald_tests::run_ok(
        std::process::Command::new("python3")
            .arg("-c")
            .arg("import sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); assert z.testzip() is None; n = z.namelist(); print(len(n), n[1], z.read(n[1]) == open(sys.argv[2], 'rb').read())")
            .arg(&zip_path)
            .arg(&out),
    );
    assert_eq!(listed.trim(), "326 HR-002.pdf True", "{listed}");
    let missing = send(w.oa.get(format!("{}/v1/jobs/{id}/rows/7/pdf", w.d.api)));
    assert_eq!(missing.status, 404, "an invalid row has no output");
}

/// A world whose seald has a `[tsa]` section of `keys` (its URLs and more), trusting the test
/// PKI's TSAs, with a 2 s timeout.
fn with_tsa(setup: Setup, keys: &str) -> World {
    let config = fs::read_to_string(&setup.config).expect("config")
        + &format!(
            "[tsa]\n{keys}roots = [\"{}\"]\ntimeout_seconds = 2\n",
            setup.seal.root().display()
        );
    fs::write(&setup.config, config).expect("config");
    World::from_setup(setup)
}

#[test]
fn a_batch_job_waits_out_a_tsa_outage_and_a_canceled_one_seals_no_further_row() {
    let setup = Setup::new("[jobs]\ntsa_retry_seconds = 1\n");
    let pki = setup.seal.pki.clone();
    let tsa = seald_tests::pdf::Tsa::start(&pki);
    let port: u16 = tsa
        .url
        .trim_end_matches('/')
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("the TSA's port");
    let w = with_tsa(setup, &format!("urls = [\"{}\"]\n", tsa.url));
    w.labour_jobs();
    // B-T: the TSA goes away mid-job; the job pauses rather than failing its rows…
    let created = w.upload("boss", "&level=b-t", &labour_rows(12));
    assert_eq!(created.status, 201, "{}", text(&created));
    let id = created.json()["id"].as_str().expect("id").to_owned();
    w.wait_job(&id, 60, |j| sealed(j) >= 2);
    drop(tsa);
    let paused = w.wait_job(&id, 60, |j| j["status"] == "paused");
    assert_eq!(paused["error"], "tsa_unavailable", "{paused}");
    let at_outage = sealed(&paused);
    assert!(at_outage < 12, "{paused}");
    // …and goes on once a TSA answers again.
    let _back = seald_tests::pdf::Tsa::start_on(&pki, port);
    let done = w.wait_job(&id, 120, |j| j["status"] == "completed");
    assert_eq!(sealed(&done), 12, "{done}");
    assert_eq!(w.job_records(&id), "12|12");
    assert!(w.d.log_text().contains("no time-stamp authority answers"));

    // A canceled job seals no row after the runner stops. (Enough rows that the cancel comes
    // while the job runs.)
    let created = w.upload("boss", "&level=b-b", &labour_rows(1000));
    let id = created.json()["id"].as_str().expect("id").to_owned();
    w.wait_job(&id, 60, |j| sealed(j) >= 2);
    let canceled = w.call(&w.oa, "POST", &format!("/v1/jobs/{id}/cancel"), None, None);
    assert_eq!(canceled.status, 200, "{}", text(&canceled));
    let stopped = w.wait_job(&id, 30, |j| j["runner_active"] == false);
    assert_eq!(stopped["status"], "canceled", "{stopped}");
    let count = sealed(&stopped);
    assert!(count < 1000, "{stopped}");
    assert_eq!(w.job_records(&id), format!("{count}|{count}"));
    let resumed = w.call(
        &w.oa,
        "POST",
        &format!("/v1/jobs/{id}/resume"),
        Some("boss"),
        None,
    );
    assert_refused(&resumed, 409, "job_not_changeable");
    assert_eq!(sealed(&w.job(&id)), count, "nothing more after cancel");
}

/// Whether `arrivals` (seconds, in order) kept within `rate` per second with `burst` at once:
/// every run of requests from the i-th to the j-th fits burst + rate × its length (with
/// `slack` seconds for the way from seald to the TSA's log).
fn within_budget(arrivals: &[f64], rate: f64, burst: f64, slack: f64) -> Result<(), String> {
    for (i, a) in arrivals.iter().enumerate() {
        for (j, b) in arrivals.iter().enumerate().skip(i + 1) {
            let n = (j - i + 1) as f64;
            if n > burst + rate * (b - a + slack) {
                return Err(format!("{n} requests in {:.3} s: {arrivals:?}", b - a));
            }
        }
    }
    Ok(())
}

#[test]
fn b_t_rows_keep_within_each_tsas_rate_budget_spill_over_to_the_next_and_a_failed_tsa_rests() {
    let setup = Setup::new("[jobs]\nconcurrency = 2\n");
    let pki = setup.seal.pki.clone();
    let first = seald_tests::pdf::Tsa::start(&pki);
    let second = seald_tests::pdf::Tsa::start(&pki);
    // A TSA that refuses connections (a port nobody listens on), preferred to both.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        format!("http://127.0.0.1:{}/", l.local_addr().expect("addr").port())
    };
    let w = with_tsa(
        setup,
        &format!(
            "urls = [\"{dead}\", {{ url = \"{}\", rate_per_second = 4, burst = 2 }}, \"{}\"]\n\
             rate_per_second = 2\nrest_seconds = 600\n",
            first.url, second.url
        ),
    );
    w.labour_jobs();
    let created = w.upload("boss", "&level=b-t", &labour_rows(16));
    assert_eq!(created.status, 201, "{}", text(&created));
    let id = created.json()["id"].as_str().expect("id").to_owned();
    let done = w.wait_job(&id, 120, |j| j["status"] != "running");
    assert_eq!(
        (done["status"].clone(), sealed(&done)),
        (json!("completed"), 16),
        "{done}"
    );
    let (a, b) = (first.arrivals(), second.arrivals());
    // One time-stamp a row; the preferred TSA's budget spent, the rest went to the next.
    assert_eq!(a.len() + b.len(), 16, "{a:?} {b:?}");
    assert!(a.len() >= 8 && !b.is_empty(), "{a:?} {b:?}");
    within_budget(&a, 4.0, 2.0, 0.08).expect("the first TSA's own budget");
    within_budget(&b, 2.0, 1.0, 0.08).expect("the [tsa] budget");
    // The dead TSA failed once a row under way (two at a time), then rested behind the others.
    let failures =
        w.d.log_text()
            .matches("time-stamp authority failed")
            .count();
    assert!((1..=2).contains(&failures), "{failures} failures");
    let row = send(w.oa.get(format!("{}/v1/jobs/{id}/rows/16/pdf", w.d.api)));
    assert_eq!(row.status, 200, "{}", text(&row));
    w.validated(&row.body);
    // The metrics say the same, and promtool accepts them.
    let metrics = send(reqwest::blocking::Client::new().get(format!("{}/metrics", w.d.plain)));
    let body = String::from_utf8_lossy(&metrics.body).into_owned();
    let value = |name: &str, labels: &[String]| -> f64 {
        body.lines()
            .find(|l| {
                l.starts_with(&format!("{name}{{")) && labels.iter().all(|x| l.contains(x.as_str()))
            })
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} {labels:?} in:\n{body}"))
    };
    let tsa = |url: &str| format!("tsa=\"{url}\"");
    let outcome = |o: &str| format!("outcome=\"{o}\"");
    let failed = value("seald_tsa_requests_total", &[tsa(&dead), outcome("failed")]);
    assert_eq!(failed, failures as f64);
    assert_eq!(
        value(
            "seald_tsa_requests_total",
            &[tsa(&first.url), outcome("answered")]
        ),
        a.len() as f64
    );
    assert_eq!(
        value(
            "seald_tsa_requests_total",
            &[tsa(&second.url), outcome("answered")]
        ),
        b.len() as f64
    );
    assert!(value("seald_tsa_budget_wait_seconds_total", &[tsa(&first.url)]) > 0.0);
    assert_eq!(value("seald_tsa_resting", &[tsa(&dead)]), 1.0);
    assert_eq!(value("seald_tsa_resting", &[tsa(&first.url)]), 0.0);
    let file = w.setup.dir().join("metrics.txt");
    fs::write(&file, &metrics.body).expect("write");
    let promtool = seald_tests::run(
        std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("promtool check metrics < {}", file.display())),
    );
    assert!(
        promtool.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&promtool.stdout),
        String::from_utf8_lossy(&promtool.stderr)
    );
}

const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

/// An XLSX workbook written by openpyxl (tests/support/rows_xlsx.py) from `spec`, at `path`.
fn openpyxl_workbook(path: &std::path::Path, spec: &Value) -> Vec<u8> {
    use std::io::Write;
    let mut child = std::process::Command::new(seald_tests::pdf::pyhanko_python())
        .arg(seald_tests::workspace_root().join("tests/support/rows_xlsx.py"))
        .arg(path)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("python");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(spec.to_string().as_bytes())
        .expect("spec");
    assert!(child.wait().expect("python").success(), "openpyxl failed");
    fs::read(path).expect("the workbook")
}

#[test]
fn a_batch_job_reads_its_rows_from_an_xlsx_workbook_made_by_openpyxl() {
    let w = World::new();
    w.labour_jobs();
    // The first sheet explains; the rows are on the sheet 员工, typed as people type them:
    // real date cells (one in a Chinese date format), and mistakes.
    let mut rows = vec![json!(["document_id", "姓名", "身份证号", "入职日期"])];
    for n in 1..=6u32 {
        let date = if n % 2 == 0 {
            json!({"date": "2026-12-01", "format": "yyyy\"年\"m\"月\"d\"日\""})
        } else {
            json!({"date": "2026-12-01"})
        };
        rows.push(json!([
            format!("HR-{n:03}"),
            format!("员工{n}"),
            id_number(n),
            date
        ]));
    }
    // An empty row is skipped, not reported.
    rows.push(json!([null, "  ", null, null]));
    // An 18-digit ID number typed as a number (a spreadsheet keeps 15 digits of it).
    rows.push(json!(["HR-007", "员工7", 110_105_199_001_010_071_u64, {"date": "2026-12-01"}]));
    rows.push(json!(["HR-008", "员工8", id_number(8), "2026-02-30"]));
    rows.push(json!(["HR-009", null, id_number(9), {"date": "2026-12-01"}]));
    let spec = json!({"sheets": [
        {"name": "说明", "rows": [["请在“员工”表中填写，每行一份劳动合同"]]},
        {"name": "员工", "rows": rows},
    ]});
    let path = w.setup.dir().join("rows.xlsx");
    let book = openpyxl_workbook(&path, &spec);

    // The first sheet is not the rows; an unknown sheet, a sheet of CSV, Excel 97 and a CSV
    // sent as a workbook are each refused with their own code, nothing stored.
    let employees = "&sheet=%E5%91%98%E5%B7%A5";
    assert_refused(
        &w.upload_as("boss", "", XLSX, book.clone()),
        422,
        "unknown_column",
    );
    let unknown = w.upload_as("boss", "&sheet=Sheet1", XLSX, book.clone());
    assert_refused(&unknown, 422, "sheet_not_found");
    assert!(text(&unknown).contains("说明, 员工"), "{}", text(&unknown));
    assert_refused(
        &w.upload("boss", employees, &labour_rows(1)),
        400,
        "invalid_parameter",
    );
    let xls = w.upload_as("boss", "", "application/vnd.ms-excel", book.clone());
    assert_refused(&xls, 415, "unsupported_media_type");
    let csv_as_xlsx = w.upload_as("boss", "", XLSX, labour_rows(2).into_bytes());
    assert_refused(&csv_as_xlsx, 422, "invalid_xlsx");
    assert_eq!(
        w.setup
            .sql("SELECT count(*) FROM job_rows WHERE status IN ('pending', 'sealed')"),
        "0"
    );

    let created = w.upload_as("boss", employees, XLSX, book);
    assert_eq!(created.status, 201, "{}", text(&created));
    let report = created.json();
    assert_eq!(
        report["rows"],
        json!({"uploaded": 9, "valid": 6, "invalid": 3}),
        "{report}"
    );
    let invalid: Vec<(u64, String, String)> = report["invalid_rows"]
        .as_array()
        .expect("invalid rows")
        .iter()
        .map(|r| {
            let e = &r["errors"][0];
            (
                r["row"].as_u64().unwrap_or(0),
                e["code"].as_str().unwrap_or("").to_owned(),
                e["message"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        invalid
            .iter()
            .map(|(n, code, _)| (*n, code.as_str()))
            .collect::<Vec<_>>(),
        [
            (7, "invalid_xlsx_row"),
            (8, "invalid_date"),
            (9, "field_required")
        ],
        "{report}"
    );
    assert!(
        invalid[0].2.contains("sheet row 9: cell C9")
            && invalid[0].2.contains("format the column as text"),
        "{}",
        invalid[0].2
    );
    let id = report["id"].as_str().expect("id").to_owned();
    let done = w.wait_job(&id, 60, |j| j["status"] == "completed");
    assert_eq!(sealed(&done), 6, "{done}");
    assert_eq!(w.job_records(&id), "6|6");
    // Dates came out as dates, whatever format the cell showed them in.
    for n in [1u64, 2] {
        let row = send(w.oa.get(format!("{}/v1/jobs/{id}/rows/{n}/pdf", w.d.api)));
        assert_eq!(row.status, 200, "{}", text(&row));
        w.validated(&row.body);
        let out = w.setup.dir().join(format!("xlsx-row{n}.pdf"));
        fs::write(&out, &row.body).expect("write");
        let extracted =
            seald_tests::run_ok(std::process::Command::new("pdftotext").arg(&out).arg("-"));
        assert!(
            extracted.contains(&format!("员工{n}"))
                && extracted.contains(&id_number(n as u32))
                && extracted.contains("2026-12-01"),
            "{extracted}"
        );
    }

    // sealctl sends a .xlsx file as a workbook.
    let mut cmd = w.setup.sealctl(&w.d, "oa");
    cmd.env("SEALD_EMPLOYEE", "boss").args([
        "batch",
        "--json",
        "run",
        "labour",
        path.to_str().expect("utf-8"),
        "--sheet",
        "员工",
    ]);
    let end: Value = serde_json::from_str(&seald_tests::run_ok(&mut cmd)).expect("json");
    assert_eq!(
        (end["status"].clone(), end["rows"].clone()),
        (
            json!("completed"),
            json!({"uploaded": 9, "valid": 6, "invalid": 3, "sealed": 6, "pending": 0})
        ),
        "{end}"
    );
}

#[test]
fn a_finished_job_is_kept_for_its_configured_time_then_deleted_with_its_outputs_and_its_records_stay(
) {
    let w = World::with_config("[jobs]\nkeep_finished_seconds = 3\n");
    w.labour_jobs();
    let created = w.upload("boss", "", &labour_rows(3));
    assert_eq!(created.status, 201, "{}", text(&created));
    let id = created.json()["id"].as_str().expect("id").to_owned();
    let done = w.wait_job(&id, 60, |j| j["status"] == "completed");
    assert_eq!(sealed(&done), 3, "{done}");
    let outputs = w.setup.data.join("jobs").join(&id);
    assert!(
        outputs.join("outputs.pdfs").is_file(),
        "the outputs are stored"
    );
    // Kept at first: the PDFs download.
    let row = send(w.oa.get(format!("{}/v1/jobs/{id}/rows/1/pdf", w.d.api)));
    assert_eq!(row.status, 200, "{}", text(&row));
    // Then gone, outputs and all.
    let gone = seald_tests::daemon::wait_until(std::time::Duration::from_secs(30), || {
        w.call(&w.oa, "GET", &format!("/v1/jobs/{id}"), None, None)
            .status
            == 404
    });
    assert!(gone, "the job was not deleted: {}", w.d.log_text());
    assert!(!outputs.exists(), "its outputs are deleted too");
    let row = send(w.oa.get(format!("{}/v1/jobs/{id}/rows/1/pdf", w.d.api)));
    assert_eq!(row.status, 404, "{}", text(&row));
    assert_eq!(
        w.setup
            .sql(&format!("SELECT count(*) FROM job_rows WHERE job = '{id}'")),
        "0"
    );
    // The audit keeps the three signatures and says when the job went.
    assert_eq!(w.job_records(&id), "3|3");
    assert_eq!(
        w.setup.sql(&format!(
            "SELECT count(*) FROM audit_records WHERE action = 'job.expired' AND json_extract(detail, '$.job') = '{id}'"
        )),
        "1"
    );
}

#[test]
fn sealed_pdfs_are_named_by_the_jobs_output_name_pattern_in_results_zip_downloads_and_sealctl() {
    let w = World::new();
    w.labour_jobs();
    // A placeholder that is no field is refused before anything is stored.
    let bad = w.upload(
        "boss",
        "&output_name=%7B%E5%B7%A5%E5%8F%B7%7D",
        &labour_rows(2),
    );
    assert_refused(&bad, 400, "invalid_parameter");
    assert!(text(&bad).contains("{工号}"), "{}", text(&bad));
    let open = w.upload("boss", "&output_name=%7Brow", &labour_rows(2));
    assert_refused(&open, 400, "invalid_parameter");
    assert_eq!(w.setup.sql("SELECT count(*) FROM jobs"), "0");
    // {姓名}-劳动合同-{row}; two rows share a name on purpose.
    let mut csv = labour_rows(3);
    csv = csv.replace("员工3,", "员工1,");
    let created = w.upload(
        "boss",
        "&output_name=%7B%E5%A7%93%E5%90%8D%7D-%E5%8A%B3%E5%8A%A8%E5%90%88%E5%90%8C",
        &csv,
    );
    assert_eq!(created.status, 201, "{}", text(&created));
    let id = created.json()["id"].as_str().expect("id").to_owned();
    w.wait_job(&id, 60, |j| j["status"] == "completed");
    let results = send(w.oa.get(format!("{}/v1/jobs/{id}/results", w.d.api)));
    let results = String::from_utf8_lossy(&results.body).into_owned();
    assert!(
        results.starts_with(
            "row,status,code,message,document_id,output_sha256,audit_record,file_name\n"
        ),
        "{results}"
    );
    let names: Vec<&str> = results
        .lines()
        .skip(1)
        .filter_map(|l| l.rsplit(',').next())
        .collect();
    assert_eq!(
        names,
        [
            "员工1-劳动合同.pdf",
            "员工2-劳动合同.pdf",
            "员工1-劳动合同-row3.pdf"
        ]
    );
    let row = send(w.oa.get(format!("{}/v1/jobs/{id}/rows/2/pdf", w.d.api)));
    assert_eq!(
        row.headers
            .get("content-disposition")
            .and_then(|v| v.to_str().ok()),
        Some("attachment; filename*=UTF-8''%E5%91%98%E5%B7%A52-%E5%8A%B3%E5%8A%A8%E5%90%88%E5%90%8C.pdf")
    );
    let zip = send(w.oa.get(format!("{}/v1/jobs/{id}/outputs.zip", w.d.api)));
    let zip_path = w.setup.dir().join("named.zip");
    fs::write(&zip_path, &zip.body).expect("write");
    let listed = seald_tests::run_ok(
        std::process::Command::new("python3")
            .arg("-c")
            .arg("import sys, zipfile; print('|'.join(zipfile.ZipFile(sys.argv[1]).namelist()))")
            .arg(&zip_path),
    );
    assert_eq!(
        listed.trim(),
        "员工1-劳动合同.pdf|员工2-劳动合同.pdf|员工1-劳动合同-row3.pdf"
    );
    let out = w.setup.dir().join("named");
    let mut cmd = w.setup.sealctl(&w.d, "oa");
    cmd.args([
        "batch",
        "download",
        &id,
        "--dir",
        out.to_str().expect("utf-8"),
    ]);
    seald_tests::run_ok(&mut cmd);
    let mut files: Vec<String> = fs::read_dir(&out)
        .expect("out")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(
        files,
        [
            "员工1-劳动合同-row3.pdf",
            "员工1-劳动合同.pdf",
            "员工2-劳动合同.pdf"
        ]
    );
    assert_eq!(
        fs::read(out.join("员工2-劳动合同.pdf")).expect("pdf"),
        row.body,
        "the same bytes as the row's download"
    );
}

#[test]
fn a_thousand_row_job_through_sealctl_every_output_valid_with_its_chinese_text_and_one_record_each()
{
    use seald_tests::run_ok;
    let w = World::new();
    w.labour_jobs();
    let dir = w.setup.dir().join("thousand");
    fs::create_dir_all(&dir).expect("dir");
    let rows = dir.join("rows.csv");
    fs::write(&rows, labour_rows(1000)).expect("rows");
    let ctl = |args: &[&str]| {
        let mut cmd = w.setup.sealctl(&w.d, "oa");
        cmd.env("SEALD_EMPLOYEE", "boss").args(args);
        cmd
    };
    let end: Value = serde_json::from_str(&run_ok(&mut ctl(&[
        "batch",
        "--json",
        "run",
        "labour",
        rows.to_str().expect("utf-8"),
    ])))
    .expect("json");
    assert_eq!(
        (end["status"].clone(), end["rows"]["sealed"].clone()),
        (json!("completed"), json!(1000)),
        "{end}"
    );
    let id = end["id"].as_str().expect("id").to_owned();
    assert_eq!(
        w.job_records(&id),
        "1000|1000",
        "one audit record per sealed row"
    );
    let results = dir.join("results.csv");
    run_ok(&mut ctl(&[
        "batch",
        "results",
        &id,
        "--out",
        results.to_str().expect("utf-8"),
    ]));
    let text = fs::read_to_string(&results).expect("results");
    assert_eq!(
        text.lines().filter(|l| l.contains(",sealed,")).count(),
        1000
    );
    let out = dir.join("out");
    run_ok(&mut ctl(&[
        "batch",
        "download",
        &id,
        "--dir",
        out.to_str().expect("utf-8"),
    ]));
    let mut pdfs: Vec<std::path::PathBuf> = fs::read_dir(&out)
        .expect("out")
        .map(|e| e.expect("entry").path())
        .collect();
    pdfs.sort();
    assert_eq!(pdfs.len(), 1000);
    let v = Validators::new(&dir, &[w.setup.seal.root()]);
    for (i, pdf) in pdfs.iter().enumerate() {
        let sigs = v.pdfsig(pdf);
        assert!(
            sigs.len() == 1 && sigs[0].valid && sigs[0].trusted,
            "{}: {sigs:?}",
            pdf.display()
        );
        let n = i + 1;
        let extracted = run_ok(std::process::Command::new("pdftotext").arg(pdf).arg("-"));
        assert!(
            extracted.contains(&format!("员工{n}")),
            "{}: {extracted}",
            pdf.display()
        );
    }
    let judged = v.pyhanko_many(&pdfs);
    assert_eq!(judged.len(), 1000);
    for (path, sigs) in &judged {
        let s = &sigs[0];
        assert_eq!(
            (
                s["intact"].clone(),
                s["valid"].clone(),
                s["trusted"].clone()
            ),
            (json!(true), json!(true), json!(true)),
            "{path}: {s}"
        );
    }
}

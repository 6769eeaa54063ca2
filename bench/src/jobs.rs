//! `seald-bench jobs`: a batch job of N rows (default 10,000), B-B, RSA-2048 on SoftHSM2 —
//! every row filled with Chinese text and sealed — against the raw `C_Sign` rate of the same
//! token with the same sessions, measured in the same run (before and after the job); seald's
//! peak RSS during the job; and pyHanko signing the same template on the same token. Budget:
//! the job reaches at least 70 % of the raw rate.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use base64::Engine;
use cryptoki::mechanism::Mechanism;
use seald_tests::daemon::{client_cert, send, Daemon, Setup};
use seald_tests::pdf::TOKEN;
use serde_json::{json, Value};

use crate::util::{measure, peak_rss_kib, BareToken};
use seald_tests::id_number;

struct Options {
    module: PathBuf,
    python: Option<PathBuf>,
    rows: u32,
    sessions: usize,
    /// `[jobs] concurrency`; default 24 × sessions.
    concurrency: Option<usize>,
    min_ratio: f64,
    /// Jobs run, each between two bare measurements; the verdict is their median ratio.
    rounds: usize,
}

fn usage() -> ! {
    eprintln!(
        "usage: seald-bench jobs [--module PATH] [--python VENV_PYTHON] [--rows N] [--sessions N] [--concurrency N] [--min-ratio PCT] [--rounds N]\n\
         Runs batch jobs of N rows (default 10000; 3 rounds) through seald against bare C_Sign with the\n\
         same sessions (default 1) before and after each; exits 1 if the median ratio is below PCT\n\
         (default 70) %, judged while the bare loop leaves a core free."
    );
    std::process::exit(2)
}

fn parse(args: Vec<String>) -> Options {
    let mut o = Options {
        module: PathBuf::from("/usr/lib/softhsm/libsofthsm2.so"),
        python: None,
        rows: 10_000,
        sessions: 1,
        concurrency: None,
        min_ratio: 70.0,
        rounds: 3,
    };
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let value = args.next().unwrap_or_else(|| usage());
        match arg.as_str() {
            "--module" => o.module = PathBuf::from(value),
            "--python" => o.python = Some(PathBuf::from(value)),
            "--rows" => o.rows = value.parse().unwrap_or_else(|_| usage()),
            "--sessions" => o.sessions = value.parse().unwrap_or_else(|_| usage()),
            "--concurrency" => o.concurrency = Some(value.parse().unwrap_or_else(|_| usage())),
            "--min-ratio" => o.min_ratio = value.parse().unwrap_or_else(|_| usage()),
            "--rounds" => o.rounds = value.parse().unwrap_or_else(|_| usage()),
            _ => usage(),
        }
    }
    o
}

fn call(
    d: &Daemon,
    client: &reqwest::blocking::Client,
    method: &str,
    path: &str,
    employee: Option<&str>,
    body: Value,
) -> Value {
    let url = format!("{}{path}", d.api);
    let mut r = match method {
        "PUT" => client.put(url),
        _ => client.post(url),
    };
    if let Some(e) = employee {
        r = r.header("Seald-Employee", e);
    }
    let a = send(
        r.header("Content-Type", "application/json")
            .body(body.to_string()),
    );
    assert!(
        a.status < 300,
        "{method} {path}: {} {}",
        a.status,
        String::from_utf8_lossy(&a.body)
    );
    serde_json::from_slice(&a.body).unwrap_or(Value::Null)
}

pub fn run(args: Vec<String>) {
    let o = parse(args);
    std::env::set_var("SEALD_TEST_SOFTHSM", &o.module);
    if std::env::var_os("SEALD_BIN_DIR").is_none() {
        if let Some(dir) = std::env::current_exe()
            .ok()
            .and_then(|e| e.parent().map(PathBuf::from))
        {
            std::env::set_var("SEALD_BIN_DIR", dir);
        }
    }
    let setup = Setup::with_sessions(
        &format!(
            "[jobs]\nconcurrency = {}\nmax_rows = 1000000\n",
            o.concurrency.unwrap_or(o.sessions * 24)
        ),
        o.sessions,
    );
    client_cert(&setup.tls, "oa", false);
    let d = setup.start();
    let admin = d.client("admin");
    // The enterprise, the HR seal, auto-sign, the labour template, the OA system.
    call(
        &d,
        &admin,
        "POST",
        "/v1/org",
        None,
        json!({
            "enterprise": {"id": "acme", "name": "示例科技有限公司", "credit_code": "91350100M000100Y43"},
            "department": {"id": "hq", "name": "总部"},
            "super_administrator": {"id": "boss", "name": "王总", "phone": "13800138000"},
        }),
    );
    let chain = std::fs::read_to_string(&setup.chain).expect("chain");
    call(
        &d,
        &admin,
        "POST",
        "/v1/admin/seals",
        Some("boss"),
        json!({
            "id": "hr", "name": "人事章", "token": "hsm", "key_label": "seal",
            "certificate_chain_pem": chain, "kind": "hr",
        }),
    );
    call(
        &d,
        &admin,
        "PUT",
        "/v1/org/features",
        Some("boss"),
        json!({"auto_sign": true, "page_seal": false, "forced_contract_approval": false}),
    );
    call(
        &d,
        &admin,
        "PUT",
        "/v1/org/employees/boss/authorizations/auto_sign",
        Some("boss"),
        json!({"granted": true}),
    );
    let template =
        std::fs::read(setup.dir().join("samples/labour-template.pdf")).expect("template");
    call(
        &d,
        &admin,
        "PUT",
        "/v1/templates/labour",
        Some("boss"),
        json!({
            "name": "劳动合同", "allow_batch": true, "auto_sign_seal": "hr",
            "pdf_base64": base64::engine::general_purpose::STANDARD.encode(&template),
            "areas": [{"id": "employer", "party": "用人单位", "seal_type": "hr", "page": 1, "x": 120, "y": 230, "width": 40}],
            "fields": [{"name": "姓名", "kind": "text", "required": true}, {"name": "身份证号", "kind": "id_number", "required": true}, {"name": "入职日期", "kind": "date"}],
        }),
    );
    let cert = std::fs::read_to_string(setup.tls.join("oa.crt")).expect("oa cert");
    call(
        &d,
        &admin,
        "POST",
        "/v1/admin/applications",
        None,
        json!({
            "id": "oa", "name": "OA", "certificate_pem": cert, "roles": ["signer"], "seals": ["hr"], "acts_for_employees": true,
        }),
    );
    // Each round's job has its own document IDs.
    let csv = |round: usize| {
        let mut csv = String::from("document_id,姓名,身份证号,入职日期\n");
        for i in 1..=o.rows {
            csv.push_str(&format!(
                "HR-{round}-{i:06},员工{i}号,{},2026-12-01\n",
                id_number(i)
            ));
        }
        csv
    };

    // The bare token with the same sessions, before and after each job.
    let (bare_token, _anchor) = BareToken::open(&o.module, TOKEN, seald_tests::USER_PIN);
    let message = vec![0x31u8; 120];
    let bare = || {
        measure(o.sessions, Duration::from_secs(3), |_| {
            let (session, handle) = bare_token.session_with_key("seal");
            let message = message.clone();
            Box::new(move || {
                session
                    .sign(&Mechanism::Sha256RsaPkcs, handle, &message)
                    .expect("C_Sign");
            })
        })
        .per_second
    };
    let costs = engine_costs(&setup, &csv(0));
    let oa = d.client("oa");
    let pid = d.pid().to_string();
    println!("| rows | token sessions | bare C_Sign (sign/s, before / after) | job (rows/s, whole job) | sealing only (rows/s) | job / bare | validation of the file | seald peak RSS |");
    println!("|---|---|---|---|---|---|---|---|");
    let mut ratios = Vec::new();
    let mut bare_before = bare();
    for round in 1..=o.rounds.max(1) {
        let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
        let rss_before = peak_rss_kib(&pid);
        let began = Instant::now();
        let created = send(
            oa.post(format!("{}/v1/jobs?template_id=labour", d.api))
                .header("Seald-Employee", "boss")
                .header("Content-Type", "text/csv")
                .body(csv(round)),
        );
        assert_eq!(
            created.status,
            201,
            "{}",
            String::from_utf8_lossy(&created.body)
        );
        let validated = began.elapsed();
        let job: Value = serde_json::from_slice(&created.body).expect("json");
        let id = job["id"].as_str().expect("id").to_owned();
        let mut peak = 0;
        let status = loop {
            let s: Value =
                serde_json::from_slice(&send(oa.get(format!("{}/v1/jobs/{id}", d.api))).body)
                    .expect("json");
            peak = peak.max(peak_rss_kib(&pid));
            if s["status"] != "running" {
                break s;
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        let took = began.elapsed();
        peak = peak.max(peak_rss_kib(&pid));
        assert_eq!(status["status"], "completed", "{status}");
        assert_eq!(
            status["rows"]["sealed"].as_u64(),
            Some(u64::from(o.rows)),
            "{status}"
        );
        let bare_after = bare();
        let bare_rate = (bare_before + bare_after) / 2.0;
        let rate = f64::from(o.rows) / took.as_secs_f64();
        let sealing = f64::from(o.rows) / (took - validated).as_secs_f64();
        let ratio = 100.0 * rate / bare_rate;
        ratios.push(ratio);
        println!(
            "| {} | {} | {bare_before:.0} / {bare_after:.0} | {rate:.1} | {sealing:.1} | {ratio:.1} % | {:.2} s | {:.1} MiB (from {:.1}) |",
            o.rows,
            o.sessions,
            validated.as_secs_f64(),
            peak as f64 / 1024.0,
            rss_before as f64 / 1024.0,
        );
        bare_before = bare_after;
    }
    let ratio = crate::util::median(ratios);
    println!(
        "\nmedian of {} jobs: {ratio:.1} % of the bare C_Sign rate",
        o.rounds.max(1)
    );
    println!(
        "\nseald's engine per row, in one thread, besides C_Sign ({} rows): fill {:.3} ms, seal {:.3} ms (open, plan, hash, CMS, splice), SHA-256 of the output {:.3} ms",
        costs.rows, costs.fill_ms, costs.seal_ms, costs.hash_ms
    );
    let _ = d.terminate(Duration::from_secs(60));

    if let Some(python) = &o.python {
        let out = Command::new(python)
            .arg(seald_tests::workspace_root().join("bench/pyhanko_sign.py"))
            .arg(&o.module)
            .arg(TOKEN)
            .arg(setup.dir().join("user.pin"))
            .arg("seal")
            .arg(setup.dir().join("samples/labour-template.pdf"))
            .arg(setup.dir().join("pyhanko.pdf"))
            .arg("50")
            .env("SOFTHSM2_CONF", setup.seal.hsm.conf())
            .output()
            .expect("run pyHanko");
        assert!(
            out.status.success(),
            "pyHanko failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let ms: f64 = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("pyHanko's ms");
        println!("\npyHanko signing the same template on the same token, one process, 1 session (no form filling: pyHanko has none): {ms:.1} ms per document ({:.0} rows/s)", 1000.0 / ms);
    }
    if !crate::util::judged(o.sessions) {
        println!("\n{}", crate::util::not_judged(o.sessions));
        return;
    }
    if ratio < o.min_ratio {
        println!(
            "\nBELOW BUDGET ({} %): {ratio:.1} % of the bare C_Sign rate",
            o.min_ratio
        );
        std::process::exit(1);
    }
    println!(
        "\nwithin budget: {ratio:.1} % ≥ {} % of the bare C_Sign rate",
        o.min_ratio
    );
}

/// What the PAdES engine spends per row besides `C_Sign`, in one thread.
struct Costs {
    rows: usize,
    fill_ms: f64,
    seal_ms: f64,
    hash_ms: f64,
}

/// Fills and seals the first rows of `csv` in process (the token's signature replayed), so
/// the job's rate can be set against the work besides the token's.
fn engine_costs(setup: &Setup, csv: &str) -> Costs {
    use sha2::Digest;
    let template: std::sync::Arc<[u8]> =
        std::fs::read(setup.dir().join("samples/labour-template.pdf"))
            .expect("template")
            .into();
    let font = seald_pades::FillFont::open(
        std::path::Path::new("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"),
        0,
    )
    .expect("the CJK font");
    let replay = crate::pades::Replay {
        key: &setup.seal.key,
        signature: setup.seal.key.sign_blocking(b"any").expect("a signature"),
    };
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split(',').collect();
    let rows: Vec<std::collections::BTreeMap<String, String>> = lines
        .take(500)
        .map(|l| {
            header
                .iter()
                .zip(l.split(','))
                .skip(1)
                .map(|(k, v)| ((*k).to_owned(), v.to_owned()))
                .collect()
        })
        .collect();
    let (mut fill, mut seal, mut hash) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    for values in &rows {
        let t = Instant::now();
        let doc = seald_pades::Document::from_bytes(template.clone()).expect("template");
        let (_, filled) = seald_pades::fill_document_to_vec(&doc, &font, values).expect("fill");
        fill += t.elapsed();
        let t = Instant::now();
        let doc = seald_pades::Document::from_bytes(filled).expect("filled");
        let options = seald_pades::SignOptions {
            signer: &replay,
            placement: seald_pades::Placement::Invisible { page: 1 },
            field_name: None,
            reason: None,
            location: None,
            contact_info: None,
            time: seald_pades::SigningTime::now(0),
            timestamper: None,
            durable: false,
        };
        let (_, signed) = seald_pades::sign_document_to_vec(&doc, &options).expect("seal");
        seal += t.elapsed();
        let t = Instant::now();
        std::hint::black_box(sha2::Sha256::digest(&signed));
        hash += t.elapsed();
    }
    let ms = |d: Duration| 1000.0 * d.as_secs_f64() / rows.len() as f64;
    Costs {
        rows: rows.len(),
        fill_ms: ms(fill),
        seal_ms: ms(seal),
        hash_ms: ms(hash),
    }
}

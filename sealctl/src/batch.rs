//! `sealctl batch run|status|cancel|resume|results|download`: batch jobs in a running seald —
//! a template's rows from a CSV file, every row checked before anything is sealed, then
//! sealed with the template's auto-sign seal; a progress bar while it runs.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::Duration;

use clap::Subcommand;
use serde_json::Value;

use crate::admin::show;
use crate::governance::{done, GovernanceArgs};
use crate::remote::Remote;
use crate::Failure;

#[derive(Subcommand, Debug)]
pub enum BatchCommand {
    /// Start a job of TEMPLATE with the rows of FILE (CSV, or an XLSX workbook when its name
    /// ends in .xlsx; a header row naming the template's fields and optionally document_id), as
    /// an employee holding the auto-sign authorization; then follow it until it ends (unless
    /// --no-wait).
    Run {
        template: String,
        file: PathBuf,
        #[arg(long)]
        area: Option<String>,
        /// b-b or b-t.
        #[arg(long)]
        level: Option<String>,
        #[arg(long)]
        document_id_column: Option<String>,
        /// How each sealed PDF is named: `{document_id}` (the default), `{row}` and
        /// `{FIELD}` (a field's value), e.g. `{姓名}-劳动合同`.
        #[arg(long)]
        output_name: Option<String>,
        /// The sheet of an XLSX workbook holding the rows (default: its first sheet).
        #[arg(long)]
        sheet: Option<String>,
        /// Start it and print its id, without following it.
        #[arg(long)]
        no_wait: bool,
    },
    /// Where a job is.
    Status { id: String },
    /// No further row is sealed.
    Cancel { id: String },
    /// A stopped job goes on.
    Resume { id: String },
    /// The per-row results as CSV (to --out, else standard output).
    Results {
        id: String,
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// The sealed PDFs into --dir (named by document id), or one row's with --row; or all of
    /// them as one ZIP file with --zip.
    Download {
        id: String,
        #[arg(long, required_unless_present = "zip")]
        dir: Option<PathBuf>,
        #[arg(long)]
        row: Option<u64>,
        #[arg(long, conflicts_with_all = ["dir", "row"])]
        zip: Option<PathBuf>,
    },
}

pub type BatchArgs = GovernanceArgs<BatchCommand>;

fn status_line(v: &Value) -> String {
    let rows = &v["rows"];
    let mut line = format!(
        "{} {}: {} of {} valid rows sealed, {} invalid",
        v["id"].as_str().unwrap_or(""),
        v["status"].as_str().unwrap_or(""),
        rows["sealed"],
        rows["valid"],
        rows["invalid"],
    );
    if let Some(r) = v["rate_per_second"].as_f64() {
        line.push_str(&format!(", {r:.1} rows/s"));
    }
    if let Some(eta) = v["eta_seconds"].as_u64() {
        line.push_str(&format!(", ETA {eta} s"));
    }
    if let Some(e) = v["error"].as_str() {
        line.push_str(&format!(" ({e})"));
    }
    line
}

fn bar(v: &Value) -> String {
    let sealed = v["rows"]["sealed"].as_u64().unwrap_or(0);
    let valid = v["rows"]["valid"].as_u64().unwrap_or(0).max(1);
    let filled = (sealed * 30 / valid) as usize;
    format!(
        "\r[{}{}] {sealed}/{valid}{}",
        "#".repeat(filled),
        ".".repeat(30 - filled.min(30)),
        v["rate_per_second"]
            .as_f64()
            .map(|r| format!("  {r:.1}/s"))
            .unwrap_or_default()
    )
}

/// Follows job `id` until it is no longer running; a progress bar on a terminal.
fn follow(remote: &Remote, id: &str, json_out: bool) -> Result<Value, Failure> {
    let tty = std::io::stderr().is_terminal() && !json_out;
    loop {
        let v: Value = remote.get_json(&format!("/v1/jobs/{id}"))?;
        if tty {
            eprint!("{}", bar(&v));
            let _ = std::io::stderr().flush();
        }
        match v["status"].as_str() {
            Some("running" | "validating" | "paused") => {
                std::thread::sleep(Duration::from_millis(500))
            }
            _ => {
                if tty {
                    eprintln!();
                }
                return Ok(v);
            }
        }
    }
}

/// The file name seald gave row `n` (the job's output-name pattern), if it is a plain name;
/// else `row-N.pdf`.
fn file_name(given: &str, n: &str) -> String {
    let plain = !given.is_empty()
        && !given.starts_with('.')
        && !given.contains(['/', '\\', '\0', ':'])
        && given.ends_with(".pdf");
    if plain {
        given.to_owned()
    } else {
        format!("row-{n}.pdf")
    }
}

pub fn run_batch(args: BatchArgs) -> Result<(), Failure> {
    let remote = args.remote.connect()?;
    let j = args.json;
    match args.command {
        BatchCommand::Run {
            template,
            file,
            area,
            level,
            document_id_column,
            output_name,
            sheet,
            no_wait,
        } => {
            // Percent-encoded (a pattern or a column may be Chinese).
            let mut url = reqwest::Url::parse("http://query/").expect("a constant URL");
            {
                let mut q = url.query_pairs_mut();
                q.append_pair("template_id", &template);
                for (k, v) in [
                    ("area", area),
                    ("level", level),
                    ("document_id_column", document_id_column),
                    ("output_name", output_name),
                    ("sheet", sheet),
                ] {
                    if let Some(v) = v {
                        q.append_pair(k, &v);
                    }
                }
            }
            let query = url.query().unwrap_or_default().to_owned();
            let rows = crate::read_file(&file)?;
            let xlsx = file
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("xlsx"));
            let media_type = if xlsx {
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
            } else {
                "text/csv"
            };
            let created = remote.post_bytes(&format!("/v1/jobs?{query}"), media_type, rows)?;
            let id = created["id"].as_str().unwrap_or("").to_owned();
            if !j {
                let r = &created["rows"];
                println!(
                    "job {id}: {} rows uploaded, {} valid, {} invalid",
                    r["uploaded"], r["valid"], r["invalid"]
                );
                for bad in created["invalid_rows"].as_array().into_iter().flatten() {
                    let e = &bad["errors"][0];
                    println!(
                        "  row {}: {} {} ({})",
                        bad["row"],
                        e["field"].as_str().unwrap_or(""),
                        e["code"].as_str().unwrap_or(""),
                        e["message"].as_str().unwrap_or("")
                    );
                }
            }
            if no_wait {
                if j {
                    show(&created, true, |_| String::new());
                }
                return Ok(());
            }
            let end = follow(&remote, &id, j)?;
            show(&end, j, status_line);
            if end["status"] != "completed" {
                return Err(Failure::failed(format!(
                    "the job ended {}",
                    status_line(&end)
                )));
            }
        }
        BatchCommand::Status { id } => {
            let v: Value = remote.get_json(&format!("/v1/jobs/{id}"))?;
            show(&v, j, status_line);
        }
        BatchCommand::Cancel { id } => {
            let v = remote.post_json(&format!("/v1/jobs/{id}/cancel"), &serde_json::json!({}))?;
            done(&v, j, &format!("job {id} canceled"));
        }
        BatchCommand::Resume { id } => {
            let v = remote.post_json(&format!("/v1/jobs/{id}/resume"), &serde_json::json!({}))?;
            done(&v, j, &format!("job {id} resumed"));
        }
        BatchCommand::Results { id, out } => {
            let text = remote
                .get(&format!("/v1/jobs/{id}/results"))?
                .text()
                .map_err(|e| Failure::failed(format!("cannot read the results: {e}")))?;
            match out {
                Some(path) => std::fs::write(&path, text).map_err(|e| {
                    Failure::failed(format!("cannot write {}: {e}", path.display()))
                })?,
                None => print!("{text}"),
            }
        }
        BatchCommand::Download {
            id,
            zip: Some(path),
            ..
        } => {
            let mut response = remote.get(&format!("/v1/jobs/{id}/outputs.zip"))?;
            let mut file = std::fs::File::create(&path)
                .map_err(|e| Failure::failed(format!("cannot create {}: {e}", path.display())))?;
            let bytes = response
                .copy_to(&mut file)
                .map_err(|e| Failure::failed(format!("cannot download the ZIP: {e}")))?;
            done(
                &serde_json::json!({"job": id, "bytes": bytes}),
                j,
                &format!("{bytes} bytes written to {}", path.display()),
            );
        }
        BatchCommand::Download { id, dir, row, .. } => {
            let dir = dir.ok_or_else(|| Failure::usage("give --dir DIR or --zip FILE"))?;
            std::fs::create_dir_all(&dir)
                .map_err(|e| Failure::failed(format!("cannot create {}: {e}", dir.display())))?;
            let text = remote
                .get(&format!("/v1/jobs/{id}/results"))?
                .text()
                .map_err(|e| Failure::failed(format!("cannot read the results: {e}")))?;
            let mut reader = csv::Reader::from_reader(text.as_bytes());
            let mut written = 0u64;
            let mut taken = std::collections::HashSet::new();
            for record in reader.records() {
                let record = record.map_err(|e| Failure::failed(format!("the results: {e}")))?;
                let (n, status, given) = (
                    record.get(0).unwrap_or(""),
                    record.get(1).unwrap_or(""),
                    record.get(7).unwrap_or(""),
                );
                if status != "sealed" || row.is_some_and(|r| r.to_string() != n) {
                    continue;
                }
                let bytes = remote
                    .get(&format!("/v1/jobs/{id}/rows/{n}/pdf"))?
                    .bytes()
                    .map_err(|e| Failure::failed(format!("cannot read row {n}: {e}")))?;
                // seald makes sealed rows' names unique; a name given twice (an older or a
                // broken server) falls back to the row number rather than overwrite.
                let mut name = file_name(given, n);
                if !taken.insert(name.clone()) {
                    name = format!("row-{n}.pdf");
                }
                let path = dir.join(name);
                std::fs::write(&path, &bytes).map_err(|e| {
                    Failure::failed(format!("cannot write {}: {e}", path.display()))
                })?;
                written += 1;
            }
            done(
                &serde_json::json!({"job": id, "written": written}),
                j,
                &format!("{written} sealed PDFs written to {}", dir.display()),
            );
        }
    }
    Ok(())
}

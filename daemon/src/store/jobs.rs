//! SQLite rows of batch jobs and their rows (migrations 0009, 0010).

use std::collections::BTreeMap;

use sqlx::sqlite::SqliteRow;
use sqlx::{SqliteConnection, SqlitePool};

use super::sqlite::{col, json_list, to_json, unavailable};
use super::{JobCounts, JobRecord, JobRow, JobRowStatus, StoreError};

fn job(row: &SqliteRow) -> Result<JobRecord, StoreError> {
    Ok(JobRecord {
        id: col(row, "id")?,
        spec: json_list(&col::<String>(row, "job")?, "job")?,
        status: json_list(
            &format!("\"{}\"", col::<String>(row, "status")?),
            "job status",
        )?,
        error: col(row, "error")?,
        created_at: col(row, "created_at")?,
        updated_at: col(row, "updated_at")?,
    })
}

fn job_row(row: &SqliteRow) -> Result<JobRow, StoreError> {
    let errors: Option<String> = col(row, "errors")?;
    Ok(JobRow {
        row: col::<i64>(row, "row")?.max(0) as u64,
        status: json_list(
            &format!("\"{}\"", col::<String>(row, "status")?),
            "job row status",
        )?,
        document_id: col(row, "document_id")?,
        values: json_list::<BTreeMap<String, String>>(
            &col::<String>(row, "values")?,
            "row values",
        )?,
        errors: errors.map(|e| json_list(&e, "row errors")).transpose()?,
        output_sha256: col(row, "output_sha256")?,
        output: match (
            col::<Option<i64>>(row, "output_offset")?,
            col::<Option<i64>>(row, "output_length")?,
        ) {
            (Some(offset), Some(length)) => Some(crate::outputs::Extent {
                offset: offset.max(0) as u64,
                length: length.max(0) as u64,
            }),
            _ => None,
        },
        audit_seq: col::<Option<i64>>(row, "audit_seq")?.map(|s| s.max(0) as u64),
        done_at: col(row, "done_at")?,
    })
}

pub(super) async fn put_job(conn: &mut SqliteConnection, j: &JobRecord) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO jobs (id, job, status, error, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?) \
         ON CONFLICT(id) DO UPDATE SET job = excluded.job, status = excluded.status, error = excluded.error, updated_at = excluded.updated_at",
    )
    .bind(&j.id)
    .bind(to_json(&j.spec))
    .bind(j.status.as_str())
    .bind(&j.error)
    .bind(j.created_at)
    .bind(j.updated_at)
    .execute(&mut *conn)
    .await
    .map_err(unavailable)?;
    Ok(())
}

/// Deletes job `id` and its rows if it ended before `before`.
pub(super) async fn delete_job(
    conn: &mut SqliteConnection,
    id: &str,
    before: i64,
) -> Result<(), StoreError> {
    const ENDED: &str = "status IN ('completed', 'canceled', 'stopped', 'failed')";
    // The rows first (they reference the job), and only a job that qualifies; the caller
    // rolls back on a conflict.
    sqlx::query(&format!(
        "DELETE FROM job_rows WHERE job = ?1 AND EXISTS (SELECT 1 FROM jobs WHERE id = ?1 AND updated_at < ?2 AND {ENDED})"
    ))
    .bind(id)
    .bind(before)
    .execute(&mut *conn)
    .await
    .map_err(unavailable)?;
    let done = sqlx::query(&format!(
        "DELETE FROM jobs WHERE id = ? AND updated_at < ? AND {ENDED}"
    ))
    .bind(id)
    .bind(before)
    .execute(&mut *conn)
    .await
    .map_err(unavailable)?;
    if done.rows_affected() != 1 {
        return Err(StoreError::Conflict(format!(
            "job {id} changed since or has not ended"
        )));
    }
    Ok(())
}

/// Job `id` goes to `to` only from one of `from`.
pub(super) async fn set_status(
    conn: &mut SqliteConnection,
    id: &str,
    from: &[super::JobStatus],
    to: super::JobStatus,
    error: Option<&str>,
    now: i64,
) -> Result<(), StoreError> {
    let allowed: Vec<&str> = from.iter().map(|s| s.as_str()).collect();
    let done = sqlx::query(
        "UPDATE jobs SET status = ?, error = ?, updated_at = ? WHERE id = ? AND status IN (SELECT value FROM json_each(?))",
    )
    .bind(to.as_str())
    .bind(error)
    .bind(now)
    .bind(id)
    .bind(to_json(&allowed))
    .execute(&mut *conn)
    .await
    .map_err(unavailable)?;
    if done.rows_affected() != 1 {
        return Err(StoreError::Conflict(format!(
            "job {id} is no longer {}",
            allowed.join(" or ")
        )));
    }
    Ok(())
}

/// A row to seal, with its record's sequence number.
pub(super) struct Sealed<'a> {
    pub job: &'a str,
    pub row: u64,
    pub output_sha256: &'a str,
    pub output: crate::outputs::Extent,
    pub audit_seq: u64,
    pub now: i64,
}

impl<'a> Sealed<'a> {
    /// The row a `Change::SealJobRow` seals, recorded as record `audit_seq`.
    pub fn of(change: &'a super::Change, audit_seq: u64) -> Option<Sealed<'a>> {
        match change {
            super::Change::SealJobRow {
                job,
                row,
                output_sha256,
                output,
                now,
            } => Some(Sealed {
                job,
                row: *row,
                output_sha256,
                output: *output,
                audit_seq,
                now: *now,
            }),
            _ => None,
        }
    }
}

/// Seals the `rows` in one statement: all pending, or a conflict (and nothing changed by it:
/// the caller rolls back).
pub(super) async fn seal_rows(
    conn: &mut SqliteConnection,
    rows: &[Sealed<'_>],
) -> Result<(), StoreError> {
    let sql = format!(
        "UPDATE job_rows SET status = 'sealed', output_sha256 = v.column3, output_offset = v.column4, \
         output_length = v.column5, audit_seq = v.column6, done_at = v.column7 \
         FROM (VALUES {}) AS v \
         WHERE job_rows.job = v.column1 AND job_rows.row = v.column2 AND job_rows.status = 'pending'",
        super::sqlite::placeholders(rows.len(), 7)
    );
    let int = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    let mut update = sqlx::query(&sql);
    for r in rows {
        update = update
            .bind(r.job)
            .bind(int(r.row))
            .bind(r.output_sha256)
            .bind(int(r.output.offset))
            .bind(int(r.output.length))
            .bind(int(r.audit_seq))
            .bind(r.now);
    }
    let done = update.execute(&mut *conn).await.map_err(unavailable)?;
    if done.rows_affected() != rows.len() as u64 {
        return Err(StoreError::Conflict(
            "a job row is not pending (sealed already?)".to_owned(),
        ));
    }
    Ok(())
}

pub(super) async fn insert_rows(
    pool: &SqlitePool,
    job: &str,
    rows: &[JobRow],
) -> Result<(), StoreError> {
    let mut tx = pool.begin().await.map_err(unavailable)?;
    for r in rows {
        sqlx::query(
            "INSERT INTO job_rows (job, row, status, document_id, \"values\", errors) VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(job)
        .bind(i64::try_from(r.row).unwrap_or(i64::MAX))
        .bind(r.status.as_str())
        .bind(&r.document_id)
        .bind(to_json(&r.values))
        .bind(r.errors.as_ref().map(to_json))
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
    }
    tx.commit().await.map_err(unavailable)
}

pub(super) async fn get_job(pool: &SqlitePool, id: &str) -> Result<Option<JobRecord>, StoreError> {
    sqlx::query("SELECT * FROM jobs WHERE id = ?")
        .bind(id)
        .fetch_optional(pool)
        .await
        .map_err(unavailable)?
        .as_ref()
        .map(job)
        .transpose()
}

pub(super) async fn jobs_in(pool: &SqlitePool, status: &str) -> Result<Vec<JobRecord>, StoreError> {
    sqlx::query("SELECT * FROM jobs WHERE status = ? ORDER BY created_at")
        .bind(status)
        .fetch_all(pool)
        .await
        .map_err(unavailable)?
        .iter()
        .map(job)
        .collect()
}

pub(super) async fn rows(
    pool: &SqlitePool,
    job: &str,
    status: Option<&str>,
    after: u64,
    limit: u32,
) -> Result<Vec<JobRow>, StoreError> {
    sqlx::query(
        "SELECT * FROM job_rows WHERE job = ?1 AND (?2 IS NULL OR status = ?2) AND row > ?3 ORDER BY row LIMIT ?4",
    )
    .bind(job)
    .bind(status)
    .bind(i64::try_from(after).unwrap_or(i64::MAX))
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await
    .map_err(unavailable)?
    .iter()
    .map(job_row)
    .collect()
}

pub(super) async fn counts(pool: &SqlitePool, job: &str) -> Result<JobCounts, StoreError> {
    let (invalid, pending, sealed, first, last): (i64, i64, i64, Option<i64>, Option<i64>) =
        sqlx::query_as(
            "SELECT coalesce(sum(status = 'invalid'), 0), coalesce(sum(status = 'pending'), 0), coalesce(sum(status = 'sealed'), 0), min(done_at), max(done_at) FROM job_rows WHERE job = ?",
        )
        .bind(job)
        .fetch_one(pool)
        .await
        .map_err(unavailable)?;
    let n = |v: i64| v.max(0) as u64;
    Ok(JobCounts {
        invalid: n(invalid),
        pending: n(pending),
        sealed: n(sealed),
        first_done_at: first,
        last_done_at: last,
    })
}

impl JobRowStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            JobRowStatus::Invalid => "invalid",
            JobRowStatus::Pending => "pending",
            JobRowStatus::Sealed => "sealed",
        }
    }
}

//! SQLite rows of templates and batch-sign confirmations (migration 0006), partner
//! authorizations and invitations (0007).

use seald_policy::batch::BatchConfirmation;
use seald_policy::partner::{PartnerAuthorization, PartnerInvitation};
use seald_policy::Template;
use sqlx::sqlite::SqliteRow;
use sqlx::{SqliteConnection, SqlitePool};

use super::sqlite::{col, json_list, to_json, unavailable};
use super::StoreError;

pub(super) async fn templates(pool: &SqlitePool) -> Result<Vec<Template>, StoreError> {
    let rows = sqlx::query("SELECT template FROM templates ORDER BY id")
        .fetch_all(pool)
        .await
        .map_err(unavailable)?;
    rows.iter()
        .map(|r| json_list(&col::<String>(r, "template")?, "template"))
        .collect()
}

pub(super) async fn template_pdf(
    pool: &SqlitePool,
    sha256: &str,
) -> Result<Option<Vec<u8>>, StoreError> {
    sqlx::query_scalar("SELECT pdf FROM template_pdfs WHERE sha256 = ?")
        .bind(sha256)
        .fetch_optional(pool)
        .await
        .map_err(unavailable)
}

/// Stores the template; its PDF (by SHA-256) only once.
pub(super) async fn put_template(
    conn: &mut SqliteConnection,
    template: &Template,
    pdf: Option<&[u8]>,
) -> Result<(), StoreError> {
    if let Some(pdf) = pdf {
        sqlx::query("INSERT OR IGNORE INTO template_pdfs (sha256, pdf) VALUES (?, ?)")
            .bind(&template.pdf_sha256)
            .bind(pdf)
            .execute(&mut *conn)
            .await
            .map_err(unavailable)?;
    }
    let known: Option<i64> = sqlx::query_scalar("SELECT 1 FROM template_pdfs WHERE sha256 = ?")
        .bind(&template.pdf_sha256)
        .fetch_optional(&mut *conn)
        .await
        .map_err(unavailable)?;
    if known.is_none() {
        return Err(StoreError::Conflict(format!(
            "template '{}' names a PDF that is not stored",
            template.id
        )));
    }
    sqlx::query(
        "INSERT INTO templates (id, template) VALUES (?, ?) \
         ON CONFLICT(id) DO UPDATE SET template = excluded.template",
    )
    .bind(&template.id)
    .bind(to_json(template))
    .execute(&mut *conn)
    .await
    .map_err(unavailable)?;
    Ok(())
}

pub(super) async fn delete_template(
    conn: &mut SqliteConnection,
    id: &str,
) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM templates WHERE id = ?")
        .bind(id)
        .execute(&mut *conn)
        .await
        .map_err(unavailable)?;
    Ok(())
}

fn confirmation(row: &SqliteRow) -> Result<BatchConfirmation, StoreError> {
    let count: i64 = col(row, "count")?;
    let used: i64 = col(row, "used")?;
    let number = |v: i64| {
        u32::try_from(v).map_err(|_| StoreError::Corrupt("batch confirmation count".to_owned()))
    };
    Ok(BatchConfirmation {
        id: col(row, "id")?,
        employee: col(row, "employee")?,
        seal: col(row, "seal")?,
        count: number(count)?,
        used: number(used)?,
        created_at: col(row, "created_at")?,
        expires_at: col(row, "expires_at")?,
    })
}

/// The confirmation whose `column` (its id, or its token's SHA-256) is `value`.
async fn confirmation_where(
    pool: &SqlitePool,
    column: &'static str,
    value: &str,
) -> Result<Option<BatchConfirmation>, StoreError> {
    sqlx::query(&format!(
        "SELECT * FROM batch_confirmations WHERE {column} = ?"
    ))
    .bind(value)
    .fetch_optional(pool)
    .await
    .map_err(unavailable)?
    .as_ref()
    .map(confirmation)
    .transpose()
}

pub(super) async fn batch_confirmation(
    pool: &SqlitePool,
    token_sha256: &str,
) -> Result<Option<BatchConfirmation>, StoreError> {
    confirmation_where(pool, "token_sha256", token_sha256).await
}

pub(super) async fn batch_confirmation_by_id(
    pool: &SqlitePool,
    id: &str,
) -> Result<Option<BatchConfirmation>, StoreError> {
    confirmation_where(pool, "id", id).await
}

pub(super) async fn open_batch(
    conn: &mut SqliteConnection,
    c: &BatchConfirmation,
    token_sha256: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO batch_confirmations (id, token_sha256, employee, seal, count, used, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&c.id)
    .bind(token_sha256)
    .bind(&c.employee)
    .bind(&c.seal)
    .bind(i64::from(c.count))
    .bind(i64::from(c.used))
    .bind(c.created_at)
    .bind(c.expires_at)
    .execute(&mut *conn)
    .await
    .map_err(|e| super::sqlite::conflict_or_unavailable(e, "this batch confirmation"))?;
    Ok(())
}

/// One use, only if one is left and the confirmation is alive at `now`: check and increment
/// are one statement in the record's transaction, so concurrent signatures cannot stretch it.
pub(super) async fn consume_batch(
    conn: &mut SqliteConnection,
    id: &str,
    now: i64,
) -> Result<(), StoreError> {
    let done = sqlx::query(
        "UPDATE batch_confirmations SET used = used + 1 WHERE id = ? AND used < count AND expires_at > ?",
    )
    .bind(id)
    .bind(now)
    .execute(&mut *conn)
    .await
    .map_err(unavailable)?;
    if done.rows_affected() != 1 {
        return Err(StoreError::Conflict(format!(
            "batch confirmation '{id}' has no signature left"
        )));
    }
    Ok(())
}

/// Ends a confirmation before its lifetime: it allows nothing more.
pub(super) async fn close_batch(
    conn: &mut SqliteConnection,
    id: &str,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE batch_confirmations SET expires_at = MIN(expires_at, ?) WHERE id = ?")
        .bind(now)
        .bind(id)
        .execute(&mut *conn)
        .await
        .map_err(unavailable)?;
    Ok(())
}

pub(super) async fn partner_authorizations(
    pool: &SqlitePool,
    partner: Option<&str>,
) -> Result<Vec<PartnerAuthorization>, StoreError> {
    let rows = sqlx::query(
        "SELECT authorization FROM partner_authorizations WHERE ?1 IS NULL OR partner = ?1 ORDER BY rowid",
    )
    .bind(partner)
    .fetch_all(pool)
    .await
    .map_err(unavailable)?;
    rows.iter()
        .map(|r| json_list(&col::<String>(r, "authorization")?, "partner authorization"))
        .collect()
}

pub(super) async fn put_partner_authorization(
    conn: &mut SqliteConnection,
    a: &PartnerAuthorization,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO partner_authorizations (id, partner, authorization) VALUES (?, ?, ?) \
         ON CONFLICT(id) DO UPDATE SET authorization = excluded.authorization",
    )
    .bind(&a.id)
    .bind(a.partner.as_str())
    .bind(to_json(a))
    .execute(&mut *conn)
    .await
    .map_err(unavailable)?;
    Ok(())
}

pub(super) async fn invitation(
    pool: &SqlitePool,
    token_sha256: &str,
) -> Result<Option<PartnerInvitation>, StoreError> {
    let text: Option<String> =
        sqlx::query_scalar("SELECT invitation FROM partner_invitations WHERE token_sha256 = ?")
            .bind(token_sha256)
            .fetch_optional(pool)
            .await
            .map_err(unavailable)?;
    text.map(|t| json_list(&t, "partner invitation"))
        .transpose()
}

pub(super) async fn put_invitation(
    conn: &mut SqliteConnection,
    invitation: &PartnerInvitation,
    token_sha256: &str,
) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO partner_invitations (id, token_sha256, invitation) VALUES (?, ?, ?)")
        .bind(&invitation.id)
        .bind(token_sha256)
        .bind(to_json(invitation))
        .execute(&mut *conn)
        .await
        .map_err(|e| super::sqlite::conflict_or_unavailable(e, "this invitation"))?;
    Ok(())
}

/// Single use: only a not yet accepted invitation is marked, in the record's transaction.
pub(super) async fn accept_invitation(
    conn: &mut SqliteConnection,
    invitation: &PartnerInvitation,
) -> Result<(), StoreError> {
    let done = sqlx::query(
        "UPDATE partner_invitations SET accepted = 1, invitation = ? WHERE id = ? AND accepted = 0",
    )
    .bind(to_json(invitation))
    .bind(&invitation.id)
    .execute(&mut *conn)
    .await
    .map_err(unavailable)?;
    if done.rows_affected() != 1 {
        return Err(StoreError::Conflict(format!(
            "invitation '{}' has been used already",
            invitation.id
        )));
    }
    Ok(())
}

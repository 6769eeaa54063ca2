//! SQLite rows of seal governance: the organization, seal governance columns, approval
//! flows and requests, seal-use grants (migration 0002).

use seald_policy::password::PasswordState;
use seald_policy::{
    role::system_roles, ApprovalRequest, DataScope, Department, Employee, EmployeeStatus,
    Enterprise, Flow, Grant, Org, RoleDef, Seal,
};
use sqlx::sqlite::SqliteRow;
use sqlx::{SqliteConnection, SqlitePool};

use super::sqlite::{col, json_list, to_json, unavailable};
use super::{Consumption, OrgChange, StoreError};
use seald_policy::limits::{LocalTime, Usage};

fn enum_text<T: serde::Serialize>(value: &T) -> String {
    to_json(value).trim_matches('"').to_owned()
}

fn enum_from<T: serde::de::DeserializeOwned>(text: &str, what: &str) -> Result<T, StoreError> {
    json_list(&format!("\"{text}\""), what)
}

pub(super) async fn put_org(
    conn: &mut SqliteConnection,
    change: &OrgChange,
) -> Result<(), StoreError> {
    if let Some(e) = &change.enterprise {
        sqlx::query(
            "INSERT INTO enterprise (id, name, credit_code, features, utc_offset_minutes, contract_quota) VALUES (?, ?, ?, ?, ?, ?) \
             ON CONFLICT(id) DO UPDATE SET name = excluded.name, credit_code = excluded.credit_code, features = excluded.features, utc_offset_minutes = excluded.utc_offset_minutes, contract_quota = excluded.contract_quota",
        )
        .bind(&e.id)
        .bind(&e.name)
        .bind(e.credit_code.as_str())
        .bind(to_json(&e.features))
        .bind(e.utc_offset_minutes)
        .bind(e.contract_quota.map(|q| i64::try_from(q).unwrap_or(i64::MAX)))
        .execute(&mut *conn)
        .await
        .map_err(unavailable)?;
    }
    // Parents before children: a new subtree arrives in tree order from the model, and the
    // foreign key is checked per statement.
    for d in &change.departments {
        sqlx::query(
            "INSERT INTO departments (id, name, parent) VALUES (?, ?, ?) \
             ON CONFLICT(id) DO UPDATE SET name = excluded.name, parent = excluded.parent",
        )
        .bind(&d.id)
        .bind(&d.name)
        .bind(&d.parent)
        .execute(&mut *conn)
        .await
        .map_err(unavailable)?;
    }
    for e in &change.employees {
        sqlx::query(
            "INSERT INTO employees (id, name, phone, department, roles, status, auto_sign_authorized, batch_sign_authorized) VALUES (?, ?, ?, ?, ?, ?, ?, ?) \
             ON CONFLICT(id) DO UPDATE SET name = excluded.name, phone = excluded.phone, department = excluded.department, roles = excluded.roles, status = excluded.status, auto_sign_authorized = excluded.auto_sign_authorized, batch_sign_authorized = excluded.batch_sign_authorized",
        )
        .bind(&e.id)
        .bind(&e.name)
        .bind(&e.phone)
        .bind(&e.department)
        .bind(to_json(&e.roles))
        .bind(enum_text(&e.status))
        .bind(e.auto_sign_authorized)
        .bind(e.batch_sign_authorized)
        .execute(&mut *conn)
        .await
        .map_err(unavailable)?;
    }
    for r in &change.roles {
        sqlx::query(
            "INSERT INTO roles (id, name, permissions, scope) VALUES (?, ?, ?, ?) \
             ON CONFLICT(id) DO UPDATE SET name = excluded.name, permissions = excluded.permissions, scope = excluded.scope",
        )
        .bind(&r.id)
        .bind(&r.name)
        .bind(to_json(&r.permissions))
        .bind(enum_text(&r.scope))
        .execute(&mut *conn)
        .await
        .map_err(unavailable)?;
    }
    for id in &change.deleted_roles {
        sqlx::query("DELETE FROM roles WHERE id = ?")
            .bind(id)
            .execute(&mut *conn)
            .await
            .map_err(unavailable)?;
    }
    for m in &change.members {
        sqlx::query(
            "INSERT INTO group_members (credit_code, member) VALUES (?, ?) \
             ON CONFLICT(credit_code) DO UPDATE SET member = excluded.member",
        )
        .bind(m.credit_code.as_str())
        .bind(to_json(m))
        .execute(&mut *conn)
        .await
        .map_err(unavailable)?;
    }
    for code in &change.removed_members {
        sqlx::query("DELETE FROM group_members WHERE credit_code = ?")
            .bind(code)
            .execute(&mut *conn)
            .await
            .map_err(unavailable)?;
    }
    Ok(())
}

pub(super) async fn put_seal_policy(
    conn: &mut SqliteConnection,
    seal: &Seal,
    updated_at: &str,
) -> Result<(), StoreError> {
    let done = sqlx::query(
        "UPDATE seals SET status = ?, kind = ?, source = ?, department = ?, holders = ?, created_by = ?, practice_authorized = ?, limits = ?, enterprise = ?, updated_at = ? WHERE id = ?",
    )
    .bind(seal.status.as_str())
    .bind(enum_text(&seal.kind))
    .bind(enum_text(&seal.source))
    .bind(&seal.department)
    .bind(to_json(&seal.holders))
    .bind(&seal.created_by)
    .bind(i64::from(seal.practice_authorized))
    .bind(to_json(&seal.limits))
    .bind(seal.enterprise.as_ref().map(|c| c.as_str().to_owned()))
    .bind(updated_at)
    .bind(&seal.id)
    .execute(&mut *conn)
    .await
    .map_err(unavailable)?;
    if done.rows_affected() != 1 {
        return Err(StoreError::Conflict(format!(
            "there is no seal '{}'",
            seal.id
        )));
    }
    Ok(())
}

pub(super) async fn put_flow(conn: &mut SqliteConnection, flow: &Flow) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO approval_flows (scenario, flow) VALUES (?, ?) ON CONFLICT(scenario) DO UPDATE SET flow = excluded.flow",
    )
    .bind(flow.scenario.as_str())
    .bind(to_json(flow))
    .execute(&mut *conn)
    .await
    .map_err(unavailable)?;
    Ok(())
}

pub(super) async fn put_approval(
    conn: &mut SqliteConnection,
    r: &ApprovalRequest,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO approval_requests (id, scenario, submitter, state, expires_at, request) VALUES (?, ?, ?, ?, ?, ?) \
         ON CONFLICT(id) DO UPDATE SET submitter = excluded.submitter, state = excluded.state, expires_at = excluded.expires_at, request = excluded.request",
    )
    .bind(&r.id)
    .bind(r.subject.scenario().as_str())
    .bind(&r.submitter)
    .bind(r.state.as_str())
    .bind(r.expires_at)
    .bind(to_json(r))
    .execute(&mut *conn)
    .await
    .map_err(unavailable)?;
    Ok(())
}

pub(super) async fn put_grant(conn: &mut SqliteConnection, g: &Grant) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO seal_grants (id, approval, seal, employee, document_id, document_sha256, uses_left, valid_until) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&g.id)
    .bind(&g.approval)
    .bind(&g.seal)
    .bind(&g.employee)
    .bind(&g.document_id)
    .bind(&g.document_sha256)
    .bind(i64::from(g.uses_left))
    .bind(g.valid_until)
    .execute(&mut *conn)
    .await
    .map_err(|e| super::sqlite::conflict_or_unavailable(e, "this grant"))?;
    Ok(())
}

/// One use, only if one is left for this document and time: the check and the decrement are
/// one statement inside the record's transaction, so concurrent requests cannot both take
/// the last use.
pub(super) async fn consume_grant(
    conn: &mut SqliteConnection,
    id: &str,
    sha256: &str,
    now: i64,
) -> Result<(), StoreError> {
    let done = sqlx::query(
        "UPDATE seal_grants SET uses_left = uses_left - 1 WHERE id = ? AND uses_left > 0 AND valid_until > ? AND document_sha256 = ?",
    )
    .bind(id)
    .bind(now)
    .bind(sha256)
    .execute(&mut *conn)
    .await
    .map_err(unavailable)?;
    if done.rows_affected() != 1 {
        return Err(StoreError::Conflict(format!(
            "seal-use grant '{id}' has no use left for this document"
        )));
    }
    Ok(())
}

fn employee(row: &SqliteRow) -> Result<Employee, StoreError> {
    Ok(Employee {
        id: col(row, "id")?,
        name: col(row, "name")?,
        phone: col(row, "phone")?,
        department: col(row, "department")?,
        roles: json_list(&col::<String>(row, "roles")?, "employee roles")?,
        status: enum_from::<EmployeeStatus>(&col::<String>(row, "status")?, "employee status")?,
        has_signing_password: col::<Option<String>>(row, "password_hash")?.is_some(),
        auto_sign_authorized: col(row, "auto_sign_authorized")?,
        batch_sign_authorized: col(row, "batch_sign_authorized")?,
    })
}

pub(super) async fn org(pool: &SqlitePool) -> Result<Option<Org>, StoreError> {
    let Some(e) = sqlx::query("SELECT * FROM enterprise LIMIT 1")
        .fetch_optional(pool)
        .await
        .map_err(unavailable)?
    else {
        return Ok(None);
    };
    let credit_code: String = col(&e, "credit_code")?;
    let enterprise = Enterprise {
        id: col(&e, "id")?,
        name: col(&e, "name")?,
        credit_code: seald_policy::CreditCode::parse(&credit_code)
            .map_err(|err| StoreError::Corrupt(format!("credit code: {err}")))?,
        features: json_list(&col::<String>(&e, "features")?, "features")?,
        utc_offset_minutes: col(&e, "utc_offset_minutes")?,
        contract_quota: col::<Option<i64>>(&e, "contract_quota")?.map(|q| q.max(0) as u64),
    };
    let departments = sqlx::query("SELECT * FROM departments ORDER BY rowid")
        .fetch_all(pool)
        .await
        .map_err(unavailable)?
        .iter()
        .map(|r| {
            Ok(Department {
                id: col(r, "id")?,
                name: col(r, "name")?,
                parent: col(r, "parent")?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    let employees = sqlx::query("SELECT * FROM employees ORDER BY rowid")
        .fetch_all(pool)
        .await
        .map_err(unavailable)?
        .iter()
        .map(employee)
        .collect::<Result<Vec<_>, StoreError>>()?;
    let mut roles = system_roles();
    for r in sqlx::query("SELECT * FROM roles ORDER BY id")
        .fetch_all(pool)
        .await
        .map_err(unavailable)?
    {
        roles.push(RoleDef {
            id: col(&r, "id")?,
            name: col(&r, "name")?,
            system: None,
            permissions: json_list(&col::<String>(&r, "permissions")?, "role permissions")?,
            scope: enum_from::<DataScope>(&col::<String>(&r, "scope")?, "role scope")?,
        });
    }
    let members =
        sqlx::query_scalar::<_, String>("SELECT member FROM group_members ORDER BY rowid")
            .fetch_all(pool)
            .await
            .map_err(unavailable)?
            .iter()
            .map(|m| json_list(m, "group member"))
            .collect::<Result<Vec<_>, StoreError>>()?;
    Ok(Some(Org {
        enterprise,
        departments,
        employees,
        roles,
        members,
    }))
}

pub(super) async fn flows(pool: &SqlitePool) -> Result<Vec<Flow>, StoreError> {
    let rows: Vec<String> = sqlx::query_scalar("SELECT flow FROM approval_flows ORDER BY scenario")
        .fetch_all(pool)
        .await
        .map_err(unavailable)?;
    rows.iter().map(|f| json_list(f, "approval flow")).collect()
}

pub(super) async fn approval(
    pool: &SqlitePool,
    id: &str,
) -> Result<Option<ApprovalRequest>, StoreError> {
    let row: Option<String> =
        sqlx::query_scalar("SELECT request FROM approval_requests WHERE id = ?")
            .bind(id)
            .fetch_optional(pool)
            .await
            .map_err(unavailable)?;
    row.map(|r| json_list(&r, "approval request")).transpose()
}

pub(super) async fn pending_approvals(
    pool: &SqlitePool,
) -> Result<Vec<ApprovalRequest>, StoreError> {
    let rows: Vec<String> = sqlx::query_scalar(
        "SELECT request FROM approval_requests WHERE state = 'pending' ORDER BY expires_at, id",
    )
    .fetch_all(pool)
    .await
    .map_err(unavailable)?;
    rows.iter()
        .map(|r| json_list(r, "approval request"))
        .collect()
}

pub(super) async fn grants_for(
    pool: &SqlitePool,
    employee: &str,
    seal: &str,
) -> Result<Vec<Grant>, StoreError> {
    let rows =
        sqlx::query("SELECT * FROM seal_grants WHERE employee = ? AND seal = ? ORDER BY rowid")
            .bind(employee)
            .bind(seal)
            .fetch_all(pool)
            .await
            .map_err(unavailable)?;
    rows.iter()
        .map(|r| {
            Ok(Grant {
                id: col(r, "id")?,
                approval: col(r, "approval")?,
                seal: col(r, "seal")?,
                employee: col(r, "employee")?,
                document_id: col(r, "document_id")?,
                document_sha256: col(r, "document_sha256")?,
                uses_left: u32::try_from(col::<i64>(r, "uses_left")?)
                    .map_err(|_| StoreError::Corrupt("grant uses".to_owned()))?,
                valid_until: col(r, "valid_until")?,
            })
        })
        .collect()
}

/// The governance columns of a seal row.
pub(super) fn seal_governance(row: &SqliteRow) -> Result<super::SealGovernance, StoreError> {
    Ok(super::SealGovernance {
        kind: enum_from(&col::<String>(row, "kind")?, "seal kind")?,
        source: enum_from(&col::<String>(row, "source")?, "seal source")?,
        department: col(row, "department")?,
        holders: json_list(&col::<String>(row, "holders")?, "seal holders")?,
        created_by: col(row, "created_by")?,
        practice_authorized: col::<i64>(row, "practice_authorized")? != 0,
        limits: json_list(&col::<String>(row, "limits")?, "seal limits")?,
        enterprise: col::<Option<String>>(row, "enterprise")?
            .map(|c| {
                seald_policy::CreditCode::parse(&c)
                    .map_err(|e| StoreError::Corrupt(format!("seal enterprise: {e}")))
            })
            .transpose()?,
    })
}

pub(super) async fn set_signing_password(
    conn: &mut SqliteConnection,
    employee: &str,
    hash: Option<&str>,
) -> Result<(), StoreError> {
    let done = sqlx::query(
        "UPDATE employees SET password_hash = ?, password_failures = 0, password_locked_until = NULL WHERE id = ?",
    )
    .bind(hash)
    .bind(employee)
    .execute(&mut *conn)
    .await
    .map_err(unavailable)?;
    if done.rows_affected() != 1 {
        return Err(StoreError::Conflict(format!(
            "there is no employee '{employee}'"
        )));
    }
    Ok(())
}

pub(super) async fn password_attempt(
    conn: &mut SqliteConnection,
    employee: &str,
    state: &PasswordState,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE employees SET password_failures = ?, password_locked_until = ? WHERE id = ?",
    )
    .bind(i64::from(state.failures))
    .bind(state.locked_until)
    .bind(employee)
    .execute(&mut *conn)
    .await
    .map_err(unavailable)?;
    Ok(())
}

pub(super) async fn signing_password(
    pool: &SqlitePool,
    employee: &str,
) -> Result<(Option<String>, PasswordState), StoreError> {
    let row = sqlx::query(
        "SELECT password_hash, password_failures, password_locked_until FROM employees WHERE id = ?",
    )
    .bind(employee)
    .fetch_optional(pool)
    .await
    .map_err(unavailable)?;
    let Some(row) = row else {
        return Ok((None, PasswordState::default()));
    };
    Ok((
        col(&row, "password_hash")?,
        PasswordState {
            failures: u32::try_from(col::<i64>(&row, "password_failures")?).unwrap_or(u32::MAX),
            locked_until: col(&row, "password_locked_until")?,
        },
    ))
}

pub(super) async fn contract_approvals(
    pool: &SqlitePool,
    document_id: &str,
) -> Result<Vec<ApprovalRequest>, StoreError> {
    let rows: Vec<String> = sqlx::query_scalar(
        "SELECT request FROM approval_requests WHERE scenario = 'contract_approval' AND state IN ('approved', 'pending') AND json_extract(request, '$.subject.document_id') = ? ORDER BY rowid",
    )
    .bind(document_id)
    .fetch_all(pool)
    .await
    .map_err(unavailable)?;
    rows.iter()
        .map(|r| json_list(r, "approval request"))
        .collect()
}

/// The caps are checked and the counts raised in the record's transaction (BEGIN IMMEDIATE:
/// one writer at a time), so concurrent signatures cannot pass a cap together. The checks are
/// seald-policy's, on the usage read inside the transaction.
pub(super) async fn consume_limits(
    conn: &mut SqliteConnection,
    c: &Consumption,
) -> Result<(), StoreError> {
    let usage = usage_on(conn, &c.seal, c.day, c.month, c.document_id.as_deref()).await?;
    let caps = seald_policy::limits::SealLimits {
        per_day: c.per_day,
        per_month: c.per_month,
        windows: Vec::new(),
    };
    let charge = seald_policy::limits::admit(&caps, c.quota, c.member.as_ref(), &usage)
        .map_err(|code| StoreError::Conflict(format!("seal '{}': {}", c.seal, code.explain())))?;
    sqlx::query(
        "INSERT INTO seal_usage (seal, day, count) VALUES (?, ?, 1) ON CONFLICT(seal, day) DO UPDATE SET count = count + 1",
    )
    .bind(&c.seal)
    .bind(c.day)
    .execute(&mut *conn)
    .await
    .map_err(unavailable)?;
    let Some(charge) = charge else {
        return Ok(());
    };
    match (&c.member, charge) {
        (Some(m), seald_policy::group::QuotaCharge::Member) => sqlx::query(
            "INSERT INTO member_quota_usage (member, day, count) VALUES (?, ?, 1) ON CONFLICT(member, day) DO UPDATE SET count = count + 1",
        )
        .bind(m.credit_code.as_str())
        .bind(c.day),
        _ => sqlx::query(
            "INSERT INTO quota_usage (day, count) VALUES (?, 1) ON CONFLICT(day) DO UPDATE SET count = count + 1",
        )
        .bind(c.day),
    }
    .execute(&mut *conn)
    .await
    .map_err(unavailable)?;
    if let Some(doc) = &c.document_id {
        sqlx::query("INSERT INTO quota_documents (document_id, day) VALUES (?, ?)")
            .bind(doc)
            .bind(c.day)
            .execute(&mut *conn)
            .await
            .map_err(unavailable)?;
    }
    Ok(())
}

/// The seal's signatures on `day` and in `month`, the contracts counted, and whether
/// `document_id` is one of them.
async fn usage_on(
    conn: &mut SqliteConnection,
    seal: &str,
    day: i64,
    month: (i64, i64),
    document_id: Option<&str>,
) -> Result<Usage, StoreError> {
    let (today, this_month): (i64, i64) = sqlx::query_as(
        "SELECT coalesce(sum(CASE WHEN day = ? THEN count END), 0), coalesce(sum(count), 0) FROM seal_usage WHERE seal = ? AND day BETWEEN ? AND ?",
    )
    .bind(day)
    .bind(seal)
    .bind(month.0)
    .bind(month.1)
    .fetch_one(&mut *conn)
    .await
    .map_err(unavailable)?;
    let used: i64 = sqlx::query_scalar("SELECT coalesce(sum(count), 0) FROM quota_usage")
        .fetch_one(&mut *conn)
        .await
        .map_err(unavailable)?;
    let counted = match document_id {
        Some(doc) => {
            sqlx::query_scalar::<_, i64>("SELECT day FROM quota_documents WHERE document_id = ?")
                .bind(doc)
                .fetch_optional(&mut *conn)
                .await
                .map_err(unavailable)?
                .is_some()
        }
        None => false,
    };
    // A group member's seal: what the member's own quota has counted.
    let member: Option<String> = sqlx::query_scalar("SELECT enterprise FROM seals WHERE id = ?")
        .bind(seal)
        .fetch_optional(&mut *conn)
        .await
        .map_err(unavailable)?
        .flatten();
    let member_used: i64 = match &member {
        Some(code) => sqlx::query_scalar(
            "SELECT coalesce(sum(count), 0) FROM member_quota_usage WHERE member = ?",
        )
        .bind(code)
        .fetch_one(&mut *conn)
        .await
        .map_err(unavailable)?,
        None => 0,
    };
    let n = |v: i64| u32::try_from(v.max(0)).unwrap_or(u32::MAX);
    Ok(Usage {
        seal_today: n(today),
        seal_this_month: n(this_month),
        contracts_used: used.max(0) as u64,
        member_contracts_used: member_used.max(0) as u64,
        document_counted: counted,
    })
}

pub(super) async fn usage(
    pool: &SqlitePool,
    seal: &str,
    at: LocalTime,
    document_id: Option<&str>,
) -> Result<Usage, StoreError> {
    let mut conn = pool.acquire().await.map_err(unavailable)?;
    usage_on(&mut conn, seal, at.day, at.month, document_id).await
}

pub(super) async fn quota_usage(pool: &SqlitePool) -> Result<Vec<(i64, u64)>, StoreError> {
    let rows: Vec<(i64, i64)> = sqlx::query_as("SELECT day, count FROM quota_usage ORDER BY day")
        .fetch_all(pool)
        .await
        .map_err(unavailable)?;
    Ok(rows
        .into_iter()
        .map(|(d, c)| (d, c.max(0) as u64))
        .collect())
}

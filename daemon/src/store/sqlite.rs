//! The SQLite store: one file under the data dir, WAL journal, `synchronous = FULL` (a record
//! is on disk before its signature is returned), embedded migrations.

use std::path::Path;
use std::str::FromStr;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use seald_audit::{Checkpoint, Decision, Entry, Record, GENESIS};
use seald_policy::{AppRole as Role, SealStatus};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Acquire, ConnectOptions, Row, Sqlite, SqliteConnection, Transaction};

use super::{
    governance, jobs, templates, Append, ApplicationRow, Change, Fut, IdempotencyRow, SealRow,
    Store, StoreError,
};

/// Schema versions, applied in order, each once.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../../migrations/0001_initial.sql")),
    (2, include_str!("../../migrations/0002_governance.sql")),
    (
        3,
        include_str!("../../migrations/0003_signing_password.sql"),
    ),
    (4, include_str!("../../migrations/0004_limits.sql")),
    (
        5,
        include_str!("../../migrations/0005_derived_password_flag.sql"),
    ),
    (6, include_str!("../../migrations/0006_templates_batch.sql")),
    (7, include_str!("../../migrations/0007_partners.sql")),
    (8, include_str!("../../migrations/0008_groups.sql")),
    (9, include_str!("../../migrations/0009_jobs.sql")),
    (
        10,
        include_str!("../../migrations/0010_job_output_file.sql"),
    ),
];

/// The store. It assumes it is the only writer of its database (one seald per data dir):
/// the chain's head is kept between appends.
#[derive(Debug)]
pub struct SqliteStore {
    pool: SqlitePool,
    head: Mutex<Option<(u64, String)>>,
}

pub(super) fn unavailable(e: sqlx::Error) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and brings its schema up to date.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str("sqlite://")
            .map_err(unavailable)?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        // Migrations run on a connection of their own, closed before the pool opens: sqlx
        // caches prepared statements per connection, and one prepared before an ALTER TABLE
        // would read rows with the old column count.
        let mut conn = options
            .connect()
            .await
            .map_err(|e| StoreError::Unavailable(format!("{}: {e}", path.display())))?;
        migrate(&mut conn).await?;
        sqlx::Connection::close(conn).await.map_err(unavailable)?;
        let pool = SqlitePoolOptions::new()
            // A local file: a broken connection shows on the statement itself, and a ping per
            // acquire is one more round trip to sqlx's worker thread for every batch.
            .test_before_acquire(false)
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await
            .map_err(|e| StoreError::Unavailable(format!("{}: {e}", path.display())))?;
        Ok(SqliteStore {
            pool,
            head: Mutex::new(None),
        })
    }
}

async fn migrate(conn: &mut SqliteConnection) -> Result<(), StoreError> {
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)",
    )
    .execute(&mut *conn)
    .await
    .map_err(unavailable)?;
    for (version, sql) in MIGRATIONS {
        let mut tx = conn.begin().await.map_err(unavailable)?;
        let done: Option<i64> =
            sqlx::query_scalar("SELECT version FROM schema_migrations WHERE version = ?")
                .bind(version)
                .fetch_optional(&mut *tx)
                .await
                .map_err(unavailable)?;
        if done.is_some() {
            continue;
        }
        sqlx::raw_sql(sql)
            .execute(&mut *tx)
            .await
            .map_err(|e| StoreError::Unavailable(format!("migration {version}: {e}")))?;
        sqlx::query(
            "INSERT INTO schema_migrations (version, applied_at) VALUES (?, datetime('now'))",
        )
        .bind(version)
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)?;
        tracing::info!(version, "database schema migrated");
    }
    Ok(())
}

pub(super) fn json_list<T: serde::de::DeserializeOwned>(
    text: &str,
    what: &str,
) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

pub(super) fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".to_owned())
}

pub(super) fn col<'r, T: sqlx::Decode<'r, Sqlite> + sqlx::Type<Sqlite>>(
    row: &'r SqliteRow,
    name: &str,
) -> Result<T, StoreError> {
    row.try_get(name)
        .map_err(|e| StoreError::Corrupt(format!("column {name}: {e}")))
}

fn application(row: &SqliteRow) -> Result<ApplicationRow, StoreError> {
    let templates: Option<String> = col(row, "templates")?;
    Ok(ApplicationRow {
        id: col(row, "id")?,
        name: col(row, "name")?,
        fingerprint: col(row, "fingerprint")?,
        certificate_pem: col(row, "certificate_pem")?,
        roles: json_list::<Vec<Role>>(&col::<String>(row, "roles")?, "roles")?,
        seals: json_list(&col::<String>(row, "seals")?, "seals")?,
        templates: templates.map(|t| json_list(&t, "templates")).transpose()?,
        enabled: col::<i64>(row, "enabled")? != 0,
        acts_for_employees: col::<i64>(row, "acts_for_employees")? != 0,
        partner: col(row, "partner")?,
        created_at: col(row, "created_at")?,
        updated_at: col(row, "updated_at")?,
    })
}

fn status_str(s: SealStatus) -> &'static str {
    s.as_str()
}

fn seal(row: &SqliteRow) -> Result<SealRow, StoreError> {
    let status: String = col(row, "status")?;
    Ok(SealRow {
        id: col(row, "id")?,
        name: col(row, "name")?,
        token: col(row, "token")?,
        key_label: col(row, "key_label")?,
        chain_pem: col(row, "chain_pem")?,
        image_png: col(row, "image_png")?,
        status: match status.as_str() {
            "pending_review" => SealStatus::PendingReview,
            "active" => SealStatus::Active,
            "disabled" => SealStatus::Disabled,
            "deleted" => SealStatus::Deleted,
            other => return Err(StoreError::Corrupt(format!("seal status '{other}'"))),
        },
        governance: governance::seal_governance(row)?,
        created_at: col(row, "created_at")?,
        updated_at: col(row, "updated_at")?,
    })
}

fn record(row: &SqliteRow) -> Result<Record, StoreError> {
    let seq: i64 = col(row, "seq")?;
    let decision: String = col(row, "decision")?;
    Ok(Record {
        seq: seq as u64,
        entry: Entry {
            time: col(row, "time")?,
            principal: col(row, "principal")?,
            action: col(row, "action")?,
            seal: col(row, "seal")?,
            document_id: col(row, "document_id")?,
            input_sha256: col(row, "input_sha256")?,
            output_sha256: col(row, "output_sha256")?,
            decision: Decision::parse(&decision).ok_or_else(|| {
                StoreError::Corrupt(format!(
                    "audit record {seq}: decision '{decision}' is not allowed, denied or failed"
                ))
            })?,
            reason: col(row, "reason")?,
            request_id: col(row, "request_id")?,
            detail: col(row, "detail")?,
        },
        prev_hash: col(row, "prev_hash")?,
        hash: col(row, "hash")?,
    })
}

pub(super) fn conflict_or_unavailable(e: sqlx::Error, what: &str) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            StoreError::Conflict(format!("{what} is already registered"))
        }
        _ => unavailable(e),
    }
}

/// Inserts `records` (already chained) in one statement.
async fn insert_records(conn: &mut SqliteConnection, records: &[Record]) -> Result<(), StoreError> {
    let sql = format!(
        "INSERT INTO audit_records (seq, time, principal, action, seal, document_id, input_sha256, output_sha256, decision, reason, request_id, detail, prev_hash, hash) VALUES {}",
        placeholders(records.len(), 14)
    );
    let mut insert = sqlx::query(&sql);
    for r in records {
        let e = &r.entry;
        insert = insert
            .bind(r.seq as i64)
            .bind(&e.time)
            .bind(&e.principal)
            .bind(&e.action)
            .bind(&e.seal)
            .bind(&e.document_id)
            .bind(&e.input_sha256)
            .bind(&e.output_sha256)
            .bind(e.decision.as_str())
            .bind(&e.reason)
            .bind(&e.request_id)
            .bind(&e.detail)
            .bind(&r.prev_hash)
            .bind(&r.hash);
    }
    insert.execute(conn).await.map(|_| ()).map_err(unavailable)
}

/// Inserts kept responses, each pointing at the record of its signature.
async fn insert_kept(
    conn: &mut SqliteConnection,
    kept: &[(&IdempotencyRow, &Record)],
) -> Result<(), StoreError> {
    let sql = format!(
        "INSERT INTO idempotency (application, key, body_sha256, audit_seq, audit_hash, output_path, output_sha256, created_at) VALUES {}",
        placeholders(kept.len(), 8)
    );
    let mut insert = sqlx::query(&sql);
    for (row, r) in kept {
        insert = insert
            .bind(&row.application)
            .bind(&row.key)
            .bind(&row.body_sha256)
            .bind(r.seq as i64)
            .bind(&r.hash)
            .bind(&row.output_path)
            .bind(&row.output_sha256)
            .bind(row.created_at);
    }
    insert
        .execute(conn)
        .await
        .map(|_| ())
        .map_err(|e| conflict_or_unavailable(e, "an Idempotency-Key"))
}

async fn apply(
    tx: &mut Transaction<'_, Sqlite>,
    head: &(u64, String),
    item: Append,
) -> Result<Record, StoreError> {
    let change = item.change;
    let record = Record::chain(head.0, &head.1, item.entry);
    insert_records(tx, std::slice::from_ref(&record)).await?;
    let changes = match &change {
        Change::Many(all) => all.iter().collect(),
        one => vec![one],
    };
    for change in changes {
        apply_one(tx, &record, change).await?;
    }
    Ok(record)
}

async fn apply_one(
    tx: &mut Transaction<'_, Sqlite>,
    record: &Record,
    change: &Change,
) -> Result<(), StoreError> {
    match change {
        Change::None => {}
        Change::PutApplication(a) => {
            sqlx::query(
                "INSERT INTO applications (id, name, fingerprint, certificate_pem, roles, seals, templates, enabled, acts_for_employees, partner, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
                 ON CONFLICT(id) DO UPDATE SET name = excluded.name, fingerprint = excluded.fingerprint, certificate_pem = excluded.certificate_pem, roles = excluded.roles, seals = excluded.seals, templates = excluded.templates, enabled = excluded.enabled, acts_for_employees = excluded.acts_for_employees, partner = excluded.partner, updated_at = excluded.updated_at",
            )
            .bind(&a.id)
            .bind(&a.name)
            .bind(&a.fingerprint)
            .bind(&a.certificate_pem)
            .bind(to_json(&a.roles))
            .bind(to_json(&a.seals))
            .bind(a.templates.as_ref().map(to_json))
            .bind(i64::from(a.enabled))
            .bind(i64::from(a.acts_for_employees))
            .bind(&a.partner)
            .bind(&a.created_at)
            .bind(&a.updated_at)
            .execute(&mut **tx)
            .await
            .map_err(|e| conflict_or_unavailable(e, "this certificate"))?;
        }
        Change::PutSeal(s) => {
            sqlx::query(
                "INSERT INTO seals (id, name, token, key_label, chain_pem, image_png, status, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) \
                 ON CONFLICT(id) DO UPDATE SET name = excluded.name, token = excluded.token, key_label = excluded.key_label, chain_pem = excluded.chain_pem, image_png = excluded.image_png, status = excluded.status, updated_at = excluded.updated_at",
            )
            .bind(&s.id)
            .bind(&s.name)
            .bind(&s.token)
            .bind(&s.key_label)
            .bind(&s.chain_pem)
            .bind(&s.image_png)
            .bind(status_str(s.status))
            .bind(&s.created_at)
            .bind(&s.updated_at)
            .execute(&mut **tx)
            .await
            .map_err(|e| conflict_or_unavailable(e, "this seal"))?;
            governance::put_seal_policy(tx, &s.policy(), &s.updated_at).await?;
        }
        Change::Idempotency(row) => insert_kept(tx, &[(row, record)]).await?,
        Change::Org(org) => governance::put_org(tx, org).await?,
        Change::SealPolicy { seal, updated_at } => {
            governance::put_seal_policy(tx, seal, updated_at).await?
        }
        Change::PutFlow(flow) => governance::put_flow(tx, flow).await?,
        Change::PutApproval(r) => governance::put_approval(tx, r).await?,
        Change::PutGrant(g) => governance::put_grant(tx, g).await?,
        Change::ConsumeGrant { id, sha256, now } => {
            governance::consume_grant(tx, id, sha256, *now).await?
        }
        Change::SigningPassword { employee, hash } => {
            governance::set_signing_password(tx, employee, hash.as_deref()).await?
        }
        Change::PasswordAttempt { employee, state } => {
            governance::password_attempt(tx, employee, state).await?
        }
        Change::ConsumeLimits(c) => governance::consume_limits(tx, c).await?,
        Change::PutTemplate { template, pdf } => {
            templates::put_template(tx, template, pdf.as_deref()).await?
        }
        Change::DeleteTemplate(id) => templates::delete_template(tx, id).await?,
        Change::OpenBatch {
            confirmation,
            token_sha256,
        } => templates::open_batch(tx, confirmation, token_sha256).await?,
        Change::ConsumeBatch { id, now } => templates::consume_batch(tx, id, *now).await?,
        Change::CloseBatch { id, now } => templates::close_batch(tx, id, *now).await?,
        Change::PutPartnerAuthorization(a) => templates::put_partner_authorization(tx, a).await?,
        Change::PutInvitation {
            invitation,
            token_sha256,
        } => templates::put_invitation(tx, invitation, token_sha256).await?,
        Change::AcceptInvitation(invitation) => {
            templates::accept_invitation(tx, invitation).await?
        }
        Change::PutJob(j) => jobs::put_job(tx, j).await?,
        Change::DeleteJob { id, before } => jobs::delete_job(tx, id, *before).await?,
        Change::JobStatus {
            id,
            from,
            to,
            error,
            now,
        } => jobs::set_status(tx, id, from, *to, error.as_deref(), *now).await?,
        Change::SealJobRow { .. } => {
            let sealed: Vec<_> = jobs::Sealed::of(change, record.seq).into_iter().collect();
            jobs::seal_rows(tx, &sealed).await?
        }
        Change::Many(_) => {
            return Err(StoreError::Corrupt(
                "a change of changes inside another".to_owned(),
            ))
        }
    }
    Ok(())
}

/// The newest record's sequence number and hash (0 and the genesis hash for none).
async fn read_head<'e, E: sqlx::Executor<'e, Database = Sqlite>>(
    executor: E,
) -> Result<(u64, String), StoreError> {
    let row = sqlx::query("SELECT seq, hash FROM audit_records ORDER BY seq DESC LIMIT 1")
        .fetch_optional(executor)
        .await
        .map_err(unavailable)?;
    match row {
        Some(r) => Ok((col::<i64>(&r, "seq")? as u64, col(&r, "hash")?)),
        None => Ok((0, GENESIS.to_owned())),
    }
}

/// `(?, ?, …), (?, ?, …), …`: `rows` groups of `columns` placeholders.
pub(super) fn placeholders(rows: usize, columns: usize) -> String {
    let one = format!("({})", vec!["?"; columns].join(", "));
    vec![one; rows].join(", ")
}

impl SqliteStore {
    /// One transaction, one multi-row insert of the records (and of kept responses), one
    /// head update. The write lock is taken at BEGIN, so nothing can slip in between.
    async fn append_simple(&self, batch: &[Append]) -> Result<Vec<Record>, StoreError> {
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(unavailable)?;
        let (mut seq, mut hash) = match self.cached_head() {
            Some(head) => head,
            None => read_head(&mut *tx).await?,
        };
        let mut records = Vec::with_capacity(batch.len());
        for item in batch {
            let record = Record::chain(seq, &hash, item.entry.clone());
            (seq, hash) = (record.seq, record.hash.clone());
            records.push(record);
        }
        insert_records(&mut tx, &records).await?;
        let kept: Vec<(&IdempotencyRow, &Record)> = batch
            .iter()
            .zip(&records)
            .filter_map(|(a, r)| match &a.change {
                Change::Idempotency(row) => Some((row, r)),
                _ => None,
            })
            .collect();
        if !kept.is_empty() {
            insert_kept(&mut tx, &kept).await?;
        }
        let sealed: Vec<jobs::Sealed<'_>> = batch
            .iter()
            .zip(&records)
            .filter_map(|(a, r)| jobs::Sealed::of(&a.change, r.seq))
            .collect();
        if !sealed.is_empty() {
            // A row not pending (sealed already) is a conflict: the whole batch is rolled
            // back and goes again item by item, where that row alone fails.
            jobs::seal_rows(&mut tx, &sealed).await?;
        }
        tx.commit().await.map_err(unavailable)?;
        self.set_head(Some((seq, hash)));
        Ok(records)
    }

    /// Item by item, each in a savepoint, so that one failing change fails alone.
    async fn append_each(
        &self,
        batch: Vec<Append>,
    ) -> Result<Vec<Result<Record, StoreError>>, StoreError> {
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(unavailable)?;
        let mut head = match self.cached_head() {
            Some(head) => head,
            None => read_head(&mut *tx).await?,
        };
        let mut results = Vec::with_capacity(batch.len());
        for item in batch {
            let mut savepoint = (&mut *tx).begin().await.map_err(unavailable)?;
            match apply(&mut savepoint, &head, item).await {
                Ok(record) => {
                    savepoint.commit().await.map_err(unavailable)?;
                    head = (record.seq, record.hash.clone());
                    results.push(Ok(record));
                }
                Err(e) => {
                    savepoint.rollback().await.map_err(unavailable)?;
                    results.push(Err(e));
                }
            }
        }
        tx.commit().await.map_err(unavailable)?;
        self.set_head(Some(head));
        Ok(results)
    }

    /// The head as of the last commit of this process; `None` until known, and after any
    /// failure (it is then read again from the records).
    fn cached_head(&self) -> Option<(u64, String)> {
        self.head
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn set_head(&self, head: Option<(u64, String)>) {
        *self.head.lock().unwrap_or_else(PoisonError::into_inner) = head;
    }
}

impl Store for SqliteStore {
    fn org(&self) -> Fut<'_, Option<seald_policy::Org>> {
        Box::pin(governance::org(&self.pool))
    }

    fn flows(&self) -> Fut<'_, Vec<seald_policy::Flow>> {
        Box::pin(governance::flows(&self.pool))
    }

    fn approval<'a>(&'a self, id: &'a str) -> Fut<'a, Option<seald_policy::ApprovalRequest>> {
        Box::pin(governance::approval(&self.pool, id))
    }

    fn pending_approvals(&self) -> Fut<'_, Vec<seald_policy::ApprovalRequest>> {
        Box::pin(governance::pending_approvals(&self.pool))
    }

    fn grants_for<'a>(
        &'a self,
        employee: &'a str,
        seal: &'a str,
    ) -> Fut<'a, Vec<seald_policy::Grant>> {
        Box::pin(governance::grants_for(&self.pool, employee, seal))
    }

    fn templates(&self) -> Fut<'_, Vec<seald_policy::Template>> {
        Box::pin(templates::templates(&self.pool))
    }

    fn template_pdf<'a>(&'a self, sha256: &'a str) -> Fut<'a, Option<Vec<u8>>> {
        Box::pin(templates::template_pdf(&self.pool, sha256))
    }

    fn batch_confirmation<'a>(
        &'a self,
        token_sha256: &'a str,
    ) -> Fut<'a, Option<seald_policy::batch::BatchConfirmation>> {
        Box::pin(templates::batch_confirmation(&self.pool, token_sha256))
    }

    fn batch_confirmation_by_id<'a>(
        &'a self,
        id: &'a str,
    ) -> Fut<'a, Option<seald_policy::batch::BatchConfirmation>> {
        Box::pin(templates::batch_confirmation_by_id(&self.pool, id))
    }

    fn partner_authorizations<'a>(
        &'a self,
        partner: Option<&'a str>,
    ) -> Fut<'a, Vec<seald_policy::partner::PartnerAuthorization>> {
        Box::pin(templates::partner_authorizations(&self.pool, partner))
    }

    fn invitation<'a>(
        &'a self,
        token_sha256: &'a str,
    ) -> Fut<'a, Option<seald_policy::partner::PartnerInvitation>> {
        Box::pin(templates::invitation(&self.pool, token_sha256))
    }

    fn insert_job_rows<'a>(&'a self, job: &'a str, rows: &'a [super::JobRow]) -> Fut<'a, ()> {
        Box::pin(jobs::insert_rows(&self.pool, job, rows))
    }

    fn job<'a>(&'a self, id: &'a str) -> Fut<'a, Option<super::JobRecord>> {
        Box::pin(jobs::get_job(&self.pool, id))
    }

    fn jobs_in(&self, status: super::JobStatus) -> Fut<'_, Vec<super::JobRecord>> {
        Box::pin(jobs::jobs_in(&self.pool, status.as_str()))
    }

    fn job_rows<'a>(
        &'a self,
        job: &'a str,
        status: Option<super::JobRowStatus>,
        after: u64,
        limit: u32,
    ) -> Fut<'a, Vec<super::JobRow>> {
        Box::pin(jobs::rows(
            &self.pool,
            job,
            status.map(|s| s.as_str()),
            after,
            limit,
        ))
    }

    fn job_counts<'a>(&'a self, job: &'a str) -> Fut<'a, super::JobCounts> {
        Box::pin(jobs::counts(&self.pool, job))
    }

    fn signing_password<'a>(
        &'a self,
        employee: &'a str,
    ) -> Fut<'a, (Option<String>, seald_policy::password::PasswordState)> {
        Box::pin(governance::signing_password(&self.pool, employee))
    }

    fn usage<'a>(
        &'a self,
        seal: &'a str,
        at: seald_policy::limits::LocalTime,
        document_id: Option<&'a str>,
    ) -> Fut<'a, seald_policy::limits::Usage> {
        Box::pin(governance::usage(&self.pool, seal, at, document_id))
    }

    fn quota_usage(&self) -> Fut<'_, Vec<(i64, u64)>> {
        Box::pin(governance::quota_usage(&self.pool))
    }

    fn contract_approvals<'a>(
        &'a self,
        document_id: &'a str,
    ) -> Fut<'a, Vec<seald_policy::ApprovalRequest>> {
        Box::pin(governance::contract_approvals(&self.pool, document_id))
    }

    fn ping(&self) -> Fut<'_, ()> {
        Box::pin(async move {
            sqlx::query("SELECT 1")
                .execute(&self.pool)
                .await
                .map(|_| ())
                .map_err(unavailable)
        })
    }

    fn applications(&self) -> Fut<'_, Vec<ApplicationRow>> {
        Box::pin(async move {
            let rows = sqlx::query("SELECT * FROM applications ORDER BY id")
                .fetch_all(&self.pool)
                .await
                .map_err(unavailable)?;
            rows.iter().map(application).collect()
        })
    }

    fn seals(&self) -> Fut<'_, Vec<SealRow>> {
        Box::pin(async move {
            let rows = sqlx::query("SELECT * FROM seals ORDER BY id")
                .fetch_all(&self.pool)
                .await
                .map_err(unavailable)?;
            rows.iter().map(seal).collect()
        })
    }

    fn idempotency<'a>(
        &'a self,
        application: &'a str,
        key: &'a str,
    ) -> Fut<'a, Option<IdempotencyRow>> {
        Box::pin(async move {
            let row = sqlx::query("SELECT * FROM idempotency WHERE application = ? AND key = ?")
                .bind(application)
                .bind(key)
                .fetch_optional(&self.pool)
                .await
                .map_err(unavailable)?;
            row.map(|r| {
                Ok(IdempotencyRow {
                    application: col(&r, "application")?,
                    key: col(&r, "key")?,
                    body_sha256: col(&r, "body_sha256")?,
                    audit_seq: col::<i64>(&r, "audit_seq")? as u64,
                    audit_hash: col(&r, "audit_hash")?,
                    output_path: col(&r, "output_path")?,
                    output_sha256: col(&r, "output_sha256")?,
                    created_at: col(&r, "created_at")?,
                })
            })
            .transpose()
        })
    }

    fn expire_idempotency(&self, before: i64) -> Fut<'_, Vec<String>> {
        Box::pin(async move {
            let paths: Vec<String> = sqlx::query_scalar(
                "DELETE FROM idempotency WHERE created_at < ? RETURNING output_path",
            )
            .bind(before)
            .fetch_all(&self.pool)
            .await
            .map_err(unavailable)?;
            Ok(paths)
        })
    }

    fn append(&self, batch: Vec<Append>) -> Fut<'_, Vec<Result<Record, StoreError>>> {
        Box::pin(async move {
            // Signatures, refusals and sealed job rows (the bulk) go in with a few statements
            // per batch; a batch with an administrative change, or one that conflicts, item by
            // item.
            let simple = batch.iter().all(|a| {
                matches!(
                    a.change,
                    Change::None | Change::Idempotency(_) | Change::SealJobRow { .. }
                )
            });
            if simple {
                match self.append_simple(&batch).await {
                    Ok(records) => return Ok(records.into_iter().map(Ok).collect()),
                    Err(StoreError::Conflict(_)) => {}
                    Err(e) => {
                        self.set_head(None);
                        return Err(e);
                    }
                }
            }
            let results = self.append_each(batch).await;
            if results.is_err() {
                self.set_head(None);
            }
            results
        })
    }

    fn head(&self) -> Fut<'_, (u64, String)> {
        Box::pin(async move { read_head(&self.pool).await })
    }

    fn records(&self, after: u64, limit: u32) -> Fut<'_, Vec<Record>> {
        Box::pin(async move {
            let rows =
                sqlx::query("SELECT * FROM audit_records WHERE seq > ? ORDER BY seq LIMIT ?")
                    .bind(after as i64)
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await
                    .map_err(unavailable)?;
            rows.iter().map(record).collect()
        })
    }

    fn first_seq_since<'a>(&'a self, time: &'a str) -> Fut<'a, u64> {
        Box::pin(async move {
            let seq: Option<i64> =
                sqlx::query_scalar("SELECT MIN(seq) FROM audit_records WHERE time >= ?")
                    .bind(time)
                    .fetch_one(&self.pool)
                    .await
                    .map_err(unavailable)?;
            Ok(seq.map(|s| s as u64).unwrap_or(u64::MAX))
        })
    }

    fn add_checkpoint(&self, checkpoint: Checkpoint) -> Fut<'_, ()> {
        Box::pin(async move {
            sqlx::query(
                "INSERT OR IGNORE INTO audit_checkpoints (seq, head_hash, time, signature) VALUES (?, ?, ?, ?)",
            )
            .bind(checkpoint.seq as i64)
            .bind(&checkpoint.head_hash)
            .bind(&checkpoint.time)
            .bind(&checkpoint.signature)
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(unavailable)
        })
    }

    fn latest_checkpoint(&self) -> Fut<'_, Option<u64>> {
        Box::pin(async move {
            let seq: Option<i64> = sqlx::query_scalar("SELECT MAX(seq) FROM audit_checkpoints")
                .fetch_one(&self.pool)
                .await
                .map_err(unavailable)?;
            Ok(seq.map(|s| s as u64))
        })
    }

    fn checkpoints(&self) -> Fut<'_, Vec<Checkpoint>> {
        Box::pin(async move {
            let rows = sqlx::query("SELECT * FROM audit_checkpoints ORDER BY seq")
                .fetch_all(&self.pool)
                .await
                .map_err(unavailable)?;
            rows.iter()
                .map(|r| {
                    Ok(Checkpoint {
                        seq: col::<i64>(r, "seq")? as u64,
                        head_hash: col(r, "head_hash")?,
                        time: col(r, "time")?,
                        signature: col(r, "signature")?,
                    })
                })
                .collect()
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An allowed `sign` record, told apart by `n`.
    pub(crate) fn entry(n: u32) -> Entry {
        Entry {
            time: format!("2026-12-01T00:00:{n:02}.000Z"),
            principal: "erp".to_owned(),
            action: "sign".to_owned(),
            seal: Some("contract".to_owned()),
            document_id: None,
            input_sha256: None,
            output_sha256: None,
            decision: Decision::Allowed,
            reason: None,
            request_id: format!("r{n}"),
            detail: None,
        }
    }

    #[tokio::test]
    async fn a_failed_item_leaves_no_record_and_the_chain_goes_on() {
        let dir = tempfile::tempdir().expect("dir");
        let store = SqliteStore::open(&dir.path().join("t.db"))
            .await
            .expect("open");
        let missing = Change::SealPolicy {
            seal: Box::new(seald_policy::Seal::registered("nope", SealStatus::Disabled)),
            updated_at: "x".to_owned(),
        };
        let results = store
            .append(vec![
                Append {
                    entry: entry(1),
                    change: Change::None,
                },
                Append {
                    entry: entry(2),
                    change: missing,
                },
                Append {
                    entry: entry(3),
                    change: Change::None,
                },
            ])
            .await
            .expect("batch");
        assert!(results[0].is_ok() && results[2].is_ok());
        assert!(
            matches!(results[1], Err(StoreError::Conflict(_))),
            "{:?}",
            results[1]
        );
        let records = store.records(0, 10).await.expect("records");
        assert_eq!(records.len(), 2);
        let mut v = seald_audit::ChainVerifier::new([]);
        for r in &records {
            v.push(r).expect("chained");
        }
        assert_eq!(store.head().await.expect("head").0, 2);
        // A batch of signatures goes in at once; a conflicting kept response fails alone.
        let kept = |key: &str| {
            Change::Idempotency(IdempotencyRow {
                application: "erp".to_owned(),
                key: key.to_owned(),
                body_sha256: "aa".repeat(32),
                audit_seq: 0,
                audit_hash: String::new(),
                output_path: format!("{key}.pdf"),
                output_sha256: "bb".repeat(32),
                created_at: 1,
            })
        };
        let results = store
            .append(vec![
                Append {
                    entry: entry(4),
                    change: kept("k1"),
                },
                Append {
                    entry: entry(5),
                    change: Change::None,
                },
            ])
            .await
            .expect("simple batch");
        assert!(results.iter().all(Result::is_ok));
        let row = store
            .idempotency("erp", "k1")
            .await
            .expect("lookup")
            .expect("kept");
        assert_eq!(row.audit_seq, 3);
        let results = store
            .append(vec![
                Append {
                    entry: entry(6),
                    change: kept("k2"),
                },
                Append {
                    entry: entry(7),
                    change: kept("k1"),
                },
            ])
            .await
            .expect("conflicting batch");
        assert!(results[0].is_ok());
        assert!(
            matches!(results[1], Err(StoreError::Conflict(_))),
            "{results:?}"
        );
        let records = store.records(0, 10).await.expect("records");
        assert_eq!(records.len(), 5);
        let mut v = seald_audit::ChainVerifier::new([]);
        for r in &records {
            v.push(r).expect("chained");
        }
        assert_eq!(store.head().await.expect("head").0, 5);
        assert_eq!(store.latest_checkpoint().await.expect("latest"), None);
        for seq in [2, 5] {
            store
                .add_checkpoint(Checkpoint {
                    seq,
                    head_hash: "cc".repeat(32),
                    time: "t".to_owned(),
                    signature: vec![1],
                })
                .await
                .expect("checkpoint");
        }
        assert_eq!(store.latest_checkpoint().await.expect("latest"), Some(5));
        // Reopening applies no migration twice and keeps the data.
        drop(store);
        let store = SqliteStore::open(&dir.path().join("t.db"))
            .await
            .expect("reopen");
        assert_eq!(store.records(0, 10).await.expect("records").len(), 5);
    }

    #[tokio::test]
    async fn a_single_use_grant_is_consumed_once_even_within_one_batch() {
        use seald_policy::flow::{SealUse, Subject};
        let dir = tempfile::tempdir().expect("dir");
        let store = SqliteStore::open(&dir.path().join("t.db"))
            .await
            .expect("open");
        let sha = "ab".repeat(32);
        let request = seald_policy::ApprovalRequest {
            id: "a1".to_owned(),
            submitter: "bob".to_owned(),
            subject: Subject::SealUse(SealUse {
                seal: "contract".to_owned(),
                document_id: "d1".to_owned(),
                document_sha256: sha.clone(),
                uses: 1,
                valid_until: 2_000_000_000,
            }),
            reason: String::new(),
            flow: seald_policy::Flow::default_for(seald_policy::Scenario::SealUse),
            state: seald_policy::ApprovalState::Approved,
            node: 0,
            approved_by: vec![],
            history: vec![],
            submitted_at: 0,
            expires_at: 1,
        };
        let grant = seald_policy::Grant::from_approved(&request, "g1").expect("approved");
        let setup = Change::Many(vec![
            Change::PutApproval(Box::new(request)),
            Change::PutGrant(grant),
        ]);
        let consume = |sha: &str| Change::ConsumeGrant {
            id: "g1".to_owned(),
            sha256: sha.to_owned(),
            now: 1_900_000_000,
        };
        let item = |n, change| Append {
            entry: entry(n),
            change,
        };
        let results = store
            .append(vec![
                item(1, setup),
                item(2, consume(&"cd".repeat(32))),
                item(3, consume(&sha)),
                item(4, consume(&sha)),
            ])
            .await
            .expect("batch");
        assert!(results[0].is_ok(), "{:?}", results[0]);
        assert!(
            matches!(results[1], Err(StoreError::Conflict(_))),
            "another document"
        );
        assert!(results[2].is_ok(), "{:?}", results[2]);
        assert!(
            matches!(results[3], Err(StoreError::Conflict(_))),
            "used up"
        );
        let left = store.grants_for("bob", "contract").await.expect("grants");
        assert_eq!(left[0].uses_left, 0);
        assert_eq!(store.records(0, 10).await.expect("records").len(), 2);
    }
}

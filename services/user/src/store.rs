//! UserDB access for accounts and linked provider identities.

use chrono::{DateTime, Utc};
use contracts::events::UserRegistered;
use platform::auth::Role;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

/// An account as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct User {
    /// Its id.
    pub id: Uuid,
    /// Normalized email.
    pub email: String,
    /// Display name.
    pub name: String,
    /// Phone in E.164.
    pub phone: Option<String>,
    /// argon2id PHC string, absent for social-only accounts.
    pub password_hash: Option<String>,
    /// Role names.
    pub roles: Vec<String>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// Whether the account proved it owns its email (social email links reach only these).
    pub email_verified: bool,
    /// Made by a sandbox identity.
    pub sandbox: bool,
}

impl User {
    /// The roles it holds (unknown names are ignored).
    pub fn roles(&self) -> Vec<Role> {
        let mut roles: Vec<Role> = self.roles.iter().filter_map(|r| Role::parse(r)).collect();
        roles.sort();
        roles.dedup();
        roles
    }
}

/// A new account.
#[derive(Debug)]
pub struct NewUser<'a> {
    /// Normalized email.
    pub email: &'a str,
    /// Display name.
    pub name: &'a str,
    /// Phone in E.164.
    pub phone: Option<&'a str>,
    /// PHC string, if the account has a password.
    pub password_hash: Option<&'a str>,
    /// Its roles.
    pub roles: &'a [Role],
}

/// Why an account could not be created.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    /// An account with that email exists.
    #[error("email taken")]
    EmailTaken,
    /// UserDB failed.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    /// The outbox write failed.
    #[error(transparent)]
    Outbox(#[from] platform::bus::BusError),
}

const COLUMNS: &str =
    "id, email, name, phone, password_hash, roles, created_at, email_verified, sandbox";

fn role_names(roles: &[Role]) -> Vec<String> {
    roles.iter().map(|r| r.as_str().to_owned()).collect()
}

/// Inserts an account and its `user.registered` event in `conn`'s transaction.
pub async fn create(conn: &mut PgConnection, new: &NewUser<'_>) -> Result<User, CreateError> {
    let inserted: Option<User> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO users (id, email, name, phone, password_hash, roles)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (email) DO NOTHING
         RETURNING {COLUMNS}"
    )))
    .bind(Uuid::now_v7())
    .bind(new.email)
    .bind(new.name)
    .bind(new.phone)
    .bind(new.password_hash)
    .bind(role_names(new.roles))
    .fetch_optional(&mut *conn)
    .await?;
    let user = inserted.ok_or(CreateError::EmailTaken)?;
    platform::bus::outbox::enqueue(
        &mut *conn,
        &UserRegistered {
            user_id: user.id,
            email: user.email.clone(),
            name: user.name.clone(),
            phone: user.phone.clone(),
        },
    )
    .await?;
    Ok(user)
}

/// The account with this id, on a pool or on a connection already held (a transaction).
pub async fn by_id<'e>(
    db: impl sqlx::PgExecutor<'e>,
    id: Uuid,
) -> Result<Option<User>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM users WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(db)
    .await
}

/// The account with this normalized email.
pub async fn by_email(conn: &mut PgConnection, email: &str) -> Result<Option<User>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM users WHERE email = $1"
    )))
    .bind(email)
    .fetch_optional(conn)
    .await
}

/// Sets name and/or phone (`Some(None)` clears the phone); returns the updated account.
pub async fn update_profile(
    pool: &PgPool,
    id: Uuid,
    name: Option<&str>,
    phone: Option<Option<&str>>,
) -> Result<Option<User>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE users SET
            name = COALESCE($2, name),
            phone = CASE WHEN $3 THEN $4 ELSE phone END,
            updated_at = now()
         WHERE id = $1
         RETURNING {COLUMNS}"
    )))
    .bind(id)
    .bind(name)
    .bind(phone.is_some())
    .bind(phone.flatten())
    .fetch_optional(pool)
    .await
}

/// Replaces the password hash.
pub async fn set_password(
    conn: &mut PgConnection,
    id: Uuid,
    password_hash: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE users SET password_hash = $2, updated_at = now() WHERE id = $1")
        .bind(id)
        .bind(password_hash)
        .execute(conn)
        .await
        .map(|_| ())
}

/// Replaces the password hash if it is still `current` (`None`: no password yet); `false` when
/// another change got there first.
pub async fn replace_password(
    conn: &mut PgConnection,
    id: Uuid,
    current: Option<&str>,
    password_hash: &str,
) -> Result<bool, sqlx::Error> {
    sqlx::query(
        "UPDATE users SET password_hash = $3, updated_at = now()
         WHERE id = $1 AND password_hash IS NOT DISTINCT FROM $2",
    )
    .bind(id)
    .bind(current)
    .bind(password_hash)
    .execute(conn)
    .await
    .map(|done| done.rows_affected() == 1)
}

/// Replaces the roles; returns the updated account. When a role is taken away, every session of
/// the account is revoked in the same transaction: a refresh token must not outlive an
/// administrator's reset (the user signs in again). A grant keeps the sessions; the next refresh
/// carries the new role.
pub async fn set_roles(
    pool: &PgPool,
    id: Uuid,
    roles: &[Role],
) -> Result<Option<User>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let old: Option<Vec<String>> =
        sqlx::query_scalar("SELECT roles FROM users WHERE id = $1 FOR UPDATE")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
    let Some(old) = old else {
        return Ok(None);
    };
    let new = role_names(roles);
    sqlx::query("UPDATE users SET roles = $2, updated_at = now() WHERE id = $1")
        .bind(id)
        .bind(&new)
        .execute(&mut *tx)
        .await?;
    if old.iter().any(|r| !new.contains(r)) {
        let revoked = crate::tokens::revoke_user(&mut tx, id, None).await?;
        tracing::info!(user_id = %id, revoked, "a role was taken away; sessions revoked");
    }
    let user = by_id(&mut *tx, id).await?;
    tx.commit().await?;
    Ok(user)
}

/// A provider account's link, with its user.
#[derive(Debug, Clone)]
pub struct Linked {
    /// The user it signs in to.
    pub user: User,
    /// Whether the identity came from a sandbox provider.
    pub sandbox: bool,
}

/// The user linked to a provider account.
pub async fn by_identity(
    conn: &mut PgConnection,
    provider: &str,
    subject: &str,
) -> Result<Option<Linked>, sqlx::Error> {
    #[derive(sqlx::FromRow)]
    struct Row {
        #[sqlx(flatten)]
        user: User,
        identity_sandbox: bool,
    }
    let row: Option<Row> = sqlx::query_as(
        "SELECT u.id, u.email, u.name, u.phone, u.password_hash, u.roles, u.created_at,
                u.email_verified, u.sandbox, i.sandbox AS identity_sandbox
         FROM identities i JOIN users u ON u.id = i.user_id
         WHERE i.provider = $1 AND i.subject = $2",
    )
    .bind(provider)
    .bind(subject)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|r| Linked {
        user: r.user,
        sandbox: r.identity_sandbox,
    }))
}

/// A provider account to link.
#[derive(Debug)]
pub struct NewIdentity<'a> {
    /// `kakao`, `naver`, `google`.
    pub provider: &'a str,
    /// The provider's id of the account.
    pub subject: &'a str,
    /// The email it reported.
    pub email: Option<&'a str>,
    /// Whether it came from a sandbox provider.
    pub sandbox: bool,
}

/// Links a provider account to a user; `false` when that provider account is already linked
/// (to anyone).
pub async fn link_identity(
    conn: &mut PgConnection,
    identity: &NewIdentity<'_>,
    user_id: Uuid,
) -> Result<bool, sqlx::Error> {
    sqlx::query(
        "INSERT INTO identities (provider, subject, user_id, email, sandbox)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (provider, subject) DO NOTHING",
    )
    .bind(identity.provider)
    .bind(identity.subject)
    .bind(user_id)
    .bind(identity.email)
    .bind(identity.sandbox)
    .execute(conn)
    .await
    .map(|done| done.rows_affected() == 1)
}

/// Records how a new account proved (or did not prove) its email, and whether a sandbox made it.
pub async fn set_origin(
    conn: &mut PgConnection,
    id: Uuid,
    email_verified: bool,
    sandbox: bool,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE users SET email_verified = $2, sandbox = $3 WHERE id = $1")
        .bind(id)
        .bind(email_verified)
        .bind(sandbox)
        .execute(conn)
        .await
        .map(|_| ())
}

/// Marks the account's email verified (its owner, logged in, linked a provider that vouches for
/// that very address).
pub async fn set_email_verified(conn: &mut PgConnection, id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE users SET email_verified = true, updated_at = now() WHERE id = $1")
        .bind(id)
        .execute(conn)
        .await
        .map(|_| ())
}

/// Removes every provider account linked to the user; returns how many.
pub async fn unlink_all(conn: &mut PgConnection, user_id: Uuid) -> Result<u64, sqlx::Error> {
    sqlx::query("DELETE FROM identities WHERE user_id = $1")
        .bind(user_id)
        .execute(conn)
        .await
        .map(|d| d.rows_affected())
}

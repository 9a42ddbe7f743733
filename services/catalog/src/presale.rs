//! Presale audiences (선예매): who may hold in a performance's presale windows (sale windows of
//! kind `presale`) before its general sale opens — the members of one organizer-managed group,
//! or the holders of access codes — and the presale's own per-person limit. Published with the
//! performance as [`PresaleRules`]; the seat service enforces them where holds are made.
//!
//! Member groups are the organizer's: accounts added by id. Access codes are generated here,
//! shown once, and stored only as [`presale_code_hash`]es; the seat service binds each to the
//! first account that uses it.

use chrono::{DateTime, Utc};
use contracts::tickets::{PresaleRules, PresaleWindow, presale_code_hash};
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, Row};
use uuid::Uuid;

/// Most accounts in a member group: the group's ids travel in the publication's header
/// (16-byte ids, about 40 bytes of JSON each, within the bus's 256 KiB message).
pub const MAX_MEMBERS: i64 = 4_000;
/// Most access codes of one performance (64 hex characters each in the header).
pub const MAX_CODES: i64 = 3_000;

/// A member group as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct GroupView {
    /// Group id.
    pub id: Uuid,
    /// Name.
    pub name: String,
    /// The organizer who manages it (absent: an admin's).
    pub organizer_id: Option<Uuid>,
    /// How many accounts it has.
    pub member_count: i64,
}

/// A performance's presale audience as buyers and organizers see it.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PresaleView {
    /// The performance.
    pub performance_id: Uuid,
    /// `members` (of `group_name`) or `access_codes`.
    pub audience: String,
    /// The member group's name (members' presales).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_name: Option<String>,
    /// Most tickets per buyer in the presale.
    pub ticket_limit: i32,
    /// When the general sale opens (absent: there is none).
    pub general_sale_opens_at: Option<DateTime<Utc>>,
}

/// Creates a group.
pub async fn create_group(
    conn: &mut PgConnection,
    organizer: Option<Uuid>,
    name: &str,
) -> Result<GroupView, sqlx::Error> {
    let id = Uuid::now_v7();
    sqlx::query("INSERT INTO member_groups (id, organizer_id, name) VALUES ($1, $2, $3)")
        .bind(id)
        .bind(organizer)
        .bind(name)
        .execute(conn)
        .await?;
    Ok(GroupView {
        id,
        name: name.to_owned(),
        organizer_id: organizer,
        member_count: 0,
    })
}

/// A group (locked when `lock`).
pub async fn group(
    conn: &mut PgConnection,
    id: Uuid,
    lock: bool,
) -> Result<Option<GroupView>, sqlx::Error> {
    let sql = if lock {
        "SELECT id, name, organizer_id FROM member_groups WHERE id = $1 FOR UPDATE"
    } else {
        "SELECT id, name, organizer_id FROM member_groups WHERE id = $1"
    };
    let Some(row) = sqlx::query(sql).bind(id).fetch_optional(&mut *conn).await? else {
        return Ok(None);
    };
    let count: i64 =
        sqlx::query_scalar("SELECT count(*) FROM member_group_accounts WHERE group_id = $1")
            .bind(id)
            .fetch_one(conn)
            .await?;
    Ok(Some(GroupView {
        id: row.try_get(0)?,
        name: row.try_get(1)?,
        organizer_id: row.try_get(2)?,
        member_count: count,
    }))
}

/// Adds accounts to a group (those in it already stay once).
pub async fn add_members(
    conn: &mut PgConnection,
    group: Uuid,
    accounts: &[Uuid],
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO member_group_accounts (group_id, account_id)
         SELECT $1, * FROM UNNEST($2::uuid[]) ON CONFLICT DO NOTHING",
    )
    .bind(group)
    .bind(accounts.to_vec())
    .execute(conn)
    .await?;
    Ok(())
}

/// Takes `account` out of a group; false when it was not in it.
pub async fn remove_member(
    conn: &mut PgConnection,
    group: Uuid,
    account: Uuid,
) -> Result<bool, sqlx::Error> {
    let gone =
        sqlx::query("DELETE FROM member_group_accounts WHERE group_id = $1 AND account_id = $2")
            .bind(group)
            .bind(account)
            .execute(conn)
            .await?
            .rows_affected();
    Ok(gone > 0)
}

/// Ends a performance's presale audience and its access codes; false when it had none.
pub async fn clear_audience(conn: &mut PgConnection, perf: Uuid) -> Result<bool, sqlx::Error> {
    sqlx::query("DELETE FROM presale_codes WHERE performance_id = $1")
        .bind(perf)
        .execute(&mut *conn)
        .await?;
    let gone = sqlx::query("DELETE FROM presale_audiences WHERE performance_id = $1")
        .bind(perf)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    Ok(gone > 0)
}

/// The published performances whose presale lets `group` in (to re-publish them).
pub async fn performances_of_group(
    conn: &mut PgConnection,
    group: Uuid,
) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT a.performance_id FROM presale_audiences a JOIN performances p ON p.id = a.performance_id
         WHERE a.group_id = $1 AND p.revision > 0 AND p.status IN ('published', 'sold_out')",
    )
    .bind(group)
    .fetch_all(conn)
    .await
}

/// Sets a performance's presale audience.
pub async fn set_audience(
    conn: &mut PgConnection,
    perf: Uuid,
    group: Option<Uuid>,
    ticket_limit: i32,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO presale_audiences (performance_id, group_id, access_codes, ticket_limit)
         VALUES ($1, $2, $3, $4) ON CONFLICT (performance_id) DO UPDATE SET
         group_id = EXCLUDED.group_id, access_codes = EXCLUDED.access_codes,
         ticket_limit = EXCLUDED.ticket_limit",
    )
    .bind(perf)
    .bind(group)
    .bind(group.is_none())
    .bind(ticket_limit)
    .execute(conn)
    .await?;
    Ok(())
}

/// How many access codes the performance has.
pub async fn code_count(conn: &mut PgConnection, perf: Uuid) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT count(*) FROM presale_codes WHERE performance_id = $1")
        .bind(perf)
        .fetch_one(conn)
        .await
}

/// Generates `n` access codes (`XXXX-XXXX-XXXX-XXXX`, 80 random bits each from the OS through
/// UUID v4), stores their hashes and returns the codes, which are not kept.
pub async fn generate_codes(
    conn: &mut PgConnection,
    perf: Uuid,
    n: usize,
) -> Result<Vec<String>, sqlx::Error> {
    let codes: Vec<String> = (0..n).map(|_| new_code()).collect();
    let hashes: Vec<String> = codes.iter().map(|c| presale_code_hash(perf, c)).collect();
    sqlx::query(
        "INSERT INTO presale_codes (performance_id, code_hash)
         SELECT $1, * FROM UNNEST($2::text[]) ON CONFLICT DO NOTHING",
    )
    .bind(perf)
    .bind(hashes)
    .execute(conn)
    .await?;
    Ok(codes)
}

/// Letters and digits that cannot be misread (no I, O, 0, 1).
const ALPHABET: &[u8; 32] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";

fn new_code() -> String {
    // The random bits of a v4 UUID, around its version and variant bits.
    let u = Uuid::new_v4().as_u128();
    let mut bits = ((u >> 80) << 60) | (u & ((1u128 << 60) - 1));
    let mut out = String::with_capacity(19);
    for i in 0..16 {
        if i > 0 && i % 4 == 0 {
            out.push('-');
        }
        let idx = usize::try_from(bits & 31).unwrap_or(0);
        out.push(char::from(ALPHABET[idx]));
        bits >>= 5;
    }
    out
}

/// A performance's presale rules to publish; `None` when its presale is open to everyone.
pub async fn rules(
    conn: &mut PgConnection,
    perf: Uuid,
) -> Result<Option<PresaleRules>, sqlx::Error> {
    let Some(row) = sqlx::query(
        "SELECT group_id, access_codes, ticket_limit FROM presale_audiences WHERE performance_id = $1",
    )
    .bind(perf)
    .fetch_optional(&mut *conn)
    .await?
    else {
        return Ok(None);
    };
    let group_id: Option<Uuid> = row.try_get(0)?;
    let codes: bool = row.try_get(1)?;
    let ticket_limit: i32 = row.try_get(2)?;
    let windows = crate::store::events::windows(conn, perf).await?;
    let general_opens_at = windows
        .iter()
        .filter(|w| w.kind == "general")
        .map(|w| w.opens_at)
        .min();
    let windows: Vec<PresaleWindow> = windows
        .iter()
        .filter(|w| w.kind == "presale")
        .map(|w| PresaleWindow {
            opens_at: w.opens_at,
            closes_at: w.closes_at,
        })
        .collect();
    let members: Vec<Uuid> = match group_id {
        Some(g) => {
            sqlx::query_scalar(
                "SELECT account_id FROM member_group_accounts WHERE group_id = $1
                 ORDER BY account_id LIMIT $2",
            )
            .bind(g)
            .bind(MAX_MEMBERS)
            .fetch_all(&mut *conn)
            .await?
        }
        None => Vec::new(),
    };
    let code_hashes: Vec<String> = if codes {
        sqlx::query_scalar(
            "SELECT code_hash FROM presale_codes WHERE performance_id = $1 ORDER BY code_hash LIMIT $2",
        )
        .bind(perf)
        .bind(MAX_CODES)
        .fetch_all(&mut *conn)
        .await?
    } else {
        Vec::new()
    };
    Ok(Some(PresaleRules {
        windows,
        general_opens_at,
        ticket_limit,
        group_id,
        members,
        codes,
        code_hashes,
    }))
}

/// The presale audiences of an event's performances, as buyers see them.
pub async fn views(
    conn: &mut PgConnection,
    event_id: Uuid,
) -> Result<Vec<PresaleView>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT a.performance_id, a.access_codes, a.ticket_limit, g.name,
                (SELECT min(w.opens_at) FROM sale_windows w
                  WHERE w.performance_id = a.performance_id AND w.kind = 'general')
           FROM presale_audiences a JOIN performances p ON p.id = a.performance_id
           LEFT JOIN member_groups g ON g.id = a.group_id
          WHERE p.event_id = $1 ORDER BY p.starts_at, a.performance_id",
    )
    .bind(event_id)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| {
            let codes: bool = r.try_get(1)?;
            Ok::<_, sqlx::Error>(PresaleView {
                performance_id: r.try_get(0)?,
                audience: if codes { "access_codes" } else { "members" }.to_owned(),
                group_name: r.try_get(3)?,
                ticket_limit: r.try_get(2)?,
                general_sale_opens_at: r.try_get(4)?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_sixteen_unambiguous_characters_and_differ() {
        let a = new_code();
        let b = new_code();
        assert_eq!(a.len(), 19);
        assert_ne!(a, b);
        assert!(a.chars().all(|c| c == '-' || ALPHABET.contains(&(c as u8))));
    }
}

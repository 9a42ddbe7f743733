//! The organizer accounts of the KBO clubs (admin-managed): who may put a team code on an event.

use sqlx::PgConnection;
use uuid::Uuid;

use super::venues::Grant;

/// The team codes `organizer` may use.
pub async fn teams_of(
    conn: &mut PgConnection,
    organizer: Uuid,
) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT team FROM team_organizers WHERE organizer_id = $1 ORDER BY team")
        .bind(organizer)
        .fetch_all(conn)
        .await
}

/// Makes `organizer` an account of the club `team` (again: a second grant keeps the first).
pub async fn grant(
    conn: &mut PgConnection,
    team: &str,
    organizer: Uuid,
    by: Uuid,
) -> Result<Grant, sqlx::Error> {
    sqlx::query(
        "INSERT INTO team_organizers (team, organizer_id, granted_by) VALUES ($1, $2, $3)
         ON CONFLICT DO NOTHING",
    )
    .bind(team)
    .bind(organizer)
    .bind(by)
    .execute(&mut *conn)
    .await?;
    sqlx::query_as(
        "SELECT organizer_id, granted_by, granted_at FROM team_organizers
         WHERE team = $1 AND organizer_id = $2",
    )
    .bind(team)
    .bind(organizer)
    .fetch_one(conn)
    .await
}

/// Takes the club account back (events it created keep their teams); whether it was one.
pub async fn revoke(
    conn: &mut PgConnection,
    team: &str,
    organizer: Uuid,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("DELETE FROM team_organizers WHERE team = $1 AND organizer_id = $2")
        .bind(team)
        .bind(organizer)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// The accounts of a club, oldest first.
pub async fn accounts(conn: &mut PgConnection, team: &str) -> Result<Vec<Grant>, sqlx::Error> {
    sqlx::query_as(
        "SELECT organizer_id, granted_by, granted_at FROM team_organizers WHERE team = $1
         ORDER BY granted_at, organizer_id",
    )
    .bind(team)
    .fetch_all(conn)
    .await
}

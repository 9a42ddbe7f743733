//! Leaving the shared PostgreSQL and Redis as the benchmarks found them: a run's databases are
//! dropped and its performances' hold-store keys deleted (never anything else: no FLUSHALL).

use uuid::Uuid;

/// Drops the databases `<prefix><service>` of an in-process service's [`Infra`].
///
/// [`Infra`]: platform::service::Infra
pub async fn drop_databases(infra: &platform::service::Infra, services: &[&str]) {
    let Some(url) = infra.database_url.as_deref() else {
        return;
    };
    let Ok(opts) = platform::db::server_options(url) else {
        return;
    };
    use sqlx::{ConnectOptions, Connection};
    let Ok(mut conn) = opts.database("postgres").connect().await else {
        return;
    };
    for service in services {
        let name = format!("{}{service}", infra.database.name_prefix);
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
        )))
        .execute(&mut conn)
        .await;
    }
    let _ = conn.close().await;
}

/// Deletes the Redis hold-store keys of `perfs` (`seat:{<perf>}:*`, see the seat service's
/// `store::redis::prefix`). The per-hold index keys expire by themselves.
pub async fn forget_performances(redis_url: &str, perfs: &[Uuid]) -> anyhow::Result<()> {
    let client = redis::Client::open(redis_url)?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    for perf in perfs {
        let pattern = format!("{}*", seat::store::redis::prefix(*perf));
        let mut cursor: u64 = 0;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut conn)
                .await?;
            if !keys.is_empty() {
                let _: i64 = redis::cmd("DEL").arg(&keys).query_async(&mut conn).await?;
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
    }
    Ok(())
}

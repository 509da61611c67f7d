//! A person's App Home tab read from the database (DESIGN §1.14), for the
//! `views.publish` effect.

use chrono_tz::Tz;
use serde_json::Value;
use sqlx::PgConnection;

use crate::db::{orders, stats};
use crate::domain::command::Pickup;
use crate::domain::ids::{ChannelId, UserId};
use crate::slack::home::{HomeData, HomeRun, MAX_OPEN_RUNS, home};

/// Reads what `user`'s Home tab shows and builds the `home` view. The
/// `views.publish` of it is an effect (DESIGN §5), performed by the worker.
pub async fn home_view(conn: &mut PgConnection, user: &UserId) -> Result<Value, sqlx::Error> {
    let usual = orders::preferences(&mut *conn, user.as_ref())
        .await?
        .and_then(|p| p.usual_order);
    let served = stats::served_by_channel(&mut *conn, user.as_ref())
        .await?
        .into_iter()
        .filter_map(|s| Some((ChannelId::parse(&s.channel_id).ok()?, s.runs_served)))
        .collect();
    let open_runs = stats::open_runs_for(&mut *conn, user.as_ref(), MAX_OPEN_RUNS as i64 + 1)
        .await?
        .into_iter()
        .filter_map(|r| {
            let tz: Tz = r.timezone.parse().unwrap_or(chrono_tz::UTC);
            Some(HomeRun {
                run_id: r.run_id,
                channel_id: ChannelId::parse(&r.channel_id).ok()?,
                initiator: UserId::parse(&r.initiator_id).ok()?,
                pickup: r.pickup_at.map(|at| Pickup::from_stored(at).display_in(tz)),
                note: r.note,
                order_count: usize::try_from(r.order_count).unwrap_or(0),
                own_order: r.own_order,
            })
        })
        .collect();
    Ok(home(&HomeData {
        usual,
        served,
        open_runs,
    }))
}

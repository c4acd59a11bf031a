//! `/admin`: a stream's events and the stats.

use super::*;

/// A stream's events in version order (admin). The stream id is `{type}#{id}`, `#` encoded as `%23`.
#[utoipa::path(get, path = "/admin/streams/{streamId}/events", tag = "admin",
    params(("streamId" = String, Path, description = "e.g. cart%23alice")),
    responses((status = 200, description = "Envelopes in version order", body = [crate::views::EnvelopeDoc]),
        (status = 400, body = Problem), (status = 403, body = Problem)))]
pub async fn stream_events(
    State(app): State<AppState>,
    _admin: Admin,
    PathParam(raw): PathParam,
) -> Result<Json<Vec<storefront_domain::EventEnvelope>>, ApiError> {
    let s = StreamId::parse(&raw)?;
    Ok(Json(app.events.load(&s, 0).await?))
}

/// Orders by status, revenue, conversion and best sellers (admin), from the analytics handler's items.
#[utoipa::path(get, path = "/admin/stats", tag = "admin",
    responses((status = 200, body = StatsView), (status = 403, body = Problem)))]
pub async fn stats(
    State(app): State<AppState>,
    _admin: Admin,
) -> Result<Json<StatsView>, ApiError> {
    Ok(Json(crate::stats::read_stats(&*app.state).await?))
}

//! `/orders`: the caller's orders (any, for an admin), payment, cancellation, shipping.

use super::*;

/// Loads an order the caller may see: their own, or any for an admin. Others' orders are 404.
async fn visible_order(
    app: &AppState,
    identity: &Identity,
    raw: &str,
) -> Result<(StreamId, OrderState), ApiError> {
    let id = order_id(raw)?;
    let s = stream(OrderState::TYPE, id.as_str())?;
    let order = load_aggregate::<OrderState>(app, &s).await?.state;
    match &order.user_id {
        Some(owner) if identity.admin || owner == &identity.user_id => Ok((s, order)),
        _ => Err(ApiError::NotFound(format!("order {raw} does not exist"))),
    }
}

/// The caller's orders (an admin sees all), newest first.
#[utoipa::path(get, path = "/orders", tag = "orders",
    responses((status = 200, body = [OrderView]), (status = 401, body = Problem)))]
pub async fn list_orders(
    State(app): State<AppState>,
    identity: Identity,
) -> Result<Json<Vec<OrderView>>, ApiError> {
    let pk = if identity.admin {
        keys::ALL_ORDERS.to_owned()
    } else {
        keys::orders_of(identity.user_id.as_str())
    };
    let mut out = index_views::<OrderState, _>(&app, &pk, OrderView::of).await?;
    out.sort_by(|a, b| {
        b.created_at
            .cmp(&a.created_at)
            .then_with(|| b.order_id.cmp(&a.order_id))
    });
    Ok(Json(out))
}

/// One order (owner or admin).
#[utoipa::path(get, path = "/orders/{id}", tag = "orders",
    params(("id" = String, Path, description = "Order id")),
    responses((status = 200, body = OrderView), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub async fn get_order(
    State(app): State<AppState>,
    identity: Identity,
    PathParam(raw): PathParam,
) -> Result<Json<OrderView>, ApiError> {
    let (_, order) = visible_order(&app, &identity, &raw).await?;
    OrderView::of(&order)
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("order {raw} does not exist")))
}

/// Who may act on an order besides its owner.
#[derive(Clone, Copy, PartialEq, Eq)]
enum OwnerOnly {
    /// Admins too (cancel, ship, deliver).
    No,
    /// Only the owner; an admin gets 403 (pay).
    Yes,
}

/// Runs `command` on an order the caller may act on. The check is made on the
/// order as loaded for the decision, so one load serves both; another
/// shopper's order is 404, as if it did not exist.
async fn order_command(
    app: &AppState,
    identity: &Identity,
    ctx: CommandContext,
    raw: &str,
    command: OrderCommand,
    owner_only: OwnerOnly,
) -> Result<Response, ApiError> {
    let id = order_id(raw)?;
    let s = stream(OrderState::TYPE, id.as_str())?;
    single::<OrderState, _, _, _>(
        app,
        &ctx,
        s,
        StatusCode::OK,
        |o| {
            match &o.user_id {
                Some(owner) if owner == &identity.user_id => {}
                Some(_) if identity.admin && owner_only == OwnerOnly::No => {}
                Some(_) if identity.admin => {
                    return Err(ApiError::Forbidden(
                        "only the shopper who placed the order pays it".into(),
                    ));
                }
                _ => return Err(ApiError::NotFound(format!("order {raw} does not exist"))),
            }
            Ok(o.decide(&command)?)
        },
        OrderView::of,
        none,
    )
    .await
}

/// Pay a confirmed order's exact total (owner; an admin may not pay for a shopper).
#[utoipa::path(post, path = "/orders/{id}/payment", tag = "orders", request_body = Payment,
    params(("id" = String, Path, description = "Order id"),
        ("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe")),
    responses((status = 200, body = OrderView), (status = 400, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn pay(
    State(app): State<AppState>,
    identity: Identity,
    correlation: Correlation,
    idem: Option<axum::Extension<IdempotencyKey>>,
    PathParam(raw): PathParam,
    JsonBody(body): JsonBody<Payment>,
) -> Result<Response, ApiError> {
    ensure_open_account(&app, &identity).await?;
    let ctx = ctx(&identity, correlation, idem.map(|e| e.0));
    order_command(
        &app,
        &identity,
        ctx,
        &raw,
        OrderCommand::Pay {
            amount_cents: body.amount_cents,
        },
        OwnerOnly::Yes,
    )
    .await
}

/// Cancel before shipping (owner or admin).
#[utoipa::path(post, path = "/orders/{id}/cancel", tag = "orders", request_body(content = Option<Cancel>),
    params(("id" = String, Path, description = "Order id"),
        ("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe")),
    responses((status = 200, body = OrderView), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn cancel(
    State(app): State<AppState>,
    identity: Identity,
    correlation: Correlation,
    idem: Option<axum::Extension<IdempotencyKey>>,
    PathParam(raw): PathParam,
    OptionalJsonBody(body): OptionalJsonBody<Cancel>,
) -> Result<Response, ApiError> {
    let reason = body.reason.unwrap_or_else(|| "cancelled on request".into());
    storefront_domain::ids::validate_text("reason", &reason, 500)?;
    let ctx = ctx(&identity, correlation, idem.map(|e| e.0));
    let by = identity.user_id.to_string();
    order_command(
        &app,
        &identity,
        ctx,
        &raw,
        OrderCommand::Cancel { reason, by },
        OwnerOnly::No,
    )
    .await
}

/// Record the shipment of a paid order (admin).
#[utoipa::path(post, path = "/orders/{id}/shipment", tag = "orders", request_body = Shipment,
    params(("id" = String, Path, description = "Order id"),
        ("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe")),
    responses((status = 200, body = OrderView), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 422, body = Problem)))]
pub async fn ship(
    State(app): State<AppState>,
    Admin(identity): Admin,
    correlation: Correlation,
    idem: Option<axum::Extension<IdempotencyKey>>,
    PathParam(raw): PathParam,
    JsonBody(body): JsonBody<Shipment>,
) -> Result<Response, ApiError> {
    let ctx = ctx(&identity, correlation, idem.map(|e| e.0));
    let command = OrderCommand::Ship {
        carrier: body.carrier,
        tracking_number: body.tracking_number,
    };
    order_command(&app, &identity, ctx, &raw, command, OwnerOnly::No).await
}

/// Record the delivery of a shipped order (admin).
#[utoipa::path(post, path = "/orders/{id}/delivery", tag = "orders",
    params(("id" = String, Path, description = "Order id"),
        ("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe")),
    responses((status = 200, body = OrderView), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 422, body = Problem)))]
pub async fn deliver(
    State(app): State<AppState>,
    Admin(identity): Admin,
    correlation: Correlation,
    idem: Option<axum::Extension<IdempotencyKey>>,
    PathParam(raw): PathParam,
) -> Result<Response, ApiError> {
    let ctx = ctx(&identity, correlation, idem.map(|e| e.0));
    order_command(
        &app,
        &identity,
        ctx,
        &raw,
        OrderCommand::Deliver,
        OwnerOnly::No,
    )
    .await
}

// ---- admin --------------------------------------------------------------------

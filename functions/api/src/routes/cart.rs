//! `/cart`: the caller's cart and checkout.

use super::*;

fn cart_stream(identity: &Identity) -> Result<StreamId, ApiError> {
    stream(CartState::TYPE, identity.user_id.as_str())
}

/// The caller's cart.
#[utoipa::path(get, path = "/cart", tag = "cart",
    responses((status = 200, body = CartView), (status = 401, body = Problem)))]
pub async fn get_cart(
    State(app): State<AppState>,
    identity: Identity,
) -> Result<Json<CartView>, ApiError> {
    let loaded = load_aggregate::<CartState>(&app, &cart_stream(&identity)?).await?;
    Ok(Json(CartView::of(&loaded.state)))
}

async fn cart_command(
    app: &AppState,
    identity: &Identity,
    ctx: CommandContext,
    decide: impl Fn(&CartState) -> Result<Vec<Event>, ApiError>,
) -> Result<Response, ApiError> {
    single::<CartState, _, _, _>(
        app,
        &ctx,
        cart_stream(identity)?,
        StatusCode::OK,
        decide,
        |c| Some(CartView::of(c)),
        none,
    )
    .await
}

/// Put units of a product in the cart.
#[utoipa::path(post, path = "/cart/items", tag = "cart", request_body = AddItem,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe")),
    responses((status = 200, body = CartView), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn add_item(
    State(app): State<AppState>,
    identity: Identity,
    correlation: Correlation,
    idem: Option<axum::Extension<IdempotencyKey>>,
    JsonBody(body): JsonBody<AddItem>,
) -> Result<Response, ApiError> {
    let sku = sku(&body.sku)?;
    ensure_open_account(&app, &identity).await?;
    let ctx = ctx(&identity, correlation, idem.map(|e| e.0));
    let user_id = identity.user_id.clone();
    // The product is looked up once per request: the cart records the price
    // the shopper saw; a later price change does not alter the line.
    let product = load_product(&app, &sku).await?;
    // A product that exists always has a currency (product.created carries one).
    let info = product
        .sku
        .as_ref()
        .zip(product.currency.as_ref())
        .map(|(s, currency)| ProductInfo {
            sku: s.clone(),
            name: product.name.clone(),
            price_cents: product.price_cents,
            currency: currency.clone(),
            discontinued: product.discontinued,
        });
    let command = CartCommand::AddItem {
        user_id,
        sku,
        quantity: body.quantity,
        product: info,
    };
    cart_command(&app, &identity, ctx, |c| Ok(c.decide(&command)?)).await
}

/// Set a line's quantity.
#[utoipa::path(patch, path = "/cart/items/{sku}", tag = "cart", request_body = ChangeQuantity,
    params(("sku" = String, Path, description = "Stock-keeping unit")),
    responses((status = 200, body = CartView), (status = 400, body = Problem), (status = 404, body = Problem)))]
pub async fn change_quantity(
    State(app): State<AppState>,
    identity: Identity,
    correlation: Correlation,
    PathParam(raw): PathParam,
    JsonBody(body): JsonBody<ChangeQuantity>,
) -> Result<Response, ApiError> {
    let command = CartCommand::ChangeQuantity {
        sku: sku(&raw)?,
        quantity: body.quantity,
    };
    let ctx = ctx(&identity, correlation, None);
    cart_command(&app, &identity, ctx, |c| Ok(c.decide(&command)?)).await
}

/// Remove a line.
#[utoipa::path(delete, path = "/cart/items/{sku}", tag = "cart",
    params(("sku" = String, Path, description = "Stock-keeping unit")),
    responses((status = 200, body = CartView), (status = 400, body = Problem), (status = 404, body = Problem)))]
pub async fn remove_item(
    State(app): State<AppState>,
    identity: Identity,
    correlation: Correlation,
    PathParam(raw): PathParam,
) -> Result<Response, ApiError> {
    let command = CartCommand::RemoveItem { sku: sku(&raw)? };
    let ctx = ctx(&identity, correlation, None);
    cart_command(&app, &identity, ctx, |c| Ok(c.decide(&command)?)).await
}

/// Turn the cart into an order: the order's creation and the cart's checkout are one atomic append.
#[utoipa::path(post, path = "/cart/checkout", tag = "cart",
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe")),
    responses((status = 201, body = CheckoutAccepted), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn checkout(
    State(app): State<AppState>,
    identity: Identity,
    correlation: Correlation,
    idem: Option<axum::Extension<IdempotencyKey>>,
) -> Result<Response, ApiError> {
    ensure_open_account(&app, &identity).await?;
    let ctx = ctx(&identity, correlation, idem.map(|e| e.0));
    // One id per request, kept across conflict retries.
    let order_id = OrderId::new(new_event_id())?;
    let placed_at = now_rfc3339();
    let cart_stream = cart_stream(&identity)?;
    let order_stream = stream(OrderState::TYPE, order_id.as_str())?;
    execute(&app, &ctx, || async {
        let cart = load_aggregate::<CartState>(&app, &cart_stream).await?;
        let cart_events = cart.state.decide(&CartCommand::Checkout {
            order_id: order_id.clone(),
        })?;
        let currency = cart.state.currency.clone().ok_or(DomainError::EmptyCart)?;
        let order = load_aggregate::<OrderState>(&app, &order_stream).await?;
        let order_events = order.state.decide(&OrderCommand::Create {
            order_id: order_id.clone(),
            user_id: identity.user_id.clone(),
            lines: cart.state.order_lines(),
            currency,
            placed_at: placed_at.clone(),
        })?;
        let (cart_change, _) = change(&cart_stream, &cart, cart_events);
        let (order_change, _) = change(&order_stream, &order, order_events);
        Ok(Plan {
            changes: vec![cart_change, order_change],
            state: vec![
                index(
                    keys::orders_of(identity.user_id.as_str()),
                    order_id.to_string(),
                ),
                index(keys::ALL_ORDERS.into(), order_id.to_string()),
                // The sweeper's view of the order's deadline: rejected if
                // still pending when it passes (its reservation lost, say).
                index_with(
                    keys::AWAITING_CONFIRMATION.into(),
                    order_id.to_string(),
                    serde_json::json!({ "placedAt": placed_at }),
                ),
            ],
            status: StatusCode::CREATED,
            body: json(&CheckoutAccepted {
                order_id: order_id.to_string(),
            }),
        })
    })
    .await
}

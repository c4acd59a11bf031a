//! Every route of DESIGN §6. Handlers are thin: check who asks, parse, run a
//! decider through [`crate::commands::execute`], answer with a view.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Request, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde::de::DeserializeOwned;
use storefront_domain::cart::{CartCommand, CartState, ProductInfo};
use storefront_domain::order::{OrderCommand, OrderState};
use storefront_domain::product::{ProductCommand, ProductState};
use storefront_domain::user::{UserCommand, UserState};
use storefront_domain::{Aggregate, Currency, DomainError, Event, OrderId, Sku, StreamId};
use storefront_store::clock::{new_event_id, now_rfc3339};
use storefront_store::{Condition, StateItem, StateWrite, keys};

use crate::AppState;
use crate::commands::{CommandContext, Plan, change, execute, load_aggregate};
use crate::error::{ApiError, Problem};
use crate::extract::{Correlation, JsonBody};
use crate::idempotency::IdempotencyKey;
use crate::identity::Identity;
use crate::views::*;

/// A single path parameter; a malformed one is a 400 problem, not axum's plain text.
pub struct PathParam(pub String);

impl<S: Send + Sync> FromRequestParts<S> for PathParam {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Path::<String>::from_request_parts(parts, state)
            .await
            .map(|Path(p)| PathParam(p))
            .map_err(|e| ApiError::BadRequest(format!("bad path parameter: {}", e.body_text())))
    }
}

/// A JSON body that may be absent (an empty body means the default).
pub struct OptionalJsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Default> FromRequest<S> for OptionalJsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let has_body = req
            .headers()
            .get(axum::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_none_or(|v| v != "0")
            && req.headers().contains_key(axum::http::header::CONTENT_TYPE);
        if !has_body {
            // Drain whatever there is; a body without a content type is refused.
            let bytes = Bytes::from_request(req, state)
                .await
                .map_err(|_| ApiError::PayloadTooLarge(crate::extract::MAX_BODY_BYTES))?;
            if bytes.iter().all(u8::is_ascii_whitespace) {
                return Ok(OptionalJsonBody(T::default()));
            }
            return Err(ApiError::UnsupportedMediaType(
                "send the body as JSON with Content-Type: application/json".into(),
            ));
        }
        JsonBody::<T>::from_request(req, state)
            .await
            .map(|JsonBody(t)| OptionalJsonBody(t))
    }
}

fn ctx(
    identity: &Identity,
    correlation: Correlation,
    idem: Option<IdempotencyKey>,
) -> CommandContext {
    CommandContext {
        actor: identity.user_id.to_string(),
        correlation_id: correlation.0,
        idempotency: idem,
    }
}

fn stream(kind: &str, id: &str) -> Result<StreamId, ApiError> {
    Ok(StreamId::new(kind, id)?)
}

fn sku(raw: &str) -> Result<Sku, ApiError> {
    Ok(Sku::new(raw)?)
}

fn order_id(raw: &str) -> Result<OrderId, ApiError> {
    OrderId::new(raw).map_err(|_| ApiError::NotFound(format!("order {raw:?} does not exist")))
}

fn json<T: serde::Serialize>(value: &T) -> serde_json::Value {
    serde_json::to_value(value).unwrap_or(serde_json::Value::Null)
}

/// Runs a command on one aggregate: decide on fresh state each attempt, answer with `view` of the state after.
async fn single<A, D, V, T>(
    app: &AppState,
    ctx: &CommandContext,
    stream: StreamId,
    status: StatusCode,
    decide: D,
    view: V,
    extra_state: impl Fn(&A) -> Vec<StateWrite>,
) -> Result<Response, ApiError>
where
    A: Aggregate,
    D: Fn(&A) -> Result<Vec<Event>, ApiError>,
    V: Fn(&A) -> Option<T>,
    T: serde::Serialize,
{
    execute(app, ctx, || async {
        let loaded = load_aggregate::<A>(app, &stream).await?;
        let events = decide(&loaded.state)?;
        let (change, after) = change(&stream, &loaded, events);
        let body = view(&after).ok_or_else(|| ApiError::NotFound("not found".into()))?;
        let state = if change.events.is_empty() {
            vec![]
        } else {
            extra_state(&after)
        };
        Ok(Plan {
            changes: vec![change],
            state,
            status,
            body: json(&body),
        })
    })
    .await
}

fn none<A>(_: &A) -> Vec<StateWrite> {
    Vec::new()
}

fn index(pk: String, sk: String) -> StateWrite {
    StateWrite {
        item: StateItem {
            pk,
            sk,
            version: 1,
            value: serde_json::json!({}),
            expires_at: None,
        },
        condition: Condition::Always,
    }
}

/// The views of every aggregate named in an index partition (sort key = the
/// aggregate's id), loaded 16 at a time; ids whose aggregate does not exist
/// (yet) are left out.
async fn index_views<A: Aggregate, V>(
    app: &AppState,
    pk: &str,
    view: impl Fn(&A) -> Option<V>,
) -> Result<Vec<V>, ApiError> {
    let ids: Vec<String> = app
        .state
        .query(pk)
        .await?
        .into_iter()
        .map(|i| i.sk)
        .collect();
    let loaded: Vec<Result<A, ApiError>> = futures::stream::iter(ids)
        .map(|id| {
            let app = app.clone();
            async move {
                Ok(load_aggregate::<A>(&app, &stream(A::TYPE, &id)?)
                    .await?
                    .state)
            }
        })
        .buffered(16)
        .collect()
        .await;
    let mut out = Vec::new();
    for state in loaded {
        out.extend(view(&state?));
    }
    Ok(out)
}

// ---- health -------------------------------------------------------------------

/// Liveness.
#[utoipa::path(get, path = "/health", tag = "health", security(()),
    responses((status = 200, description = "The API is up", body = serde_json::Value)))]
pub async fn health() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "ok"}))
}

// ---- users --------------------------------------------------------------------

/// Register the caller (the id is the token's `sub`).
#[utoipa::path(post, path = "/users", tag = "users", request_body = RegisterUser,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe")),
    responses((status = 201, body = UserView), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 409, body = Problem), (status = 413, body = Problem), (status = 415, body = Problem)))]
pub async fn register_user(
    State(app): State<AppState>,
    identity: Identity,
    correlation: Correlation,
    idem: Option<axum::Extension<IdempotencyKey>>,
    JsonBody(body): JsonBody<RegisterUser>,
) -> Result<Response, ApiError> {
    let ctx = ctx(&identity, correlation, idem.map(|e| e.0));
    let command = UserCommand::Register {
        user_id: identity.user_id.clone(),
        email: body.email,
        name: body.name,
    };
    single::<UserState, _, _, _>(
        &app,
        &ctx,
        stream(UserState::TYPE, identity.user_id.as_str())?,
        StatusCode::CREATED,
        |s| Ok(s.decide(&command)?),
        UserView::of,
        none,
    )
    .await
}

/// The caller's profile.
#[utoipa::path(get, path = "/users/me", tag = "users",
    responses((status = 200, body = UserView), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub async fn me(
    State(app): State<AppState>,
    identity: Identity,
) -> Result<Json<UserView>, ApiError> {
    let loaded =
        load_aggregate::<UserState>(&app, &stream(UserState::TYPE, identity.user_id.as_str())?)
            .await?;
    UserView::of(&loaded.state)
        .map(Json)
        .ok_or_else(|| ApiError::NotFound("you are not registered yet: POST /users".into()))
}

// ---- products -----------------------------------------------------------------

async fn load_product(app: &AppState, sku: &Sku) -> Result<ProductState, ApiError> {
    Ok(
        load_aggregate::<ProductState>(app, &stream(ProductState::TYPE, sku.as_str())?)
            .await?
            .state,
    )
}

/// The catalogue.
#[utoipa::path(get, path = "/products", tag = "products", security(()),
    responses((status = 200, body = [ProductView])))]
pub async fn list_products(
    State(app): State<AppState>,
) -> Result<Json<Vec<ProductView>>, ApiError> {
    Ok(Json(
        index_views::<ProductState, _>(&app, keys::CATALOG, ProductView::of).await?,
    ))
}

/// One product.
#[utoipa::path(get, path = "/products/{sku}", tag = "products", security(()),
    params(("sku" = String, Path, description = "Stock-keeping unit")),
    responses((status = 200, body = ProductView), (status = 400, body = Problem), (status = 404, body = Problem)))]
pub async fn get_product(
    State(app): State<AppState>,
    PathParam(raw): PathParam,
) -> Result<Json<ProductView>, ApiError> {
    let sku = sku(&raw)?;
    ProductView::of(&load_product(&app, &sku).await?)
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("product {sku} does not exist")))
}

/// Add a product to the catalogue (admin).
#[utoipa::path(post, path = "/products", tag = "products", request_body = CreateProduct,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe")),
    responses((status = 201, body = ProductView), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 409, body = Problem)))]
pub async fn create_product(
    State(app): State<AppState>,
    identity: Identity,
    correlation: Correlation,
    idem: Option<axum::Extension<IdempotencyKey>>,
    JsonBody(body): JsonBody<CreateProduct>,
) -> Result<Response, ApiError> {
    identity.require_admin()?;
    let sku = sku(&body.sku)?;
    let command = ProductCommand::Create {
        sku: sku.clone(),
        name: body.name,
        price_cents: body.price_cents,
        currency: Currency::new(body.currency)?,
        stock: body.stock,
    };
    let ctx = ctx(&identity, correlation, idem.map(|e| e.0));
    let catalog_sk = sku.to_string();
    single::<ProductState, _, _, _>(
        &app,
        &ctx,
        stream(ProductState::TYPE, sku.as_str())?,
        StatusCode::CREATED,
        |s| Ok(s.decide(&command)?),
        ProductView::of,
        |_| vec![index(keys::CATALOG.into(), catalog_sk.clone())],
    )
    .await
}

async fn product_command(
    app: &AppState,
    identity: &Identity,
    correlation: Correlation,
    idem: Option<IdempotencyKey>,
    raw: &str,
    command: ProductCommand,
) -> Result<Response, ApiError> {
    identity.require_admin()?;
    let sku = sku(raw)?;
    let ctx = ctx(identity, correlation, idem);
    single::<ProductState, _, _, _>(
        app,
        &ctx,
        stream(ProductState::TYPE, sku.as_str())?,
        StatusCode::OK,
        |s| Ok(s.decide(&command)?),
        ProductView::of,
        none,
    )
    .await
}

/// Rename and/or reprice a product (admin).
#[utoipa::path(patch, path = "/products/{sku}", tag = "products", request_body = UpdateProduct,
    params(("sku" = String, Path, description = "Stock-keeping unit")),
    responses((status = 200, body = ProductView), (status = 400, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem)))]
pub async fn update_product(
    State(app): State<AppState>,
    identity: Identity,
    correlation: Correlation,
    PathParam(raw): PathParam,
    JsonBody(body): JsonBody<UpdateProduct>,
) -> Result<Response, ApiError> {
    let command = ProductCommand::Update {
        name: body.name,
        price_cents: body.price_cents,
    };
    product_command(&app, &identity, correlation, None, &raw, command).await
}

/// Adjust on-hand stock (admin); never below what is reserved.
#[utoipa::path(post, path = "/products/{sku}/stock", tag = "products", request_body = AdjustStock,
    params(("sku" = String, Path, description = "Stock-keeping unit"),
        ("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe")),
    responses((status = 200, body = ProductView), (status = 400, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn adjust_stock(
    State(app): State<AppState>,
    identity: Identity,
    correlation: Correlation,
    idem: Option<axum::Extension<IdempotencyKey>>,
    PathParam(raw): PathParam,
    JsonBody(body): JsonBody<AdjustStock>,
) -> Result<Response, ApiError> {
    let command = ProductCommand::AdjustStock {
        delta: body.delta,
        reason: body.reason,
    };
    product_command(
        &app,
        &identity,
        correlation,
        idem.map(|e| e.0),
        &raw,
        command,
    )
    .await
}

/// Discontinue a product (admin).
#[utoipa::path(delete, path = "/products/{sku}", tag = "products",
    params(("sku" = String, Path, description = "Stock-keeping unit")),
    responses((status = 200, body = ProductView), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn discontinue_product(
    State(app): State<AppState>,
    identity: Identity,
    correlation: Correlation,
    PathParam(raw): PathParam,
) -> Result<Response, ApiError> {
    product_command(
        &app,
        &identity,
        correlation,
        None,
        &raw,
        ProductCommand::Discontinue,
    )
    .await
}

// ---- cart ---------------------------------------------------------------------

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
        (status = 422, body = Problem)))]
pub async fn add_item(
    State(app): State<AppState>,
    identity: Identity,
    correlation: Correlation,
    idem: Option<axum::Extension<IdempotencyKey>>,
    JsonBody(body): JsonBody<AddItem>,
) -> Result<Response, ApiError> {
    let sku = sku(&body.sku)?;
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
    responses((status = 201, body = CheckoutAccepted), (status = 401, body = Problem), (status = 409, body = Problem),
        (status = 422, body = Problem)))]
pub async fn checkout(
    State(app): State<AppState>,
    identity: Identity,
    correlation: Correlation,
    idem: Option<axum::Extension<IdempotencyKey>>,
) -> Result<Response, ApiError> {
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
            ],
            status: StatusCode::CREATED,
            body: json(&CheckoutAccepted {
                order_id: order_id.to_string(),
            }),
        })
    })
    .await
}

// ---- orders -------------------------------------------------------------------

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

/// Pay a confirmed order's exact total (owner).
#[utoipa::path(post, path = "/orders/{id}/payment", tag = "orders", request_body = Payment,
    params(("id" = String, Path, description = "Order id"),
        ("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe")),
    responses((status = 200, body = OrderView), (status = 400, body = Problem), (status = 404, body = Problem),
        (status = 422, body = Problem)))]
pub async fn pay(
    State(app): State<AppState>,
    identity: Identity,
    correlation: Correlation,
    idem: Option<axum::Extension<IdempotencyKey>>,
    PathParam(raw): PathParam,
    JsonBody(body): JsonBody<Payment>,
) -> Result<Response, ApiError> {
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
    identity: Identity,
    correlation: Correlation,
    idem: Option<axum::Extension<IdempotencyKey>>,
    PathParam(raw): PathParam,
    JsonBody(body): JsonBody<Shipment>,
) -> Result<Response, ApiError> {
    identity.require_admin()?;
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
    identity: Identity,
    correlation: Correlation,
    idem: Option<axum::Extension<IdempotencyKey>>,
    PathParam(raw): PathParam,
) -> Result<Response, ApiError> {
    identity.require_admin()?;
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

/// A stream's events in version order (admin). The stream id is `{type}#{id}`, `#` encoded as `%23`.
#[utoipa::path(get, path = "/admin/streams/{streamId}/events", tag = "admin",
    params(("streamId" = String, Path, description = "e.g. cart%23alice")),
    responses((status = 200, description = "Envelopes in version order", body = [serde_json::Value]),
        (status = 400, body = Problem), (status = 403, body = Problem)))]
pub async fn stream_events(
    State(app): State<AppState>,
    identity: Identity,
    PathParam(raw): PathParam,
) -> Result<Json<Vec<storefront_domain::EventEnvelope>>, ApiError> {
    identity.require_admin()?;
    let s = StreamId::parse(&raw)?;
    Ok(Json(app.events.load(&s, 0).await?))
}

/// Orders by status, revenue, conversion and best sellers (admin), from the analytics handler's items.
#[utoipa::path(get, path = "/admin/stats", tag = "admin",
    responses((status = 200, body = StatsView), (status = 403, body = Problem)))]
pub async fn stats(
    State(app): State<AppState>,
    identity: Identity,
) -> Result<Json<StatsView>, ApiError> {
    identity.require_admin()?;
    Ok(Json(crate::stats::read_stats(&*app.state).await?))
}

/// 404 for unknown routes, as a problem.
pub async fn not_found(request: Request) -> Response {
    ApiError::NotFound(format!(
        "no route for {} {}",
        request.method(),
        request.uri().path()
    ))
    .into_response()
}

/// 405 for known routes with another method, as a problem.
pub async fn method_not_allowed() -> Response {
    ApiError::MethodNotAllowed.into_response()
}

//! `/products`: the catalogue, and its admin commands.

use super::*;

pub(super) async fn load_product(app: &AppState, sku: &Sku) -> Result<ProductState, ApiError> {
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
    Admin(identity): Admin,
    correlation: Correlation,
    idem: Option<axum::Extension<IdempotencyKey>>,
    JsonBody(body): JsonBody<CreateProduct>,
) -> Result<Response, ApiError> {
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
    Admin(identity): &Admin,
    correlation: Correlation,
    idem: Option<IdempotencyKey>,
    raw: &str,
    command: ProductCommand,
) -> Result<Response, ApiError> {
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
    admin: Admin,
    correlation: Correlation,
    PathParam(raw): PathParam,
    JsonBody(body): JsonBody<UpdateProduct>,
) -> Result<Response, ApiError> {
    let command = ProductCommand::Update {
        name: body.name,
        price_cents: body.price_cents,
    };
    product_command(&app, &admin, correlation, None, &raw, command).await
}

/// Adjust on-hand stock (admin); never below what is reserved.
#[utoipa::path(post, path = "/products/{sku}/stock", tag = "products", request_body = AdjustStock,
    params(("sku" = String, Path, description = "Stock-keeping unit"),
        ("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe")),
    responses((status = 200, body = ProductView), (status = 400, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn adjust_stock(
    State(app): State<AppState>,
    admin: Admin,
    correlation: Correlation,
    idem: Option<axum::Extension<IdempotencyKey>>,
    PathParam(raw): PathParam,
    JsonBody(body): JsonBody<AdjustStock>,
) -> Result<Response, ApiError> {
    let command = ProductCommand::AdjustStock {
        delta: body.delta,
        reason: body.reason,
    };
    product_command(&app, &admin, correlation, idem.map(|e| e.0), &raw, command).await
}

/// Discontinue a product (admin).
#[utoipa::path(delete, path = "/products/{sku}", tag = "products",
    params(("sku" = String, Path, description = "Stock-keeping unit")),
    responses((status = 200, body = ProductView), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn discontinue_product(
    State(app): State<AppState>,
    admin: Admin,
    correlation: Correlation,
    PathParam(raw): PathParam,
) -> Result<Response, ApiError> {
    product_command(
        &app,
        &admin,
        correlation,
        None,
        &raw,
        ProductCommand::Discontinue,
    )
    .await
}

//! `/products`: the catalogue, and its admin commands.

use sha2::Digest as _;

use super::*;

pub(super) async fn load_product(app: &AppState, sku: &Sku) -> Result<ProductState, ApiError> {
    Ok(
        load_aggregate::<ProductState>(app, &stream(ProductState::TYPE, sku.as_str())?)
            .await?
            .state,
    )
}

/// Products per catalogue page when `limit` is not given.
pub const DEFAULT_PAGE_SIZE: usize = 50;
/// The most products one catalogue page holds.
pub const MAX_PAGE_SIZE: usize = 100;

/// The catalogue's query: `?limit=` and the opaque `cursor` a previous
/// page's `Link: <...>; rel="next"` gave out.
#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CatalogQuery {
    /// Products per page, 1 to 100 (default 50).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    limit: Option<String>,
    /// Where the page starts: copy it from the previous page's `Link` header.
    cursor: Option<String>,
}

impl<S: Send + Sync> FromRequestParts<S> for CatalogQuery {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<CatalogQuery>::try_from_uri(&parts.uri)
            .map(|q| q.0)
            .map_err(|e| ApiError::BadRequest(format!("bad query string: {}", e.body_text())))
    }
}

impl CatalogQuery {
    fn limit(&self) -> Result<usize, ApiError> {
        match &self.limit {
            None => Ok(DEFAULT_PAGE_SIZE),
            Some(raw) => raw
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=MAX_PAGE_SIZE).contains(n))
                .ok_or_else(|| {
                    ApiError::BadRequest(format!(
                        "limit must be a whole number from 1 to {MAX_PAGE_SIZE}, not {raw:?}"
                    ))
                }),
        }
    }

    /// The sku the page starts after.
    fn after(&self) -> Result<Option<Sku>, ApiError> {
        let Some(cursor) = &self.cursor else {
            return Ok(None);
        };
        let refused = || {
            ApiError::BadRequest(
                "cursor is not one this API gave out: copy it from the previous page's Link header, or leave it out for the first page".into(),
            )
        };
        let bytes = hex::decode(cursor).map_err(|_| refused())?;
        let sku = String::from_utf8(bytes).map_err(|_| refused())?;
        Sku::new(sku).map(Some).map_err(|_| refused())
    }
}

/// The opaque cursor of the page after `sku`.
fn cursor_after(sku: &str) -> String {
    hex::encode(sku.as_bytes())
}

/// Whether an `If-None-Match` header names `etag` (weak comparison, `*` matches).
fn none_match(headers: &axum::http::HeaderMap, etag: &str) -> bool {
    let strip = |t: &str| t.trim().trim_start_matches("W/").to_owned();
    headers
        .get_all(axum::http::header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim() == "*" || strip(t) == strip(etag))
}

/// The catalogue, a page at a time, from its view: one query per page.
/// Each page has an `ETag`; a client that sends it back in `If-None-Match`
/// gets `304 Not Modified` and no body. A `Link: <...>; rel="next"` header
/// points to the next page while there may be one.
#[utoipa::path(get, path = "/products", tag = "products", security(()),
    params(CatalogQuery, ("If-None-Match" = Option<String>, Header, description = "The ETag of a page you hold: 304 if it has not changed")),
    responses(
        (status = 200, body = [ProductView], headers(
            ("ETag" = String, description = "The page's version, for If-None-Match"),
            ("Link" = String, description = "`<...>; rel=\"next\"`: the next page, while there may be one"),
            ("Cache-Control" = String, description = "`no-cache`: keep the page, revalidate it with its ETag"))),
        (status = 304, description = "The page has not changed since the ETag sent", headers(
            ("ETag" = String, description = "The page's version"))),
        (status = 400, body = Problem)))]
pub async fn list_products(
    State(app): State<AppState>,
    query: CatalogQuery,
    headers: axum::http::HeaderMap,
) -> Result<Response, ApiError> {
    let limit = query.limit()?;
    let after = query.after()?;
    let page = app
        .state
        .query_page(keys::CATALOG, after.as_ref().map(|s| s.as_str()), limit)
        .await?;
    let mut products = Vec::with_capacity(page.items.len());
    for item in &page.items {
        match storefront_runtime::catalog::read(item) {
            Some(view) => products.push(view),
            // Listed before the catalogue view existed: read the aggregate.
            None => {
                let sku = Sku::new(item.sk.clone())?;
                if let Some(view) = ProductView::of(&load_product(&app, &sku).await?) {
                    products.push(view);
                }
            }
        }
    }
    let body = serde_json::to_vec(&products).map_err(|e| ApiError::Internal(e.to_string()))?;
    let digest = sha2::Sha256::digest(&body);
    let etag = format!("\"{}\"", hex::encode(&digest[..16]));
    let mut response = if none_match(&headers, &etag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response()
    };
    let h = response.headers_mut();
    let value = |s: &str| {
        axum::http::HeaderValue::from_str(s).map_err(|e| ApiError::Internal(e.to_string()))
    };
    h.insert(axum::http::header::ETAG, value(&etag)?);
    h.insert(axum::http::header::CACHE_CONTROL, value("no-cache")?);
    if let Some(next) = &page.next {
        let link = format!(
            "</products?limit={limit}&cursor={}>; rel=\"next\"",
            cursor_after(next)
        );
        h.insert(axum::http::header::LINK, value(&link)?);
    }
    Ok(response)
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
    single::<ProductState, _, _, _>(
        &app,
        &ctx,
        stream(ProductState::TYPE, sku.as_str())?,
        StatusCode::CREATED,
        |s| Ok(s.decide(&command)?),
        ProductView::of,
        storefront_runtime::catalog::entry,
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
        storefront_runtime::catalog::entry,
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

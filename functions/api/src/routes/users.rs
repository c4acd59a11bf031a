//! `/users`: registration and the caller's profile.

use super::*;

/// Register the caller: the id is the token's `sub`, the address its
/// verified `email` claim (never one the body names: the shop mails it).
#[utoipa::path(post, path = "/users", tag = "users", request_body = RegisterUser,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe")),
    responses((status = 201, body = UserView), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 409, body = Problem), (status = 413, body = Problem),
        (status = 415, body = Problem), (status = 422, body = Problem)))]
pub async fn register_user(
    State(app): State<AppState>,
    identity: Identity,
    correlation: Correlation,
    idem: Option<axum::Extension<IdempotencyKey>>,
    JsonBody(body): JsonBody<RegisterUser>,
) -> Result<Response, ApiError> {
    if let Some(given) = &body.email {
        storefront_domain::user::validate_email(given)?;
    }
    let Some(email) = identity.email.clone() else {
        return Err(ApiError::Forbidden(
            "register with a token that carries your verified email (a Cognito ID token; locally `storefront token --user NAME --email ADDRESS`)".into(),
        ));
    };
    if body
        .email
        .as_ref()
        .is_some_and(|given| !given.eq_ignore_ascii_case(&email))
    {
        return Err(ApiError::Unprocessable(
            "the email must be your token's verified address; leave it out to use that one".into(),
        ));
    }
    let ctx = ctx(&identity, correlation, idem.map(|e| e.0));
    let command = UserCommand::Register {
        user_id: identity.user_id.clone(),
        email,
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

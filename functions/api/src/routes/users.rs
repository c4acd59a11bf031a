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

/// What a closed account is told when it tries to shop.
const CLOSED: &str = "your account is closed (DELETE /users/me): it can no longer add to a cart, check out or pay; the orders you placed before stay as they are";

/// A closed account's refusal is 403, whatever route meets it.
fn refuse_closed(e: DomainError) -> ApiError {
    match e {
        DomainError::UserDeactivated => ApiError::Forbidden(CLOSED.into()),
        e => e.into(),
    }
}

/// Decides `command` on the caller's own user stream and answers the
/// profile (200); a closed account's refusal is 403.
async fn own_profile_command(
    app: &AppState,
    identity: &Identity,
    ctx: &CommandContext,
    command: &UserCommand,
) -> Result<Response, ApiError> {
    single::<UserState, _, _, _>(
        app,
        ctx,
        stream(UserState::TYPE, identity.user_id.as_str())?,
        StatusCode::OK,
        |s| s.decide(command).map_err(refuse_closed),
        UserView::of,
        none,
    )
    .await
}

/// Refuses a closed account's shopping (adding to a cart, checking out,
/// paying) with 403. A caller who never registered is not refused: a cart
/// needs no account, as before.
pub(super) async fn ensure_open_account(
    app: &AppState,
    identity: &Identity,
) -> Result<(), ApiError> {
    let user =
        load_aggregate::<UserState>(app, &stream(UserState::TYPE, identity.user_id.as_str())?)
            .await?;
    if user.state.deactivated {
        return Err(ApiError::Forbidden(CLOSED.into()));
    }
    Ok(())
}

/// Change the caller's display name, or bring their contact address in line
/// with the token's verified `email` claim after it changed at the identity
/// provider (`user.profile.updated`). Giving what is already there changes
/// nothing and answers the profile.
#[utoipa::path(patch, path = "/users/me", tag = "users", request_body = UpdateProfile,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe")),
    responses((status = 200, body = UserView), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem),
        (status = 413, body = Problem), (status = 415, body = Problem), (status = 422, body = Problem)))]
pub async fn update_me(
    State(app): State<AppState>,
    identity: Identity,
    correlation: Correlation,
    idem: Option<axum::Extension<IdempotencyKey>>,
    JsonBody(body): JsonBody<UpdateProfile>,
) -> Result<Response, ApiError> {
    let email = match &body.email {
        None => None,
        Some(given) => {
            storefront_domain::user::validate_email(given)?;
            let Some(verified) = identity.email.clone() else {
                return Err(ApiError::Forbidden(
                    "change your email with a token that carries your verified address (a Cognito ID token; locally `storefront token --user NAME --email ADDRESS`)".into(),
                ));
            };
            if !given.eq_ignore_ascii_case(&verified) {
                return Err(ApiError::Unprocessable(
                    "the email must be your token's verified address: change it at your identity provider first, then here".into(),
                ));
            }
            Some(verified)
        }
    };
    let ctx = ctx(&identity, correlation, idem.map(|e| e.0));
    let command = UserCommand::UpdateProfile {
        name: body.name,
        email,
    };
    own_profile_command(&app, &identity, &ctx, &command).await
}

/// Close the caller's account (`user.deactivated`): from then on it cannot
/// add to a cart, check out or pay (403); orders placed before stay as they
/// are, and the profile still reads, as `deactivated`.
#[utoipa::path(delete, path = "/users/me", tag = "users",
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe")),
    responses((status = 200, body = UserView), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn close_me(
    State(app): State<AppState>,
    identity: Identity,
    correlation: Correlation,
    idem: Option<axum::Extension<IdempotencyKey>>,
) -> Result<Response, ApiError> {
    let ctx = ctx(&identity, correlation, idem.map(|e| e.0));
    let command = UserCommand::Deactivate {
        reason: "closed by the user".into(),
    };
    own_profile_command(&app, &identity, &ctx, &command).await
}

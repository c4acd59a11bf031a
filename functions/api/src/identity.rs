//! Who is calling.
//!
//! In AWS the HTTP API's JWT authorizer has already verified the token and
//! hands its claims to the function in the request context; `lambda_http`
//! puts that context in the request's extensions. Locally, a layer of the
//! local runtime verifies a dev token and inserts [`Claims`] itself. Either
//! way the handlers see one [`Identity`].

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use lambda_http::RequestExt;
use lambda_http::request::RequestContext;
use storefront_domain::UserId;

use crate::error::ApiError;

/// The group whose members may manage the catalogue, ship orders and read history.
pub const ADMIN_GROUP: &str = "admin";

/// Verified claims, as an authorizer hands them over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// The `sub` claim: the user's id.
    pub sub: String,
    /// The `cognito:groups` claim.
    pub groups: Vec<String>,
    /// The `email` claim, only when the token says it is verified
    /// (`email_verified`: Cognito ID tokens carry both).
    pub email: Option<String>,
}

/// The caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The user's id (the token's `sub`).
    pub user_id: UserId,
    /// Whether the user is in the `admin` group.
    pub admin: bool,
    /// The verified email address of the token, if it carries one.
    pub email: Option<String>,
}

impl Identity {
    /// Refuses non-admins with 403.
    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.admin {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!(
                "this needs the '{ADMIN_GROUP}' group"
            )))
        }
    }
}

/// Parses the groups claim. API Gateway's HTTP API flattens array claims to
/// a string such as `[admin shoppers]`; a JSON array or a comma list also work.
pub fn parse_groups(raw: &str) -> Vec<String> {
    let trimmed = raw.trim();
    if let Ok(list) = serde_json::from_str::<Vec<String>>(trimmed) {
        return list;
    }
    trimmed
        .trim_start_matches('[')
        .trim_end_matches(']')
        .split([' ', ','])
        .filter(|g| !g.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The verified claims of a request, from the local layer or the Lambda request context.
pub(crate) fn claims_from_parts(parts: &Parts) -> Option<Claims> {
    if let Some(claims) = parts.extensions.get::<Claims>() {
        return Some(claims.clone());
    }
    match parts.extensions.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => {
            let jwt = ctx.authorizer.as_ref()?.jwt.as_ref()?;
            let sub = jwt.claims.get("sub")?.clone();
            let groups = jwt
                .claims
                .get("cognito:groups")
                .map(|g| parse_groups(g))
                .unwrap_or_default();
            let verified = jwt
                .claims
                .get("email_verified")
                .is_some_and(|v| v.eq_ignore_ascii_case("true"));
            let email = jwt.claims.get("email").filter(|_| verified).cloned();
            Some(Claims { sub, groups, email })
        }
        _ => None,
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Identity {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let claims = claims_from_parts(parts).ok_or_else(|| {
            match parts.extensions.get::<RejectedToken>() {
                Some(RejectedToken(why)) => ApiError::Unauthorized(why.clone()),
                None => ApiError::Unauthorized(
                    "sign in: send a bearer token (locally: `storefront token --user NAME`)".into(),
                ),
            }
        })?;
        let user_id = UserId::new(claims.sub).map_err(|e| {
            ApiError::Unauthorized(format!("the token's subject is not a usable user id: {e}"))
        })?;
        Ok(Identity {
            user_id,
            admin: claims.groups.iter().any(|g| g == ADMIN_GROUP),
            email: claims.email,
        })
    }
}

/// Why the local JWT layer refused the request's token. Like API Gateway's
/// authorizer, which runs only on the routes that need a caller, the layer
/// does not answer for the route: a route that extracts an [`Identity`]
/// answers 401 with this reason, a public route ignores the token.
#[derive(Debug, Clone)]
pub struct RejectedToken(pub String);

/// An admin caller. Extracting it answers 401 (no verified claims) or 403
/// (not in the `admin` group) before the handler's other extractors run:
/// put it first, and a shopper's malformed path or body is never parsed,
/// let alone answered with a 400 that tells them more than "no".
#[derive(Debug, Clone)]
pub struct Admin(pub Identity);

impl<S: Send + Sync> FromRequestParts<S> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let identity = Identity::from_request_parts(parts, state).await?;
        identity.require_admin()?;
        Ok(Admin(identity))
    }
}

#[cfg(test)]
mod tests {
    use super::parse_groups;

    /// Groups parse from API Gateway's flattened form, JSON arrays and comma lists.
    #[test]
    fn groups() {
        assert_eq!(parse_groups("[admin shoppers]"), vec!["admin", "shoppers"]);
        assert_eq!(parse_groups(r#"["admin","x"]"#), vec!["admin", "x"]);
        assert_eq!(parse_groups("admin,x"), vec!["admin", "x"]);
        assert!(parse_groups("[]").is_empty());
    }
}

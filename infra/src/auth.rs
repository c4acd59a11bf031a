//! The local stand-in for API Gateway's JWT authorizer.
//!
//! In AWS, Cognito issues the tokens and the HTTP API verifies them before
//! the function runs. Locally, `storefront token --user alice [--admin]`
//! signs a token (HS256) with a key kept in the data folder
//! (`dev-signing-key`, created on first use, readable only by its owner), and
//! a layer in front of the Router verifies it and hands the handlers the same
//! claims the authorizer would: `sub` and `cognito:groups`. The key never
//! leaves the machine and is never used in AWS.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use storefront_api::{Claims, RejectedToken};

/// The issuer of local tokens.
pub const ISSUER: &str = "storefront-local";
/// The audience of local tokens.
pub const AUDIENCE: &str = "storefront";
const KEY_FILE: &str = "dev-signing-key";

/// The shortest dev signing key accepted, in bytes (HS256's own key size).
pub const MIN_KEY_BYTES: usize = 32;

/// Why a token was refused, or a key could not be had.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The key file could not be read or written.
    #[error("dev signing key at {path}: {reason}")]
    Key {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// The token is not valid (signature, expiry, audience, claims).
    #[error("invalid token: {0}")]
    Invalid(String),
}

#[derive(Debug, Serialize, Deserialize)]
struct TokenClaims {
    sub: String,
    #[serde(rename = "cognito:groups", default)]
    groups: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    email_verified: Option<bool>,
    iss: String,
    aud: String,
    iat: u64,
    exp: u64,
}

/// The dev signing key.
#[derive(Clone)]
pub struct DevKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl std::fmt::Debug for DevKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DevKeys(..)")
    }
}

impl DevKeys {
    /// Loads the key from the data folder, creating a random one on first use.
    ///
    /// A new key is written whole or not at all: to a private temporary file
    /// (mode 0600), synced, then linked into place only if no key is there
    /// yet (a concurrent first use reads the winner's key instead of
    /// overwriting it). A key shorter than [`MIN_KEY_BYTES`] (an empty file
    /// included) is refused: anyone could forge an admin's token with it.
    pub fn load_or_create(data: &Path) -> Result<DevKeys, AuthError> {
        let path = data.join(KEY_FILE);
        let err = |reason: String| AuthError::Key {
            path: path.display().to_string(),
            reason,
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(data).map_err(|e| err(e.to_string()))?;
                let mut secret = vec![0u8; 32];
                getrandom::fill(&mut secret).map_err(|e| err(e.to_string()))?;
                create_private(data, &path, &hex::encode(&secret))
                    .map_err(|e| err(format!("cannot write it: {e}")))?;
                std::fs::read_to_string(&path).map_err(|e| err(e.to_string()))?
            }
            Err(e) => {
                return Err(err(format!(
                    "unreadable ({e}); fix its permissions, or delete it to make a new one"
                )));
            }
        };
        let secret = hex::decode(text.trim())
            .map_err(|e| err(format!("not hex: {e}; delete it to make a new one")))?;
        if secret.len() < MIN_KEY_BYTES {
            return Err(err(format!(
                "{} bytes, fewer than the {MIN_KEY_BYTES} a signing key needs (a write cut short?); delete it to make a new one",
                secret.len()
            )));
        }
        Ok(DevKeys::from_secret(&secret))
    }

    /// Loads the key of an existing data folder; unlike [`DevKeys::load_or_create`]
    /// a missing key is an error (a client needs the running runtime's key).
    pub fn load(data: &Path) -> Result<DevKeys, AuthError> {
        let path = data.join(KEY_FILE);
        if !path.exists() {
            return Err(AuthError::Key {
                path: path.display().to_string(),
                reason: "no such file".into(),
            });
        }
        DevKeys::load_or_create(data)
    }

    /// Keys from a secret (tests).
    pub fn from_secret(secret: &[u8]) -> DevKeys {
        DevKeys {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
        }
    }

    /// A token for `user`, in the `admin` group if asked, carrying `email` as
    /// a verified address if given (as a Cognito ID token does), valid for
    /// `ttl_seconds`.
    pub fn issue(
        &self,
        user: &str,
        admin: bool,
        email: Option<&str>,
        ttl_seconds: u64,
    ) -> Result<String, AuthError> {
        storefront_domain::UserId::new(user)
            .map_err(|e| AuthError::Invalid(format!("user: {e}")))?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let claims = TokenClaims {
            sub: user.to_owned(),
            groups: if admin { vec!["admin".into()] } else { vec![] },
            email: email.map(str::to_owned),
            email_verified: email.map(|_| true),
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            iat: now,
            exp: now + ttl_seconds,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| AuthError::Invalid(e.to_string()))
    }

    /// Verifies a token: signature, algorithm, expiry, issuer, audience, subject.
    pub fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = 5;
        let data = jsonwebtoken::decode::<TokenClaims>(token, &self.decoding, &validation)
            .map_err(|e| AuthError::Invalid(e.to_string()))?;
        if data.claims.sub.is_empty() {
            return Err(AuthError::Invalid("empty subject".into()));
        }
        let verified = data.claims.email_verified == Some(true);
        Ok(Claims {
            sub: data.claims.sub,
            groups: data.claims.groups,
            email: data.claims.email.filter(|_| verified),
        })
    }
}

/// Writes `text` to `path` atomically, only if `path` does not exist: a
/// private temporary file in `dir`, synced, hard-linked into place (which
/// fails if a key got there first: that key is kept), then removed.
fn create_private(dir: &Path, path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut tag = [0u8; 8];
    getrandom::fill(&mut tag).map_err(|e| std::io::Error::other(e.to_string()))?;
    let temporary = dir.join(format!(".{KEY_FILE}.{}", hex::encode(tag)));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let written = (|| {
        let mut f = options.open(&temporary)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        match std::fs::hard_link(&temporary, path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        // The new name is durable once the folder is.
        if let Ok(folder) = std::fs::File::open(dir) {
            let _ = folder.sync_all();
        }
        Ok(())
    })();
    let _ = std::fs::remove_file(&temporary);
    written
}

/// The layer: a request with `Authorization: Bearer <token>` gets the token's
/// claims; a bad token is noted ([`RejectedToken`]) and the request goes on
/// anonymous, so a route that needs a user answers 401 with the reason and
/// a public one is served, as behind API Gateway's JWT authorizer.
pub async fn layer(State(keys): State<DevKeys>, mut request: Request, next: Next) -> Response {
    // Claims only ever come from a verified token.
    request.extensions_mut().remove::<Claims>();
    request.extensions_mut().remove::<RejectedToken>();
    let header = request
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.to_str().map(str::to_owned));
    let rejected = match header {
        None => None,
        Some(Ok(value)) => {
            let token = value
                .strip_prefix("Bearer ")
                .or_else(|| value.strip_prefix("bearer "))
                .map(str::trim);
            match token.map(|t| keys.verify(t)) {
                Some(Ok(claims)) => {
                    request.extensions_mut().insert(claims);
                    None
                }
                Some(Err(e)) => Some(format!(
                    "{e}; get a fresh one with `storefront token --user NAME`"
                )),
                None => Some("Authorization must be `Bearer <token>`".into()),
            }
        }
        Some(Err(_)) => Some("the Authorization header is not readable text".into()),
    };
    // As API Gateway: the authorizer's refusal matters only to the routes
    // that need a caller (they answer 401 with this reason); a public
    // route is served whatever the header says.
    if let Some(why) = rejected {
        request.extensions_mut().insert(RejectedToken(why));
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issued tokens verify; tampered, foreign-key and expired ones do not.
    #[test]
    fn tokens() {
        let keys = DevKeys::from_secret(b"0123456789abcdef0123456789abcdef");
        let token = keys.issue("alice", true, None, 60).expect("issue");
        let claims = keys.verify(&token).expect("verify");
        assert_eq!(
            (claims.sub.as_str(), claims.groups.as_slice()),
            ("alice", &["admin".to_owned()][..])
        );
        let other = DevKeys::from_secret(b"another key, another key, 123456");
        assert!(other.verify(&token).is_err(), "bad signature");
        let mut tampered = token.clone();
        tampered.pop();
        assert!(keys.verify(&tampered).is_err());
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock")
            .as_secs();
        let sign = |claims: serde_json::Value| {
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &keys.encoding)
                .expect("encode")
        };
        let base = serde_json::json!({"sub": "alice", "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 60});
        assert!(
            keys.verify(&sign(base.clone())).is_ok(),
            "the hand-made baseline verifies"
        );
        let mut expired = base.clone();
        expired["exp"] = (now - 600).into();
        let mut audience = base.clone();
        audience["aud"] = "someone-else".into();
        let mut issuer = base.clone();
        issuer["iss"] = "cognito".into();
        let mut no_sub = base.clone();
        no_sub.as_object_mut().expect("object").remove("sub");
        let mut empty_sub = base;
        empty_sub["sub"] = "".into();
        for (name, claims) in [
            ("expired", expired),
            ("audience", audience),
            ("issuer", issuer),
            ("no sub", no_sub),
            ("empty sub", empty_sub),
        ] {
            assert!(
                keys.verify(&sign(claims)).is_err(),
                "{name} must be refused"
            );
        }
        let none_alg = format!("{}.{}.", hex::encode("x"), hex::encode("y"));
        assert!(keys.verify(&none_alg).is_err());
        assert!(
            keys.issue("a b", false, None, 60).is_err(),
            "user ids are validated"
        );
    }

    /// The key is created once and then reused.
    #[test]
    fn key_file() {
        let dir = tempfile::tempdir().expect("dir");
        let a = DevKeys::load_or_create(dir.path()).expect("create");
        let b = DevKeys::load_or_create(dir.path()).expect("load");
        let token = a.issue("bob", false, None, 60).expect("issue");
        assert!(b.verify(&token).is_ok());
    }

    fn b64(bytes: &[u8]) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }

    /// A token with `alg: none` (no signature), or signed with an empty
    /// key, is refused, however good its claims.
    #[test]
    fn unsigned_and_empty_key_tokens_are_refused() {
        let keys = DevKeys::from_secret(b"0123456789abcdef0123456789abcdef");
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock")
            .as_secs();
        let claims = serde_json::json!({"sub": "root", "cognito:groups": ["admin"], "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 600});
        let payload = b64(claims.to_string().as_bytes());
        for header in [
            r#"{"alg":"none","typ":"JWT"}"#,
            r#"{"alg":"None","typ":"JWT"}"#,
            r#"{"alg":"none"}"#,
        ] {
            let token = format!("{}.{payload}.", b64(header.as_bytes()));
            assert!(keys.verify(&token).is_err(), "{header} must be refused");
        }
        let empty = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(b""),
        )
        .expect("sign with an empty key");
        assert!(keys.verify(&empty).is_err(), "an empty key's token");
    }

    /// An empty or short key file is refused with what to do; a new key is
    /// private and whole, and concurrent first uses agree on one key.
    #[test]
    fn weak_keys_are_refused_and_new_ones_are_written_whole() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join(KEY_FILE);
        std::fs::write(&path, "").expect("empty key");
        let err = DevKeys::load_or_create(dir.path()).expect_err("empty key refused");
        assert!(err.to_string().contains("fewer than the 32"), "{err}");
        assert!(err.to_string().contains("delete it"), "{err}");
        std::fs::write(&path, hex::encode([7u8; 16])).expect("short key");
        assert!(
            DevKeys::load_or_create(dir.path()).is_err(),
            "16 bytes refused"
        );

        let dir = tempfile::tempdir().expect("dir");
        let keys: Vec<DevKeys> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8)
                .map(|_| scope.spawn(|| DevKeys::load_or_create(dir.path()).expect("key")))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("thread"))
                .collect()
        });
        let token = keys[0].issue("alice", false, None, 60).expect("issue");
        for k in &keys {
            k.verify(&token).expect("every first use got the same key");
        }
        let text = std::fs::read_to_string(dir.path().join(KEY_FILE)).expect("key");
        assert_eq!(hex::decode(text.trim()).expect("hex").len(), 32);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(KEY_FILE))
                .expect("meta")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .expect("list")
            .filter_map(|e| e.ok())
            .map(|e| e.file_name())
            .filter(|n| n != KEY_FILE)
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }
}

//! The user: stream `user#{userId}`, where the id is the token's `sub`.

use serde::{Deserialize, Serialize};

use crate::events::*;
use crate::ids::{UserId, validate_text};
use crate::{Aggregate, DomainError};

/// The longest display name, in characters.
pub const MAX_NAME_CHARS: usize = 100;

/// The user, folded from its events.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserState {
    /// The user, once registered.
    pub user_id: Option<UserId>,
    /// Contact address.
    pub email: String,
    /// Display name.
    pub name: String,
    /// Whether the account is closed.
    pub deactivated: bool,
    /// Stream version.
    pub version: u64,
}

/// What can be asked of a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserCommand {
    /// Register.
    Register {
        /// The token's `sub`.
        user_id: UserId,
        /// Contact address.
        email: String,
        /// Display name.
        name: String,
    },
    /// Change name and/or email.
    UpdateProfile {
        /// A new display name.
        name: Option<String>,
        /// A new contact address.
        email: Option<String>,
    },
    /// Close the account.
    Deactivate {
        /// Why.
        reason: String,
    },
}

/// A deliberately plain check: one `@`, something on both sides, a dot in the
/// domain, no spaces, at most 254 characters. Deliverability is SES's business.
pub fn validate_email(email: &str) -> Result<(), DomainError> {
    let ok = email.len() <= 254
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && match email.split_once('@') {
            Some((local, domain)) => {
                !local.is_empty()
                    && !domain.contains('@')
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
            }
            None => false,
        };
    if ok {
        Ok(())
    } else {
        Err(DomainError::invalid(
            "email",
            "must be an address like ada@example.com",
        ))
    }
}

impl UserState {
    fn active(&self) -> Result<(), DomainError> {
        if self.user_id.is_none() {
            Err(DomainError::NotFound("user"))
        } else if self.deactivated {
            Err(DomainError::UserDeactivated)
        } else {
            Ok(())
        }
    }
}

impl Aggregate for UserState {
    const TYPE: &'static str = "user";
    type Command = UserCommand;

    fn decide(&self, command: &UserCommand) -> Result<Vec<Event>, DomainError> {
        match command {
            UserCommand::Register {
                user_id,
                email,
                name,
            } => {
                if self.user_id.is_some() {
                    return Err(DomainError::AlreadyExists("user"));
                }
                validate_email(email)?;
                validate_text("name", name, MAX_NAME_CHARS)?;
                Ok(vec![Event::UserRegistered(UserRegistered {
                    user_id: user_id.clone(),
                    email: email.clone(),
                    name: name.clone(),
                })])
            }
            UserCommand::UpdateProfile { name, email } => {
                self.active()?;
                if name.is_none() && email.is_none() {
                    return Err(DomainError::invalid(
                        "body",
                        "give a new name, a new email, or both",
                    ));
                }
                if let Some(email) = email {
                    validate_email(email)?;
                }
                if let Some(name) = name {
                    validate_text("name", name, MAX_NAME_CHARS)?;
                }
                let name = name.clone().filter(|n| n != &self.name);
                let email = email.clone().filter(|e| e != &self.email);
                if name.is_none() && email.is_none() {
                    return Ok(vec![]);
                }
                Ok(vec![Event::UserProfileUpdated(UserProfileUpdated {
                    name,
                    email,
                })])
            }
            UserCommand::Deactivate { reason } => {
                self.active()?;
                Ok(vec![Event::UserDeactivated(UserDeactivated {
                    reason: reason.clone(),
                })])
            }
        }
    }

    fn evolve(mut self, event: &Event) -> Self {
        match event {
            Event::UserRegistered(e) => {
                self.user_id = Some(e.user_id.clone());
                self.email = e.email.clone();
                self.name = e.name.clone();
            }
            Event::UserProfileUpdated(e) => {
                if let Some(name) = &e.name {
                    self.name = name.clone();
                }
                if let Some(email) = &e.email {
                    self.email = email.clone();
                }
            }
            Event::UserDeactivated(_) => self.deactivated = true,
            _ => return self,
        }
        self.version += 1;
        self
    }

    fn version(&self) -> u64 {
        self.version
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decider::testing::given;

    fn uid() -> UserId {
        UserId::new("u1").expect("user")
    }
    fn registered() -> Event {
        Event::UserRegistered(UserRegistered {
            user_id: uid(),
            email: "ada@example.com".into(),
            name: "Ada".into(),
        })
    }
    fn register(email: &str, name: &str) -> UserCommand {
        UserCommand::Register {
            user_id: uid(),
            email: email.into(),
            name: name.into(),
        }
    }

    /// Registration validates email and name and happens once.
    #[test]
    fn register_user() {
        given::<UserState>([])
            .when(register("ada@example.com", "Ada"))
            .then([registered()]);
        given::<UserState>([registered()])
            .when(register("ada@example.com", "Ada"))
            .then_err(DomainError::AlreadyExists("user"));
        for bad in [
            "",
            "ada",
            "ada@",
            "@x.io",
            "ada@localhost",
            "a b@x.io",
            "a@b@x.io",
            "ada@x.",
        ] {
            assert!(
                matches!(
                    given::<UserState>([]).state().decide(&register(bad, "Ada")),
                    Err(DomainError::Invalid { field: "email", .. })
                ),
                "{bad}"
            );
        }
        assert!(matches!(
            given::<UserState>([])
                .state()
                .decide(&register("ada@example.com", " ")),
            Err(DomainError::Invalid { field: "name", .. })
        ));
    }

    /// Profile updates record only changes, and need a registered, active user.
    #[test]
    fn update_profile() {
        given::<UserState>([registered()])
            .when(UserCommand::UpdateProfile {
                name: Some("Ada L".into()),
                email: Some("ada@example.com".into()),
            })
            .then([Event::UserProfileUpdated(UserProfileUpdated {
                name: Some("Ada L".into()),
                email: None,
            })]);
        given::<UserState>([registered()])
            .when(UserCommand::UpdateProfile {
                name: Some("Ada".into()),
                email: None,
            })
            .then([]);
        given::<UserState>([])
            .when(UserCommand::UpdateProfile {
                name: Some("Ada".into()),
                email: None,
            })
            .then_err(DomainError::NotFound("user"));
        let deactivated = Event::UserDeactivated(UserDeactivated {
            reason: "asked".into(),
        });
        given::<UserState>([registered(), deactivated.clone()])
            .when(UserCommand::UpdateProfile {
                name: Some("B".into()),
                email: None,
            })
            .then_err(DomainError::UserDeactivated);
        given::<UserState>([registered(), deactivated])
            .when(UserCommand::Deactivate {
                reason: "again".into(),
            })
            .then_err(DomainError::UserDeactivated);
        assert!(matches!(
            given::<UserState>([registered()])
                .state()
                .decide(&UserCommand::UpdateProfile {
                    name: None,
                    email: None
                }),
            Err(DomainError::Invalid { field: "body", .. })
        ));
    }

    /// Deactivation is recorded.
    #[test]
    fn deactivate() {
        let state = given::<UserState>([registered()])
            .when(UserCommand::Deactivate {
                reason: "asked".into(),
            })
            .then([Event::UserDeactivated(UserDeactivated {
                reason: "asked".into(),
            })]);
        assert!(state.deactivated);
    }
}

//! Deciders: `decide(&state, &command) -> Result<Vec<Event>>` and
//! `evolve(state, &event) -> state`, kept apart as in cqrs-es.
//!
//! All business logic is in `decide`; `evolve` only records facts and never
//! fails (an event that happened, happened). Events of other aggregates are
//! ignored by `evolve`, so a state can be folded from any stream.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{DomainError, Event};

/// An event-sourced aggregate.
pub trait Aggregate: Default + Clone + Serialize + DeserializeOwned {
    /// The stream prefix: `cart`, `order`, `product`, `user`.
    const TYPE: &'static str;
    /// What can be asked of it.
    type Command;

    /// Decides which events a command produces, or why it is refused.
    fn decide(&self, command: &Self::Command) -> Result<Vec<Event>, DomainError>;

    /// Applies one event.
    fn evolve(self, event: &Event) -> Self;

    /// How many events have been applied: the stream version this state is at.
    fn version(&self) -> u64;

    /// Folds events onto a state.
    fn fold<'a>(self, events: impl IntoIterator<Item = &'a Event>) -> Self {
        events.into_iter().fold(self, Self::evolve)
    }
}

/// given/when/then for deciders:
///
/// ```
/// use storefront_domain::decider::testing::given;
/// use storefront_domain::user::{UserCommand, UserState};
/// use storefront_domain::{DomainError, UserId};
///
/// given::<UserState>([])
///     .when(UserCommand::UpdateProfile { name: Some("Ada".into()), email: None })
///     .then_err(DomainError::NotFound("user"));
/// ```
pub mod testing {
    use super::*;

    /// The state after some history.
    pub struct Given<A: Aggregate>(A);

    /// Starts a test from the aggregate folded over `events`.
    pub fn given<A: Aggregate>(events: impl IntoIterator<Item = Event>) -> Given<A> {
        let events: Vec<Event> = events.into_iter().collect();
        Given(A::default().fold(events.iter()))
    }

    impl<A: Aggregate> Given<A> {
        /// Decides a command.
        pub fn when(self, command: A::Command) -> Then<A> {
            let result = self.0.decide(&command);
            Then {
                state: self.0,
                result,
            }
        }

        /// The state, for assertions on evolve.
        pub fn state(self) -> A {
            self.0
        }
    }

    /// The outcome of a command.
    pub struct Then<A: Aggregate> {
        state: A,
        result: Result<Vec<Event>, DomainError>,
    }

    impl<A: Aggregate> Then<A> {
        /// Asserts the exact events, and returns the state after them.
        #[track_caller]
        pub fn then(self, expected: impl IntoIterator<Item = Event>) -> A {
            let expected: Vec<Event> = expected.into_iter().collect();
            match self.result {
                Ok(events) => {
                    assert_eq!(events, expected, "decided events");
                    self.state.fold(events.iter())
                }
                Err(e) => panic!("expected events {expected:?}, got error {e:?}"),
            }
        }

        /// Asserts the command is refused with exactly this error.
        #[track_caller]
        pub fn then_err(self, expected: DomainError) {
            match self.result {
                Ok(events) => panic!("expected error {expected:?}, got events {events:?}"),
                Err(e) => assert_eq!(e, expected, "refusal"),
            }
        }
    }
}

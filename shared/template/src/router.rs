//! Routing events through the template's rules, as EventBridge does.
//!
//! Patterns are matched by `quamina` (a port of Tim Bray's matcher, the
//! algorithm family EventBridge itself descends from). quamina has no `$or`;
//! [`expand_or`] rewrites a pattern with `$or` into the equivalent list of
//! patterns without it, all registered under the same rule, which is exactly
//! `$or`'s meaning (the rule matches if any alternative does).

use quamina::Quamina;
use serde_json::{Map, Value};
use thiserror::Error;

use crate::Template;

/// A pattern quamina refused, or an event it could not read.
#[derive(Debug, Error)]
pub enum RouterError {
    /// The pattern is not one quamina accepts.
    #[error("rule {rule}: event pattern not accepted: {reason}")]
    Pattern {
        /// The rule.
        rule: String,
        /// quamina's reason.
        reason: String,
    },
    /// The event is not JSON quamina can flatten.
    #[error("event could not be matched: {0}")]
    Event(String),
}

/// Matches events against every rule's pattern.
pub struct PatternRouter {
    /// Patterns registered under the index of their rule in `rules`.
    matcher: Quamina<usize>,
    rules: Vec<String>,
    /// The top-level fields any pattern names: all a match can depend on.
    fields: Vec<String>,
    /// Matches already made, by the projection of the event they were made on.
    memo: Memo,
}

impl Clone for PatternRouter {
    fn clone(&self) -> Self {
        PatternRouter {
            matcher: self.matcher.clone(),
            rules: self.rules.clone(),
            fields: self.fields.clone(),
            memo: Memo::default(),
        }
    }
}

impl std::fmt::Debug for PatternRouter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PatternRouter")
            .field("rules", &self.rules)
            .finish()
    }
}

/// A bounded memo of matches by projection.
///
/// A match depends only on the projection of the event (the top-level fields
/// some pattern names), and a shop's events have few distinct projections
/// when, as in `template.yaml`, the rules look at `source` and `detail-type`:
/// one per event type. So the matcher runs once per projection and every
/// later event with the same one is a hash look-up. Projections longer than
/// [`Memo::MAX_KEY`] (a rule that looks into `detail`, whose values vary per
/// event) are never kept, and the memo stops growing at [`Memo::MAX_ENTRIES`];
/// past either bound every event goes to the matcher, as without the memo.
#[derive(Default)]
struct Memo {
    hits: std::sync::RwLock<std::collections::HashMap<Box<[u8]>, RuleIndexes>>,
}

/// Indexes into [`PatternRouter::rules`], shared between the memo and its readers.
type RuleIndexes = std::sync::Arc<[usize]>;

impl Memo {
    const MAX_KEY: usize = 512;
    const MAX_ENTRIES: usize = 4096;

    fn get(&self, key: &[u8]) -> Option<RuleIndexes> {
        let hits = self.hits.read().unwrap_or_else(|p| p.into_inner());
        hits.get(key).cloned()
    }

    fn keep(&self, key: &[u8], rules: RuleIndexes) {
        if key.len() > Self::MAX_KEY {
            return;
        }
        let mut hits = self.hits.write().unwrap_or_else(|p| p.into_inner());
        if hits.len() < Self::MAX_ENTRIES {
            hits.insert(key.into(), rules);
        }
    }
}

impl PatternRouter {
    /// A router over (rule id, pattern) pairs.
    pub fn new<'a>(
        rules: impl IntoIterator<Item = (&'a str, &'a Value)>,
    ) -> Result<PatternRouter, RouterError> {
        let mut matcher = Quamina::new();
        let mut ids: Vec<String> = Vec::new();
        let mut fields = std::collections::BTreeSet::new();
        for (id, pattern) in rules {
            let index = match ids.iter().position(|known| known == id) {
                Some(index) => index,
                None => {
                    ids.push(id.to_owned());
                    ids.len() - 1
                }
            };
            for alternative in expand_or(pattern) {
                if let Value::Object(m) = &alternative {
                    fields.extend(m.keys().cloned());
                }
                matcher
                    .add_pattern(index, &alternative.to_string())
                    .map_err(|e| RouterError::Pattern {
                        rule: id.to_owned(),
                        reason: e.to_string(),
                    })?;
            }
        }
        Ok(PatternRouter {
            matcher,
            rules: ids,
            fields: fields.into_iter().collect(),
            memo: Memo::default(),
        })
    }

    /// A router over every rule of a template.
    pub fn from_template(template: &Template) -> Result<PatternRouter, RouterError> {
        PatternRouter::new(
            template
                .rules
                .values()
                .map(|r| (r.logical_id.as_str(), &r.pattern)),
        )
    }

    /// The indexes (into [`PatternRouter::rules`]) of the rules matching `event`, sorted, each once.
    fn matching(&self, event: &[u8]) -> Result<Vec<usize>, RouterError> {
        let mut hits = self
            .matcher
            .matches_for_event(event)
            .map_err(|e| RouterError::Event(e.to_string()))?;
        hits.sort_unstable_by(|a, b| self.rules[*a].cmp(&self.rules[*b]));
        hits.dedup();
        Ok(hits)
    }

    /// The ids of the rules that match `event` (an EventBridge event as JSON), sorted, each once.
    ///
    /// The whole event goes to the matcher every time; an event already in
    /// memory is cheaper through [`PatternRouter::matches_event`].
    pub fn matches(&self, event: &[u8]) -> Result<Vec<String>, RouterError> {
        Ok(self
            .matching(event)?
            .into_iter()
            .map(|i| self.rules[i].clone())
            .collect())
    }

    /// Like [`PatternRouter::matches`], for an event already in memory: only the
    /// top-level fields some pattern names are handed to the matcher (a
    /// pattern cannot depend on a field it does not name, and `exists: false`
    /// on an unnamed field is impossible), so a rule set that looks at
    /// `source` and `detail-type` never scans the `detail`; and the answer for
    /// a projection already seen is remembered (see `Memo`).
    pub fn matches_event(&self, event: &Value) -> Result<Vec<&str>, RouterError> {
        let Value::Object(all) = event else {
            return Err(RouterError::Event("an event is a JSON object".into()));
        };
        // The projection as JSON: the memo's key and, on a miss, the matcher's input.
        let mut key = Vec::with_capacity(96);
        key.push(b'{');
        for field in &self.fields {
            if let Some(v) = all.get(field) {
                if key.len() > 1 {
                    key.push(b',');
                }
                serde_json::to_writer(&mut key, field)
                    .and_then(|()| {
                        key.push(b':');
                        serde_json::to_writer(&mut key, v)
                    })
                    .map_err(|e| RouterError::Event(e.to_string()))?;
            }
        }
        key.push(b'}');
        let indexes = match self.memo.get(&key) {
            Some(hit) => hit,
            None => {
                let found: RuleIndexes = self.matching(&key)?.into();
                self.memo.keep(&key, found.clone());
                found
            }
        };
        Ok(indexes.iter().map(|i| self.rules[*i].as_str()).collect())
    }

    /// The rule ids known to the router.
    pub fn rules(&self) -> &[String] {
        &self.rules
    }
}

/// The EventBridge event a PutEvents entry becomes, as rules see it.
pub fn eventbridge_event(
    id: &str,
    source: &str,
    detail_type: &str,
    time: &str,
    detail: &Value,
) -> Value {
    serde_json::json!({
        "version": "0",
        "id": id,
        "detail-type": detail_type,
        "source": source,
        "account": "000000000000",
        "time": time,
        "region": "local",
        "resources": [],
        "detail": detail,
    })
}

/// Rewrites `$or` (at any level) into alternatives without it.
pub fn expand_or(pattern: &Value) -> Vec<Value> {
    let Value::Object(map) = pattern else {
        return vec![pattern.clone()];
    };
    // Expand every field except `$or`, as a cartesian product.
    let mut partials: Vec<Map<String, Value>> = vec![Map::new()];
    for (key, value) in map {
        if key == "$or" {
            continue;
        }
        let options = match value {
            Value::Object(_) => expand_or(value),
            other => vec![other.clone()],
        };
        partials = partials
            .into_iter()
            .flat_map(|p| {
                options.iter().map(move |o| {
                    let mut p = p.clone();
                    p.insert(key.clone(), o.clone());
                    p
                })
            })
            .collect();
    }
    if let Some(Value::Array(alternatives)) = map.get("$or") {
        let expanded: Vec<Value> = alternatives.iter().flat_map(expand_or).collect();
        partials = partials
            .into_iter()
            .flat_map(|p| {
                expanded.iter().map(move |alt| {
                    let mut merged = Value::Object(p.clone());
                    merge(&mut merged, alt);
                    merged
                })
            })
            .filter_map(|v| match v {
                Value::Object(m) => Some(m),
                _ => None,
            })
            .collect();
    }
    partials.into_iter().map(Value::Object).collect()
}

fn merge(into: &mut Value, from: &Value) {
    match (into, from) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                match a.get_mut(k) {
                    Some(existing) => merge(existing, v),
                    None => {
                        a.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (slot, value) => *slot = value.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// `$or` at the top and nested levels expands to every alternative, merged with the rest.
    #[test]
    fn or_expansion() {
        let p = json!({"source": ["a"], "$or": [{"detail-type": ["x"]}, {"detail": {"k": ["v"]}}]});
        let alts = expand_or(&p);
        assert_eq!(alts.len(), 2);
        assert!(alts.contains(&json!({"source": ["a"], "detail-type": ["x"]})));
        assert!(alts.contains(&json!({"source": ["a"], "detail": {"k": ["v"]}})));
        let nested = json!({"detail": {"$or": [{"a": [1]}, {"b": [2]}], "c": [3]}});
        let alts = expand_or(&nested);
        assert_eq!(alts.len(), 2);
        assert!(alts.contains(&json!({"detail": {"a": [1], "c": [3]}})));
        let none = json!({"source": ["a"]});
        assert_eq!(expand_or(&none), vec![none]);
    }

    /// Matching the projection of an event gives the same rules as matching all of it.
    #[test]
    fn projection_matches_like_the_whole_event() {
        let rules = [
            (
                "by-type",
                json!({"source": [{"prefix": "storefront."}], "detail-type": ["order.created"]}),
            ),
            (
                "by-detail",
                json!({"detail": {"data": {"currency": ["EUR"]}}}),
            ),
            (
                "absent",
                json!({"source": ["storefront.order"], "detail": {"x": [{"exists": false}]}}),
            ),
        ];
        let router = PatternRouter::new(rules.iter().map(|(id, p)| (*id, p))).expect("router");
        for event in [
            eventbridge_event(
                "1",
                "storefront.order",
                "order.created",
                "t",
                &json!({"data": {"currency": "EUR"}}),
            ),
            eventbridge_event(
                "2",
                "storefront.order",
                "order.paid",
                "t",
                &json!({"data": {"currency": "USD"}, "x": 1}),
            ),
            eventbridge_event("3", "other", "order.created", "t", &json!({})),
        ] {
            // The second look comes from the memo.
            for _ in 0..2 {
                assert_eq!(
                    router.matches_event(&event).expect("projected"),
                    router.matches(event.to_string().as_bytes()).expect("whole"),
                    "{event}"
                );
            }
        }
        assert_eq!(router.memo.hits.read().expect("memo").len(), 3);
        assert!(router.matches_event(&json!([1])).is_err());
    }

    #[test]
    fn the_memo_is_bounded_and_the_router_still_answers_past_it() {
        let pattern = json!({"detail": {"n": [{"numeric": [">=", 0]}]}});
        let router = PatternRouter::new([("Numbers", &pattern)]).expect("router");
        for n in 0..(Memo::MAX_ENTRIES + 100) {
            let event = eventbridge_event("1", "s", "t", "t", &json!({"n": n}));
            assert_eq!(router.matches_event(&event).expect("match"), ["Numbers"]);
        }
        let negative = eventbridge_event("1", "s", "t", "t", &json!({"n": -1}));
        assert!(router.matches_event(&negative).expect("match").is_empty());
        assert_eq!(
            router.memo.hits.read().expect("memo").len(),
            Memo::MAX_ENTRIES
        );
        let long = eventbridge_event("1", "s", "t", "t", &json!({"n": 1, "pad": "x".repeat(600)}));
        let fresh = PatternRouter::new([("Numbers", &pattern)]).expect("router");
        assert_eq!(fresh.matches_event(&long).expect("match"), ["Numbers"]);
        assert!(
            fresh.memo.hits.read().expect("memo").is_empty(),
            "a long projection is not kept"
        );
    }
}

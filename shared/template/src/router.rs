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
#[derive(Clone)]
pub struct Router {
    matcher: Quamina<String>,
    rules: Vec<String>,
    /// The top-level fields any pattern names: all a match can depend on.
    fields: Vec<String>,
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Router")
            .field("rules", &self.rules)
            .finish()
    }
}

impl Router {
    /// A router over (rule id, pattern) pairs.
    pub fn new<'a>(
        rules: impl IntoIterator<Item = (&'a str, &'a Value)>,
    ) -> Result<Router, RouterError> {
        let mut matcher = Quamina::new();
        let mut ids = Vec::new();
        let mut fields = std::collections::BTreeSet::new();
        for (id, pattern) in rules {
            for alternative in expand_or(pattern) {
                if let Value::Object(m) = &alternative {
                    fields.extend(m.keys().cloned());
                }
                matcher
                    .add_pattern(id.to_owned(), &alternative.to_string())
                    .map_err(|e| RouterError::Pattern {
                        rule: id.to_owned(),
                        reason: e.to_string(),
                    })?;
            }
            ids.push(id.to_owned());
        }
        Ok(Router {
            matcher,
            rules: ids,
            fields: fields.into_iter().collect(),
        })
    }

    /// A router over every rule of a template.
    pub fn from_template(template: &Template) -> Result<Router, RouterError> {
        Router::new(
            template
                .rules
                .values()
                .map(|r| (r.logical_id.as_str(), &r.pattern)),
        )
    }

    /// The ids of the rules that match `event` (an EventBridge event as JSON), sorted, each once.
    pub fn matches(&self, event: &[u8]) -> Result<Vec<String>, RouterError> {
        let mut hits = self
            .matcher
            .matches_for_event(event)
            .map_err(|e| RouterError::Event(e.to_string()))?;
        hits.sort_unstable();
        hits.dedup();
        Ok(hits)
    }

    /// Like [`Router::matches`], for an event already in memory: only the
    /// top-level fields some pattern names are handed to the matcher (a
    /// pattern cannot depend on a field it does not name, and `exists: false`
    /// on an unnamed field is impossible), so a rule set that looks at
    /// `source` and `detail-type` never scans the `detail`.
    pub fn matches_event(&self, event: &Value) -> Result<Vec<String>, RouterError> {
        let Value::Object(all) = event else {
            return Err(RouterError::Event("an event is a JSON object".into()));
        };
        let mut projected = Map::new();
        for field in &self.fields {
            if let Some(v) = all.get(field) {
                projected.insert(field.clone(), v.clone());
            }
        }
        self.matches(Value::Object(projected).to_string().as_bytes())
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
        let router = Router::new(rules.iter().map(|(id, p)| (*id, p))).expect("router");
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
            assert_eq!(
                router.matches_event(&event).expect("projected"),
                router.matches(event.to_string().as_bytes()).expect("whole"),
                "{event}"
            );
        }
        assert!(router.matches_event(&json!([1])).is_err());
    }
}

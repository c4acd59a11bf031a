//! quamina is young: before the storefront trusts it with routing, it must
//! agree with EventBridge on the examples of EventBridge's own documentation
//! (event patterns, content filtering, `$or`, arrays, null and empty values).

use serde_json::{Value, json};
use storefront_template::PatternRouter;

/// The EC2 state-change sample event of the EventBridge user guide, with the
/// extra fields the content-filtering examples use.
fn ec2_event() -> Value {
    json!({
        "version": "0",
        "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
        "detail-type": "EC2 Instance State-change Notification",
        "source": "aws.ec2",
        "account": "111122223333",
        "time": "2017-12-22T18:43:48Z",
        "region": "us-west-1",
        "resources": ["arn:aws:ec2:us-west-1:123456789012:instance/i-1234567890abcdef0"],
        "detail": {
            "instance-id": "i-1234567890abcdef0",
            "state": "terminated",
            "c-count": 5,
            "d-count": 3,
            "x-limit": 301.8,
            "source-ip": "10.0.0.123",
            "responseElements": null,
            "eventVersion": "",
            "tags": ["prod", "web"]
        }
    })
}

fn matches(pattern: Value, event: &Value) -> bool {
    let router = PatternRouter::new([("r", &pattern)]).unwrap_or_else(|e| panic!("{pattern}: {e}"));
    !router
        .matches(event.to_string().as_bytes())
        .expect("match")
        .is_empty()
}

/// Each documented pattern matches or not exactly as EventBridge says.
#[test]
fn documented_examples() {
    let e = ec2_event();
    let cases: Vec<(Value, bool)> = vec![
        // Exact values, AND across fields, OR within a field.
        (json!({"source": ["aws.ec2"]}), true),
        (
            json!({"source": ["aws.ec2"], "detail-type": ["EC2 Instance State-change Notification"]}),
            true,
        ),
        (
            json!({"source": ["aws.ec2"], "detail": {"state": ["running", "terminated"]}}),
            true,
        ),
        (
            json!({"source": ["aws.ec2"], "detail": {"state": ["running"]}}),
            false,
        ),
        (json!({"source": ["aws.s3"]}), false),
        // A field absent from the event never matches a value.
        (json!({"detail": {"no-such-field": ["x"]}}), false),
        // Prefix and suffix.
        (json!({"time": [{"prefix": "2017-12-22"}]}), true),
        (json!({"time": [{"prefix": "2018"}]}), false),
        (
            json!({"detail": {"instance-id": [{"suffix": "cdef0"}]}}),
            true,
        ),
        // Anything-but, on strings, lists and numbers.
        (
            json!({"detail": {"state": [{"anything-but": "initializing"}]}}),
            true,
        ),
        (
            json!({"detail": {"state": [{"anything-but": ["stopped", "terminated"]}]}}),
            false,
        ),
        (
            json!({"detail": {"c-count": [{"anything-but": [100, 200, 300]}]}}),
            true,
        ),
        // Numeric ranges.
        (
            json!({"detail": {"c-count": [{"numeric": [">", 0, "<=", 5]}]}}),
            true,
        ),
        (
            json!({"detail": {"c-count": [{"numeric": [">", 5]}]}}),
            false,
        ),
        (
            json!({"detail": {"x-limit": [{"numeric": [">=", 300]}]}}),
            true,
        ),
        // Exists.
        (json!({"detail": {"state": [{"exists": true}]}}), true),
        (json!({"detail": {"c-count": [{"exists": false}]}}), false),
        (
            json!({"detail": {"no-such-field": [{"exists": false}]}}),
            true,
        ),
        // IP addresses.
        (
            json!({"detail": {"source-ip": [{"cidr": "10.0.0.0/24"}]}}),
            true,
        ),
        (
            json!({"detail": {"source-ip": [{"cidr": "10.1.0.0/24"}]}}),
            false,
        ),
        // Case-insensitive equality and wildcards.
        (
            json!({"detail": {"state": [{"equals-ignore-case": "TERMINATED"}]}}),
            true,
        ),
        (
            json!({"detail-type": [{"wildcard": "EC2 * Notification"}]}),
            true,
        ),
        // Arrays in the event: a match if any element matches.
        (json!({"detail": {"tags": ["web"]}}), true),
        (
            json!({"resources": ["arn:aws:ec2:us-west-1:123456789012:instance/i-1234567890abcdef0"]}),
            true,
        ),
        (json!({"detail": {"tags": ["db"]}}), false),
        // Null and empty string are values of their own.
        (json!({"detail": {"responseElements": [null]}}), true),
        (json!({"detail": {"eventVersion": [""]}}), true),
        (json!({"detail": {"eventVersion": [null]}}), false),
        // $or, the documented example: any alternative matching is enough.
        (
            json!({"detail": {"$or": [
                {"c-count": [{"numeric": [">", 0, "<=", 5]}]},
                {"d-count": [{"numeric": ["<", 10]}]},
                {"x-limit": [{"anything-but": [100, 200, 300]}]}
            ]}}),
            true,
        ),
        (
            json!({"source": ["aws.ec2"], "$or": [{"detail-type": ["nope"]}, {"detail": {"state": ["nope"]}}]}),
            false,
        ),
        (
            json!({"source": ["aws.ec2"], "$or": [{"detail-type": ["nope"]}, {"detail": {"state": ["terminated"]}}]}),
            true,
        ),
    ];
    for (pattern, expected) in cases {
        assert_eq!(matches(pattern.clone(), &e), expected, "pattern {pattern}");
    }
}

/// Several rules: each event is routed to exactly the rules whose pattern matches.
#[test]
fn several_rules() {
    let a = json!({"source": ["storefront.order"], "detail-type": ["order.created", "order.cancelled"]});
    let b = json!({"source": [{"prefix": "storefront."}]});
    let c = json!({"source": ["storefront.cart"]});
    let router = PatternRouter::new([("a", &a), ("b", &b), ("c", &c)]).expect("router");
    let event = json!({"source": "storefront.order", "detail-type": "order.created", "detail": {}});
    assert_eq!(
        router.matches(event.to_string().as_bytes()).expect("match"),
        vec!["a", "b"]
    );
    let event = json!({"source": "storefront.order", "detail-type": "order.paid", "detail": {}});
    assert_eq!(
        router.matches(event.to_string().as_bytes()).expect("match"),
        vec!["b"]
    );
}

/// Where quamina falls short of EventBridge (`anything-but` with a `prefix`
/// inside, as of quamina 0.7), the pattern is refused with an error rather
/// than silently matched differently: a template using it fails to load.
#[test]
fn unsupported_operators_are_refused() {
    let p = json!({"detail": {"instance-id": [{"anything-but": {"prefix": "i-"}}]}});
    let err = PatternRouter::new([("r", &p)]).expect_err("refused");
    assert!(err.to_string().contains("rule r"), "{err}");
}

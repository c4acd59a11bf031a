//! template.yaml for the people who deploy and run it: the functions'
//! architecture is a parameter (arm64 unless overridden); every function
//! logs JSON at the level of the stage's `LogLevel`, with no log filter
//! written into its environment; the dashboard's searches see only their own
//! stage's functions; and the routes the template opens to anonymous callers
//! are exactly the operations openapi.json documents as public.

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde_json::{Value, json};
use storefront_template::{EnvValue, Template};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn template() -> Template {
    Template::load(root().join("template.yaml")).expect("template.yaml parses")
}

/// `Architecture` is a String parameter, arm64 by default, arm64 or x86_64,
/// and it is what every function runs on: Globals name it and no function
/// names another.
#[test]
fn the_architecture_is_a_parameter_defaulting_to_arm64() {
    let t = template();
    let parameter = &t.raw["Parameters"]["Architecture"];
    assert_eq!(parameter["Type"], "String");
    assert_eq!(parameter["Default"], "arm64");
    assert_eq!(parameter["AllowedValues"], json!(["arm64", "x86_64"]));
    assert!(
        parameter["Description"]
            .as_str()
            .is_some_and(|d| d.contains("Architecture=x86_64")),
        "the description says how to build for x86_64"
    );
    assert_eq!(
        t.raw["Globals"]["Function"]["Architectures"],
        json!([{"Ref": "Architecture"}])
    );
    for id in t.functions.keys() {
        assert!(
            t.raw["Resources"][id]["Properties"]["Architectures"].is_null(),
            "{id} must not override the architecture"
        );
    }
}

/// Every function logs JSON at `LogLevel` (INFO unless a stage sets it):
/// Globals give `LoggingConfig`, so Lambda (and the local runtime, through
/// the template model) passes `AWS_LAMBDA_LOG_FORMAT=JSON` and
/// `AWS_LAMBDA_LOG_LEVEL`; `RUST_LOG` stays an operator's override, never
/// written into the template; each function still has its own log group.
#[test]
fn every_function_logs_json_at_the_stages_level() {
    let t = template();
    let parameter = &t.raw["Parameters"]["LogLevel"];
    assert_eq!(parameter["Default"], "INFO");
    assert_eq!(
        parameter["AllowedValues"],
        json!(["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"])
    );
    assert_eq!(
        t.raw["Globals"]["Function"]["LoggingConfig"],
        json!({"LogFormat": "JSON", "ApplicationLogLevel": {"Ref": "LogLevel"}})
    );
    assert!(!t.functions.is_empty());
    for f in t.functions.values() {
        let id = &f.logical_id;
        assert_eq!(
            f.environment.get("AWS_LAMBDA_LOG_FORMAT"),
            Some(&EnvValue::Literal("JSON".into())),
            "{id}"
        );
        assert_eq!(
            f.environment.get("AWS_LAMBDA_LOG_LEVEL"),
            Some(&EnvValue::Ref("LogLevel".into())),
            "{id}"
        );
        assert!(
            !f.environment.contains_key("RUST_LOG"),
            "{id}: RUST_LOG is an operator's override, not a template setting"
        );
        let group = &t.raw["Resources"][id]["Properties"]["LoggingConfig"]["LogGroup"];
        let group = group["Ref"]
            .as_str()
            .unwrap_or_else(|| panic!("{id}: a log group"));
        assert_eq!(
            t.resource_types.get(group).map(String::as_str),
            Some("AWS::Logs::LogGroup"),
            "{id}"
        );
        // What the Serverless Rules' WS1004 asks for (suppressed in the
        // template: it looks for a group named after the function instead).
        assert_eq!(
            t.raw["Resources"][group]["Properties"]["RetentionInDays"],
            json!({"Ref": "LogRetentionDays"}),
            "{id}: its log group {group} keeps logs for LogRetentionDays"
        );
    }
}

/// Every `SEARCH` of the dashboard is limited to this stage's functions: it
/// names `${StageFunctions}`, which lists every function of the template by
/// its name (`function="storefront-{Stage}-…"`), exactly; a prefix would let
/// CloudWatch's token matching find another stage's functions. The body is
/// JSON once substituted.
#[test]
fn the_dashboard_searches_only_its_own_stage() {
    let t = template();
    let sub = &t.raw["Resources"]["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"];
    let body = sub[0]
        .as_str()
        .expect("the body is the first item of a !Sub list");
    let functions = sub[1]["StageFunctions"]["Fn::Sub"]
        .as_str()
        .expect("StageFunctions is a !Sub");

    let searches: Vec<&str> = body.split("SEARCH(").skip(1).collect();
    assert!(searches.len() >= 7, "{} searches", searches.len());
    for search in &searches {
        let query = search.split("',").next().expect("a query");
        assert!(
            query.contains("${StageFunctions}"),
            "a search outside the stage: SEARCH({query}"
        );
    }

    assert!(functions.starts_with('(') && functions.ends_with(')'));
    let named: BTreeSet<String> = functions[1..functions.len() - 1]
        .split(" OR ")
        .map(|term| {
            term.strip_prefix("function=\\\"${")
                .and_then(|t| t.strip_suffix("}\\\""))
                .unwrap_or_else(|| panic!("not an exact function match: {term}"))
                .to_owned()
        })
        .collect();
    let declared: BTreeSet<String> = t.functions.keys().cloned().collect();
    assert_eq!(named, declared, "StageFunctions names every function, once");
    for id in &declared {
        let name = &t.raw["Resources"][id]["Properties"]["FunctionName"]["Fn::Sub"];
        assert!(
            name.as_str()
                .is_some_and(|n| n.starts_with("storefront-${Stage}-")),
            "{id}: the function's name (its metrics' `function` dimension) carries the stage"
        );
    }

    let mut substituted = body.to_owned();
    while let Some(start) = substituted.find("${") {
        let end = start + substituted[start..].find('}').expect("closed");
        substituted.replace_range(start..=end, "x");
    }
    let parsed: Value = serde_json::from_str(&substituted).expect("the body is JSON");
    assert!(parsed["widgets"].is_array());
}

/// The (method, path) pairs the template routes without the JWT authorizer
/// are exactly the operations openapi.json documents as public
/// (`security: [{}]`): the health check, the catalogue reads, and the API's
/// own `/openapi.json` and `/docs`. Everything else goes through the
/// authorized catch-all route.
#[test]
fn public_routes_are_the_documented_public_operations() {
    let t = template();
    let events = t.raw["Resources"]["ApiFunction"]["Properties"]["Events"]
        .as_object()
        .expect("the API's events");
    let mut public = BTreeSet::new();
    let mut authorized = BTreeSet::new();
    for event in events.values() {
        assert_eq!(event["Type"], "HttpApi");
        let p = &event["Properties"];
        let route = (
            p["Method"].as_str().expect("method").to_uppercase(),
            p["Path"].as_str().expect("path").to_owned(),
        );
        if p["Auth"]["Authorizer"] == "NONE" {
            public.insert(route);
        } else {
            assert!(p["Auth"].is_null(), "{route:?}: the default authorizer");
            authorized.insert(route);
        }
    }
    assert_eq!(
        authorized,
        BTreeSet::from([("ANY".to_owned(), "/{proxy+}".to_owned())])
    );

    let text = std::fs::read_to_string(root().join("openapi.json")).expect("openapi.json");
    let doc: Value = serde_json::from_str(&text).expect("JSON");
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("operations") {
            if operation["security"] == json!([{}]) {
                documented.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    assert_eq!(public, documented);
    for route in [
        ("GET", "/openapi.json"),
        ("GET", "/docs"),
        ("GET", "/health"),
    ] {
        assert!(
            public.contains(&(route.0.to_owned(), route.1.to_owned())),
            "{route:?} is public"
        );
    }
}

/// The HTTP API answers CORS for the web client's origins (`WebOrigins`):
/// every request header the API reads is allowed (each header parameter of
/// openapi.json, the token and the body's type), every method a route has,
/// and every response header a client acts on is exposed: `Retry-After`, and
/// each header openapi.json documents that is not CORS-safelisted (`ETag`
/// and `Link` of the catalogue's pages).
#[test]
fn cors_admits_the_web_client_and_what_the_api_reads() {
    let t = template();
    let cors = &t.raw["Resources"]["StorefrontApi"]["Properties"]["CorsConfiguration"];
    assert_eq!(cors["AllowOrigins"], json!({"Ref": "WebOrigins"}));
    assert_eq!(
        t.raw["Parameters"]["WebOrigins"]["Type"],
        "CommaDelimitedList"
    );
    let list = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .expect("a list")
            .iter()
            .map(|h| h.as_str().expect("text").to_lowercase())
            .collect()
    };
    let allowed = list(&cors["AllowHeaders"]);
    let doc: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("openapi.json")).expect("openapi.json"),
    )
    .expect("json");
    let mut read = vec![
        "authorization".to_owned(),
        "content-type".to_owned(),
        "x-correlation-id".to_owned(),
    ];
    let mut methods = Vec::new();
    // Fetch lets a page read these response headers without being told.
    let safelisted = [
        "cache-control",
        "content-language",
        "content-length",
        "content-type",
        "expires",
        "last-modified",
        "pragma",
    ];
    let mut answered = std::collections::BTreeSet::from(["retry-after".to_owned()]);
    for (_, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("item") {
            methods.push(method.to_uppercase());
            for (_, response) in op["responses"].as_object().into_iter().flatten() {
                for (name, _) in response["headers"].as_object().into_iter().flatten() {
                    let name = name.to_lowercase();
                    if !safelisted.contains(&name.as_str()) {
                        answered.insert(name);
                    }
                }
            }
            for p in op["parameters"].as_array().into_iter().flatten() {
                if p["in"] == "header" {
                    read.push(p["name"].as_str().expect("name").to_lowercase());
                }
            }
        }
    }
    for h in &read {
        assert!(
            allowed.contains(h),
            "{h} is read by the API but not allowed by CORS"
        );
    }
    let allowed_methods = list(&cors["AllowMethods"]);
    for m in &methods {
        assert!(
            allowed_methods.contains(&m.to_lowercase()),
            "{m} is not allowed by CORS"
        );
    }
    let mut exposed = list(&cors["ExposeHeaders"]);
    exposed.sort();
    assert_eq!(exposed, answered.into_iter().collect::<Vec<_>>());
}

/// Every route is throttled (DefaultRouteSettings), and each route anyone
/// may call without a token (an HttpApi event with `Authorizer: NONE`) has
/// a tighter bucket of its own; no anonymous route is left on the default,
/// and no setting names a route that does not exist.
#[test]
fn anonymous_routes_have_a_tighter_throttle() {
    let t = template();
    let api = &t.raw["Resources"]["StorefrontApi"]["Properties"];
    assert_eq!(
        api["DefaultRouteSettings"],
        json!({
            "ThrottlingRateLimit": {"Ref": "ApiRateLimit"},
            "ThrottlingBurstLimit": {"Ref": "ApiBurstLimit"}
        })
    );
    let function = t
        .function_by_binary("storefront-api")
        .expect("the API function");
    let events = &t.raw["Resources"][&function.logical_id]["Properties"]["Events"];
    let mut anonymous = Vec::new();
    for (_, event) in events.as_object().expect("events") {
        let props = &event["Properties"];
        if event["Type"] == "HttpApi" && props["Auth"]["Authorizer"] == "NONE" {
            anonymous.push(format!(
                "{} {}",
                props["Method"].as_str().expect("method").to_uppercase(),
                props["Path"].as_str().expect("path")
            ));
        }
    }
    anonymous.sort();
    let settings = api["RouteSettings"].as_object().expect("RouteSettings");
    let mut throttled: Vec<String> = settings.keys().cloned().collect();
    throttled.sort();
    assert_eq!(throttled, anonymous, "exactly the anonymous routes");
    for (route, s) in settings {
        assert_eq!(
            (&s["ThrottlingRateLimit"], &s["ThrottlingBurstLimit"]),
            (
                &json!({"Ref": "AnonymousRateLimit"}),
                &json!({"Ref": "AnonymousBurstLimit"})
            ),
            "{route}"
        );
    }
    let default = |name: &str| {
        t.raw["Parameters"][name]["Default"]
            .as_u64()
            .unwrap_or_else(|| panic!("{name} has a numeric default"))
    };
    assert!(default("AnonymousRateLimit") < default("ApiRateLimit"));
    assert!(default("AnonymousBurstLimit") < default("ApiBurstLimit"));
}

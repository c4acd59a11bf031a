//! The parts of a SAM template the storefront needs, parsed.

use std::collections::BTreeMap;
use std::path::Path;

use serde_norway::Value;
use thiserror::Error;

/// Why a template could not be read.
#[derive(Debug, Error)]
pub enum TemplateError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// It is not YAML.
    #[error("template is not valid YAML: {0}")]
    Yaml(String),
    /// It is YAML but not the shape expected.
    #[error("template: {0}")]
    Shape(String),
}

/// An environment variable's value as written in the template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvValue {
    /// A plain string.
    Literal(String),
    /// `!Ref X`: a resource's name, or a parameter's value.
    Ref(String),
    /// `!GetAtt X.Attr`.
    GetAtt(String, String),
    /// `!Sub "..."`.
    Sub(String),
}

/// An SQS event source of a function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqsSource {
    /// The queue's logical id.
    pub queue: String,
    /// Records per invocation (SAM's default is 10).
    pub batch_size: u32,
    /// Whether the function reports partial batch failures.
    pub report_batch_item_failures: bool,
}

/// A DynamoDB stream event source of a function.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamSource {
    /// The table's logical id.
    pub table: String,
    /// Records per invocation.
    pub batch_size: u32,
    /// Whether a failing batch is split in two and retried.
    pub bisect_on_error: bool,
    /// Retries before the batch goes to the on-failure destination.
    pub maximum_retry_attempts: Option<u32>,
    /// Filter patterns (JSON), any of which lets a record through.
    pub filters: Vec<serde_json::Value>,
    /// Whether the function reports partial batch failures.
    pub report_batch_item_failures: bool,
    /// The logical id of the queue that records given up on are described
    /// on (`DestinationConfig.OnFailure`).
    pub on_failure: Option<String>,
}

/// A function.
#[derive(Debug, Clone, PartialEq)]
pub struct Function {
    /// The logical id, e.g. `InventoryFunction`.
    pub logical_id: String,
    /// The cargo binary it is built from (`Metadata.BuildProperties.Binary`).
    pub binary: String,
    /// `CodeUri`: the crate's folder.
    pub code_uri: String,
    /// Timeout in seconds (own or global).
    pub timeout: u64,
    /// Environment, globals merged in, and the variables Lambda itself
    /// derives from the function's `LoggingConfig` (globals merged in the
    /// same way): with `LogFormat: JSON`, `AWS_LAMBDA_LOG_FORMAT` and
    /// `AWS_LAMBDA_LOG_LEVEL` (its `ApplicationLogLevel`, INFO when unset),
    /// so every runtime gives a function what Lambda would.
    pub environment: BTreeMap<String, EnvValue>,
    /// SQS sources.
    pub sqs: Vec<SqsSource>,
    /// Stream sources.
    pub streams: Vec<StreamSource>,
    /// Schedule expressions (`rate(5 minutes)`).
    pub schedules: Vec<String>,
    /// Whether an HTTP API routes to it.
    pub http: bool,
    /// The IAM policy statements written on the function (raw).
    pub policies: Vec<serde_json::Value>,
}

/// A queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queue {
    /// The logical id.
    pub logical_id: String,
    /// Visibility timeout in seconds (SQS default 30).
    pub visibility_timeout: u64,
    /// The DLQ's logical id and maxReceiveCount, if any.
    pub redrive: Option<(String, u32)>,
    /// Its `QueueName` (usually a `!Sub` of the stage), if the template names it.
    pub name: Option<EnvValue>,
}

/// An EventBridge rule with queue targets.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// The logical id.
    pub logical_id: String,
    /// The event pattern.
    pub pattern: serde_json::Value,
    /// Target queues' logical ids.
    pub targets: Vec<String>,
}

/// The model.
#[derive(Debug, Clone, Default)]
pub struct Template {
    /// Functions by logical id.
    pub functions: BTreeMap<String, Function>,
    /// Queues by logical id.
    pub queues: BTreeMap<String, Queue>,
    /// Rules with an event pattern, by logical id.
    pub rules: BTreeMap<String, Rule>,
    /// Every resource's type, by logical id.
    pub resource_types: BTreeMap<String, String>,
    /// The raw document, for checks the model does not cover.
    pub raw: serde_json::Value,
}

/// Turns YAML (with CloudFormation tags) into JSON, writing `!Tag x` as
/// `{"Tag": x}` the way the long form does (`!Ref X` → `{"Ref": "X"}`,
/// `!GetAtt A.B` → `{"Fn::GetAtt": "A.B"}`).
fn to_json(value: &Value) -> serde_json::Value {
    use serde_json::Value as J;
    match value {
        Value::Null => J::Null,
        Value::Bool(b) => J::Bool(*b),
        Value::Number(n) => serde_json::from_str(&n.to_string()).unwrap_or(J::Null),
        Value::String(s) => J::String(s.clone()),
        Value::Sequence(items) => J::Array(items.iter().map(to_json).collect()),
        Value::Mapping(map) => J::Object(
            map.iter()
                .map(|(k, v)| {
                    let key = match k {
                        Value::String(s) => s.clone(),
                        other => to_json(other).to_string(),
                    };
                    (key, to_json(v))
                })
                .collect(),
        ),
        Value::Tagged(tagged) => {
            let tag = tagged.tag.to_string();
            let tag = tag.trim_start_matches('!');
            let name = if tag == "Ref" || tag == "Condition" {
                tag.to_owned()
            } else {
                format!("Fn::{tag}")
            };
            let mut obj = serde_json::Map::new();
            obj.insert(name, to_json(&tagged.value));
            J::Object(obj)
        }
    }
}

/// The logical id a `Ref`/`GetAtt` points at.
pub fn referenced(value: &serde_json::Value) -> Option<String> {
    if let Some(r) = value.get("Ref").and_then(|v| v.as_str()) {
        return Some(r.to_owned());
    }
    match value.get("Fn::GetAtt") {
        Some(serde_json::Value::String(s)) => s.split('.').next().map(str::to_owned),
        Some(serde_json::Value::Array(a)) => a.first().and_then(|v| v.as_str()).map(str::to_owned),
        _ => None,
    }
}

fn env_value(value: &serde_json::Value) -> EnvValue {
    if let Some(s) = value.as_str() {
        return EnvValue::Literal(s.to_owned());
    }
    if let Some(n) = value.as_number() {
        return EnvValue::Literal(n.to_string());
    }
    if let Some(r) = value.get("Ref").and_then(|v| v.as_str()) {
        return EnvValue::Ref(r.to_owned());
    }
    match value.get("Fn::GetAtt") {
        Some(serde_json::Value::String(s)) => {
            let (a, b) = s.split_once('.').unwrap_or((s, ""));
            return EnvValue::GetAtt(a.to_owned(), b.to_owned());
        }
        Some(serde_json::Value::Array(a)) => {
            let part = |i: usize| a.get(i).and_then(|v| v.as_str()).unwrap_or("").to_owned();
            return EnvValue::GetAtt(part(0), part(1));
        }
        _ => {}
    }
    match value.get("Fn::Sub") {
        Some(serde_json::Value::String(s)) => EnvValue::Sub(s.clone()),
        _ => EnvValue::Literal(value.to_string()),
    }
}

fn number(value: Option<&serde_json::Value>) -> Option<u64> {
    value.and_then(|v| {
        v.as_u64()
            .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
    })
}

fn pattern(value: &serde_json::Value) -> Option<serde_json::Value> {
    match value {
        serde_json::Value::Object(_) => Some(value.clone()),
        serde_json::Value::String(s) => serde_json::from_str(s).ok(),
        _ => None,
    }
}

impl Template {
    /// Reads and parses a template file.
    pub fn load(path: impl AsRef<Path>) -> Result<Template, TemplateError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| TemplateError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Template::parse(&text)
    }

    /// Parses template text.
    pub fn parse(text: &str) -> Result<Template, TemplateError> {
        let yaml: Value =
            serde_norway::from_str(text).map_err(|e| TemplateError::Yaml(e.to_string()))?;
        let raw = to_json(&yaml);
        let resources = raw
            .get("Resources")
            .and_then(|r| r.as_object())
            .ok_or_else(|| TemplateError::Shape("no Resources section".into()))?;
        let globals = raw
            .pointer("/Globals/Function")
            .cloned()
            .unwrap_or_default();
        let mut t = Template {
            raw: raw.clone(),
            ..Template::default()
        };
        for (id, resource) in resources {
            let ty = resource
                .get("Type")
                .and_then(|v| v.as_str())
                .unwrap_or("")
                .to_owned();
            t.resource_types.insert(id.clone(), ty.clone());
            let props = resource.get("Properties").cloned().unwrap_or_default();
            match ty.as_str() {
                "AWS::Serverless::Function" => {
                    t.functions
                        .insert(id.clone(), function(id, resource, &props, &globals)?);
                }
                "AWS::SQS::Queue" => {
                    let redrive = props.get("RedrivePolicy").and_then(|r| {
                        let dlq = r.get("deadLetterTargetArn").and_then(referenced)?;
                        let max = number(r.get("maxReceiveCount")).unwrap_or(10);
                        Some((dlq, u32::try_from(max).unwrap_or(u32::MAX)))
                    });
                    t.queues.insert(
                        id.clone(),
                        Queue {
                            logical_id: id.clone(),
                            visibility_timeout: number(props.get("VisibilityTimeout"))
                                .unwrap_or(30),
                            redrive,
                            name: props.get("QueueName").map(env_value),
                        },
                    );
                }
                "AWS::Events::Rule" => {
                    if let Some(p) = props.get("EventPattern").and_then(pattern) {
                        let targets = props
                            .get("Targets")
                            .and_then(|v| v.as_array())
                            .map(|a| {
                                a.iter()
                                    .filter_map(|x| x.get("Arn").and_then(referenced))
                                    .collect()
                            })
                            .unwrap_or_default();
                        t.rules.insert(
                            id.clone(),
                            Rule {
                                logical_id: id.clone(),
                                pattern: p,
                                targets,
                            },
                        );
                    }
                }
                _ => {}
            }
        }
        Ok(t)
    }

    /// A parameter's `Default`, as text (`!Ref Parameter` where nothing
    /// overrides it).
    pub fn parameter_default(&self, name: &str) -> Option<String> {
        self.raw
            .pointer(&format!("/Parameters/{name}/Default"))
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
    }

    /// The function built from a cargo binary.
    pub fn function_by_binary(&self, binary: &str) -> Option<&Function> {
        self.functions.values().find(|f| f.binary == binary)
    }

    /// The rules whose targets include `queue`.
    pub fn rules_for_queue(&self, queue: &str) -> Vec<&Rule> {
        self.rules
            .values()
            .filter(|r| r.targets.iter().any(|q| q == queue))
            .collect()
    }
}

fn function(
    id: &str,
    resource: &serde_json::Value,
    props: &serde_json::Value,
    globals: &serde_json::Value,
) -> Result<Function, TemplateError> {
    let binary = resource
        .pointer("/Metadata/BuildProperties/Binary")
        .and_then(|v| v.as_str())
        .ok_or_else(|| TemplateError::Shape(format!("{id}: no Metadata.BuildProperties.Binary")))?
        .to_owned();
    let mut environment = BTreeMap::new();
    for source in [globals, props] {
        if let Some(vars) = source
            .pointer("/Environment/Variables")
            .and_then(|v| v.as_object())
        {
            for (k, v) in vars {
                environment.insert(k.clone(), env_value(v));
            }
        }
    }
    environment.extend(logging_environment(globals, props));
    let mut f = Function {
        logical_id: id.to_owned(),
        binary,
        code_uri: props
            .get("CodeUri")
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_owned(),
        timeout: number(props.get("Timeout"))
            .or_else(|| number(globals.get("Timeout")))
            .unwrap_or(3),
        environment,
        sqs: vec![],
        streams: vec![],
        schedules: vec![],
        http: false,
        policies: props
            .get("Policies")
            .and_then(|v| v.as_array())
            .cloned()
            .unwrap_or_default(),
    };
    let responses = |p: &serde_json::Value| {
        p.get("FunctionResponseTypes")
            .and_then(|v| v.as_array())
            .is_some_and(|a| a.iter().any(|x| x == "ReportBatchItemFailures"))
    };
    if let Some(events) = props.get("Events").and_then(|v| v.as_object()) {
        for event in events.values() {
            let p = event.get("Properties").cloned().unwrap_or_default();
            match event.get("Type").and_then(|v| v.as_str()) {
                Some("SQS") => f.sqs.push(SqsSource {
                    queue: p.get("Queue").and_then(referenced).unwrap_or_default(),
                    batch_size: u32::try_from(number(p.get("BatchSize")).unwrap_or(10))
                        .unwrap_or(10),
                    report_batch_item_failures: responses(&p),
                }),
                Some("DynamoDB") => f.streams.push(StreamSource {
                    table: p.get("Stream").and_then(referenced).unwrap_or_default(),
                    batch_size: u32::try_from(number(p.get("BatchSize")).unwrap_or(100))
                        .unwrap_or(100),
                    bisect_on_error: p
                        .get("BisectBatchOnFunctionError")
                        .and_then(|v| v.as_bool())
                        .unwrap_or(false),
                    maximum_retry_attempts: number(p.get("MaximumRetryAttempts"))
                        .and_then(|n| u32::try_from(n).ok()),
                    filters: p
                        .pointer("/FilterCriteria/Filters")
                        .and_then(|v| v.as_array())
                        .map(|a| {
                            a.iter()
                                .filter_map(|x| x.get("Pattern").and_then(pattern))
                                .collect()
                        })
                        .unwrap_or_default(),
                    report_batch_item_failures: responses(&p),
                    on_failure: p
                        .pointer("/DestinationConfig/OnFailure/Destination")
                        .and_then(referenced),
                }),
                Some("Schedule") | Some("ScheduleV2") => {
                    if let Some(expr) = p
                        .get("Schedule")
                        .or_else(|| p.get("ScheduleExpression"))
                        .and_then(|v| v.as_str())
                    {
                        f.schedules.push(expr.to_owned());
                    }
                }
                Some("HttpApi") | Some("Api") => f.http = true,
                _ => {}
            }
        }
    }
    Ok(f)
}

/// The variables Lambda sets from a function's `LoggingConfig` (SAM merges
/// the globals' map with the function's, the function's keys winning).
/// Lambda documents both for runtimes that log on their own: the log format,
/// and with JSON the application log level (its default is INFO).
fn logging_environment(
    globals: &serde_json::Value,
    props: &serde_json::Value,
) -> BTreeMap<String, EnvValue> {
    let setting = |key: &str| {
        props
            .pointer(&format!("/LoggingConfig/{key}"))
            .or_else(|| globals.pointer(&format!("/LoggingConfig/{key}")))
    };
    let mut environment = BTreeMap::new();
    let json = setting("LogFormat").and_then(|v| v.as_str()) == Some("JSON");
    if json {
        environment.insert(
            "AWS_LAMBDA_LOG_FORMAT".to_owned(),
            EnvValue::Literal("JSON".into()),
        );
        environment.insert(
            "AWS_LAMBDA_LOG_LEVEL".to_owned(),
            setting("ApplicationLogLevel")
                .map(env_value)
                .unwrap_or_else(|| EnvValue::Literal("INFO".into())),
        );
    }
    environment
}

/// Parses `rate(N unit)` into seconds (`cron(...)` is not supported locally).
pub fn rate_seconds(expression: &str) -> Option<u64> {
    let inner = expression.strip_prefix("rate(")?.strip_suffix(')')?;
    let (n, unit) = inner.trim().split_once(' ')?;
    let n: u64 = n.parse().ok()?;
    let unit = match unit.trim().trim_end_matches('s') {
        "second" => 1,
        "minute" => 60,
        "hour" => 3600,
        "day" => 86_400,
        _ => return None,
    };
    Some(n * unit)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"
Parameters:
  LogLevel:
    Type: String
    Default: WARN
Globals:
  Function:
    Timeout: 10
    LoggingConfig:
      LogFormat: JSON
      ApplicationLogLevel: !Ref LogLevel
    Environment:
      Variables:
        EVENTS_TABLE: !Ref EventsTable
        EVENT_BUS_NAME: !GetAtt Bus.Name
Resources:
  Q:
    Type: AWS::SQS::Queue
    Properties:
      VisibilityTimeout: 60
      RedrivePolicy:
        deadLetterTargetArn: !GetAtt QDLQ.Arn
        maxReceiveCount: 5
  QDLQ:
    Type: AWS::SQS::Queue
  R:
    Type: AWS::Events::Rule
    Properties:
      EventPattern:
        source: [storefront.order]
        detail-type: [order.created]
      Targets:
        - Id: q
          Arn: !GetAtt Q.Arn
  F:
    Type: AWS::Serverless::Function
    Metadata:
      BuildProperties:
        Binary: storefront-x
    Properties:
      CodeUri: functions/x
      Environment:
        Variables:
          NAME: !Sub storefront-${Stage}
          LIMIT: 5
      Events:
        Q:
          Type: SQS
          Properties:
            Queue: !GetAtt Q.Arn
            BatchSize: 7
            FunctionResponseTypes: [ReportBatchItemFailures]
        Tick:
          Type: Schedule
          Properties:
            Schedule: rate(5 minutes)
"#;

    /// Short tags, globals, queues, rules, sources and schedules are read.
    #[test]
    fn parses_short_tags_and_wiring() {
        let t = Template::parse(SAMPLE).expect("parse");
        let f = &t.functions["F"];
        assert_eq!(f.binary, "storefront-x");
        assert_eq!(f.timeout, 10);
        assert_eq!(
            f.environment["EVENTS_TABLE"],
            EnvValue::Ref("EventsTable".into())
        );
        assert_eq!(
            f.environment["EVENT_BUS_NAME"],
            EnvValue::GetAtt("Bus".into(), "Name".into())
        );
        assert_eq!(
            f.environment["NAME"],
            EnvValue::Sub("storefront-${Stage}".into())
        );
        assert_eq!(f.environment["LIMIT"], EnvValue::Literal("5".into()));
        assert_eq!(
            f.environment["AWS_LAMBDA_LOG_FORMAT"],
            EnvValue::Literal("JSON".into())
        );
        assert_eq!(
            f.environment["AWS_LAMBDA_LOG_LEVEL"],
            EnvValue::Ref("LogLevel".into())
        );
        assert_eq!(t.parameter_default("LogLevel").as_deref(), Some("WARN"));
        assert_eq!(t.parameter_default("Nope"), None);
        assert_eq!(
            f.sqs,
            vec![SqsSource {
                queue: "Q".into(),
                batch_size: 7,
                report_batch_item_failures: true
            }]
        );
        assert_eq!(f.schedules, vec!["rate(5 minutes)"]);
        assert_eq!(t.queues["Q"].redrive, Some(("QDLQ".into(), 5)));
        assert_eq!(t.queues["Q"].visibility_timeout, 60);
        assert_eq!(t.queues["QDLQ"].visibility_timeout, 30);
        assert_eq!(t.rules["R"].targets, vec!["Q"]);
        assert_eq!(t.rules["R"].pattern["detail-type"][0], "order.created");
        assert_eq!(t.rules_for_queue("Q").len(), 1);
    }

    /// LoggingConfig becomes the variables Lambda derives from it: the
    /// function's keys win over the globals' (a LogGroup of its own keeps
    /// the global format and level), JSON without a level is INFO, and Text
    /// (or no LoggingConfig) gives neither variable.
    #[test]
    fn logging_config_becomes_lambda_variables() {
        let template = |function_logging: &str| {
            Template::parse(&format!(
                r#"
Globals:
  Function:
    LoggingConfig:
      LogFormat: JSON
      ApplicationLogLevel: WARN
Resources:
  F:
    Type: AWS::Serverless::Function
    Metadata:
      BuildProperties:
        Binary: storefront-x
    Properties:
      LoggingConfig:
{function_logging}
"#
            ))
            .expect("parse")
        };
        let env = |t: &Template, name: &str| t.functions["F"].environment.get(name).cloned();
        let own_group = template("        LogGroup: !Ref G");
        assert_eq!(
            env(&own_group, "AWS_LAMBDA_LOG_LEVEL"),
            Some(EnvValue::Literal("WARN".into()))
        );
        let own_level = template("        ApplicationLogLevel: DEBUG");
        assert_eq!(
            env(&own_level, "AWS_LAMBDA_LOG_LEVEL"),
            Some(EnvValue::Literal("DEBUG".into()))
        );
        let text = template("        LogFormat: Text");
        assert_eq!(env(&text, "AWS_LAMBDA_LOG_FORMAT"), None);
        assert_eq!(env(&text, "AWS_LAMBDA_LOG_LEVEL"), None);

        let bare = Template::parse(
            "Globals:\n  Function:\n    LoggingConfig:\n      LogFormat: JSON\nResources:\n  F:\n    Type: AWS::Serverless::Function\n    Metadata:\n      BuildProperties:\n        Binary: storefront-x\n",
        )
        .expect("parse");
        assert_eq!(
            env(&bare, "AWS_LAMBDA_LOG_LEVEL"),
            Some(EnvValue::Literal("INFO".into()))
        );
    }

    /// Schedules parse to seconds.
    #[test]
    fn rates() {
        assert_eq!(rate_seconds("rate(5 minutes)"), Some(300));
        assert_eq!(rate_seconds("rate(1 minute)"), Some(60));
        assert_eq!(rate_seconds("rate(2 hours)"), Some(7200));
        assert_eq!(rate_seconds("cron(0 * * * ? *)"), None);
    }

    /// Malformed templates give typed errors.
    #[test]
    fn errors() {
        assert!(matches!(
            Template::parse("a: [b"),
            Err(TemplateError::Yaml(_))
        ));
        assert!(matches!(
            Template::parse("a: b"),
            Err(TemplateError::Shape(_))
        ));
    }
}

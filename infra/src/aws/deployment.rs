//! Which deployment the AWS mode plays the Lambda service for: a stack's
//! parameters, outputs and physical ids (from CloudFormation, or from the
//! environment as a function's own environment gives them), and the names
//! of the resources the template refers to.

use std::collections::BTreeMap;

use aws_sdk_sqs::types::QueueAttributeName;
use storefront_runtime::aws::SdkConfig;
use storefront_template::{EnvValue, Template};

use crate::error::RuntimeError;

/// What a deployment is called: its parameters, outputs and the physical
/// id of each logical resource.
#[derive(Debug, Clone, Default)]
pub struct Deployment {
    /// The stack's name, if it was read from one.
    pub stack: Option<String>,
    /// Parameter values (with the template's defaults filled in).
    pub parameters: BTreeMap<String, String>,
    /// Stack outputs.
    pub outputs: BTreeMap<String, String>,
    /// Logical id → physical id (a table's name, a queue's URL, ...).
    pub physical: BTreeMap<String, String>,
    /// The region.
    pub region: String,
}

impl Deployment {
    /// Reads a stack's parameters, outputs and resources from CloudFormation.
    pub async fn from_stack(
        sdk: &SdkConfig,
        template: &Template,
        stack: &str,
    ) -> Result<Deployment, RuntimeError> {
        let cfn = aws_sdk_cloudformation::Client::new(sdk);
        let described = cfn
            .describe_stacks()
            .stack_name(stack)
            .send()
            .await
            .map_err(|e| {
                RuntimeError::aws(
                    format!("stack {stack} (deployed? right region and endpoint?)"),
                    e,
                )
            })?;
        let Some(s) = described.stacks().first() else {
            return Err(RuntimeError::Deployment(format!("stack {stack} not found")));
        };
        let mut deployment = Deployment {
            stack: Some(stack.to_owned()),
            parameters: template_defaults(template),
            region: sdk
                .region()
                .map_or_else(|| "us-east-1".to_owned(), |r| r.to_string()),
            ..Deployment::default()
        };
        for p in s.parameters() {
            if let (Some(k), Some(v)) = (p.parameter_key(), p.parameter_value()) {
                deployment.parameters.insert(k.to_owned(), v.to_owned());
            }
        }
        for o in s.outputs() {
            if let (Some(k), Some(v)) = (o.output_key(), o.output_value()) {
                deployment.outputs.insert(k.to_owned(), v.to_owned());
            }
        }
        let mut pages = cfn
            .list_stack_resources()
            .stack_name(stack)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page =
                page.map_err(|e| RuntimeError::aws(format!("resources of stack {stack}"), e))?;
            for r in page.stack_resource_summaries() {
                if let (Some(l), Some(p)) = (r.logical_resource_id(), r.physical_resource_id())
                    && !l.is_empty()
                    && !p.is_empty()
                {
                    deployment.physical.insert(l.to_owned(), p.to_owned());
                }
            }
        }
        Ok(deployment)
    }

    /// Names from the environment, as a function's own environment gives
    /// them: every variable the template sets from a `!Ref`/`!GetAtt` of a
    /// resource (`EVENTS_TABLE: !Ref EventsTable`, ...) is read from the
    /// process environment under the same name.
    pub fn from_env(
        template: &Template,
        stage: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Deployment, RuntimeError> {
        let mut deployment = Deployment {
            parameters: template_defaults(template),
            region: env("AWS_REGION")
                .or_else(|| env("AWS_DEFAULT_REGION"))
                .unwrap_or_else(|| "us-east-1".to_owned()),
            ..Deployment::default()
        };
        deployment
            .parameters
            .insert("Stage".to_owned(), stage.to_owned());
        if let Some(sender) = env("SENDER_EMAIL") {
            deployment
                .parameters
                .insert("SenderEmail".to_owned(), sender);
        }
        let mut missing = Vec::new();
        for f in template.functions.values() {
            for (name, value) in &f.environment {
                let logical = match value {
                    EnvValue::Ref(l) | EnvValue::GetAtt(l, _) => l,
                    _ => continue,
                };
                if deployment.parameters.contains_key(logical)
                    || deployment.physical.contains_key(logical)
                {
                    continue;
                }
                match env(name) {
                    Some(v) => {
                        deployment.physical.insert(logical.clone(), v);
                    }
                    None => {
                        if !missing.contains(name) {
                            missing.push(name.clone());
                        }
                    }
                }
            }
        }
        if !missing.is_empty() {
            missing.sort();
            return Err(RuntimeError::Deployment(format!(
                "--aws without --stack reads the deployed names from the environment; set {} (or pass --stack NAME)",
                missing.join(", ")
            )));
        }
        Ok(deployment)
    }

    /// The name of the template's queue `logical` in this deployment (its
    /// resolved `QueueName`), if the template names it.
    pub fn queue_name(&self, template: &Template, logical: &str) -> Option<String> {
        template
            .queues
            .get(logical)
            .and_then(|q| q.name.as_ref())
            .map(|name| self.resolve(name))
    }

    /// A deployment known only by its stage: the template's parameter
    /// defaults with `Stage` set, enough to name its resources.
    pub fn for_stage(template: &Template, stage: &str) -> Deployment {
        let mut parameters = template_defaults(template);
        parameters.insert("Stage".to_owned(), stage.to_owned());
        Deployment {
            parameters,
            ..Deployment::default()
        }
    }

    /// The stage the resources are named after.
    pub fn stage(&self) -> &str {
        self.parameters.get("Stage").map_or("dev", String::as_str)
    }

    /// Resolves a function's environment value against the deployment.
    pub fn resolve(&self, value: &EnvValue) -> String {
        match value {
            EnvValue::Literal(s) => s.clone(),
            EnvValue::Ref(name) => self
                .parameters
                .get(name)
                .or_else(|| self.physical.get(name))
                .cloned()
                .unwrap_or_default(),
            // CloudFormation on moto reports no physical id for an event bus,
            // so a bus's name also comes from the stack's BusName output.
            EnvValue::GetAtt(name, attribute) => self
                .physical
                .get(name)
                .filter(|_| attribute == "Name")
                .or_else(|| {
                    (attribute == "Name")
                        .then(|| self.outputs.get(&format!("{name}Name")))
                        .flatten()
                })
                .cloned()
                .unwrap_or_default(),
            EnvValue::Sub(text) => self.substitute(text),
        }
    }

    /// `${Name}` replaced by parameters, pseudo parameters and physical ids.
    pub fn substitute(&self, text: &str) -> String {
        let mut out = String::new();
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let Some(end) = rest[start..].find('}') else {
                out.push_str(&rest[start..]);
                return out;
            };
            let name = &rest[start + 2..start + end];
            let value = match name {
                "AWS::Region" => Some(self.region.clone()),
                "AWS::URLSuffix" => Some("amazonaws.com".to_owned()),
                _ => self
                    .parameters
                    .get(name)
                    .or_else(|| self.physical.get(name))
                    .cloned(),
            };
            out.push_str(&value.unwrap_or_default());
            rest = &rest[start + end + 1..];
        }
        out.push_str(rest);
        out
    }
}

fn template_defaults(template: &Template) -> BTreeMap<String, String> {
    template
        .raw
        .get("Parameters")
        .and_then(|p| p.as_object())
        .map(|params| {
            params
                .iter()
                .filter_map(|(name, p)| {
                    let d = p.get("Default")?;
                    Some((
                        name.clone(),
                        d.as_str().map_or_else(|| d.to_string(), str::to_owned),
                    ))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The URL of a queue of the template: its physical id from the stack, or
/// its `QueueName` (resolved) looked up on SQS.
pub async fn queue_url(
    sqs: &aws_sdk_sqs::Client,
    template: &Template,
    deployment: &Deployment,
    logical: &str,
) -> Result<String, RuntimeError> {
    if let Some(url) = deployment.physical.get(logical)
        && url.starts_with("http")
    {
        return Ok(url.clone());
    }
    let name = deployment.queue_name(template, logical).ok_or_else(|| {
        RuntimeError::Deployment(format!(
            "queue {logical} has no QueueName to look up; pass --stack NAME"
        ))
    })?;
    sqs.get_queue_url()
        .queue_name(&name)
        .send()
        .await
        .map_err(|e| {
            RuntimeError::aws(
                format!("queue {name} (deployed with this stage and region?)"),
                e,
            )
        })?
        .queue_url
        .ok_or_else(|| RuntimeError::Deployment(format!("queue {name} has no URL")))
}

/// The ARN of the queue at `url`.
pub async fn queue_arn(sqs: &aws_sdk_sqs::Client, url: &str) -> Result<String, RuntimeError> {
    sqs.get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| RuntimeError::aws(format!("attributes of {url}"), e))?
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::QueueArn))
        .cloned()
        .ok_or_else(|| RuntimeError::Deployment(format!("queue {url} has no ARN")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// Names from the environment: every referenced resource must be given.
    #[test]
    fn names_from_the_environment() {
        let template = Template::load(Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../template.yaml"
        )))
        .expect("template");
        let env = |n: &str| match n {
            "EVENTS_TABLE" => Some("ev".to_owned()),
            "STATE_TABLE" => Some("st".to_owned()),
            _ => None,
        };
        let missing = Deployment::from_env(&template, "qa", &env).expect_err("bus missing");
        assert!(missing.to_string().contains("EVENT_BUS_NAME"), "{missing}");
        let env = |n: &str| match n {
            "EVENTS_TABLE" => Some("ev".to_owned()),
            "STATE_TABLE" => Some("st".to_owned()),
            "EVENT_BUS_NAME" => Some("bus".to_owned()),
            _ => None,
        };
        let d = Deployment::from_env(&template, "qa", &env).expect("deployment");
        assert_eq!(d.stage(), "qa");
        assert_eq!(d.resolve(&EnvValue::Ref("EventsTable".into())), "ev");
        assert_eq!(
            d.resolve(&EnvValue::GetAtt("Bus".into(), "Name".into())),
            "bus"
        );
        assert_eq!(
            d.substitute("storefront-${Stage}-cart"),
            "storefront-qa-cart"
        );
    }
}

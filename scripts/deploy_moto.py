#!/usr/bin/env python3
"""Deploy template.yaml as a CloudFormation stack on a moto server.

The AWS path's tests (and anyone who wants to try `storefront dev --aws`
without an AWS account) run this with the venv of scripts/test.sh:

    .venv/bin/python scripts/deploy_moto.py --endpoint http://127.0.0.1:5000 --stage dev

It translates the SAM template offline with aws-sam-translator (the library
`sam deploy` uses), creates the stack on moto and prints, as one JSON object,
the stack's name, its outputs and the physical id of every resource (tables,
bus, queue URLs, DLQ URLs), which `storefront dev --aws --stack NAME` also
reads back by itself.

What CloudFormation on moto cannot take, and what this script does instead
(each with its reason):

- Function code. SAM wants CodeUri to be an S3 location once packaged; the
  crates' folders are replaced by `s3://storefront-code-{stage}/{Function}.zip`,
  a placeholder zip uploaded to moto's S3. Moto cannot run the functions
  anyway (no Docker here); the AWS mode of the local runtime plays the
  Lambda service with the same code.
- Event source mappings (the SQS and DynamoDB-stream triggers) are removed
  from the translated template. Moto would try to invoke a Lambda for every
  message reaching a queue with a mapping, fail without Docker and, after
  maxReceiveCount, dead-letter the message: the queues would drain into their
  DLQs by themselves. `storefront dev --aws` plays the mappings instead, with
  the batch sizes, filters, bisect-on-error and ReportBatchItemFailures the
  template gives them.
- The SES sender. On AWS the SenderEmail identity is verified once, by hand,
  outside the stack (SES sends a confirmation mail); moto refuses to send
  from an unverified address, so the identity is verified here.

Known moto limits the rest of the project works around (see README, "What
moto does not emulate"): moto's CloudFormation cannot `!Ref` an event bus
(the template uses `!GetAtt Bus.Name`), ignores AWS::SQS::QueuePolicy and does
not apply UpdateStack changes (deploy a fresh stage instead); its EventBridge
ignores a rule's disabled state and a target's InputPath and always answers
TestEventPattern with false; SQS has no StartMessageMoveTask (`storefront dlq
redrive --aws` falls back to receive/send/delete).
"""

import argparse
import io
import json
import os
import sys
import time
import zipfile

REGION = "us-east-1"


def fail(message: str) -> "NoReturn":  # noqa: F821
    print(f"error: {message}", file=sys.stderr)
    sys.exit(1)


def translate(template_path: str, stage: str, bucket: str, sender: str | None) -> dict:
    """The template as plain CloudFormation, ready for moto."""
    os.environ.setdefault("AWS_DEFAULT_REGION", REGION)
    try:
        from samcli.yamlhelper import yaml_parse
        from samtranslator.translator.transform import transform
    except ImportError as e:
        fail(f"{e}; run this with the venv of scripts/test.sh (.venv/bin/python), which has aws-sam-cli")
    try:
        with open(template_path, encoding="utf-8") as f:
            sam = yaml_parse(f.read())
    except OSError as e:
        fail(f"cannot read {template_path}: {e}")
    functions = [
        name for name, r in sam.get("Resources", {}).items() if r.get("Type") == "AWS::Serverless::Function"
    ]
    for name in functions:
        sam["Resources"][name]["Properties"]["CodeUri"] = f"s3://{bucket}/{name}.zip"

    class NoManagedPolicies:
        """The template names no AWS managed policy by name, so nothing to look up in IAM."""

        def load(self) -> dict:
            return {}

    parameters = {"Stage": stage}
    if sender:
        parameters["SenderEmail"] = sender
    cfn = transform(sam, parameters, NoManagedPolicies())
    mappings = [k for k, r in cfn["Resources"].items() if r["Type"] == "AWS::Lambda::EventSourceMapping"]
    if not mappings:
        fail("the translated template has no event source mapping; has template.yaml changed shape?")
    for k in mappings:
        del cfn["Resources"][k]
    return cfn


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--endpoint", default=os.environ.get("STOREFRONT_AWS_ENDPOINT"), help="moto's URL")
    parser.add_argument("--stage", required=True, help="the template's Stage parameter (names the resources)")
    parser.add_argument("--stack-name", help="default: storefront-{stage}")
    parser.add_argument("--template", default="template.yaml")
    parser.add_argument("--sender-email", help="the SenderEmail parameter (default: the template's)")
    args = parser.parse_args()
    if not args.endpoint:
        fail("no moto endpoint: pass --endpoint http://127.0.0.1:PORT (or set STOREFRONT_AWS_ENDPOINT)")
    if not args.endpoint.startswith(("http://127.0.0.1", "http://localhost")):
        fail(f"{args.endpoint} is not a loopback address; this script deploys to a local moto server only")
    stack = args.stack_name or f"storefront-{args.stage}"
    bucket = f"storefront-code-{args.stage}"

    import boto3

    client = lambda service: boto3.client(  # noqa: E731
        service,
        endpoint_url=args.endpoint,
        region_name=REGION,
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    cfn_template = translate(args.template, args.stage, bucket, args.sender_email)

    s3 = client("s3")
    s3.create_bucket(Bucket=bucket)
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as z:
        z.writestr("bootstrap", "#!/bin/sh\necho 'placeholder: storefront dev --aws runs this function' >&2\nexit 1\n")
    for name, r in cfn_template["Resources"].items():
        if r["Type"] == "AWS::Lambda::Function":
            s3.put_object(Bucket=bucket, Key=f"{name}.zip", Body=code.getvalue())

    sender = args.sender_email or cfn_template.get("Parameters", {}).get("SenderEmail", {}).get("Default")
    if sender:
        client("ses").verify_email_identity(EmailAddress=sender)

    cfn = client("cloudformation")
    parameters = [{"ParameterKey": "Stage", "ParameterValue": args.stage}]
    if args.sender_email:
        parameters.append({"ParameterKey": "SenderEmail", "ParameterValue": args.sender_email})
    started = time.monotonic()
    cfn.create_stack(
        StackName=stack,
        TemplateBody=json.dumps(cfn_template),
        Parameters=parameters,
        Capabilities=["CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"],
    )
    while True:
        status = cfn.describe_stacks(StackName=stack)["Stacks"][0]["StackStatus"]
        if not status.endswith("_IN_PROGRESS"):
            break
        if time.monotonic() - started > 120:
            fail(f"stack {stack} still {status} after 120 s")
        time.sleep(0.2)
    if status != "CREATE_COMPLETE":
        reasons = [
            f"{e['LogicalResourceId']}: {e.get('ResourceStatusReason')}"
            for e in cfn.describe_stack_events(StackName=stack)["StackEvents"]
            if e.get("ResourceStatus", "").endswith("FAILED")
        ]
        fail(f"stack {stack} is {status}: {'; '.join(reasons) or 'no reason given'}")
    described = cfn.describe_stacks(StackName=stack)["Stacks"][0]
    resources = {}
    for page in cfn.get_paginator("list_stack_resources").paginate(StackName=stack):
        for r in page["StackResourceSummaries"]:
            resources[r["LogicalResourceId"]] = r.get("PhysicalResourceId", "")
    print(
        json.dumps(
            {
                "stack": stack,
                "stage": args.stage,
                "outputs": {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])},
                "resources": resources,
            },
            sort_keys=True,
        )
    )


if __name__ == "__main__":
    main()

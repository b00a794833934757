#!/usr/bin/env bash
# `make deploy STAGE=dev|prod`: deploy a stage of a6hub to the AWS account of the current
# credentials (AWS CLI v2 + AWS_PROFILE/AWS_REGION, or any standard boto3 configuration).
#   1. infra/resources.yaml -> a6hub-<stage>-resources  (tables, bucket, queues; exports)
#   2. infra/api.yaml       -> a6hub-<stage>-api-base   (JWT signing key, alarm topic, alarms)
#   3. infra/runner.yaml    -> a6hub-<stage>-runner     (ECR/ECS/Fargate; if present)
#   4. chalice package --merge-template infra/api-merge.json -> a6hub-<stage>-api (Lambda + API)
# Stacks 2-4 import the exports of stack 1, so CloudFormation refuses to delete it under them.
set -euo pipefail
cd "$(dirname "$0")/.."
STAGE="${1:?usage: infra/deploy.sh <stage>}"
case "$STAGE" in local|test|smoke) echo "stage $STAGE is not deployed to AWS" >&2; exit 2;; esac
[ -f ".chalice/policy-$STAGE.json" ] || { echo "no .chalice/policy-$STAGE.json for stage $STAGE" >&2; exit 2; }
: "${A6HUB_DEPLOY_BUCKET:?set A6HUB_DEPLOY_BUCKET to an S3 bucket for the packaged Lambda code}"
BIN="${VENV:-.venv}/bin"
OUT="build/$STAGE"

deploy() {  # deploy <stack> <template> [Key=Value ...]
  local stack="$1" template="$2"; shift 2
  echo "[a6hub] deploying $template as $stack"
  aws cloudformation deploy --stack-name "$stack" --template-file "$template" \
    --no-fail-on-empty-changeset --capabilities CAPABILITY_IAM CAPABILITY_NAMED_IAM CAPABILITY_AUTO_EXPAND \
    --parameter-overrides "Stage=$STAGE" "$@"
}

"$BIN/cfn-lint" infra/*.yaml
deploy "a6hub-$STAGE-resources" infra/resources.yaml
deploy "a6hub-$STAGE-api-base" infra/api.yaml "AlarmEmail=${A6HUB_ALARM_EMAIL:-}"
if [ -f infra/runner.yaml ]; then
  # shellcheck disable=SC2086 # A6HUB_RUNNER_PARAMS is a list of Key=Value words
  deploy "a6hub-$STAGE-runner" infra/runner.yaml ${A6HUB_RUNNER_PARAMS:-}
fi
rm -rf "$OUT"
"$BIN/chalice" package --stage "$STAGE" --merge-template infra/api-merge.json "$OUT"
aws cloudformation package --template-file "$OUT/sam.json" --s3-bucket "$A6HUB_DEPLOY_BUCKET" \
  --s3-prefix "a6hub/$STAGE" --output-template-file "$OUT/packaged.yaml"
deploy "a6hub-$STAGE-api" "$OUT/packaged.yaml"
url=$(aws cloudformation describe-stacks --stack-name "a6hub-$STAGE-api" \
  --query "Stacks[0].Outputs[?OutputKey=='EndpointURL'].OutputValue" --output text)
echo "[a6hub] stage $STAGE is served at $url (try ${url}health)"

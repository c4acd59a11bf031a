# `make test` is the README's test command: it sets everything up and runs all of it.
# `make deploy` builds every function and deploys template.yaml to AWS with SAM
# (scripts/deploy.sh; CONFIG_ENV=prod for production, ARCH=x86_64 to build and
# run the functions on x86_64, DEPLOY_ARGS for more `sam deploy` flags).
.PHONY: test run deploy
test:
	bash scripts/test.sh

run:
	cargo run --release

deploy:
	bash scripts/deploy.sh

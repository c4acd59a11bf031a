# `make test` is the README's test command: it sets everything up and runs all of it.
.PHONY: test run
test:
	bash scripts/test.sh

run:
	cargo run --release

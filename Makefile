# The two commands in the README, and a few conveniences.
.PHONY: run test cluster infra infra-down fmt lint

run:        ## build and run the whole platform (standalone) on http://localhost:8080
	bash scripts/run.sh $(ARGS)

test:       ## install what tests need, start PostgreSQL/Redis/broker, run fmt, clippy and all tests
	bash scripts/test.sh

cluster:    ## every service its own process (seat and order x2) behind the gateway on :8080, on infra's PostgreSQL/Redis/broker
	bash scripts/cluster.sh $(ARGS)

infra:      ## start PostgreSQL, Redis and the Kafka-protocol broker for distributed mode / tests
	bash scripts/infra.sh up

infra-down:
	bash scripts/infra.sh down

fmt:
	cargo fmt --all

lint:
	cargo clippy --workspace --all-targets -- -D warnings

# make reliability: the reliability suite at full size (10,000-task soak
# with kill -9 chaos, and the rest of internal/reliability) against the
# embedded default and moto_server; prints the results table and keeps it
# in build/reliability-table.md. The small variant runs inside make test.
# Include from the top-level Makefile: -include internal/reliability/reliability.mk
RELIABILITY_TIMEOUT ?= 60m

.PHONY: reliability
reliability: tools
	@mkdir -p build
	set -o pipefail; RELIABILITY_SCALE=full RELIABILITY_TABLE=$(CURDIR)/build/reliability-table.md \
	  $(GO) test -count=1 -v -run . -timeout $(RELIABILITY_TIMEOUT) ./internal/reliability/ | tee build/reliability.log

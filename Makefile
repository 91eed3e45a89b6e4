# Heimwolke: the front door. See README.md.

GO      ?= go
TARGET  ?= rpi
OUT     ?= out/heimwolke-$(TARGET).img
VM_TARGET ?= amd64
VM_IMAGE  ?= out/heimwolke-$(VM_TARGET).img
RUN_DIR ?= out/run
# make run: an ACME directory and its root file that replace Let's Encrypt,
# such as a local Pebble. Empty: the settings' directory.
ACME_DIRECTORY ?=
ACME_ROOTS ?=
# make run: DNS servers (host:port) for ACME DNS-01 lookups, such as a local
# test server. Empty: /etc/resolv.conf.
DNS_RESOLVERS ?=

BIN := out/bin
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X github.com/heimwolke/heimwolke/packages/version.Version=$(VERSION)

.PHONY: all build image vm run test bench clean

all: build

## build: compile heimwolke-image, heimwolke and heimwolke-agent for this machine into out/bin
build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/ ./image/cmd/heimwolke-image ./appliance/cmd/heimwolke ./agent/cmd/heimwolke-agent

## image: build the SD card image for TARGET (rpi, amd64, arm64) into OUT
image: build
	$(BIN)/heimwolke-image build --target $(TARGET) --out $(OUT)

## vm: build the VM_TARGET image and boot it under QEMU, discarding the box's writes at the end
vm: build
	$(BIN)/heimwolke-image build --target $(VM_TARGET) --out $(VM_IMAGE)
	$(BIN)/heimwolke-image vm --snapshot --target $(VM_TARGET) --image $(VM_IMAGE)

## run: start heimwolke and heimwolke-agent on this machine, first-boot page on http://127.0.0.1:8080/, HTTPS with a local certificate on https://localhost:8443/
run: build
	mkdir -p $(RUN_DIR)
	$(BIN)/heimwolke-agent --control-socket $(RUN_DIR)/control.sock --state-dir $(RUN_DIR)/data/agent \
		--tls-dir $(RUN_DIR)/data/tls --local-names localhost --public-ip-dns "" --check-rebind=false \
		--acme-directory "$(ACME_DIRECTORY)" --acme-roots "$(ACME_ROOTS)" \
		--dns-resolvers "$(DNS_RESOLVERS)" & agent=$$!; \
	trap 'kill $$agent 2>/dev/null' EXIT INT TERM; \
	$(BIN)/heimwolke --http 127.0.0.1:8080 --https 127.0.0.1:8443 \
		--smtp 127.0.0.1:2525 --submission 127.0.0.1:5587 --submissions 127.0.0.1:5465 --imaps 127.0.0.1:9993 \
		--data $(RUN_DIR)/data --agent-socket $(RUN_DIR)/control.sock

## test: unit, tool and whole-box tests (builds and boots images under QEMU)
test:
	$(GO) vet ./...
	$(GO) test -timeout 40m ./...

## bench: measure image builds and boots, then each service side by side with the established server; paste the results into docs/benchmarks.md
bench: build
	$(GO) run ./image/cmd/heimwolke-bench
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 0 ./appliance/... ./agent/... ./packages/...

clean:
	rm -rf out

# The two set-up commands are `make lab` and `make test`; both install what they need.
export PATH := /usr/local/go/bin:$(PATH)
GO ?= go

.PHONY: all setup build image lab test vet bench bench-design fuzz clean

all: build

setup:
	@./scripts/setup.sh

build: setup
	$(GO) build -o bin/drover ./cmd/drover
	CGO_ENABLED=0 $(GO) build -ldflags='-s -w' -o bin/drover-agent ./cmd/drover-agent

# The lab's Debian 12 disk image (BIOS and UEFI, cloud-init), from Debian's
# packages only; cached under /var/cache/drover/lab by the build script's hash.
image: build
	bin/drover lab image

# A virtual zone of QEMU machines booting through drover, from the example design.
# Needs root (network namespaces). Ctrl-C, or `bin/drover lab down`, removes it.
lab: build
	@test "$$(id -u)" = 0 || { echo "make lab needs root: it creates network namespaces and taps"; exit 1; }
	bin/drover lab up examples/lab

vet:
	@test -z "$$(gofmt -l cmd internal bench)" || { echo "gofmt needed:"; gofmt -l cmd internal bench; exit 1; }
	$(GO) vet ./...

# The whole test suite, end-to-end tests included (they need root for network namespaces).
test: setup vet
	$(GO) test -race -count=1 -timeout 25m ./...

# Benchmarks against peers (Kea, dnsmasq, tftpd-hpa, nginx, ipmitool, BIND 9, PostgreSQL) in namespaces; writes
# BENCHMARKS.md, bench/results/latest.json and plots. Needs root. PARTS=storm runs one part.
PARTS ?= dhcp,storm,lab,discovery,ha,tftp,http,control,power,ui,dns
bench:
	@./scripts/setup.sh bench
	@test "$$(id -u)" = 0 || { echo "make bench needs root: it creates network namespaces"; exit 1; }
	$(GO) run ./bench/cmd/drover-bench -parts $(PARTS)

# The design benchmark: validate + plan of a generated 10,000-slot design.
bench-design: setup
	$(GO) test -run '^$$' -bench ValidatePlan -benchmem -count 5 ./bench/

# Run every fuzz target for FUZZTIME each.
FUZZTIME ?= 3m
fuzz: setup
	$(GO) test -run '^$$' -fuzz FuzzParse -fuzztime $(FUZZTIME) ./internal/zone/

clean:
	rm -rf bin

# libbackend: the entry point on a fresh clone. It installs missing Debian packages
# (as root; otherwise it prints the apt-get command and stops), runs autoreconf and
# configure out of tree in build/, and drives the automake build there.
#
#   make                      build
#   make check                build and run every test (starts private PostgreSQL + memcached)
#   make check-valgrind       the same tests under valgrind (build-valgrind/)
#   make check-browser        /docs (Swagger UI) in headless Chromium
#   make check-release        distcheck (tarball, installcheck) and the Debian packages (lintian)
#   make fuzz                 the libFuzzer targets of tests/fuzz/, FUZZ_SECONDS each (build-fuzz/, clang)
#   make soak                 backendd under a mixed load for SOAK_SECONDS (600), 10,000 idle connections, and faults
#   make run                  build, start PostgreSQL + memcached, run the demo service
#   make bench                build and run the benchmarks (figures as ratios to a baseline)
#   make bench-peers          libbackend beside FastAPI, Fastify, Ulfius and nginx (installs them)
#   make install PREFIX=DIR   install library, headers, pkg-config file, man pages
#   make clean                remove build/ and generated autotools files
#
# CONFIGURE_FLAGS adds configure options, e.g. CONFIGURE_FLAGS="--enable-werror --enable-sanitizers".

PREFIX ?= /usr/local
CONFIGURE_FLAGS ?=
CHECK_ENV ?=
CHECK_ARGS ?=
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
PORT ?= 8080
BUILD := build

# What building, testing and running need, as Debian packages: the toolchain and
# the libraries libbackend.so links (configure requires them), then what only the
# tests, benchmarks and `make run` use (Check and libjwt are checked by configure and
# required by make check and make bench; json-schema-test-suite is the draft-07 suite
# that tests/schema/suite falls back to when there is no ../shared beside the clone).
# Node.js and npm (tests/http/openapi.sh, bench/schema.sh) only when there is no npm:
# a Node.js from elsewhere (NodeSource's bundles its npm) is not replaced by Debian's.
DEB_BUILD_PACKAGES := build-essential autoconf automake libtool pkg-config \
	libevent-dev libjansson-dev libssl-dev libcurl4-openssl-dev libpcre2-dev libargon2-dev \
	libpq-dev libmemcached-dev zlib1g-dev
DEB_TEST_PACKAGES := check libjwt-dev postgresql memcached mandoc curl valgrind wrk nginx-light \
	python3-jwt python3-argon2 openssl json-schema-test-suite systemd prometheus python3-prometheus-client \
	abigail-tools pgbouncer
DEB_PACKAGES := $(DEB_BUILD_PACKAGES) $(DEB_TEST_PACKAGES)
# What check-release needs beside them: the Debian packaging tools.
DEB_RELEASE_PACKAGES := debhelper lintian dpkg-dev
# What make fuzz needs: clang links -fsanitize=fuzzer only with its runtime,
# which clang merely recommends.
DEB_FUZZ_PACKAGES := clang libclang-rt-14-dev
FUZZ_SECONDS ?= 60
SOAK_SECONDS ?= 600
FUZZ_JOBS ?= 2
# The peers of bench/peers.sh (its npm packages it installs itself) and its chart.
# Ulfius: the runtime library and what its header includes; the header itself is
# unpacked from libulfius-dev (Makefile.am says why it is not installed).
DEB_PEER_PACKAGES := python3-fastapi uvicorn python3-jwt python3-psycopg python3-psycopg-pool \
	python3-pymemcache libulfius2.7 libmicrohttpd-dev liborcania-dev libyder-dev libgnutls28-dev \
	nginx-light gnuplot-nox

CONFIG_ARGS = --prefix=$(abspath $(PREFIX)) $(CONFIGURE_FLAGS)

.PHONY: all deps build check check-valgrind check-browser check-release fuzz soak run install bench bench-peers clean FORCE

all: build

deps:
	@missing=""; \
	for p in $(DEB_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' "$$p" 2>/dev/null | grep -q 'ok installed' || missing="$$missing $$p"; \
	done; \
	command -v npm >/dev/null || missing="$$missing nodejs npm"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	  else \
	    echo "missing Debian packages; install them with:"; \
	    echo "  sudo apt-get install$$missing"; \
	    exit 1; \
	  fi; \
	fi

configure: configure.ac Makefile.am
	@mkdir -p m4
	autoreconf -fi
	@touch configure

# Reconfigure whenever the configure arguments change (PREFIX, CONFIGURE_FLAGS),
# from an empty build directory: make does not see changed compiler flags, and
# objects built with and without the sanitizers must not be linked together.
$(BUILD)/.config-args: FORCE
	@if ! echo '$(CONFIG_ARGS)' | cmp -s - $@; then \
	  rm -rf $(BUILD) && mkdir -p $(BUILD) && echo '$(CONFIG_ARGS)' > $@; \
	fi

$(BUILD)/Makefile: configure $(BUILD)/.config-args pkgconfig/libbackend.pc.in
	cd $(BUILD) && ../configure $(CONFIG_ARGS)

build: deps $(BUILD)/Makefile
	$(MAKE) -C $(BUILD) -j$(JOBS)

check: build
	@status=0; \
	$(CHECK_ENV) tests/harness/services.sh run -- $(MAKE) -C $(BUILD) -j$(JOBS) check $(CHECK_ARGS) || status=$$?; \
	tests/harness/summary.sh $(BUILD); \
	exit $$status

# The whole suite again under valgrind (no sanitizers: they do not mix), in its own
# build directory. Check runs in-process (CK_FORK=no) so valgrind sees every test;
# a script test runs the programs it starts under BK_TEST_WRAPPER (the daemon's).
VALGRIND = valgrind --quiet --error-exitcode=99 --leak-check=full \
	--suppressions=$(CURDIR)/tests/valgrind.supp \
	--show-leak-kinds=definite,indirect --errors-for-leak-kinds=definite,indirect
check-valgrind:
	@$(MAKE) --no-print-directory check BUILD=build-valgrind CONFIGURE_FLAGS="--enable-werror" \
	  CHECK_ENV="CK_FORK=no BK_STRESS_CALLS=100000 CRASH_KILLS=3 SAGA_KILLS=3 BK_SLOW_CHECKS=no BK_TEST_WRAPPER='$(CURDIR)/build-valgrind/libtool --mode=execute $(VALGRIND)'" CHECK_ARGS='LOG_COMPILER="$(CURDIR)/build-valgrind/libtool --mode=execute $(VALGRIND)"'

run: build
	@$(MAKE) --no-print-directory -C $(BUILD) docs-ui || echo "run: no /docs (Swagger UI comes from npm, which failed)"
	daemon/run.sh $(BUILD) $(PORT)

# /docs in headless Chromium (Debian's, installed here when missing), on the
# servers the harness starts; once per CI run, not in the valgrind pass.
check-browser: build
	@$(MAKE) --no-print-directory deps DEB_PACKAGES=chromium
	@tests/harness/services.sh run -- $(MAKE) --no-print-directory -C $(BUILD) check-browser

# The release checks, once per CI run (.ci/run): make distcheck (the tarball
# builds out of tree and passes its tests, which start their own servers, and
# make installcheck; the slow checks ran in make check already), then the Debian
# packages built, lintian-checked and used from a dpkg -x root
# (tests/release/debian.sh). Never with the sanitizers: a release is built as a
# distribution builds it.
check-release:
	@$(MAKE) --no-print-directory deps DEB_PACKAGES="$(DEB_RELEASE_PACKAGES)"
	@$(MAKE) --no-print-directory build BUILD=build-release CONFIGURE_FLAGS=
	env -u BK_TEST_PG_DSN -u BK_TEST_MEMCACHED BK_SLOW_CHECKS=no CRASH_KILLS=3 SAGA_KILLS=3 \
	  $(MAKE) -C build-release distcheck
	bash tests/release/debian.sh .

# The libFuzzer targets (tests/fuzz/), FUZZ_SECONDS each, FUZZ_JOBS at a time, in
# a build of their own: clang, ASan, UBSan and libFuzzer's coverage in every
# object, a static library. Only the library and the targets are built. CI runs
# it once, with a short FUZZ_SECONDS, after the release checks.
fuzz: deps configure
	@$(MAKE) --no-print-directory deps DEB_PACKAGES="$(DEB_FUZZ_PACKAGES)"
	@$(MAKE) --no-print-directory build-fuzz/Makefile BUILD=build-fuzz \
	  CONFIGURE_FLAGS="CC=clang --enable-fuzzing --disable-shared"
	$(MAKE) -C build-fuzz -j$(JOBS) fuzz FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_JOBS=$(FUZZ_JOBS)

# The long soak on the plain build (RSS and throughput are measured there, not
# under the sanitizers): tests/soak/soak.sh for SOAK_SECONDS with its RSS
# check, tests/http/test_http_abuse holding 10,000 idle connections at once
# (their client ends in a child process), and tests/chaos/chaos.sh with
# 10 s faults, 12 s after each, and throughput back to 90% within 10 s of each
# fault's end asserted. make check runs a 60 s soak, 2,000 connections and 3 s
# faults.
soak: build
	@status=0; \
	tests/harness/services.sh run -- env BK_SOAK_SECONDS=$(SOAK_SECONDS) BK_SOAK_RSS=yes BK_ABUSE_IDLE=10000 \
	  BK_CHAOS_FAULT_SECONDS=10 BK_CHAOS_SETTLE_SECONDS=12 BK_CHAOS_RECOVERY=yes \
	  $(MAKE) -C $(BUILD) check TESTS="tests/soak/soak.sh tests/http/test_http_abuse tests/chaos/chaos.sh" || status=$$?; \
	grep -h -E '^(soak|idle|slow reader|never reads|a byte|chaos|PASS|FAIL)' $(BUILD)/tests/soak/soak.sh.log \
	  $(BUILD)/tests/http/test_http_abuse.log $(BUILD)/tests/chaos/chaos.sh.log || true; \
	exit $$status

bench: build
	$(MAKE) -C $(BUILD) bench

bench-peers: build
	@$(MAKE) --no-print-directory deps DEB_PACKAGES="$(DEB_PEER_PACKAGES)"
	$(MAKE) -C $(BUILD) bench-peers

install: build
	$(MAKE) -C $(BUILD) install

clean:
	rm -rf $(BUILD) build-valgrind build-release build-fuzz run autom4te.cache build-aux m4 aclocal.m4 config.h.in config.h.in~ configure configure~ Makefile.in

FORCE:

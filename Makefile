# imgate — the two commands of the README, and their parts.
#   make run    build and start one node (HTTP :8080, WebSocket :8089)
#   make test   build and run every test, then the unit and integration tests under ASan+UBSan
#               and under ThreadSanitizer
# Both install the Debian packages they need when they are missing (as root).

# What building and running need (make run), and what the tests add (make test).
RUN_PACKAGES := build-essential cmake pkg-config libuv1-dev libjansson-dev libhiredis-dev \
                libssl-dev uthash-dev libyaml-dev libjwt-dev
TEST_PACKAGES := $(RUN_PACKAGES) libcmocka-dev redis-server python3 python3-websockets clang \
                 libclang-rt-14-dev chromium fonts-noto-cjk nginx clang-format \
                 prometheus python3-prometheus-client
JOBS ?= $(shell nproc)
BUILD ?= build
ASAN_BUILD ?= build/asan
TSAN_BUILD ?= build/tsan

.PHONY: all run test deps test-deps format-check build release-build asan-build tsan-build unit integration clean format cluster

all: build

# Installs the missing ones of $(1) (apt-get update once, then install). With $(2) = npm, Debian's
# nodejs and npm too when there is no npm command: a machine's own Node.js (whose npm is not a
# Debian package, and conflicts with Debian's) is kept.
define install_missing
	@missing=$$(for p in $(1); do \
	    dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; \
	  done); \
	if [ "$(2)" = npm ] && ! command -v npm >/dev/null 2>&1; then missing="$$missing nodejs npm"; fi; \
	if [ -n "$$missing" ]; then \
	  echo "installing missing packages:" $$missing; \
	  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y $$missing; \
	fi
endef

deps:
	$(call install_missing,$(RUN_PACKAGES))

test-deps:
	$(call install_missing,$(TEST_PACKAGES),npm)

# -Werror here (developers, CI); a plain cmake build leaves it off.
build: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DIMGATE_WERROR=ON >/dev/null
	cmake --build $(BUILD) -j $(JOBS)

asan-build: test-deps
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DIMGATE_SANITIZE=ON -DIMGATE_WERROR=ON \
	  -DCMAKE_C_COMPILER=clang >/dev/null
	cmake --build $(ASAN_BUILD) -j $(JOBS)

# ThreadSanitizer: the threaded parts (mailboxes, the hub's registry, the workers) are checked by
# the unit and integration tests run against this build.
tsan-build: test-deps
	cmake -S . -B $(TSAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DIMGATE_SANITIZE=thread -DIMGATE_WERROR=ON \
	  -DCMAKE_C_COMPILER=clang >/dev/null
	cmake --build $(TSAN_BUILD) -j $(JOBS)

# What a user's own `cmake -DCMAKE_BUILD_TYPE=Release` gets (gcc -O3), here with -Werror so that
# make test fails on a warning only optimisation shows (format-truncation did once).
RELEASE_BUILD ?= build/release
release-build: deps
	cmake -S . -B $(RELEASE_BUILD) -DCMAKE_BUILD_TYPE=Release -DIMGATE_WERROR=ON >/dev/null
	cmake --build $(RELEASE_BUILD) -j $(JOBS)

run: build
	./$(BUILD)/imgate

# A local cluster in the foreground: redis-server, three nodes in cluster mode and nginx in front
# on :8080 (http://127.0.0.1:8080/home/index); deploy/cluster.sh says what runs where. Ctrl-C
# stops them all.
cluster: build
	$(call install_missing,redis-server nginx)
	BUILD=$(BUILD) bash deploy/cluster.sh

# npm packages of the tests (playwright-core, ws), exactly as pinned in package-lock.json.
node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund

test: test-deps format-check build release-build asan-build tsan-build node_modules/.package-lock.json
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest --output-on-failure -j $(JOBS) -L 'unit|integration|fuzz'
	cd $(TSAN_BUILD) && TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
	  ctest --output-on-failure -j $(JOBS) -L 'unit|integration'

unit: build
	cd $(BUILD) && ctest --output-on-failure -L unit

integration: build
	cd $(BUILD) && ctest --output-on-failure -L integration

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

# make test fails when a C file is not as clang-format (.clang-format) writes it.
format-check: test-deps
	clang-format --dry-run -Werror $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD)

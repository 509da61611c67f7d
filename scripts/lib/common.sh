# Shared helpers for scripts/test and scripts/dev. Source it; do not run it.
#
# Everything here works on a fresh Debian machine as root or as a normal user
# (with sudo for package installs), installs only what is missing, and never
# touches anything outside the repository and the temp directories it makes.

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"
    elif command -v sudo >/dev/null 2>&1; then sudo "$@"
    else die "need root (or sudo) to run: $*"
    fi
}

# Installs the Debian packages the build and tests need, if any is missing.
# Postgres for the database, cmake/pkg-config/libssl-dev/zlib for librdkafka;
# libcurl4-openssl-dev only for its headers: librdkafka 2.12 includes
# <curl/curl.h> even when built without curl (`#ifdef` on a macro set to 0).
ensure_packages() {
    local wanted=(postgresql cmake pkg-config libssl-dev zlib1g-dev libcurl4-openssl-dev build-essential curl ca-certificates)
    local missing=()
    for pkg in "${wanted[@]}"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        log "installing Debian packages: ${missing[*]}"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
}

# What the browser test needs (tests/browser): Debian's Chromium (never a
# browser download), an emoji font so screenshots show the bot's emoji,
# Node.js 20 or newer with npm, and the npm packages pinned in
# tests/browser/package-lock.json (playwright-core). Installs only what is
# missing.
ensure_browser_test_tools() {
    local wanted=(chromium fonts-noto-color-emoji) missing=()
    for pkg in "${wanted[@]}"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
    done
    command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)
    if [ "${#missing[@]}" -gt 0 ]; then
        log "installing Debian packages for the browser test: ${missing[*]}"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
    local major
    major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
    [ "$major" -ge 20 ] || die "the browser test needs Node.js 20 or newer (found $(node --version 2>/dev/null || echo none))"
    local want have
    want=$(node -p 'require("./tests/browser/package-lock.json").packages["node_modules/playwright-core"].version')
    have=$(node -p 'require("./tests/browser/node_modules/playwright-core/package.json").version' 2>/dev/null || true)
    if [ "$want" != "$have" ]; then
        log "installing the browser test's npm packages (tests/browser/package-lock.json)"
        (cd tests/browser && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error >/dev/null)
    fi
}

# Makes sure cargo with rustfmt and clippy is available.
ensure_rust() {
    if ! command -v cargo >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/cargo" ]; then
        export PATH="$HOME/.cargo/bin:$PATH"
    fi
    command -v cargo >/dev/null 2>&1 || die "cargo not found: install Rust (rustup) first"
    if command -v rustup >/dev/null 2>&1; then
        for component in rustfmt clippy; do
            rustup component list --installed 2>/dev/null | grep -q "^$component" \
                || rustup component add "$component" >/dev/null 2>&1 || true
        done
    fi
}

# The newest installed Postgres server's bin directory.
postgres_bin() {
    local dir
    dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
    [ -n "$dir" ] && [ -x "$dir/initdb" ] || die "Postgres server binaries not found under /usr/lib/postgresql"
    printf '%s' "$dir"
}

# A TCP port on 127.0.0.1 that nothing listens on right now. The range stays
# below Linux's ephemeral ports (32768+), which outgoing connections take.
free_port() {
    local port
    for _ in $(seq 1 200); do
        port=$(( (RANDOM % 12000) + 20000 ))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            printf '%s' "$port"
            return 0
        fi
    done
    die "no free port found"
}

# Runs a Postgres server command as the user that owns the data directory:
# initdb refuses to run as root, so root delegates to the `postgres` user.
pg_as_owner() {
    if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# pg_init DIR: creates a cluster in DIR/data (trust auth on loopback only).
pg_init() {
    local dir=$1 bin
    bin=$(postgres_bin)
    mkdir -p "$dir"
    [ "$(id -u)" -eq 0 ] && chown postgres:postgres "$dir"
    pg_as_owner "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 --no-sync >/dev/null
}

# pg_start DIR PORT [durable]: starts the cluster on 127.0.0.1:PORT with its
# socket in DIR; fails (without exiting) if it cannot. Without "durable",
# fsync is off (throwaway test data).
pg_start() {
    local dir=$1 port=$2 durable=${3:-} bin opts
    bin=$(postgres_bin)
    opts="-c listen_addresses=127.0.0.1 -p $port -k $dir -c max_connections=300"
    [ "$durable" = durable ] || opts="$opts -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    if ! pg_as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 30 -o "$opts" start >/dev/null; then
        tail -n 5 "$dir/postgres.log" >&2
        return 1
    fi
}

# pg_stop DIR [mode]: stops the cluster if it runs.
pg_stop() {
    local dir=$1 mode=${2:-fast} bin
    bin=$(postgres_bin)
    [ -f "$dir/data/postmaster.pid" ] || return 0
    pg_as_owner "$bin/pg_ctl" -D "$dir/data" -m "$mode" -w stop >/dev/null 2>&1 || true
}

# Private Postgres for scripts/dev and scripts/demo, kept under .dev/postgres
# (data survives restarts; delete .dev/ to start over). Unless DATABASE_URL
# is already set, starts it if needed and exports DATABASE_URL. Sets
# PRIVATE_PG_STARTED=1 when this call started it (so the caller stops it).
PRIVATE_PG_DIR="${PRIVATE_PG_DIR:-$PWD/.dev/postgres}"
PRIVATE_PG_STARTED=""
use_private_postgres() {
    [ -n "${DATABASE_URL:-}" ] && return 0
    local port="${DEV_POSTGRES_PORT:-54329}"
    if [ ! -d "$PRIVATE_PG_DIR/data" ]; then
        log "creating a private Postgres under ${PRIVATE_PG_DIR#"$PWD"/}"
        mkdir -p "$(dirname "$PRIVATE_PG_DIR")"
        [ "$(id -u)" -eq 0 ] && chmod 755 "$(dirname "$PRIVATE_PG_DIR")"
        pg_init "$PRIVATE_PG_DIR"
    fi
    if ! pg_as_owner "$(postgres_bin)/pg_ctl" -D "$PRIVATE_PG_DIR/data" status >/dev/null 2>&1; then
        log "starting the private Postgres on 127.0.0.1:$port"
        pg_start "$PRIVATE_PG_DIR" "$port" durable \
            || die "the private Postgres did not start (port $port taken? set DEV_POSTGRES_PORT or DATABASE_URL)"
        PRIVATE_PG_STARTED=1
    fi
    export DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres"
}

stop_private_postgres() {
    if [ -n "$PRIVATE_PG_STARTED" ]; then
        log "stopping the private Postgres"
        pg_stop "$PRIVATE_PG_DIR" fast
        PRIVATE_PG_STARTED=""
    fi
}

# Makes sure the tansu Kafka-compatible broker is installed (once per
# machine: `cargo install` builds it in ~15 minutes) and exports TANSU_BIN.
# `dynostore` brings the storage engines; without it tansu will not start.
ensure_tansu() {
    local bin
    bin=$(command -v tansu 2>/dev/null || true)
    [ -n "$bin" ] || { [ -x "$HOME/.cargo/bin/tansu" ] && bin="$HOME/.cargo/bin/tansu"; }
    if [ -z "$bin" ]; then
        log "installing the tansu Kafka broker (cargo install, about 15 minutes, once per machine)"
        cargo install tansu --locked --features dynostore
        bin="$HOME/.cargo/bin/tansu"
        [ -x "$bin" ] || bin=$(command -v tansu) || die "tansu was installed but cannot be found"
    fi
    export TANSU_BIN="$bin"
}

# Makes sure a tansu built with its SQLite storage engine (cargo feature
# `libsql`) is installed and exports TANSU_SQLITE_BIN: the chaos tests kill
# the broker and start it again, which only a broker that keeps its data
# survives (the everyday tansu has in-memory storage only). Installed once
# per machine into TANSU_SQLITE_ROOT (default ~/.cargo/tansu-sqlite, beside
# the everyday one, which stays as it is); the build takes about as long as
# the everyday tansu's. TANSU_SQLITE_BIN, when set to a binary, is used as is.
ensure_tansu_sqlite() {
    if [ -n "${TANSU_SQLITE_BIN:-}" ] && [ -x "$TANSU_SQLITE_BIN" ]; then
        export TANSU_SQLITE_BIN
        return 0
    fi
    local root="${TANSU_SQLITE_ROOT:-$HOME/.cargo/tansu-sqlite}"
    if [ ! -x "$root/bin/tansu" ]; then
        log "installing tansu with SQLite storage into $root (cargo install, about 15 minutes, once per machine)"
        cargo install tansu --version 0.6.0 --locked --features libsql --root "$root"
    fi
    export TANSU_SQLITE_BIN="$root/bin/tansu"
}

# ensure_cargo_tool NAME MINUTES: installs the cargo subcommand NAME from
# crates.io (`cargo install NAME --locked`) when it is missing.
ensure_cargo_tool() {
    local name=$1 minutes=$2
    if ! command -v "$name" >/dev/null 2>&1 && [ ! -x "$HOME/.cargo/bin/$name" ]; then
        log "installing $name (cargo install, about $minutes minutes, once per machine)"
        cargo install "$name" --locked
    fi
    if ! command -v "$name" >/dev/null 2>&1; then
        export PATH="$HOME/.cargo/bin:$PATH"
    fi
    command -v "$name" >/dev/null 2>&1 || die "$name was installed but cannot be found"
}

# cargo-deny checks licenses, banned and duplicate crates and sources
# (deny.toml).
ensure_cargo_deny() { ensure_cargo_tool cargo-deny 3; }

# cargo-fuzz drives libFuzzer (scripts/fuzz).
ensure_cargo_fuzz() { ensure_cargo_tool cargo-fuzz 2; }

# tansu_start DIR PORT: starts a broker with in-memory storage on
# 127.0.0.1:PORT in the background, logging to DIR/tansu.log, and waits
# until it accepts connections.
tansu_start() {
    local dir=$1 port=$2
    mkdir -p "$dir"
    "$TANSU_BIN" broker \
        --listener-url "tcp://127.0.0.1:$port" \
        --advertised-listener-url "tcp://127.0.0.1:$port" \
        --storage-engine memory://tansu/ \
        >"$dir/tansu.log" 2>&1 &
    echo $! >"$dir/tansu.pid"
    for _ in $(seq 1 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
        kill -0 "$(cat "$dir/tansu.pid")" 2>/dev/null || break
        sleep 0.1
    done
    cat "$dir/tansu.log" >&2
    die "tansu did not start"
}

# tansu_stop DIR: stops the broker started by tansu_start, if it runs.
tansu_stop() {
    local dir=$1 pid
    [ -f "$dir/tansu.pid" ] || return 0
    pid=$(cat "$dir/tansu.pid")
    kill "$pid" 2>/dev/null || return 0
    for _ in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
}

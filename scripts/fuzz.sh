#!/usr/bin/env bash
# Fuzz the parsers for a bounded time each: scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
#
# Targets (fuzz/fuzz_targets/, checks in fuzz/src/checks.rs): policy, host, mcp_args; all by
# default. SECONDS_PER_TARGET defaults to 60. Exits non-zero when a target finds a crash (or
# cannot be built/run) and prints where the input is and how to make it a regression test.
#
# cargo-fuzz needs nightly-only `-Z` flags; on a stable toolchain RUSTC_BOOTSTRAP=1 lets the
# stable compiler accept them. The AddressSanitizer build is tried first and `--sanitizer none`
# is the fallback (safe Rust needs no ASan to find panics).
#
# Environment: FUZZ_SANITIZER forces a sanitizer (address, none, ...) instead of the automatic choice.
set -uo pipefail

secs="${1:-60}"
shift || true
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(policy host mcp_args)
case "$secs" in '' | *[!0-9]*)
    echo "usage: $0 [SECONDS_PER_TARGET] [TARGET...]   (seconds must be a whole number)" >&2
    exit 2
    ;;
esac

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root/fuzz" || exit 2
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: cargo-fuzz is missing; installing it (cargo install cargo-fuzz --locked)"
    if ! cargo install cargo-fuzz --locked; then
        echo "fuzz.sh: cannot install cargo-fuzz from crates.io; install it by hand" \
            "(cargo install cargo-fuzz) and run this script again" >&2
        exit 2
    fi
fi

# Pick the sanitizer once: build every target with it.
mkdir -p artifacts
build_log="artifacts/build.log"
if [ -n "${FUZZ_SANITIZER:-}" ]; then
    candidates=("$FUZZ_SANITIZER")
else
    candidates=(address none)
fi
sanitizer=""
: >"$build_log"
for s in "${candidates[@]}"; do
    echo "fuzz.sh: building ${targets[*]} with --sanitizer $s (first build takes several minutes)"
    ok=1
    for t in "${targets[@]}"; do
        cargo fuzz build --sanitizer "$s" "$t" >>"$build_log" 2>&1 || { ok=0; break; }
    done
    if [ "$ok" -eq 1 ]; then
        sanitizer="$s"
        break
    fi
    echo "fuzz.sh: build with --sanitizer $s failed; last lines of $root/fuzz/$build_log:"
    tail -n 15 "$build_log"
done
if [ -z "$sanitizer" ]; then
    echo "fuzz.sh: cannot build the fuzz targets with RUSTC_BOOTSTRAP=1 on $(rustc --version);" \
        "see $root/fuzz/$build_log. cargo-fuzz needs nightly -Z flags: install a nightly" \
        "toolchain (rustup toolchain install nightly) and run 'cargo +nightly fuzz run TARGET'." >&2
    exit 2
fi

# A byte string as a Rust literal, for pasting into tests/fuzz_regressions.rs.
rust_bytes() {
    local out="b\"" b
    for b in $(od -An -v -tu1 "$1"); do
        if [ "$b" -eq 92 ]; then out+='\\'
        elif [ "$b" -eq 34 ]; then out+='\"'
        elif [ "$b" -ge 32 ] && [ "$b" -lt 127 ]; then out+="$(printf "\\$(printf '%03o' "$b")")"
        else out+="$(printf '\\x%02x' "$b")"
        fi
    done
    printf '%s"' "$out"
}

failed=()
summary=()
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t" "artifacts/$t"
    log="artifacts/$t.log"
    echo "fuzz.sh: fuzzing $t for ${secs}s (log: $root/fuzz/$log)"
    started=$(date +%s)
    cargo fuzz run --sanitizer "$sanitizer" "$t" "corpus/$t" "seeds/$t" -- \
        -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        >"$log" 2>&1
    rc=$?
    elapsed=$(($(date +%s) - started))
    execs=$(grep -h 'stat::number_of_executed_units' "$log" | awk '{s += $2} END {print s + 0}')
    summary+=("$t: $execs executions in ${elapsed}s (exit $rc)")
    if [ "$rc" -ne 0 ]; then
        failed+=("$t")
        echo "fuzz.sh: $t FAILED (exit $rc); the failure:"
        grep -A 2 -E "panicked at" "$log" | head -n 12
        grep -E "ERROR: libFuzzer|ERROR: AddressSanitizer|SUMMARY" "$log" | head -n 4
        artifact=$(grep -ho 'Test unit written to [^ ]*' "$log" | head -n 1 | sed 's/Test unit written to //')
        if [ -n "$artifact" ] && [ -f "$artifact" ]; then
            echo "fuzz.sh: crash input: $artifact ($(wc -c <"$artifact") bytes): $(rust_bytes "$artifact")"
            echo "fuzz.sh: to reproduce:  cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run --sanitizer $sanitizer $t $artifact"
            echo "fuzz.sh: to minimize:   cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz tmin --sanitizer $sanitizer $t $artifact"
            echo "           (writes artifacts/$t/minimized-from-*; print it as a Rust literal with od -c)"
            echo "fuzz.sh: regression:    add to tests/fuzz_regressions.rs"
            echo "             #[test] fn ${t}_crash_N() { checks::$t($(rust_bytes "$artifact")); }"
            echo "           (with the minimized input) and run: cargo test -p code-executor-mcp --test fuzz_regressions"
        else
            echo "fuzz.sh: no crash input was written; see $root/fuzz/$log"
        fi
    fi
done

echo "fuzz.sh: summary (sanitizer $sanitizer, ${secs}s per target):"
printf '  %s\n' "${summary[@]}"
if [ ${#failed[@]} -ne 0 ]; then
    echo "fuzz.sh: crashes found in: ${failed[*]}" >&2
    exit 1
fi
echo "fuzz.sh: no crash found"

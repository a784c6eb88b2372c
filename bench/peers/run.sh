#!/usr/bin/env bash
# Runs Drover's embedded default (durable and in memory, drover bench) and
# its peers (asynq on Redis with AOF everysec, River on PostgreSQL and on
# SQLite) on the same no-op workload in one run, and prints one table:
# burn-down of TASKS tasks (tasks/s) and p99 submit->terminal at RATE/s.
# Redis and PostgreSQL are started on free ports in a temporary directory
# and stopped at the end (only those this script started).
#
#   bench/peers/run.sh            # or: make bench-peers
#   TASKS=100000 RATE=100 DURATION=10s WORKERS=100 bench/peers/run.sh
# Needs redis-server and PostgreSQL (Debian: apt-get install -y redis-server postgresql).
set -euo pipefail
TASKS=${TASKS:-100000}
RATE=${RATE:-100}
DURATION=${DURATION:-10s}
WORKERS=${WORKERS:-100}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
tmp=$(mktemp -d /tmp/drover-peers.XXXXXX)
chmod 755 "$tmp"
pids=()
pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
pgdata="$tmp/pg"
cleanup() {
	if [ -f "$pgdata/postmaster.pid" ]; then
		runuser -u postgres -- "$pgbin/pg_ctl" -D "$pgdata" -m fast stop >/dev/null 2>&1 || true
	fi
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT
freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
command -v redis-server >/dev/null || { echo "run.sh: redis-server missing (apt-get install -y redis-server)" >&2; exit 1; }
[ -n "$pgbin" ] || { echo "run.sh: PostgreSQL missing (apt-get install -y postgresql)" >&2; exit 1; }

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg) ($(nproc) cores)"
(cd "$root" && go build -o "$tmp/drover" ./cmd/drover)
(cd "$here" && GOWORK=off go build -o "$tmp/peers" .)

# Redis: AOF on, fsync every second, no RDB snapshots.
rport=$(freeport)
mkdir "$tmp/redis"
redis-server --port "$rport" --bind 127.0.0.1 --dir "$tmp/redis" --appendonly yes --appendfsync everysec --save '' --daemonize no >"$tmp/redis.log" 2>&1 &
pids+=($!)

# PostgreSQL: its defaults (fsync on, synchronous_commit on), as a user
# that is not root.
pport=$(freeport)
mkdir "$pgdata" "$tmp/pgrun" && chown postgres "$pgdata" "$tmp/pgrun"
runuser -u postgres -- "$pgbin/initdb" -D "$pgdata" -A trust -U postgres >"$tmp/initdb.log" 2>&1
runuser -u postgres -- "$pgbin/pg_ctl" -D "$pgdata" -l "$tmp/pgrun/pg.log" -o "-p $pport -k $tmp/pgrun -c listen_addresses=127.0.0.1 -c max_connections=200" -w start >/dev/null
runuser -u postgres -- "$pgbin/createdb" -h 127.0.0.1 -p "$pport" -U postgres river
for _ in $(seq 50); do redis-cli -p "$rport" ping >/dev/null 2>&1 && break; sleep 0.1; done

drover() { # durability
	"$tmp/drover" bench --durability "$1" --tasks "$TASKS" --rates "$RATE" --duration "$DURATION" --drain 30m --no-steady --json >"$tmp/drover-$1.json"
}
drover durable
drover memory
"$tmp/peers" -system asynq -redis "127.0.0.1:$rport" -tasks "$TASKS" -rate "$RATE" -duration "$DURATION" -workers "$WORKERS" -persistence "AOF, appendfsync everysec" >"$tmp/asynq.json"
"$tmp/peers" -system river-postgres -pg "postgres://postgres@127.0.0.1:$pport/river?pool_max_conns=40" -tasks "$TASKS" -rate "$RATE" -duration "$DURATION" -workers "$WORKERS" -persistence "PostgreSQL, fsync + synchronous_commit on" >"$tmp/river-pg.json"
"$tmp/peers" -system river-sqlite -sqlite "$tmp/river.sqlite" -tasks "$TASKS" -rate "$RATE" -duration "$DURATION" -workers "$WORKERS" -persistence "SQLite WAL, synchronous FULL" >"$tmp/river-sqlite.json"

echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$tmp" "$TASKS" "$RATE" <<'PY'
import json, sys, os
tmp, tasks, rate = sys.argv[1], sys.argv[2], sys.argv[3]
rows = []
for d in ("durable", "memory"):
    r = json.load(open(os.path.join(tmp, f"drover-{d}.json")))
    ph = {p["name"]: p for p in r["phases"]}
    b, q = ph["burn-down"], ph[f"rate {rate}/s"]
    t = q["submit_to_terminal"]
    rows.append((f"Drover embedded, {d}", b["throughput_per_s"], t["p50_ns"]/1e6, t["p99_ns"]/1e6, "pebble WAL, group-committed fsync per submit" if d == "durable" else "none (memory)"))
for n in ("asynq", "river-pg", "river-sqlite"):
    r = json.load(open(os.path.join(tmp, f"{n}.json")))
    rows.append((r["system"], r["burn_down_per_s"], r["p50_ms"], r["p99_ms"], r["persistence"]))
print(f"\nno-op tasks: burn-down of {tasks} (tasks/s), submit->terminal at {rate}/s (ms)")
print(f"{'system':<28} {'burn-down/s':>12} {'p50 ms':>8} {'p99 ms':>8}  persistence")
for s, b, p50, p99, pers in rows:
    print(f"{s:<28} {b:>12.0f} {p50:>8.1f} {p99:>8.1f}  {pers}")
dur = rows[0][1]
for s, b, *_ in rows[2:4]:
    print(f"durable burn-down / {s}: {dur/b:.1f}x (target >= 5x)")
print(f"durable p99 at {rate}/s: {rows[0][3]:.1f} ms (target <= 20 ms)")
PY

#!/bin/bash
# Starts moto_server (the AWS emulator used where no Docker engine runs)
# and creates Drover's resources on it, like LocalStack's init script.
#
#   eval "$(localstack/moto.sh [PORT])"   # start; exports AWS_* and DROVER_*
#   localstack/moto.sh stop               # stop the moto_server it started
#
# PORT defaults to MOTO_PORT or else a free port. Resources are created
# with the AWS CLI when it is installed, else with
# `go run ./internal/awstest/cmd/mkstack` (run from the repository).
# Settings as for init/ready.d/10-drover.sh: DROVER_PREFIX,
# DROVER_MAX_RECEIVE_COUNT, DROVER_VISIBILITY_TIMEOUT.
# Logs go to stderr and .drover/moto.log; only export lines go to stdout.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
state=$root/.drover
pidfile=$state/moto.pid
mkdir -p "$state"

log() { echo "moto.sh: $*" >&2; }

if [[ ${1:-} == stop ]]; then
	if [[ -f $pidfile ]]; then
		pid=$(cat "$pidfile")
		if kill "$pid" 2>/dev/null; then
			for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
			log "stopped moto_server (pid $pid)"
		else
			log "moto_server (pid $pid) was not running"
		fi
		rm -f "$pidfile"
	else
		log "no $pidfile: nothing to stop"
	fi
	exit 0
fi

if ! command -v moto_server >/dev/null; then
	log "moto_server not found. Install it with: pip install 'moto[server]>=5'"
	log "or use LocalStack with Docker: docker compose -f localstack/docker-compose.yml up -d"
	exit 1
fi
if [[ -f $pidfile ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
	log "moto_server already running (pid $(cat "$pidfile")); run '$0 stop' first"
	exit 1
fi

port=${1:-${MOTO_PORT:-}}
if [[ -z $port ]]; then
	port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null || echo 5000)
fi
endpoint=http://127.0.0.1:$port

# moto_server through internal/awstest/moto_serial.py, which handles one
# request at a time: moto has no lock around conditional writes and
# message receives, which AWS makes atomic. The Python is the one
# moto_server's script names, else python3.
py=python3
read -r -a shebang <"$(command -v moto_server)" || true
if [[ ${shebang[0]:-} == '#!'* ]]; then
	prog=${shebang[0]#\#!}
	if [[ ${prog##*/} == env && -n ${shebang[1]:-} ]]; then prog=${shebang[1]}; fi
	if [[ ${prog##*/} == python* ]]; then py=$prog; fi
fi
"$py" "$root/internal/awstest/moto_serial.py" -H 127.0.0.1 -p "$port" >"$state/moto.log" 2>&1 &
echo $! >"$pidfile"
log "moto_server on $endpoint (pid $!, log $state/moto.log)"
for _ in $(seq 1 100); do
	curl -fsS "$endpoint/moto-api/" >/dev/null 2>&1 && break
	sleep 0.1
done
curl -fsS "$endpoint/moto-api/" >/dev/null 2>&1 || { log "moto_server did not answer on $endpoint"; exit 1; }

export AWS_ENDPOINT_URL=$endpoint AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 \
	AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_EC2_METADATA_DISABLED=true
cat <<EOT
export AWS_ENDPOINT_URL='$endpoint'
export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_EC2_METADATA_DISABLED=true
EOT

if command -v aws >/dev/null && aws --version >/dev/null 2>&1; then
	log "creating resources with the AWS CLI"
	AWS="aws --endpoint-url $endpoint" "$here/init/ready.d/10-drover.sh"
elif command -v go >/dev/null; then
	log "no AWS CLI: creating resources with go run ./internal/awstest/cmd/mkstack"
	(cd "$root" && go run ./internal/awstest/cmd/mkstack -prefix "${DROVER_PREFIX:-drover}" \
		-max-receive-count "${DROVER_MAX_RECEIVE_COUNT:-30}" \
		-visibility "${DROVER_VISIBILITY_TIMEOUT:-30}s")
else
	log "neither the AWS CLI nor Go is installed: cannot create the resources."
	log "install one (pip install awscli, or Go 1.26) and run this again after '$0 stop'."
	exit 1
fi

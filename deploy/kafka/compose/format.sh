#!/usr/bin/env bash
# Formats the broker's KRaft storage once, before the broker's first start, with the SCRAM users
# in its first metadata: mandaact-admin (the broker itself, the healthcheck and kafka-init) and
# one principal per service (SCRAM_USERS). A user's password is MANDAACT_KAFKA_<NAME>_PASSWORD,
# <NAME> being the user without "mandaact-", upper-cased. An already formatted volume is left
# alone (the image's own start-up format then finds it formatted, too).
set -euo pipefail
config=$(mktemp)
trap 'rm -f "$config"' EXIT
# The settings formatting reads, taken from the same KAFKA_* variables the broker renders.
cat > "$config" <<PROPERTIES
process.roles=${KAFKA_PROCESS_ROLES}
node.id=${KAFKA_NODE_ID}
controller.quorum.voters=${KAFKA_CONTROLLER_QUORUM_VOTERS}
controller.listener.names=${KAFKA_CONTROLLER_LISTENER_NAMES}
listeners=${KAFKA_LISTENERS}
listener.security.protocol.map=${KAFKA_LISTENER_SECURITY_PROTOCOL_MAP}
inter.broker.listener.name=${KAFKA_INTER_BROKER_LISTENER_NAME}
log.dirs=${KAFKA_LOG_DIRS}
PROPERTIES
scram=()
for user in mandaact-admin ${SCRAM_USERS}; do
  name=${user#mandaact-}
  variable="MANDAACT_KAFKA_${name^^}_PASSWORD"
  password=${!variable:-}
  if [[ ! $password =~ ^[A-Za-z0-9]{16,}$ ]]; then
    echo "$variable must be set to 16 or more letters and digits (openssl rand -hex 24)" >&2
    exit 1
  fi
  scram+=(--add-scram "SCRAM-SHA-512=[name=${user},password=${password}]")
done
# Quiet on success: the tool prints the bootstrap records, SCRAM keys included.
if ! output=$("${KAFKA_BIN:-/opt/kafka/bin}/kafka-storage.sh" format --ignore-formatted \
  --cluster-id "${CLUSTER_ID}" --config "$config" "${scram[@]}" 2>&1); then
  echo "$output" >&2
  exit 1
fi
printf '%s\n' "$output" | grep -E '^(Formatting|All of the log directories)' || true

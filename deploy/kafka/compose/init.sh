#!/usr/bin/env bash
# One-shot after the broker is healthy, as mandaact-admin: creates the topics (TOPICS and
# DEAD_LETTER_TOPICS, PARTITIONS each; existing ones are left alone), then the services' ACLs.
# ACLS holds one rule per word, `principal:resource:operation:name[,name...]`, e.g.
# `mandaact-checkins:topic:Read:user.changed,goal.changed` (tests/deploy checks them against
# mandaact_common.kafka_acls). Adding an ACL that exists is a no-op; stale ones are not removed.
set -euo pipefail
here=$(dirname "$0")
admin() { bash "$here/admin.sh" "$@"; }
for topic in $TOPICS $DEAD_LETTER_TOPICS; do
  admin kafka-topics.sh --bootstrap-server "$BOOTSTRAP" --create --if-not-exists \
    --topic "$topic" --partitions "$PARTITIONS" --replication-factor 1
done
for rule in $ACLS; do
  IFS=: read -r principal resource operation names <<< "$rule"
  resources=()
  for name in ${names//,/ }; do
    resources+=("--$resource" "$name")
  done
  admin kafka-acls.sh --bootstrap-server "$BOOTSTRAP" --add \
    --allow-principal "User:$principal" --operation "$operation" "${resources[@]}"
done
admin kafka-topics.sh --bootstrap-server "$BOOTSTRAP" --list
# A FindCoordinator request makes the broker create __consumer_offsets now, so the workers'
# first join doesn't log GroupCoordinatorNotAvailable.
admin kafka-consumer-groups.sh --bootstrap-server "$BOOTSTRAP" --describe --group kafka-init \
  > /dev/null 2>&1 || true

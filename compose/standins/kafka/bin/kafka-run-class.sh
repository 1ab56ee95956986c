#!/bin/bash
# The distribution's kafka-run-class.sh, reduced to what the stand-in needs: the same
# KAFKA_HEAP_OPTS / KAFKA_JVM_PERFORMANCE_OPTS / KAFKA_LOG4J_OPTS / KAFKA_OPTS variables.
exec java ${KAFKA_HEAP_OPTS:--Xmx256m} \
  ${KAFKA_JVM_PERFORMANCE_OPTS:--server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true} \
  ${KAFKA_LOG4J_OPTS:--Dlog4j.configuration=file:/etc/kafka/docker/tools-log4j.properties} \
  ${KAFKA_OPTS:-} -cp "/opt/kafka/libs/*" "$@"

#!/bin/bash
# The neo4j image's contract, on a server run from Maven Central jars:
#   NEO4J_AUTH=none | neo4j/<password>  (unset: neo4j/neo4j, as upstream)
#   NEO4J_<setting>=value  ->  <setting> in neo4j.conf, with "_" -> ".", "__" -> "_", "___" -> "-"
#   e.g. NEO4J_server_memory_pagecache_size=64m, NEO4J_server_memory_heap_max__size=512m
set -euo pipefail
home="${NEO4J_HOME:-/var/lib/neo4j}"
echo "pinclip stand-in: Neo4j $(cat "${home}/VERSION") community from Maven Central jars (not the neo4j image)"
[ "${1:-neo4j}" = neo4j ] || exec "$@"

conf="${home}/conf/neo4j.conf"
heap="512m"
{
  echo "server.default_listen_address=0.0.0.0"
  echo "server.directories.data=/data"
  echo "server.directories.logs=/logs"
  echo "server.directories.plugins=${home}/plugins"
  echo "server.directories.import=${home}/import"
  echo "dbms.usage_report.enabled=false"
  echo "server.logs.gc.enabled=false"
  echo "server.logs.user.config=${home}/conf-defaults/user-logs.xml"
  for var in $(compgen -e); do
    case "${var}" in
      NEO4J_AUTH|NEO4J_HOME|NEO4J_ACCEPT_LICENSE_AGREEMENT|NEO4J_EDITION) continue ;;
      NEO4J_*) ;;
      *) continue ;;
    esac
    key="${var#NEO4J_}"
    key="${key//___/-}"
    key="${key//__/@}"
    key="${key//_/.}"
    key="${key//@/_}"
    [ "${key}" = "server.memory.heap.max_size" ] && heap="${!var}"
    echo "${key}=${!var}"
  done
} > "${conf}"

java_cmd=(java -XX:+UseG1GC -Djava.awt.headless=true -Dfile.encoding=UTF-8
  --add-opens=java.base/java.nio=ALL-UNNAMED --add-opens=java.base/java.io=ALL-UNNAMED
  --add-opens=java.base/sun.nio.ch=ALL-UNNAMED --add-opens=java.base/java.lang=ALL-UNNAMED
  -cp "${home}/lib/*")
export NEO4J_CONF="${home}/conf"

auth="${NEO4J_AUTH:-neo4j/neo4j}"
if [ "${auth}" = none ]; then
  echo "dbms.security.auth_enabled=false" >> "${conf}"
else
  user="${auth%%/*}"
  password="${auth#*/}"
  if [ "${user}" != neo4j ] || [ "${password}" = "${auth}" ]; then
    echo "NEO4J_AUTH must be 'none' or 'neo4j/<password>'" >&2
    exit 1
  fi
  echo "dbms.security.auth_enabled=true" >> "${conf}"
  if [ ! -e /data/dbms/auth.ini ]; then
    "${java_cmd[@]}" -Xmx256m org.neo4j.cli.AdminTool dbms set-initial-password "${password}"
  fi
fi

exec "${java_cmd[@]}" "-Xmx${heap}" org.neo4j.server.CommunityEntryPoint \
  "--home-dir=${home}" "--config-dir=${home}/conf" --console-mode

#!/bin/sh
# Leaves a grandchild behind that ignores SIGTERM and escapes the process
# group (setsid), prints "ready", then sleeps (or exits at once with "exit").
# Usage: doublefork.sh MARKER [exit]
marker=$1
( setsid sh -c 'trap "" TERM; while :; do sleep 0.2; done' "grandchild-$marker" </dev/null >/dev/null 2>&1 & ) 
( trap "" TERM; exec sleep 300 ) &
echo "$marker ready"
if [ "$2" = exit ]; then exit 0; fi
trap "" TERM
while :; do sleep 0.2; done

#!/bin/sh
# Floods stdout with bytes and no newline, forever. Usage: flood.sh MARKER
exec tr '\000' x </dev/zero

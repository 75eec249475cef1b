#!/bin/sh
# Prints a line to each stream and exits with CODE. Usage: fail.sh MARKER CODE
echo "$1 failing"
echo "$1 to stderr" >&2
exit "${2:-3}"

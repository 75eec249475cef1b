#!/bin/sh
# Echoes stdin to stdout until EOF, then prints "eof". Usage: echo.sh MARKER
cat
echo "eof"

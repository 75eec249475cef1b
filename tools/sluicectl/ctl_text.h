/*
 * Byte-string functions for sluicectl's output: UTF-8 validation, standard
 * base64, and the one-line escaping of event data in the human `tail`
 * format. Event data is arbitrary bytes; these decide how it is shown
 * without ever losing a byte (text when it is valid UTF-8, else base64).
 * Pure functions; any thread.
 */
#ifndef SL_TOOLS_CTL_TEXT_H
#define SL_TOOLS_CTL_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/* True when s[0..len) (borrowed) is well-formed UTF-8: no overlong forms,
 * no surrogates, nothing above U+10FFFF. NUL bytes count as text. */
bool sl_ctl_text_utf8_valid(const char *s, size_t len);
/* Writes s[0..len) as standard, padded base64 (RFC 4648 section 4) to f. */
void sl_ctl_text_base64(FILE *f, const char *s, size_t len);
/* Writes s[0..len) so that it stays on one line and reads back exactly:
 * backslash, LF, CR and TAB become \\ \n \r \t; other control bytes (0x00
 * to 0x1f and 0x7f) become \xHH; everything else is written as is. */
void sl_ctl_text_escape(FILE *f, const char *s, size_t len);

#endif

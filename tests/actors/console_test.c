/*
 * Tests for actors/console: the embedded assets are all there with their
 * content types, /console paths map onto them, and the page holds to its
 * own Content-Security-Policy (no inline script or style, nothing loaded
 * from another origin), which a browser would otherwise refuse silently.
 */
#include "actors/console.h"

#include <string.h>

#include "tests/check.h"

static sl_http_str_t S(const char *s)
{
    return (sl_http_str_t){s, strlen(s)};
}

static const char *text_of(const char *path)
{
    const sl_console_asset_t *a = sl_console_find(S(path));
    CHECK(a != NULL);
    CHECK(a->data[a->len] == '\0'); /* the table NUL-terminates each asset */
    CHECK(strlen((const char *)a->data) == a->len);
    return (const char *)a->data;
}

static void test_console_paths(void)
{
    CHECK(sl_console_path(S("/console")));
    CHECK(sl_console_path(S("/console/")));
    CHECK(sl_console_path(S("/console/console.js")));
    CHECK(!sl_console_path(S("/consoles")));
    CHECK(!sl_console_path(S("/v1/console")));
    const sl_console_asset_t *index = sl_console_find(S("/console/index.html"));
    CHECK(index != NULL);
    CHECK(sl_console_find(S("/console")) == index);
    CHECK(sl_console_find(S("/console/")) == index);
    CHECK(strcmp(index->content_type, "text/html; charset=utf-8") == 0);
    CHECK(strcmp(sl_console_find(S("/console/console.js"))->content_type,
                 "text/javascript; charset=utf-8") == 0);
    CHECK(strcmp(sl_console_find(S("/console/console.css"))->content_type,
                 "text/css; charset=utf-8") == 0);
    CHECK(sl_console_find(S("/console/missing.js")) == NULL);
    CHECK(sl_console_find(S("/console/../console.js")) == NULL);
}

static void test_console_page_obeys_its_csp(void)
{
    const char *html = text_of("/console");
    CHECK(strstr(html, "<script src=\"/console/console.js\"></script>") != NULL);
    CHECK(strstr(html, "href=\"/console/console.css\"") != NULL);
    /* Every <script> has a src (no inline code), no inline style or
     * handler, nothing from another origin. */
    for (const char *p = strstr(html, "<script"); p; p = strstr(p + 1, "<script"))
        CHECK(strncmp(p, "<script src=\"/console/", 22) == 0);
    CHECK(strstr(html, "style=") == NULL);
    CHECK(strstr(html, "<style") == NULL);
    CHECK(strstr(html, " onclick=") == NULL && strstr(html, " onload=") == NULL);
    CHECK(strstr(html, "http://") == NULL && strstr(html, "https://") == NULL);
    const char *js = text_of("/console/console.js");
    CHECK(strstr(js, "window.sluiceConsole") != NULL);
    CHECK(strstr(js, "eval(") == NULL && strstr(js, "innerHTML") == NULL);
    CHECK(strstr(js, "http://") == NULL && strstr(js, "https://") == NULL);
}

int main(void)
{
    test_console_paths();
    test_console_page_obeys_its_csp();
    printf("console_test: ok\n");
    return 0;
}

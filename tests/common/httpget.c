/* httpget: HTTP requests for tests over libcurl; see httpget.h. */
#include "httpget.h"

#include <string.h>

#include <curl/curl.h>

static size_t collect(char *data, size_t size, size_t n, void *ud)
{
    return strbuf_add(ud, data, size * n) < 0 ? 0 : size * n;
}

int httpget_init(struct httpget *g)
{
    g->curl = curl_easy_init();
    return g->curl ? 0 : -1;
}

void httpget_release(struct httpget *g)
{
    curl_easy_cleanup(g->curl);
    g->curl = NULL;
}

int httpget_do(struct httpget *g, const char *method, const char *url, struct httpget_reply *r,
               struct err *e)
{
    CURL *c = g->curl;
    CURLcode cc;

    memset(r, 0, sizeof(*r));
    strbuf_init(&r->body);
    strbuf_init(&r->headers);
    curl_easy_setopt(c, CURLOPT_URL, url);
    /* HTTPGET first: it undoes NOBODY and POSTFIELDS of an earlier request. */
    curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
    curl_easy_setopt(c, CURLOPT_NOBODY, strcmp(method, "HEAD") == 0 ? 1L : 0L);
    if (strcmp(method, "POST") == 0)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, "x=1");
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r->body);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &r->headers);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
    cc = curl_easy_perform(c);
    if (cc != CURLE_OK)
        return err_set(e, (int)cc, "%s %s: %s", method, url, curl_easy_strerror(cc));
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->code);
    curl_easy_getinfo(c, CURLINFO_NUM_CONNECTS, &r->connects);
    return 0;
}

void httpget_reply_release(struct httpget_reply *r)
{
    strbuf_release(&r->body);
    strbuf_release(&r->headers);
}

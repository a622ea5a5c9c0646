/*
 * httpget: plain HTTP requests from tests (libcurl), for servers the code
 * under test runs, such as the controller's status server. One struct
 * httpget keeps its connection alive between requests.
 */
#ifndef PLATEOP_TESTS_HTTPGET_H
#define PLATEOP_TESTS_HTTPGET_H

#include "err.h"
#include "strbuf.h"

struct httpget {
    void *curl;             /* CURL * */
};

struct httpget_reply {
    long code;              /* HTTP status */
    struct strbuf body;
    struct strbuf headers;  /* the raw header lines */
    long connects;          /* new connections the request needed (0: kept alive) */
};

/* Returns 0, or -1 when libcurl cannot be set up. */
int httpget_init(struct httpget *g);

void httpget_release(struct httpget *g);

/*
 * Sends method ("GET", "HEAD" or "POST" with a small form body) to url,
 * waiting at most 10 s. Fills *r (release it with httpget_reply_release();
 * it is initialised here). Returns 0 whatever the status, or -1 with e when
 * no answer came.
 */
int httpget_do(struct httpget *g, const char *method, const char *url, struct httpget_reply *r,
               struct err *e);

void httpget_reply_release(struct httpget_reply *r);

#endif

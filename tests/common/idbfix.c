/* idbfix: a test's own rows in the test bed's ImageDB; see idbfix.h. */
#include "idbfix.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int idbfix_configured(void)
{
    const char *uri = getenv("PLATEOP_IMAGEDB_URI"), *host = getenv("PGHOST");

    return (uri && *uri) || (host && *host);
}

static char *read_small_file(const char *path)
{
    static char buf[512];
    FILE *f = fopen(path, "r");
    size_t n;

    if (!f)
        return NULL;
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        n--;
    buf[n] = '\0';
    return buf;
}

PGconn *idbfix_connect(void)
{
    const char *keys[4], *vals[4], *uri = getenv("PLATEOP_IMAGEDB_URI");
    const char *pwfile = getenv("PLATEOP_IMAGEDB_PASSWORD_FILE");
    char *pw = pwfile && *pwfile ? read_small_file(pwfile) : NULL;
    PGconn *c;
    int n = 0;

    keys[n] = "application_name", vals[n++] = "plateop-test";
    if (uri && *uri)
        keys[n] = "dbname", vals[n++] = uri;
    if (pw)
        keys[n] = "password", vals[n++] = pw;
    keys[n] = NULL, vals[n] = NULL;
    c = PQconnectdbParams(keys, vals, 1);
    if (PQstatus(c) != CONNECTION_OK) {
        printf("# idbfix: connect: %s", PQerrorMessage(c));
        PQfinish(c);
        return NULL;
    }
    PQclear(idbfix_exec(c, "SET client_min_messages = warning", 0, NULL));
    return c;
}

PGresult *idbfix_exec(PGconn *c, const char *sql, int n, const char *const *params)
{
    PGresult *r = PQexecParams(c, sql, n, NULL, params, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(r);

    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        printf("# idbfix: %.60s...: %s", sql, PQresultErrorMessage(r));
        PQclear(r);
        return NULL;
    }
    return r;
}

long long idbfix_value(PGconn *c, const char *sql, int n, const char *const *params)
{
    PGresult *r = idbfix_exec(c, sql, n, params);
    long long v = -1;

    if (r && PQntuples(r) > 0 && !PQgetisnull(r, 0, 0))
        v = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return v;
}

static unsigned next_random(void)
{
    static unsigned seed;

    if (!seed) {
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        seed = (unsigned)ts.tv_nsec ^ (unsigned)getpid() * 2654435761u;
    }
    seed = seed * 1103515245u + 12345u;
    return seed >> 1;
}

void idbfix_barcode(char *out, size_t size, const char *prefix)
{
    static int counter;

    snprintf(out, size, "%s-%d-%d-%u", prefix, (int)getpid(), ++counter, next_random() % 100000);
}

int idbfix_map_id(PGconn *c)
{
    char id[16];
    const char *p[1] = { id };
    int tries, v;

    for (tries = 0; tries < 100; tries++) {
        v = 1000000 + (int)(next_random() % 1000000000);
        snprintf(id, sizeof(id), "%d", v);
        if (idbfix_value(c, "SELECT count(*) FROM channel_map WHERE map_id = $1::int", 1, p) == 0)
            return v;
    }
    return -1;
}

int idbfix_channel_map(PGconn *c, int map_id, const char *const *dyes, int n)
{
    char id[16], ch[16];
    const char *p[3] = { id, ch, NULL };
    PGresult *r;
    int i;

    snprintf(id, sizeof(id), "%d", map_id);
    for (i = 0; i < n; i++) {
        snprintf(ch, sizeof(ch), "%d", i + 1);
        p[2] = dyes[i];
        r = idbfix_exec(c, "INSERT INTO channel_map (map_id, channel, dye) VALUES ($1, $2, $3)",
                        3, p);
        if (!r)
            return -1;
        PQclear(r);
    }
    return 0;
}

long long idbfix_acquisition(PGconn *c, const char *barcode, int map_id)
{
    char id[16];
    const char *p[2] = { barcode, map_id >= 0 ? id : NULL };

    snprintf(id, sizeof(id), "%d", map_id);
    return idbfix_value(c,
                        "INSERT INTO plate_acquisition (plate_barcode, channel_map_id, finished,"
                        " folder) VALUES ($1, $2::int, now(), '/share/images/' || $1)"
                        " RETURNING id",
                        2, p);
}

long long idbfix_plate(PGconn *c, long long acq, const char *barcode, int wells, int tps,
                       int sites, int zs, int channels)
{
    char a[24], rows[16], cols[16], t[16], s[16], z[16], ch[16];
    const char *p[8] = { a, barcode, rows, cols, t, s, z, ch };
    int nr = wells == 96 ? 8 : wells == 384 ? 16 : 32;
    PGresult *r;
    long long n;

    snprintf(a, sizeof(a), "%lld", acq);
    snprintf(rows, sizeof(rows), "%d", nr - 1);
    snprintf(cols, sizeof(cols), "%d", wells / nr);
    snprintf(t, sizeof(t), "%d", tps);
    snprintf(s, sizeof(s), "%d", sites);
    snprintf(z, sizeof(z), "%d", zs - 1);
    snprintf(ch, sizeof(ch), "%d", channels);
    r = idbfix_exec(c,
                    "INSERT INTO images (plate_acquisition_id, plate_barcode, timepoint, well,"
                    " site, z, channel, path)"
                    " SELECT $1::int, $2, t, w, s, z, ch,"
                    "  '/share/images/' || $2 || '/t' || t || '/' || w || '_s' || s || '_z' || z"
                    "  || '_w' || ch || '.tif'"
                    " FROM generate_series(0, $3::int) r,"
                    "  LATERAL (SELECT CASE WHEN r < 26 THEN chr(65 + r)"
                    "           ELSE 'A' || chr(39 + r) END AS letters) l,"
                    "  generate_series(1, $4::int) col,"
                    "  LATERAL (SELECT l.letters || lpad(col::text, 2, '0') AS w) ww,"
                    "  generate_series(1, $5::int) t, generate_series(1, $6::int) s,"
                    "  generate_series(0, $7::int) z, generate_series(1, $8::int) ch"
                    " ORDER BY t, w, s, z, ch",
                    8, p);
    if (!r)
        return -1;
    n = strtoll(PQcmdTuples(r), NULL, 10);
    PQclear(r);
    return n;
}

void idbfix_path(char *out, size_t size, const char *barcode, int tp, const char *well,
                 int site, int z, int channel)
{
    snprintf(out, size, "/share/images/%s/t%d/%s_s%d_z%d_w%d.tif", barcode, tp, well, site, z,
             channel);
}

int idbfix_cleanup(PGconn *c, long long acq, int map_id)
{
    static const char *const sql[] = {
        "DELETE FROM images WHERE plate_acquisition_id = $1::int",
        "DELETE FROM image_sub_analyses WHERE plate_acquisition_id = $1::int",
        "DELETE FROM image_analyses WHERE plate_acquisition_id = $1::int",
        "DELETE FROM plate_acquisition WHERE id = $1::int",
    };
    char a[24], m[16];
    const char *p[1] = { a }, *pm[1] = { m };
    PGresult *r;
    size_t i;
    int rc = 0;

    snprintf(a, sizeof(a), "%lld", acq);
    for (i = 0; acq > 0 && i < sizeof(sql) / sizeof(sql[0]); i++) {
        r = idbfix_exec(c, sql[i], 1, p);
        rc |= r ? 0 : -1;
        PQclear(r);
    }
    if (map_id >= 0) {
        snprintf(m, sizeof(m), "%d", map_id);
        r = idbfix_exec(c, "DELETE FROM channel_map WHERE map_id = $1::int", 1, pm);
        rc |= r ? 0 : -1;
        PQclear(r);
    }
    return rc;
}

int idbfix_can_restart(void)
{
    const char *d = getenv("PLATEOP_IMAGEDB_DATADIR"), *p = getenv("PLATEOP_PG_CTL");

    return d && *d && p && *p;
}

int idbfix_pg_ctl(const char *action)
{
    const char *datadir = getenv("PLATEOP_IMAGEDB_DATADIR");
    char *cmd, *q, logfile[1024], *slash;
    char *argv[32];
    int argc = 0, status, fd;
    pid_t pid;

    if (!idbfix_can_restart())
        return -1;
    /* The server's log goes next to its data directory, as hack/imagedb.sh has it. */
    snprintf(logfile, sizeof(logfile), "%s", datadir);
    slash = strrchr(logfile, '/');
    if (slash && slash != logfile)
        snprintf(slash, sizeof(logfile) - (size_t)(slash - logfile), "/postgres.log");
    else
        snprintf(logfile, sizeof(logfile), "%s/postgres.log", datadir);
    cmd = strdup(getenv("PLATEOP_PG_CTL"));
    /* PLATEOP_PG_CTL may be a command with arguments: split on spaces, no shell. */
    for (q = cmd; *q && argc < 20;) {
        while (*q == ' ' || *q == '\t')
            *q++ = '\0';
        if (!*q)
            break;
        argv[argc++] = q;
        while (*q && *q != ' ' && *q != '\t')
            q++;
    }
    argv[argc++] = "-D";
    argv[argc++] = (char *)datadir;
    argv[argc++] = "-w";
    argv[argc++] = "-t";
    argv[argc++] = "60";
    argv[argc++] = "-m";
    argv[argc++] = "fast";
    argv[argc++] = "-l";
    argv[argc++] = logfile;
    argv[argc++] = (char *)action;
    argv[argc] = NULL;
    fflush(stdout);
    pid = fork();
    if (pid == 0) {
        /* The server must not hold the test's output open. */
        fd = open("/dev/null", O_RDWR);
        if (fd >= 0) {
            dup2(fd, 0);
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execvp(argv[0], argv);
        _exit(127);
    }
    free(cmd);
    if (pid < 0 || waitpid(pid, &status, 0) < 0)
        return -1;
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

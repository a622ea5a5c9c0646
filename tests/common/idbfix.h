/*
 * idbfix: rows of a test's own in the test bed's ImageDB.
 *
 * The database comes from the environment only (PLATEOP_IMAGEDB_URI or
 * PGHOST/PGPORT/PGUSER/PGDATABASE, password from PGPASSWORD or
 * PLATEOP_IMAGEDB_PASSWORD_FILE). A test makes its own plate acquisitions
 * and channel maps with unique barcodes and map ids, and removes them (with
 * their images and analyses) in idbfix_cleanup(). Every function prints
 * the database's error as a TAP comment and returns -1 (or NULL) on failure.
 */
#ifndef PLATEOP_TESTS_IDBFIX_H
#define PLATEOP_TESTS_IDBFIX_H

#include <libpq-fe.h>

/* Whether the environment names an ImageDB (else a test skips). */
int idbfix_configured(void);

/* A plain libpq connection to the test bed's ImageDB (NULL on failure). */
PGconn *idbfix_connect(void);

/* Runs a parameterised statement; returns its result (caller clears) or NULL. */
PGresult *idbfix_exec(PGconn *c, const char *sql, int n, const char *const *params);

/* The first column of the first row as a number (-1 on failure or no row). */
long long idbfix_value(PGconn *c, const char *sql, int n, const char *const *params);

/* A barcode no other test run uses: "<prefix>-<pid>-<counter>-<random>". */
void idbfix_barcode(char *out, size_t size, const char *prefix);

/* A channel map id unused so far (>= 1000000, random). */
int idbfix_map_id(PGconn *c);

/* Inserts channel map map_id: channel i+1 -> dyes[i]. Returns 0 or -1. */
int idbfix_channel_map(PGconn *c, int map_id, const char *const *dyes, int n);

/* Inserts a finished plate acquisition (map_id < 0: no channel map). Returns its id. */
long long idbfix_acquisition(PGconn *c, const char *barcode, int map_id);

/*
 * Inserts a whole plate's images in one statement: every well of a
 * `wells`-well plate (96, 384, 1536), timepoints 1..tps, sites 1..sites,
 * z 0..zs-1, channels 1..channels, with paths
 * "/share/images/<barcode>/t<tp>/<well>_s<site>_z<z>_w<channel>.tif".
 * Returns the number of rows inserted, or -1.
 */
long long idbfix_plate(PGconn *c, long long acq, const char *barcode, int wells, int tps,
                       int sites, int zs, int channels);

/* The path idbfix_plate() gives an image. */
void idbfix_path(char *out, size_t size, const char *barcode, int tp, const char *well,
                 int site, int z, int channel);

/*
 * Removes acquisition acq with its images and analyses, and channel map
 * map_id (if >= 0). Returns 0 or -1.
 */
int idbfix_cleanup(PGconn *c, long long acq, int map_id);

/* Whether the test bed can restart its server: PLATEOP_IMAGEDB_DATADIR and PLATEOP_PG_CTL. */
int idbfix_can_restart(void);

/*
 * Runs $PLATEOP_PG_CTL -D $PLATEOP_IMAGEDB_DATADIR -w -m fast -l <log> <action>
 * ("stop", "start", "restart") without a shell, the server's log going next
 * to the data directory. Returns 0 if pg_ctl succeeded.
 */
int idbfix_pg_ctl(const char *action);

#endif

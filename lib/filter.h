/*
 * filter: plate formats, well names, and the well / site / z / channel
 * filters of an analysis (the GUI's well_filter, site_filter, z, channels).
 *
 * Plate formats: 96 (8 x 12), 384 (16 x 24) and 1536 (32 x 48) wells. Rows
 * are letters A..Z, then AA..AF on a 1536-well plate; columns start at 1.
 * A well name is written with the row letters in upper case and a two-digit
 * column: "C03", "AF48". Parsing accepts any case and any number of leading
 * zeros: "c3", "C3", "C03" and "c003" all name C03.
 *
 * Filter syntax (every filter: NULL, "" or only spaces means "no filter"):
 *   wells     C03,C04-E03   comma-separated wells and inclusive ranges
 *   sites     1-4,7         comma-separated non-negative integers and ranges
 *   z planes  0,2-4         as sites
 *   channels  DAPI,Mito     comma-separated dye names (CellProfiler channel
 *                           names; case-sensitive, as in the channel map)
 * Spaces around tokens are ignored. A token is one item between commas.
 *
 * The range rule: a well range runs row-major, left to right along a row and
 * then on to the next row, like reading a page. On a 384-well plate C04-E03
 * is C04..C24, D01..D24, E01..E03. Equivalently: a well W is in the range
 * A-B exactly when (row, column) of A <= (row, column) of W <= (row,
 * column) of B, comparing rows first. That comparison does not depend on
 * the plate's width, so a parsed filter matches the same wells on any
 * plate that holds its end points. A range whose end comes before its start
 * is an error, as is a well outside the plate format being parsed for.
 *
 * Errors name the filter, the offending token and its 1-based character
 * position, e.g.
 *   well filter "C03,X99": token "X99" at position 5: row X is outside a
 *   384-well plate (rows A-P)
 * and set e->code to FILTER_ERR_SYNTAX.
 *
 * No function here allocates except filter_ints_parse(), filter_dyes_parse()
 * and filter_parse(), whose results are released with the matching
 * *_release() function.
 */
#ifndef PLATEOP_FILTER_H
#define PLATEOP_FILTER_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

/* e->code of a malformed filter or well name. */
#define FILTER_ERR_SYNTAX 4301

/* The largest format's dimensions: every well of every format fits. */
#define FILTER_MAX_ROWS 32
#define FILTER_MAX_COLS 48

/* Room for a well name and its NUL: "AF48". */
#define FILTER_WELL_NAME_MAX 8

struct filter_plate {
    int wells;  /* 96, 384 or 1536 */
    int rows;
    int cols;
};

/*
 * Looks up a plate format by its well count (96, 384 or 1536).
 * Returns NULL for any other number.
 */
const struct filter_plate *filter_plate_get(int wells);

/*
 * The smallest plate format that holds a well at 0-based (row, col), or
 * NULL if none does. Used to guess a plate's format from its wells.
 */
const struct filter_plate *filter_plate_fit(int row, int col);

/*
 * Parses a well name of len bytes (need not be NUL-terminated) into a
 * 0-based row and column. The well must lie on `plate` (NULL: on the
 * largest format). Returns 0, or -1 with e saying why (e.g. "row Q is
 * outside a 384-well plate (rows A-P)"). Cost: O(len).
 */
int filter_well_parse(const char *s, size_t len, const struct filter_plate *plate,
                      int *row, int *col, struct err *e);

/*
 * Writes the canonical name of 0-based (row, col) into out: "C03", "AF48";
 * lower-case letters if `lower` ("c03", used in batch ids). Returns the
 * name's length, or 0 (and out = "") if the well lies outside the largest
 * format.
 */
size_t filter_well_name(int row, int col, int lower, char out[FILTER_WELL_NAME_MAX]);

/*
 * A set of wells. all != 0 means "every well" (no filter). Otherwise bit c
 * of rows[r] is set for each selected well (r, c). Fixed size; lives on
 * the stack; nothing to release.
 */
struct filter_wells {
    int all;
    uint64_t rows[FILTER_MAX_ROWS];
};

/*
 * Parses a well filter (syntax above) for `plate` (NULL: accept any well of
 * the largest format, for when the format is not known yet). Returns 0, or
 * -1 with e naming token and position. Cost: O(length + wells selected).
 */
int filter_wells_parse(struct filter_wells *f, const char *text,
                       const struct filter_plate *plate, struct err *e);

/* Whether 0-based (row, col) passes the filter. O(1). */
int filter_wells_match(const struct filter_wells *f, int row, int col);

/* Number of wells the filter selects on `plate` (all: the plate's size). */
size_t filter_wells_count(const struct filter_wells *f, const struct filter_plate *plate);

/* An inclusive integer range. */
struct filter_range {
    int lo;
    int hi;
};

/*
 * A set of non-negative integers (sites or z planes) as sorted, merged,
 * disjoint ranges. all != 0 (and n == 0) means "every value".
 * Owns `ranges`; release with filter_ints_release().
 */
struct filter_ints {
    int all;
    size_t n;
    struct filter_range *ranges;
};

/* The largest site or z value a filter may name. */
#define FILTER_INT_MAX 1000000

/*
 * Parses "1-4,7" into f. `what` names the filter in errors ("site",
 * "z"). Values are 0..FILTER_INT_MAX. Returns 0, or -1 with e naming token
 * and position (f is then empty and needs no release, though releasing is
 * harmless). Cost: O(length + tokens log tokens).
 */
int filter_ints_parse(struct filter_ints *f, const char *what, const char *text,
                      struct err *e);

/* Whether v passes the filter. O(log ranges). */
int filter_ints_match(const struct filter_ints *f, int v);

/* Frees the ranges and leaves f as "every value". Safe on a zeroed struct. */
void filter_ints_release(struct filter_ints *f);

/*
 * A list of dye names in the order given, without duplicates (a repeated
 * name is kept once). n == 0 means "every channel". pos[i] is the 1-based
 * position of names[i] in the text, for error messages of later checks
 * (filter_dyes_check()). Owns its memory; release with
 * filter_dyes_release().
 */
struct filter_dyes {
    size_t n;
    char **names;
    size_t *pos;
    char *text;  /* a copy of the filter text, for error messages */
};

/*
 * Parses "DAPI,Mito" into f, which then owns copies of the names and the
 * text (release with filter_dyes_release()). Returns 0, or -1 with e
 * naming token and position (or ENOMEM); f is then empty and needs no
 * release. Cost: O(length + n^2) for the duplicate check.
 */
int filter_dyes_parse(struct filter_dyes *f, const char *text, struct err *e);

/*
 * Checks every dye of f against the dyes of a channel map (ndyes names).
 * Returns 0, or -1 with e (code FILTER_ERR_SYNTAX) naming the first unknown
 * dye, its position, and the dyes the map does have. Cost: O(n * ndyes).
 */
int filter_dyes_check(const struct filter_dyes *f, const char *const *dyes, size_t ndyes,
                      struct err *e);

/* Whether dye is in f (always true when f selects every channel). O(n). */
int filter_dyes_match(const struct filter_dyes *f, const char *dye);

/* Frees what f owns and leaves it as "every channel". Safe on a zeroed struct. */
void filter_dyes_release(struct filter_dyes *f);

/* All four filters of an analysis. */
struct filter {
    struct filter_wells wells;
    struct filter_ints sites;
    struct filter_ints z;
    struct filter_dyes dyes;
};

/*
 * Parses the four filters (each may be NULL: no filter) into f. On error,
 * e says which filter and f is left released. Release with
 * filter_release().
 */
int filter_parse(struct filter *f, const char *wells, const char *sites, const char *z,
                 const char *dyes, const struct filter_plate *plate, struct err *e);

/* Resets f to "no filter", freeing what it owns. */
void filter_release(struct filter *f);

/* Sets f to "no filter" (nothing to release afterwards). */
void filter_init(struct filter *f);

#endif
